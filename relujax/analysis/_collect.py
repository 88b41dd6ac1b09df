"""Collect per-unit statistics of a user's unmodified model over a stream of batches."""

from __future__ import annotations

import collections
import dataclasses
import functools
import math
import sys
from collections.abc import Callable, Collection, Iterable, Mapping, Sequence
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from jax import Array, lax
from jax.extend import core as jcore

from relujax import _validation
from relujax.analysis import _blocks, _capture, _stats
from relujax.analysis._capture import Observer, Site, UnitAxis
from relujax.analysis._model_stats import ModelStats
from relujax.analysis._select import Selector, select
from relujax.analysis._stats import UnitStats


class _StatsObserver(Observer):
    def __init__(self, selected: Collection[str], moments: bool = True):
        self.selected = frozenset(selected)
        self.moments = moments

    def empty(self, site: Site) -> UnitStats:
        return UnitStats.empty(site.units)

    def observe(self, acc, site, pre, out) -> None:
        kw = dict(
            nonnegative=site.nonnegative,
            sign_preserving=site.sign_preserving,
            moments=self.moments,
        )
        if pre is out:
            batch = UnitStats.from_batch(out, **kw)
        else:
            batch = UnitStats.from_batch(pre, out, **kw)
        self.absorb(acc, site.name, batch)

    def absorb(self, acc, name, state) -> None:
        previous = acc.get(name)
        acc[name] = state if previous is None else previous.merge(state)


class _ShiftedStatsObserver(_StatsObserver):
    """:class:`_StatsObserver` that reads a biased pre-activation ``c + b`` off ``c`` and ``b``.

    ``shifted`` maps a site's name to the two variables of the ``add`` that made its
    pre-activation (see :func:`_shifted_sites`); their values are recorded where they are
    defined (the ``perturb`` hook, returning them unchanged) and the site's statistics come
    from :func:`relujax.analysis._stats._from_shifted`, so the sum is never materialized
    for the statistics alone.
    """

    def __init__(self, selected: Collection[str], shifted: Mapping[str, tuple[Any, Any]]):
        super().__init__(selected, moments=True)
        self.shifted = dict(shifted)
        self.values: dict[Any, Any] = {}
        self.perturb = {v: functools.partial(self._record, v) for p in shifted.values() for v in p}

    def _record(self, var: Any, value: Any) -> Any:
        self.values[var] = value
        return value

    def observe(self, acc, site, pre, out) -> None:
        pair = self.shifted.get(site.name)
        if pair is None or pre is out:
            return super().observe(acc, site, pre, out)
        c, shift = (self.values[v] for v in pair)
        batch = _stats._from_shifted(c, shift, out, nonnegative=site.nonnegative)
        self.absorb(acc, site.name, batch)


def _shifted_sites(plan: Any, selected: Collection[str]) -> dict[str, tuple[Any, Any]]:
    """Sites whose float32 pre-activation is ``add(c, b)`` with ``b`` of shape (1, ..., units).

    Only sign-preserving activations (firing is then read off the output) with the units on
    the last axis qualify; ``c`` and ``b`` must be variables of the plan that holds the site.
    """
    found: dict[str, tuple[Any, Any]] = {}
    plans = [plan]
    while plans:
        p = plans.pop()
        plans.extend(sub for subs in p.subs.values() for sub in subs if sub is not None)
        made = {v: e for e in p.jaxpr.eqns for v in e.outvars}
        for hits in p.after.values():
            for hit in hits:
                site = hit.slot.key
                eqn = made.get(hit.pre) if hit.pre is not hit.out else None
                if site.name not in selected or not site.sign_preserving or eqn is None:
                    continue
                pair = _bias_pair(eqn, hit.slot.axis)
                if pair is not None:
                    found[site.name] = pair
    return found


def _bias_pair(eqn: Any, axis: int) -> tuple[Any, Any] | None:
    if eqn.primitive is not lax.add_p or len(eqn.invars) != 2:
        return None
    aval = eqn.outvars[0].aval
    if aval.dtype != jnp.float32 or axis != aval.ndim - 1:
        return None
    for c, b in (eqn.invars, eqn.invars[::-1]):
        if isinstance(c, jcore.Literal) or isinstance(b, jcore.Literal):
            return None
        if (
            c.aval.shape == aval.shape
            and c.aval.dtype == b.aval.dtype == jnp.float32
            and b.aval.ndim == aval.ndim
            and all(n == 1 for n in b.aval.shape[:-1])
            and b.aval.shape[-1] == aval.shape[-1]
        ):
            return c, b
    return None


class _FeatureObserver(Observer):
    def __init__(self, selected: Collection[str], max_rows: int | None):
        self.selected = frozenset(selected)
        self.max_rows = max_rows

    def observe(self, acc, site, pre, out) -> None:
        rows = _stats.as_float32(lax.stop_gradient(out).reshape(-1, site.units))
        acc[site.name] = rows if self.max_rows is None else rows[: self.max_rows]


def _nnx_module(fn: Any) -> Any:
    nnx = sys.modules.get("flax.nnx")
    return nnx if nnx is not None and isinstance(fn, nnx.Module) else None


def _holds_parameters(arg: Any) -> bool:
    """Whether a positional argument is a model's parameters by its type: an Equinox module,
    an NNX module or state, or Linen variables (a mapping with a ``"params"`` collection)."""
    eqx = sys.modules.get("equinox")
    if eqx is not None and isinstance(arg, eqx.Module):
        return True
    nnx = sys.modules.get("flax.nnx")
    if nnx is not None and isinstance(arg, (nnx.Module, nnx.State)):
        return True
    return isinstance(arg, Mapping) and "params" in arg


def _frozen(fn: Callable[..., Any]) -> Callable[..., Any]:
    """``fn`` itself, or for an NNX module a pure function of a snapshot of its state."""
    nnx = _nnx_module(fn)
    if nnx is None:
        return fn
    graphdef, state = nnx.split(fn)
    leaves, treedef = jax.tree.flatten(state)

    def pure(*args: Any, **kwargs: Any) -> Any:
        # Fresh Variables inside the trace: mutations (BatchNorm statistics, RNG counters)
        # stay on this copy, and the user's module is never modified.
        return nnx.merge(graphdef, jax.tree.unflatten(treedef, leaves))(*args, **kwargs)

    return pure


@dataclasses.dataclass(frozen=True)
class _Threaded:
    """An NNX module as ``pure(state, batch) -> (output, new state)`` over a copy of its state.

    ``state`` is the list of the module's array leaves (parameters, RNG keys and counters,
    batch statistics); other leaves are fixed. :func:`collect` carries the state from batch to
    batch, so RNG streams advance as they would over successive direct calls.
    """

    pure: Callable[..., Any]
    state: list[Any]
    key: Any = None  # identifies the traced program (graph, static leaves, array types)


def _threaded(fn: Any) -> _Threaded | None:
    nnx = _nnx_module(fn)
    if nnx is None:
        return None
    graphdef, state = nnx.split(fn)
    leaves, treedef = jax.tree.flatten(state)
    where = [k for k, leaf in enumerate(leaves) if _capture._is_array(leaf)]

    def pure(arrays: list[Any], batch: Any) -> tuple[Any, list[Any]]:
        full = list(leaves)
        for k, v in zip(where, arrays, strict=True):
            full[k] = v
        module = nnx.merge(graphdef, jax.tree.unflatten(treedef, full))
        out = module(batch)
        new_leaves, new_treedef = jax.tree.flatten(nnx.split(module)[1])
        if new_treedef != treedef:
            raise ValueError(
                "collect: the NNX module changed the structure of its state during a call "
                "(new Variables); call it once before collecting."
            )
        return out, [new_leaves[k] for k in where]

    state = [leaves[k] for k in where]
    static = tuple(None if k in where else leaf for k, leaf in enumerate(leaves))
    types = tuple((leaf.shape, leaf.dtype) for leaf in state)
    return _Threaded(pure=pure, state=state, key=(graphdef, treedef, static, types))


def _acts(activations: Collection[str] | None) -> Collection[str]:
    if activations is None:
        return _capture.default_activations()
    if isinstance(activations, str):
        raise TypeError(
            f"activations must be a collection of names, got the string {activations!r}."
        )
    return frozenset(activations)


def _loops(loops: str) -> str:
    return _validation.choice("loops", loops, _capture.LOOP_MODES)


def _unit_axis(unit_axis: Any) -> Any:
    if unit_axis is None or callable(unit_axis):
        return unit_axis
    if not isinstance(unit_axis, Mapping):
        raise TypeError(
            "unit_axis must be None, a mapping from site name to axis, or a callable "
            f"site -> axis (or None); got {type(unit_axis).__name__}."
        )
    return dict(unit_axis)


def _trace(
    fn, args, kwargs, activations, loops="auto", unit_axis=None, param_args=()
) -> _capture.Traced:
    """:func:`relujax.analysis._capture.trace` with the options validated; ``args[i]`` for
    ``i`` in ``param_args``, and every argument whose type says it holds a model's
    parameters (:func:`_holds_parameters`), are not data."""
    typed = [k for k, a in enumerate(args) if _holds_parameters(a)]
    param_args = (*param_args, *typed)
    traced = _capture.trace(
        fn,
        args,
        kwargs,
        _acts(activations),
        loops=_loops(loops),
        unit_axis=_unit_axis(unit_axis),
        param_args=param_args,
    )
    if not traced.plan.sites:
        raise ValueError(
            f"found no activation site in {getattr(fn, '__name__', fn)!r}. Recognised are "
            "calls of relujax's activations and of jax.nn's ReLU family (relu, leaky_relu, "
            "elu, gelu, silu, ...), also through Flax. Mark other arrays with "
            "relujax.analysis.tag(x, name)."
        )
    return traced


def find_sites(
    fn: Callable[..., Any],
    *args: Any,
    activations: Collection[str] | None = None,
    loops: str = "auto",
    unit_axis: UnitAxis = None,
    **kwargs: Any,
) -> tuple[Site, ...]:
    """Lists the activation sites of ``fn(*args, **kwargs)``, in call order, without running it.

    Args:
      fn: a function, an NNX module, or a Linen ``apply`` (bound with ``functools.partial``).
      *args: example arguments (arrays or ``jax.ShapeDtypeStruct``; other leaves are static).
      activations: names of ``jit`` equations to treat as activations (default:
        :func:`default_activations`); tags are always recognised.
      loops: how sites inside ``scan`` loops are kept (see :func:`collect`).
      unit_axis: which axis holds a site's units (see :func:`collect`).
      **kwargs: example keyword arguments.

    Returns:
      A tuple of :class:`Site` (name, function, shape, in_loop, unit_axis, iteration).

    Examples:
      >>> import jax, jax.numpy as jnp
      >>> from relujax import analysis
      >>> def f(x):
      ...     return jax.nn.relu(jax.nn.relu(x) - 1.0) + jax.nn.gelu(x)
      >>> [s.name for s in analysis.find_sites(f, jnp.ones((4, 3)))]
      ['relu_0', 'relu_1', 'gelu_0']
    """
    return tuple(_trace(_frozen(fn), args, kwargs, activations, loops, unit_axis).plan.sites)


def with_stats(
    fn: Callable[..., Any],
    *,
    sites: Selector | None = None,
    exclude: Selector | None = None,
    activations: Collection[str] | None = None,
    moments: bool = True,
    loops: str = "auto",
    unit_axis: UnitAxis = None,
    param_argnums: int | Sequence[int] = (),
) -> Callable[..., tuple[Any, ModelStats]]:
    """Wraps ``fn`` to also return the per-unit statistics of this one call.

    ``with_stats(fn)(*args)`` returns ``(fn(*args), stats)``. It traces ``fn`` and re-evaluates
    its jaxpr with a reduction after every selected site (see :mod:`relujax.analysis`), so the
    statistics cost a few per-unit reductions on top of the forward pass and no second pass
    over the data. It works inside ``jax.jit`` (use it there: called eagerly the jaxpr runs op
    by op), ``jax.vmap`` and ``jax.grad(..., has_aux=True)``: gradients equal those of ``fn``
    (custom derivative rules are kept; the statistics are ``stop_gradient``-ed). Array leaves
    of the arguments are traced; other leaves (flags, strings) are static.

    For an NNX module ``fn`` the call runs on ``nnx.split(fn)`` and its state updates (batch
    statistics, RNG counters) are written back with ``nnx.update``, as a direct call would.

    Args:
      fn: a function, an NNX module or a bound Linen ``apply``.
      sites: which sites to observe: names, globs or compiled regexes (default: all).
      exclude: sites to leave out, in the same forms.
      activations: ``jit`` names treated as activations (default :func:`default_activations`).
      moments: also the pre-activation and output moments, minimum and maximum (default).
        ``False`` keeps counts, firing and ``E|h|`` only, which is all :func:`diagnose` needs
        for dead, dormant, low-firing and always-active units, at one or two reductions per
        site (see :meth:`UnitStats.from_batch`).
      loops: how sites inside ``scan`` loops are kept (see :func:`collect`).
      unit_axis: which axis holds a site's units (see :func:`collect`).
      param_argnums: the positional arguments of ``fn`` that hold parameters, not data
        (``1`` for ``loss(x, params)``). A dense layer's weight is told from its input by
        which operand depends on the data; when the weights are arguments not known as
        parameters, the axis is read from the operands' ranks, which is right for one model
        and wrong for a ``vmap``-ed ensemble (K stacked weights against one batch: its
        samples would be taken for units). Arguments known by their type are parameters
        anyway: an Equinox module, an NNX module or ``nnx.State``, Linen variables (a mapping
        with a ``"params"`` collection); so is an NNX module ``fn``'s own state. Default:
        every other argument is data.

    Returns:
      A function returning ``(output, ModelStats)``.

    Raises:
      ValueError: ``param_argnums`` names an argument that ``fn`` is not called with.

    Examples:
      >>> import jax, jax.numpy as jnp
      >>> from relujax import analysis
      >>> def loss(w, x):
      ...     return jnp.sum(jax.nn.relu(x @ w))
      >>> w, x = jnp.array([[1.0, -1.0]]), jnp.array([[1.0], [2.0], [-1.0]])
      >>> grad_fn = jax.jit(jax.grad(analysis.with_stats(loss), has_aux=True))
      >>> g, stats = grad_fn(w, x)
      >>> g, stats["relu_0"].firing_rate
      (Array([[ 3., -1.]], dtype=float32), Array([0.6667 , 0.3333], dtype=float32))
    """
    nums = _validation.argnums("with_stats: param_argnums", param_argnums)
    nnx = _nnx_module(fn)
    if nnx is not None:
        module = fn

        def stateful(*args: Any, **kwargs: Any) -> tuple[Any, ModelStats]:
            graphdef, state = nnx.split(module)

            def pure(state, *a, **k):
                m = nnx.merge(graphdef, state)
                return m(*a, **k), nnx.state(m)

            given = _validation.argnums_in("with_stats: param_argnums", nums, len(args))
            (out, new_state), stats = _with_stats(
                pure, sites, exclude, activations, moments, loops, unit_axis,
                param_args=(0, *(k + 1 for k in given)),
            )(state, *args, **kwargs)  # fmt: skip
            old, new = jax.tree.leaves(state), jax.tree.leaves(new_state)
            if len(old) != len(new) or any(a is not b for a, b in zip(old, new, strict=False)):
                nnx.update(module, new_state)  # only when something changed, as a direct call
            return out, stats

        return stateful
    return _with_stats(fn, sites, exclude, activations, moments, loops, unit_axis, nums=nums)


def _with_stats(
    fn, sites, exclude, activations, moments, loops, unit_axis, param_args=(), nums=()
) -> Callable[..., tuple[Any, ModelStats]]:
    """:func:`with_stats` of a plain function; ``args[i]`` for ``i`` in ``param_args`` hold
    parameters, not data (see :func:`relujax.analysis._capture.trace`), as do those of the
    user's ``param_argnums`` ``nums`` (checked against the call's arguments)."""

    def wrapped(*args: Any, **kwargs: Any) -> tuple[Any, ModelStats]:
        given = _validation.argnums_in("with_stats: param_argnums", nums, len(args))
        params = (*param_args, *given)
        traced = _trace(fn, args, kwargs, activations, loops, unit_axis, params)
        chosen = select(traced.plan.sites, sites, exclude)
        slots, keys = traced.observed(chosen)
        shifted = _shifted_sites(traced.plan, keys) if moments else {}
        obs = _ShiftedStatsObserver(keys, shifted) if shifted else _StatsObserver(keys, moments)
        acc: dict[str, UnitStats] = {}
        outs = _capture.evaluate(traced.plan, traced.plan.consts, traced.dynamic, acc, obs)
        stats = ModelStats(_capture.views(slots, acc, {s.name for s in chosen}))
        return jax.tree.unflatten(traced.out_tree, outs), stats

    return wrapped


def _signature(batch: Any) -> tuple[Any, tuple[tuple[tuple[int, ...], Any], ...]]:
    leaves, treedef = jax.tree.flatten(batch)
    sig = []
    for leaf in leaves:
        dtype = getattr(leaf, "dtype", None)
        dtype = np.result_type(leaf) if dtype is None else dtype
        sig.append((tuple(np.shape(leaf)), jax.dtypes.canonicalize_dtype(dtype)))
    return treedef, tuple(sig)


def _spec(sig: tuple[tuple[int, ...], Any]) -> jax.ShapeDtypeStruct:
    return jax.ShapeDtypeStruct(sig[0], sig[1])


def collect(
    fn: Callable[[Any], Any],
    batches: Iterable[Any] | Array | Mapping[str, Any],
    *,
    sites: Selector | None = None,
    exclude: Selector | None = None,
    activations: Collection[str] | None = None,
    stacked: bool | None = None,
    init: ModelStats | None = None,
    moments: bool = True,
    loops: str = "auto",
    unit_axis: UnitAxis = None,
    sub_batch: int | str | None = "auto",
) -> ModelStats:
    """Per-unit statistics of every activation site of ``fn``, over all ``batches``.

    ``fn`` maps one batch (an array or a pytree of arrays) to anything: a plain function,
    an NNX module, or a Linen model bound to its variables
    (``functools.partial(model.apply, variables)``). Sites are found automatically (calls of
    relujax's activations, of jax.nn's ReLU family and of their Flax re-exports, and
    :func:`tag`-ged arrays; see :func:`find_sites`). ``fn`` is traced once; one jitted step
    runs the forward pass and reduces each selected site to :class:`UnitStats` (O(units)
    memory, never O(samples)), merged into a running carry.

    An NNX module runs on a copy of its state that is carried from batch to batch, exactly
    as successive direct calls would: RNG streams advance (each batch draws fresh dropout
    masks and RReLU slopes), batch statistics update. The user's module itself is never
    modified, so two calls of ``collect`` on the same module see the same random draws.

    ``batches`` is either

    - an iterable of batches of identical shapes (a list, a generator, a data loader): a
      Python loop calls the jitted step once per batch, and peak memory does not grow with
      the number of batches; or
    - a stacked array, or a ``Mapping`` of arrays, with a leading axis of batches (or any
      pytree with ``stacked=True``): the batches are scanned with ``lax.scan`` in one call.
      This form also works under ``jax.vmap`` over model parameters (K models at once).

    **Units.** Every axis of a site but one is pooled; the remaining one holds the units
    (:attr:`Site.unit_axis`). It is read from the operation that produced the
    pre-activation: a convolution's output feature dimension (so channels-first
    ``(N, C, H, W)`` convolutions have one unit per channel, like channels-last ones), the
    last axis after a dense layer, followed through bias adds, broadcasts, transposes and
    reshapes; a dense layer's weight is the operand that does not depend on the batch
    (arguments known as parameters by their type, an Equinox module, an NNX module or
    ``nnx.State``, Linen variables with a ``"params"`` collection, are not data; for other
    weights passed as arguments of ``fn`` rather than closed over, the operand with a single
    free axis, or :func:`with_stats`'s ``param_argnums``). Sites of rank <= 2 use the last
    axis. A site of rank >= 3 whose axis cannot be
    read (an ensemble under ``vmap``: K stacked weights against one batch) warns and uses the
    last axis; ``unit_axis`` sets it explicitly. A rank-1 site that holds one value per
    sample (``x @ w`` with ``w`` of shape ``(F,)``) warns that its "units" are positions.

    **Loops.** A ``scan`` has a static trip count. With ``loops="auto"`` a site inside a scan
    whose carried value feeds it (a loop over layers: ``flax.linen.scan``, ``nnx.scan``,
    ``lax.scan`` over stacked weights, a ``fori_loop`` with static bounds) gets one
    statistic per iteration, as a site named with its iteration (``Net/layers[3]/relu_0``;
    see :attr:`Site.name`), so a unit dead in layer 3 but alive in layer 7 is reported per
    layer; a site fed only by the scanned inputs (a loop over data) pools its iterations.
    ``"per_iteration"`` keeps every scan's iterations apart, ``"pooled"`` pools them all.
    ``while`` loops (no static trip count) always pool.

    **Sub-batches.** On CPU a large activation is written to memory and read back by every
    statistic; evaluated on a block of a few samples it stays in cache. With ``sub_batch=s``
    each batch runs as a ``lax.scan`` over blocks of ``s`` samples, and the blocks' statistics
    merge with the monoid: counts are exact and the other fields equal the whole batch's to
    float32 rounding. That is the same only for a *per-sample* model, whose outputs for a
    sample depend on that sample alone: not BatchNorm in training mode (batch statistics),
    not dropout or other random draws shaped like the batch, not a model that uses the batch
    size as a number. ``collect`` proves it before blocking, from the model's program traced
    at both batch sizes (a model that does not trace at the block size, as with a literal
    ``x.reshape(256, -1)``, is not per-sample either; ``relujax.analysis._blocks``: every
    operation must
    keep samples apart, the traces must agree on every constant and parameter, and an NNX
    module must not update its state), and raises naming the operation that stands in the
    way. The proof is conservative: an operation it does not know (a gather, a loop over
    batched values, a sort) refuses, and ``sub_batch=None`` then reduces whole batches. The
    default ``"auto"`` blocks only on CPU, only batches with a site of at least
    4 MiB (``AUTO_MIN_BYTES``), in blocks of at most 2 MiB of the largest site
    (``AUTO_BLOCK_BYTES``; the largest such divisor of the batch size), and only when the
    proof succeeds; otherwise it reduces whole batches, so its results never depend on
    whether it blocked beyond float rounding.

    Statistics are a monoid: ``collect(fn, a).merge(collect(fn, b))`` equals
    ``collect(fn, a + b)``, and ``init=`` continues from earlier statistics (to resume an
    interrupted pass).

    Args:
      fn: the model, a function of one batch.
      batches: the batches, as described above.
      sites: sites to observe: names, globs (``"MLP/*"``), compiled regexes, or a list of
        these (default: all).
      exclude: sites to leave out, in the same forms.
      activations: ``jit`` names treated as activations (default :func:`default_activations`).
      stacked: force (True) or forbid (False) the stacked interpretation of ``batches``;
        by default arrays and mappings are stacked and everything else is an iterable.
      init: statistics to continue from (same sites).
      moments: also moments, minimum and maximum (default); ``False`` keeps counts, firing
        and ``E|h|`` only, the cheapest pass that still supports :func:`diagnose`'s dead,
        dormant, low-firing and always-active findings (pre-activation mean/std become NaN).
      loops: ``"auto"`` (default), ``"per_iteration"`` or ``"pooled"``, as described above.
      unit_axis: the units' axis of chosen sites: a mapping from site name to axis
        (``{"Net/conv_out/relu_0": 1}``; negative axes count from the end), or a callable
        ``site -> axis or None`` (None keeps the inferred axis).
      sub_batch: ``"auto"`` (default), ``None`` (whole batches) or a positive int dividing
        the batch size: samples per block, as described above.

    Returns:
      A :class:`ModelStats`, ordered like the sites in ``fn``.

    Raises:
      ValueError: when there are no batches, when a batch's shapes differ from the first
        batch's (the message names the batch index), when ``fn`` has no activation site,
        when ``init`` does not match the selected sites, or when an int ``sub_batch`` does
        not divide the batch size or the model does not run on, or is not proved per-sample
        at, that block size.

    Examples:
      >>> import jax, jax.numpy as jnp
      >>> from relujax import analysis
      >>> w = jnp.array([[1.0, -1.0, 0.0]])
      >>> def f(x):
      ...     return jax.nn.relu(x @ w)
      >>> batches = jnp.arange(-2.0, 4.0).reshape(3, 2, 1)  # 3 batches of 2 samples
      >>> stats = analysis.collect(f, batches)
      >>> stats["relu_0"].firing_rate
      Array([0.5       , 0.3333, 0.        ], dtype=float32)
      >>> stats["relu_0"].dead
      Array([False, False,  True], dtype=bool)

      A loop over layers is reported per layer:

      >>> ws = jnp.stack([jnp.eye(2), -jnp.eye(2), jnp.eye(2)])  # 3 layers of 2 units
      >>> def net(x):
      ...     return jax.lax.scan(lambda h, w: (jax.nn.relu(h @ w), None), x, ws)[0]
      >>> stats = analysis.collect(net, jnp.ones((1, 4, 2)))
      >>> list(stats), stats["relu_0[1]"].dead
      (['relu_0[0]', 'relu_0[1]', 'relu_0[2]'], Array([ True,  True], dtype=bool))

      Blocks of a batch give the whole batch's statistics; a batch-coupled model is refused:

      >>> xs = jnp.arange(-8.0, 8.0).reshape(2, 8, 1)  # 2 batches of 8 samples
      >>> blocked = analysis.collect(f, xs, sub_batch=2)
      >>> bool(jnp.allclose(blocked["relu_0"].pre_mean, analysis.collect(f, xs)["relu_0"].pre_mean))
      True
      >>> try:
      ...     analysis.collect(lambda x: f(x - x.mean(0, keepdims=True)), xs, sub_batch=2)
      ... except ValueError as e:
      ...     print(str(e).split(": ")[-1])
      reduce_sum reduces the batch axis. Use sub_batch=None to reduce each batch whole.
    """
    options = _Options(
        sites, exclude, activations, init, moments, _loops(loops), unit_axis, _sub(sub_batch)
    )
    threaded = _threaded(fn)
    if stacked is None:
        stacked = isinstance(batches, (jax.Array, np.ndarray, Mapping))
    if stacked:
        return _collect_stacked(fn, threaded, batches, options)
    if isinstance(batches, (str, bytes)) or not isinstance(batches, Iterable):
        raise TypeError(
            "batches must be an iterable of batches or a stacked array/pytree with a leading "
            f"batch axis; got {type(batches).__name__}."
        )
    return _collect_iterable(fn, threaded, batches, options)


class _Options(NamedTuple):
    sites: Selector | None
    exclude: Selector | None
    activations: Collection[str] | None
    init: ModelStats | None
    moments: bool
    loops: str
    unit_axis: UnitAxis
    sub_batch: int | str | None


#: ``sub_batch="auto"`` blocks only batches whose largest site holds at least this many bytes
#: (as float32): the CNN of ``benchmarks/analysis.py`` (25.7 MB per site) gains 3x, an MLP's
#: 1 MiB activations are reduced in cache anyway and their matmuls prefer the whole batch.
AUTO_MIN_BYTES = 1 << 22

#: ``sub_batch="auto"`` splits a batch into blocks of the largest divisor of the batch size whose
#: largest site holds at most this many bytes (as float32). Measured on the benchmark's CNN
#: (100 KB per sample at its largest site; AMD Zen 4, 1 MiB L2 per core; ``benchmarks/README.md``):
#: blocks of 16 samples (1.6 MB) beat blocks of 8 (0.8 MB, within L2) for both moment settings,
#: ``moments=False`` 1.39-1.46x against 1.55-1.62x the forward pass and the default statistics
#: 1.72-1.76x against 1.89-1.92x: half as many blocks halve the per-block cost of the scan, the
#: small convolutions and the reductions, and 2 MiB still fits a server core's L2 (Intel
#: Sapphire Rapids) or the L3 close by.
AUTO_BLOCK_BYTES = 1 << 21


def _sub(sub_batch: Any) -> int | str | None:
    if sub_batch is None or sub_batch == "auto":
        return sub_batch
    if isinstance(sub_batch, str):
        return _validation.choice("sub_batch", sub_batch, ("auto",))
    return _validation.integer("sub_batch", sub_batch, minimum=1)


_STEPS: collections.OrderedDict[Any, Callable[..., Any]] = collections.OrderedDict()
_STEPS_MAX = 16


def _cached(key: Any, make: Callable[[], Callable[..., Any]]) -> Callable[..., Any]:
    """A jitted step per traced program, so calling collect again (new parameters, same
    shapes: every N training steps) reuses the compiled step instead of compiling anew."""
    fn = _STEPS.get(key)
    if fn is None:
        fn = _STEPS[key] = make()
        while len(_STEPS) > _STEPS_MAX:
            _STEPS.popitem(last=False)
    else:
        _STEPS.move_to_end(key)
    return fn


class _Program(NamedTuple):
    """A traced, site-selected collect step: what is reused across calls of :func:`collect`."""

    consts: list[Any]
    sites: tuple[tuple[str, int], ...]  # (name, units) of the selected sites, in call order
    key: Any  # identifies the jitted step in _STEPS
    step: Callable[..., Any]
    stateless: bool  # the model returns its state unchanged: the step need not output it


_PROGRAMS: collections.OrderedDict[Any, _Program] = collections.OrderedDict()


def _prepare(fn, threaded: _Threaded | None, spec_batch, o: _Options):
    """Traces ``fn``; returns (consts, initial stats, initial state, cache key, step).

    ``step(consts, stats, state, batch_leaves) -> (stats, state)``; ``state`` is the NNX
    module's array state (``[]`` for a plain function). With sub-batching (see
    :func:`_sub_batch`) the step scans over blocks of the batch. An NNX module's program is
    traced once per graph, state types, batch types and options (as ``nnx.jit`` caches on the
    graph): its parameters are arguments of the step, so calling ``collect`` again after
    training steps reuses it. A plain function is traced at every call, since arrays it
    closes over enter its program as constants.
    """
    program = None
    key = None
    if threaded is not None:
        options = (o.activations, o.moments, o.loops, o.sub_batch, jax.default_backend())
        selectors = tuple(repr(v) for v in (o.sites, o.exclude, o.unit_axis))
        key = (threaded.key, _signature(spec_batch), options, selectors)
        try:
            program = _PROGRAMS.get(key)
        except TypeError:  # an unhashable static leaf or option: trace every time
            key = None
    if program is None:
        program = _program(fn, threaded, spec_batch, o)
        if key is not None:
            _PROGRAMS[key] = program
            while len(_PROGRAMS) > _STEPS_MAX:
                _PROGRAMS.popitem(last=False)
    else:
        _PROGRAMS.move_to_end(key)
    state: list[Any] = [] if threaded is None else threaded.state
    names = [name for name, _ in program.sites]
    init = o.init
    if init is None:
        carry = ModelStats((name, UnitStats.empty(units)) for name, units in program.sites)
    else:
        if not isinstance(init, ModelStats) or sorted(init) != sorted(names):
            got = list(init) if isinstance(init, ModelStats) else type(init).__name__
            raise ValueError(f"init must be a ModelStats with sites {names}, got {got}.")
        for name, units in program.sites:
            if init[name].units != units:
                raise ValueError(
                    f"init[{name!r}] has {init[name].units} units; the site has {units}."
                )
        carry = ModelStats((n, init[n]) for n in names)
    return program.consts, carry, state, program.key, program.step, program.stateless


def _program(fn, threaded: _Threaded | None, spec_batch, o: _Options) -> _Program:
    traced = _trace_batch(fn, threaded, spec_batch, o)
    chosen = select(traced.plan.sites, o.sites, o.exclude)
    names = [s.name for s in chosen]
    sites = tuple((s.name, s.units) for s in chosen)
    block = _sub_batch(fn, threaded, spec_batch, o, traced, chosen)
    size = 0
    if block is not None:
        traced, size = block
        chosen = select(traced.plan.sites, o.sites, o.exclude)
    # Host constants (NumPy arrays the model closes over) go to the device once, not per step.
    consts = [jnp.asarray(c) if isinstance(c, np.ndarray) else c for c in traced.plan.consts]
    # The step must not keep the model's parameters alive in the cache: they are arguments.
    plan = dataclasses.replace(traced.plan, consts=[])
    slots, keys = traced.observed(chosen)
    obs = _StatsObserver(keys, o.moments)
    # The printed jaxpr holds every primitive, parameter, literal and input type; with the
    # site names, unit axes and loop layout it identifies the step (consts enter as
    # arguments, never as constants).
    layout = tuple((s.key.name, s.axis, s.stack) for s in slots)
    key = (str(plan.jaxpr), tuple((s.name, s.shape) for s in chosen), layout, o.moments)
    wanted = set(names)
    n_state = 0 if threaded is None else len(threaded.state)
    jaxpr = traced.plan.jaxpr
    returned = jaxpr.outvars[len(jaxpr.outvars) - n_state :]
    stateless = all(v is w for v, w in zip(returned, jaxpr.invars[:n_state], strict=True))

    def step(consts, stats, state, leaves):
        acc: dict[str, UnitStats] = {}
        outs = _capture.evaluate(plan, consts, [*state, *leaves], acc, obs)
        if n_state:
            _, state = jax.tree.unflatten(traced.out_tree, outs)
        return stats.merge(ModelStats(_capture.views(slots, acc, wanted))), state

    if block is None:
        return _Program(consts, sites, key, step, stateless)

    def blocked(consts, stats, state, leaves):
        parts = [leaf.reshape(-1, size, *leaf.shape[1:]) for leaf in leaves]
        body = lambda c, b: (step(consts, c[0], c[1], b), None)
        return lax.scan(body, (stats, state), parts)[0]

    return _Program(consts, sites, ("blocks", size, *key), blocked, stateless)


def _trace_batch(fn, threaded: _Threaded | None, spec_batch, o: _Options) -> _capture.Traced:
    if threaded is None:
        return _trace(fn, (spec_batch,), {}, o.activations, o.loops, o.unit_axis)
    args = (threaded.state, spec_batch)
    return _trace(threaded.pure, args, {}, o.activations, o.loops, o.unit_axis, param_args=(0,))


def _sub_batch(fn, threaded, spec_batch, o: _Options, traced, chosen):
    """``(traced at the block size, block size)`` when each batch is split into blocks.

    ``sub_batch=n`` asks for blocks of ``n`` samples and raises when the model does not trace
    at that size or is not proved per-sample (:func:`relujax.analysis._blocks.unproved`);
    ``"auto"`` blocks on CPU only,
    only batches whose largest site holds at least :data:`AUTO_MIN_BYTES`, with blocks of
    at most :data:`AUTO_BLOCK_BYTES` of the largest site, and only when the
    proof succeeds; otherwise, and for ``None``, the batch is reduced whole.
    """
    wanted = o.sub_batch
    if wanted is None:
        return None
    auto = wanted == "auto"
    leaves = jax.tree.leaves(spec_batch)
    sizes = {leaf.shape[0] if leaf.shape else None for leaf in leaves}
    batch = sizes.pop() if len(sizes) == 1 else None
    if batch is None:
        if auto:
            return None
        raise ValueError(
            f"collect: sub_batch={wanted} splits the leading (batch) axis, but the batch's "
            f"arrays have leading sizes {sorted(map(str, sizes))}; they must share one."
        )
    if auto:
        if jax.default_backend() != "cpu" or not chosen:
            return None
        largest = max(math.prod(s.shape) * 4 for s in chosen)
        if largest < AUTO_MIN_BYTES:
            return None
        size = _blocks.choose(batch, -(-largest // batch), AUTO_BLOCK_BYTES)
        if size is None:
            return None
    else:
        size = int(wanted)  # pyright: ignore[reportArgumentType]  (validated in _sub)
        if batch % size:
            raise ValueError(f"collect: sub_batch must divide the batch size {batch}, got {size}.")
        if size == batch:
            return None
    spec = jax.tree.map(lambda s: jax.ShapeDtypeStruct((size, *s.shape[1:]), s.dtype), spec_batch)
    try:
        part = _trace_batch(fn, threaded, spec, o)
    except Exception as e:  # a model written for one batch size (a literal reshape, ...)
        if auto:  # blocking is only an optimization: reduce the batch whole
            return None
        raise ValueError(
            f"collect: sub_batch={size}: the model does not run on a block of {size} samples "
            f"({type(e).__name__}: {e}); it depends on the batch size. Use sub_batch=None to "
            f"reduce each batch whole."
        ) from e
    n_state = 0 if threaded is None else len(threaded.state)
    n_out = len(traced.plan.jaxpr.outvars)
    reason = _blocks.unproved(
        traced.plan.jaxpr,
        part.plan.jaxpr,
        traced.plan.consts,
        part.plan.consts,
        batched=range(n_state, n_state + len(leaves)),
        batch=batch,
        block=size,
        unchanged=[(n_out - n_state + k, k) for k in range(n_state)],
    )
    if reason is None and [s.name for s in select(part.plan.sites, o.sites, o.exclude)] != [
        s.name for s in chosen
    ]:
        reason = "the sites differ between batch sizes"
    if reason is None:
        return part, size
    if auto:
        return None
    raise ValueError(
        f"collect: sub_batch={size} needs a per-sample model (no batch statistics, no "
        f"per-batch random draws, no use of the batch size), and this one is not proved so: "
        f"{reason}. Use sub_batch=None to reduce each batch whole."
    )


def _collect_iterable(fn, threaded, batches, o: _Options) -> ModelStats:
    iterator = iter(batches)
    try:
        first = next(iterator)
    except StopIteration:
        raise ValueError("collect: batches is empty; give at least one batch.") from None
    treedef, sig = _signature(first)
    spec = jax.tree.unflatten(treedef, [_spec(s) for s in sig])
    consts, carry, state, key, step, stateless = _prepare(fn, threaded, spec, o)
    if stateless:  # outputting an unchanged state would copy the parameters at every batch

        def make():
            return jax.jit(lambda *args: step(*args)[0], donate_argnums=(1,))

        stats_step = _cached(("loop", "stateless", *key), make)

        def jit_step(consts, carry, state, leaves):
            return stats_step(consts, carry, state, leaves), state

    else:
        jit_step = _cached(("loop", *key), lambda: jax.jit(step, donate_argnums=(1,)))
    # Fresh buffers: the carry is donated, and empty() / a user's init may share arrays.
    carry = jax.tree.map(lambda a: jnp.array(a, copy=True), carry)
    carry, state = jit_step(consts, carry, state, jax.tree.leaves(first))
    for index, batch in enumerate(iterator, start=1):
        treedef_i, sig_i = _signature(batch)
        if treedef_i != treedef or sig_i != sig:
            raise ValueError(
                f"collect: batch {index} has structure {treedef_i} and (shape, dtype) {sig_i}, "
                f"but batch 0 has {treedef} and {sig}. All batches must match (drop or pad "
                "the last, smaller batch)."
            )
        carry, state = jit_step(consts, carry, state, jax.tree.leaves(batch))
    return carry


def _collect_stacked(fn, threaded, batches, o: _Options) -> ModelStats:
    leaves, treedef = jax.tree.flatten(batches)
    if not leaves:
        raise ValueError("collect: batches has no arrays.")
    sizes = {int(np.shape(leaf)[0]) if np.ndim(leaf) else None for leaf in leaves}
    if None in sizes:
        raise ValueError("collect: stacked batches need a leading batch axis on every array.")
    if len(sizes) != 1:
        raise ValueError(
            f"collect: stacked batches must share the leading (batch) axis, got sizes {sizes}."
        )
    if sizes == {0}:
        raise ValueError("collect: batches is empty (leading axis of size 0).")
    _, sig = _signature(batches)
    spec = jax.tree.unflatten(treedef, [_spec((s[1:], d)) for s, d in sig])
    consts, carry, state, key, step, _ = _prepare(fn, threaded, spec, o)

    def make():
        @jax.jit
        def scan_all(consts, carry, state, leaves):
            body = lambda c, b: (step(consts, c[0], c[1], b), None)
            return lax.scan(body, (carry, state), leaves)[0][0]

        return scan_all

    return _cached(("scan", *key), make)(consts, carry, state, leaves)


def features(
    fn: Callable[[Any], Any],
    batch: Any,
    *,
    sites: Selector | None = None,
    exclude: Selector | None = None,
    activations: Collection[str] | None = None,
    max_rows: int | None = None,
    unit_axis: UnitAxis = None,
) -> dict[str, Array]:
    """The feature matrix of every site on one batch: outputs as ``(rows, units)``.

    Rows are samples (times spatial positions for a conv site). This materializes the
    activations, so use it on a sample, for :func:`effective_rank` / :func:`approximate_rank`
    (``diagnose(stats, features=features(fn, sample))``). Sites inside ``scan``/``while``
    loops are skipped (their features differ per iteration).

    Args:
      fn: the model, as for :func:`collect`.
      batch: one batch.
      sites: sites to return (default: all outside loops).
      exclude: sites to leave out.
      activations: ``jit`` names treated as activations.
      max_rows: keep at most this many rows per site.
      unit_axis: which axis holds a site's units (see :func:`collect`).

    Returns:
      A dict (in call order) from site name to a float32 array ``(rows, units)``.

    Examples:
      >>> import jax, jax.numpy as jnp
      >>> from relujax import analysis
      >>> analysis.features(jax.nn.relu, jnp.array([[-1.0, 2.0], [3.0, -4.0]]))
      {'relu_0': Array([[0., 2.],
             [3., 0.]], dtype=float32)}
    """
    if max_rows is not None:
        _validation.integer("features: max_rows", max_rows, minimum=1)
    fn = _frozen(fn)
    traced = _trace(fn, (batch,), {}, activations, "pooled", unit_axis)
    outside = [s for s in traced.plan.sites if not s.in_loop]
    if not outside:
        raise ValueError("features: every site is inside a scan/while loop.")
    chosen = select(outside, sites, exclude)
    _, keys = traced.observed(chosen)
    obs = _FeatureObserver(keys, max_rows)
    plan = traced.plan

    @jax.jit
    def run(consts, dynamic):
        acc: dict[str, Array] = {}
        _capture.evaluate(plan, consts, dynamic, acc, obs)
        return [acc[s.name] for s in chosen]

    values = run(plan.consts, traced.dynamic)
    return {s.name: v for s, v in zip(chosen, values, strict=True)}
