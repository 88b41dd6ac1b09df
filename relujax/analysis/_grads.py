"""Gradient-based dormancy: how much loss gradient reaches each unit's pre-activation."""

from __future__ import annotations

import contextlib
import functools
import math
from collections.abc import Callable, Collection, Sequence
from typing import Any, NamedTuple, cast

import jax
import jax.numpy as jnp
import numpy as np
from jax import Array
from jax.extend import core as jcore
from jax.typing import ArrayLike

from relujax.analysis import _capture
from relujax.analysis._capture import Observer, UnitAxis
from relujax.analysis._collect import _frozen, _trace
from relujax.analysis._count import Count
from relujax.analysis._dormancy import dormant
from relujax.analysis._model_stats import ModelStats
from relujax.analysis._select import Selector, select

P = jcore.primitives


class GradStats(NamedTuple):
    r"""Per-unit magnitude of the loss gradient at an activation site's pre-activation.

    .. math:: g_j = \frac{1}{n_j} \sum_{s} \left| \frac{\partial L}{\partial z_{s,j}} \right|

    summed over the :math:`n_j` entries :math:`s` of unit :math:`j` (samples, times spatial
    positions for a channel). A monoid like :class:`UnitStats`: :meth:`merge` adds the sums
    and counts of two batches, so :class:`ModelStats` of ``GradStats`` merge site by site.

    Attributes:
      abs_sum: ``float32[units]``, :math:`\sum_s |\partial L / \partial z_{s,j}|`.
      samples: :class:`Count` ``[units]``, the number of entries :math:`n_j` (samples, times
        positions).

    Examples:
      >>> import jax.numpy as jnp
      >>> from relujax.analysis import Count, GradStats
      >>> g = GradStats(jnp.array([0.0, 3.0]), Count.of(jnp.array([2, 2])))
      >>> g.abs_mean, g.merge(g).abs_mean
      (Array([0. , 1.5], dtype=float32), Array([0. , 1.5], dtype=float32))
    """

    abs_sum: Array
    samples: Count

    @classmethod
    def empty(cls, units: int) -> GradStats:
        """No entries yet: zero sums and counts for ``units`` units."""
        return cls(jnp.zeros((units,), jnp.float32), Count.zeros((units,)))

    @property
    def units(self) -> int:
        """Number of units (the size of the last axis)."""
        return int(np.shape(self.abs_sum)[-1])

    @property
    def abs_mean(self) -> Array:
        r""":math:`g_j`, the mean :math:`|\partial L / \partial z|` per unit (NaN if no entries)."""
        n = self.samples.to_float()
        return jnp.where(n > 0, self.abs_sum / jnp.where(n > 0, n, 1.0), jnp.nan)

    def merge(self, other: GradStats) -> GradStats:
        """The statistics of both streams of entries together (sums and counts added)."""
        return GradStats(self.abs_sum + other.abs_sum, self.samples.add(other.samples))


class _ProbeObserver(Observer):
    r"""Adds each probed site's probe to its pre-activation where that is defined.

    The probe of a site inside ``scan`` loops is stacked along them (outermost first): each
    scan takes the probes of the sites in its body as extra ``xs`` (:meth:`scan_inputs`) and
    its body reads its iteration's slice (:meth:`iteration`), so the gradient with respect to
    the stacked probe is :math:`\partial L / \partial z` of every iteration.
    """

    def __init__(self, selected: Collection[str], hits: Sequence[_capture._Hit], probes):
        self.selected = frozenset(selected)
        self.current: dict[str, Array] = dict(probes)  # each probe, sliced by the scans entered
        by_var: dict[Any, list[str]] = {}
        for hit in hits:
            by_var.setdefault(hit.pre, []).append(hit.slot.key.name)
        self.perturb = {v: functools.partial(self._add, names) for v, names in by_var.items()}

    def _add(self, names: list[str], x: Any) -> Any:
        for name in names:
            x = x + self.current[name]
        return x

    def scan_inputs(self, slots: Sequence[_capture._Slot]) -> dict[str, Array]:
        return {s.key.name: self.current[s.key.name] for s in slots if s.key.name in self.current}

    @contextlib.contextmanager
    def iteration(self, inputs: dict[str, Array]):
        saved = self.current
        self.current = {**saved, **inputs}
        try:
            yield
        finally:
            self.current = saved

    def empty(self, site) -> tuple[()]:
        return ()  # no state: the probes' gradients are the result

    def observe(self, acc, site, pre, out) -> None:
        pass

    def absorb(self, acc, name, state) -> None:
        pass


def _hits(plan: _capture._Plan, where: str | None = None, lengths: tuple[int, ...] = ()):
    """Every ``(hit, where, lengths)`` of the plan: ``lengths`` are the trip counts of the
    ``scan`` loops around the hit, outermost first; ``where`` names an enclosing construct the
    probes cannot reach through (a ``while`` loop, a custom derivative rule's body), else None."""
    for hits in plan.after.values():
        for hit in hits:
            yield hit, where, lengths
    for i, subs in plan.subs.items():
        p = plan.jaxpr.eqns[i].primitive
        inner, inner_lengths = where, lengths
        if p is P.scan_p:
            inner_lengths = (*lengths, plan.specs[i].length)
        elif inner is None and p is P.while_p:
            inner = "a while loop (it has no static trip count to stack a probe along)"
        elif inner is None and p in (P.custom_jvp_call_p, P.custom_vjp_call_p):
            inner = f"the body of a {p.name} (its derivative rule is kept)"
        for sub in subs:
            if sub is not None:
                yield from _hits(sub, inner, inner_lengths)


def _count(n: int, shape: tuple[int, ...]) -> Count:
    """The exact count ``n`` (a Python int, possibly above 2**32) broadcast to ``shape``."""
    return Count(jnp.full(shape, n >> 32, jnp.uint32), jnp.full(shape, n & 0xFFFFFFFF, jnp.uint32))


def _per_unit(g: Array, axis: int, lengths: tuple[int, ...], kept: Collection[int]) -> GradStats:
    """``GradStats`` of the probe gradient ``g`` (``lengths + pre-activation shape``): per
    iteration of the loops at ``kept`` (indices into ``lengths``), summed over the others."""
    k = len(lengths)
    g = jnp.abs(g.astype(jnp.promote_types(g.dtype, jnp.float32)))
    if g.ndim == k:
        g = g.reshape((*lengths, 1, 1))
    else:
        g = jnp.moveaxis(g, k + axis, -1)
        g = g.reshape((*lengths, math.prod(g.shape[k:-1]), g.shape[-1]))
    rows = g.shape[-2]
    pooled = tuple(d for d in range(k) if d not in kept)
    abs_sum = jnp.sum(g, axis=(*pooled, k))
    n = rows * math.prod(lengths[d] for d in pooled)
    return GradStats(abs_sum, _count(n, abs_sum.shape))


def with_site_grads(
    fn: Callable[..., Any],
    *,
    argnums: int | Sequence[int] | None = None,
    sites: Selector | None = None,
    exclude: Selector | None = None,
    activations: Collection[str] | None = None,
    loops: str = "auto",
    unit_axis: UnitAxis = None,
) -> Callable[..., Any]:
    r"""Wraps a scalar loss to also return the mean :math:`|\partial L / \partial z|` per unit.

    ``with_site_grads(loss)(*args)`` returns ``(loss(*args), grads)``, ``grads`` a
    :class:`ModelStats` of :class:`GradStats` in call order, with

    .. math:: g_j = \operatorname{mean}_{s} \left| \frac{\partial L}{\partial z_{s,j}} \right|

    the mean over samples (and spatial positions) of the gradient of the scalar ``L`` with
    respect to unit :math:`j`'s pre-activation :math:`z`. It is what reaches the unit's
    incoming weights (:math:`\partial L / \partial W = x^\top \partial L / \partial z`): a
    dead ReLU gets exactly 0 (its derivative is 0 on every sample), while a leaky ReLU that
    never fires still gets :math:`\alpha\,\partial L / \partial h \ne 0`. Use
    :func:`gradient_dormant` to threshold it as ReDo does.

    How: the sites are found as in :func:`with_stats` (the user's function, unmodified); the
    jaxpr is re-evaluated with a zero probe :math:`p` added to each selected pre-activation
    where it is defined, and ``jax.value_and_grad`` differentiates with respect to the
    probes, so :math:`\partial L / \partial p = \partial L / \partial z` exactly, by the
    activations' own derivative rules (relujax's kink conventions). It is one forward and one
    backward pass; it works inside ``jax.jit`` (use it there) and ``jax.vmap``.

    Loops: a site inside ``scan`` loops (static trip counts: ``flax.linen.scan``,
    ``nnx.scan``, ``lax.scan`` over stacked weights, ``fori_loop`` with static bounds, nested
    or ``reverse=True``) gets a probe stacked along them, threaded into each scan as an extra
    ``xs`` input, iteration :math:`t` adding its slice :math:`p_t` to :math:`z_t`; so
    :math:`\partial L / \partial p_t = \partial L / \partial z_t` for every iteration. The
    sites' names and order are :func:`with_stats`'s for the same ``loops``: with ``"auto"`` a
    loop over layers gives one ``GradStats`` per layer (``Net/layers[3]/relu_0``, iteration
    :math:`t` in the order of the scanned inputs), a loop over data pools its iterations;
    ``"per_iteration"`` keeps every iteration, ``"pooled"`` pools them all. Pooling adds the
    iterations' sums and counts,
    :math:`g_j = \sum_{t,s} |\partial L / \partial z_{t,s,j}| \,/\, (T n_j)`, not the
    magnitude of the summed gradient.

    Conventions: ``L`` is the function's output as written, so with a batch-mean loss each
    entry carries the factor :math:`1/N` (use a sum to get per-sample gradients; the ReDo
    score of :func:`gradient_dormant` does not depend on that scale). When :math:`z` has
    other uses besides the activation (a skip connection reading it, two activations of the
    same :math:`z`), :math:`\partial L / \partial z` is the total derivative through all of
    them. For a site observed on its output (a :func:`tag`, crelu) the probe is on that
    output. Sites inside a ``while`` loop (no static trip count) or inside a user's
    ``custom_jvp`` / ``custom_vjp`` function raise ``ValueError`` (leave them out with
    ``exclude=``). An NNX module's state updates during the call are discarded.

    Args:
      fn: a function returning a real scalar (the loss); its array arguments are traced,
        other leaves are static.
      argnums: also return the gradient of ``L`` with respect to these positional
        arguments, from the same backward pass (as ``jax.grad``'s ``argnums``).
      sites: which sites to probe: names, globs or compiled regexes (default: all).
      exclude: sites to leave out, in the same forms.
      activations: ``jit`` names treated as activations (default :func:`default_activations`).
      loops: ``"auto"`` (default), ``"per_iteration"`` or ``"pooled"``: how sites inside
        ``scan`` loops are kept, as in :func:`collect`.
      unit_axis: which axis holds a site's units (see :func:`collect`).

    Returns:
      A function returning ``(value, grads)``, or ``(value, grads, arg_grads)`` with
      ``argnums`` (``arg_grads`` a tuple when ``argnums`` is a sequence).

    Raises:
      ValueError: ``fn``'s output is not a real scalar, it has no activation site, ``loops``
        is not one of the three, or a selected site is in a ``while`` loop or a custom
        derivative rule's body, or has a constant pre-activation.

    Examples:
      >>> import jax, jax.numpy as jnp, relujax
      >>> from relujax import analysis
      >>> w1 = jnp.array([[1.0, -1.0]])  # unit 1: z = -x < 0 on these inputs, dead
      >>> x = jnp.array([[1.0], [2.0]])
      >>> def loss(w1, x):
      ...     return jnp.sum(relujax.relu(x @ w1) + relujax.leaky_relu(x @ w1, 0.1))
      >>> value, grads = jax.jit(analysis.with_site_grads(loss))(w1, x)
      >>> grads["relu_0"].abs_mean, grads["leaky_relu_0"].abs_mean
      (Array([1., 0.], dtype=float32), Array([1. , 0.1], dtype=float32))

      A ``lax.scan`` over stacked layers gives one entry per layer; in layer 1, unit 1 has
      :math:`z = -(h_0 + h_1) < 0`, dead:

      >>> ws = jnp.array([[[1.0, 0.0], [0.0, 1.0]], [[1.0, -1.0], [1.0, -1.0]]])
      >>> def deep(ws, x):
      ...     return jnp.sum(jax.lax.scan(lambda h, w: (relujax.relu(h @ w), None), x, ws)[0])
      >>> _, grads = jax.jit(analysis.with_site_grads(deep))(ws, jnp.array([[1.0, 2.0]]))
      >>> {name: g.abs_mean.tolist() for name, g in grads.items()}
      {'relu_0[0]': [1.0, 1.0], 'relu_0[1]': [1.0, 0.0]}
    """
    nums: tuple[int, ...] = ()
    if argnums is not None:
        seq = (argnums,) if isinstance(argnums, int) else tuple(argnums)
        for k in seq:
            if not isinstance(k, int) or isinstance(k, bool):
                raise TypeError(f"with_site_grads: argnums must be ints, got {argnums!r}.")
        nums = seq
    fn = _frozen(fn)

    def wrapped(*args: Any, **kwargs: Any) -> Any:
        for k in nums:
            if not -len(args) <= k < len(args):
                raise ValueError(
                    f"with_site_grads: argnums {k} is out of range for {len(args)} positional "
                    "arguments."
                )
        traced = _trace(fn, args, kwargs, activations, loops, unit_axis)
        plan = traced.plan
        outs = plan.jaxpr.outvars
        aval = outs[0].aval if len(outs) == 1 else None
        if aval is None or aval.shape != () or not jnp.issubdtype(aval.dtype, jnp.floating):
            got = [(tuple(v.aval.shape), str(v.aval.dtype)) for v in outs]
            raise ValueError(
                "with_site_grads: fn must return a real scalar (the loss); got outputs of "
                f"(shape, dtype) {got}."
            )
        chosen = select(plan.sites, sites, exclude)
        slots, keys = traced.observed(chosen)
        found = {hit.slot.key.name: (hit, where, n) for hit, where, n in _hits(plan)}
        hits, lengths = [], {}
        for slot in slots:
            hit, where, lengths[slot.key.name] = found[slot.key.name]
            names = [v.name for v in slot.views]
            if where is not None:
                raise ValueError(
                    f"with_site_grads: site(s) {names} are inside {where}; a probe there does "
                    "not reach the loss's gradient. Leave them out with exclude=."
                )
            if isinstance(hit.pre, jcore.Literal):
                raise ValueError(f"with_site_grads: site(s) {names} have a constant input.")
            if not jnp.issubdtype(hit.pre.aval.dtype, jnp.floating):
                raise ValueError(
                    f"with_site_grads: site(s) {names} have a non-float pre-activation "
                    f"({hit.pre.aval.dtype})."
                )
            hits.append(hit)
        probes = {
            h.slot.key.name: jnp.zeros(
                lengths[h.slot.key.name] + h.pre.aval.shape, h.pre.aval.dtype
            )
            for h in hits
        }
        leaves, _ = jax.tree.flatten((tuple(args), dict(kwargs)))
        dyn_idx = [i for i, leaf in enumerate(leaves) if _capture._is_array(leaf)]
        positions = [k % len(args) for k in nums]

        def loss(probes: dict[str, Array], diff: list[Any]) -> Array:
            a = list(args)
            for k, v in zip(positions, diff, strict=True):
                a[k] = v
            new_leaves = jax.tree.leaves((tuple(a), dict(kwargs)))
            dynamic = [new_leaves[i] for i in dyn_idx]
            obs = _ProbeObserver(keys, hits, probes)
            return _capture.evaluate(plan, plan.consts, dynamic, {}, obs)[0]

        for k in positions:
            for leaf in jax.tree.leaves(args[k]):
                if not _capture._is_array(leaf):
                    raise ValueError(
                        f"with_site_grads: argument {k} (argnums) has a leaf that is not an "
                        f"array ({type(leaf).__name__}); give arrays to differentiate."
                    )
        value, (g_probes, g_args) = jax.value_and_grad(loss, argnums=(0, 1))(
            probes, [args[k] for k in positions]
        )
        acc = {}
        for h in hits:
            name = h.slot.key.name
            kept = {d for d, _ in h.slot.stack}  # a scan at depth d is the d-th around the site
            acc[name] = _per_unit(g_probes[name], h.slot.axis, lengths[name], kept)
        grads = ModelStats(cast(Any, _capture.views(slots, acc, {s.name for s in chosen})))
        value = jax.tree.unflatten(traced.out_tree, [value])
        if argnums is None:
            return value, grads
        arg_grads = g_args[0] if isinstance(argnums, int) else tuple(g_args)
        return value, grads, arg_grads

    return wrapped


def _abs_mean(g: GradStats | ArrayLike) -> Any:
    return g.abs_mean if isinstance(g, GradStats) else g


def gradient_dormant(g: GradStats | ArrayLike, *, tau: ArrayLike) -> Array:
    r"""Gradient-dormant units: ReDo's normalised score of :math:`g_j` is :math:`\le \tau`.

    .. math:: \frac{g_j}{\frac{1}{H'} \sum_k g_k} \le \tau

    with :math:`g_j` the mean :math:`|\partial L / \partial z_j|` of :func:`with_site_grads`
    and the mean over the :math:`H'` units with a finite :math:`g` (the same score as
    :func:`dormancy_score`, on gradients instead of activations). ``tau=0`` selects the
    units that received exactly zero gradient on every entry: for ReLUs, the dead units
    whose output reaches the loss; a leaky ReLU's units never qualify. Units with NaN
    :math:`g` (no entries, non-finite gradients) are never dormant.

    Args:
      g: a :class:`GradStats`, or :math:`g_j` as an array ``(..., units)``.
      tau: the threshold, a finite number >= 0 (may be traced).

    Returns:
      A boolean array ``(..., units)``.

    Examples:
      >>> import jax.numpy as jnp
      >>> from relujax.analysis import gradient_dormant
      >>> g = jnp.array([0.0, 0.01, 1.0, 1.99])  # mean 0.75
      >>> gradient_dormant(g, tau=0.0)
      Array([ True, False, False, False], dtype=bool)
      >>> gradient_dormant(g, tau=0.1)  # 0.01 / 0.75 <= 0.1
      Array([ True,  True, False, False], dtype=bool)
    """
    return dormant(_abs_mean(g), tau)


def gradient_dormant_fraction(g: GradStats | ArrayLike, *, tau: ArrayLike) -> Array:
    r"""The fraction of a layer's units that are gradient-dormant (:func:`gradient_dormant`).

    .. math:: \frac{1}{H} \sum_j \mathbb{1}\left[\frac{g_j}{\frac{1}{H'}\sum_k g_k} \le \tau\right]

    over all :math:`H` units of the layer (units with NaN :math:`g` count as not dormant).

    Args:
      g: a :class:`GradStats`, or :math:`g_j` as an array ``(..., units)``.
      tau: the threshold, a finite number >= 0.

    Returns:
      A ``float32`` array ``(...)``.

    Examples:
      >>> import jax.numpy as jnp
      >>> from relujax.analysis import gradient_dormant_fraction
      >>> gradient_dormant_fraction(jnp.array([0.0, 0.0, 1.0, 3.0]), tau=0.0)
      Array(0.5, dtype=float32)
    """
    return jnp.mean(gradient_dormant(g, tau=tau).astype(jnp.float32), axis=-1)
