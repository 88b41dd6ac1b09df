"""Collect per-unit statistics of a user's unmodified model over a stream of batches."""

from __future__ import annotations

import collections
import dataclasses
import sys
from collections.abc import Callable, Collection, Iterable, Mapping
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from jax import Array, lax

from relujax.analysis import _capture
from relujax.analysis._capture import Observer, Site
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


class _FeatureObserver(Observer):
    def __init__(self, selected: Collection[str], max_rows: int | None):
        self.selected = frozenset(selected)
        self.max_rows = max_rows

    def observe(self, acc, site, pre, out) -> None:
        rows = lax.stop_gradient(out).reshape(-1, site.units).astype(jnp.float32)
        acc[site.name] = rows if self.max_rows is None else rows[: self.max_rows]


def _nnx_module(fn: Any) -> Any:
    nnx = sys.modules.get("flax.nnx")
    return nnx if nnx is not None and isinstance(fn, nnx.Module) else None


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


def _acts(activations: Collection[str] | None) -> Collection[str]:
    if activations is None:
        return _capture.default_activations()
    if isinstance(activations, str):
        raise TypeError(
            f"activations must be a collection of names, got the string {activations!r}."
        )
    return frozenset(activations)


def _trace(fn, args, kwargs, activations) -> _capture.Traced:
    traced = _capture.trace(fn, args, kwargs, _acts(activations))
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
    **kwargs: Any,
) -> tuple[Site, ...]:
    """Lists the activation sites of ``fn(*args, **kwargs)``, in call order, without running it.

    Args:
      fn: a function, an NNX module, or a Linen ``apply`` (bound with ``functools.partial``).
      *args: example arguments (arrays or ``jax.ShapeDtypeStruct``; other leaves are static).
      activations: names of ``jit`` equations to treat as activations (default:
        :func:`default_activations`); tags are always recognised.
      **kwargs: example keyword arguments.

    Returns:
      A tuple of :class:`Site` (name, function, shape, in_loop).

    Examples:
      >>> import jax, jax.numpy as jnp
      >>> from relujax import analysis
      >>> def f(x):
      ...     return jax.nn.relu(jax.nn.relu(x) - 1.0) + jax.nn.gelu(x)
      >>> [s.name for s in analysis.find_sites(f, jnp.ones((4, 3)))]
      ['relu_0', 'relu_1', 'gelu_0']
    """
    return tuple(_capture.trace(_frozen(fn), args, kwargs, _acts(activations)).plan.sites)


def with_stats(
    fn: Callable[..., Any],
    *,
    sites: Selector | None = None,
    exclude: Selector | None = None,
    activations: Collection[str] | None = None,
    moments: bool = True,
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

    Returns:
      A function returning ``(output, ModelStats)``.

    Examples:
      >>> import jax, jax.numpy as jnp
      >>> from relujax import analysis
      >>> def loss(w, x):
      ...     return jnp.sum(jax.nn.relu(x @ w))
      >>> w, x = jnp.array([[1.0, -1.0]]), jnp.array([[1.0], [2.0], [-1.0]])
      >>> grad_fn = jax.jit(jax.grad(analysis.with_stats(loss), has_aux=True))
      >>> g, stats = grad_fn(w, x)
      >>> g, stats["relu_0"].firing_rate
      (Array([[ 3., -1.]], dtype=float32), Array([0.6666667 , 0.33333334], dtype=float32))
    """
    nnx = _nnx_module(fn)
    if nnx is not None:
        module = fn

        def stateful(*args: Any, **kwargs: Any) -> tuple[Any, ModelStats]:
            graphdef, state = nnx.split(module)

            def pure(state, *a, **k):
                m = nnx.merge(graphdef, state)
                return m(*a, **k), nnx.state(m)

            (out, new_state), stats = with_stats(
                pure, sites=sites, exclude=exclude, activations=activations, moments=moments
            )(state, *args, **kwargs)
            old, new = jax.tree.leaves(state), jax.tree.leaves(new_state)
            if len(old) != len(new) or any(a is not b for a, b in zip(old, new, strict=False)):
                nnx.update(module, new_state)  # only when something changed, as a direct call
            return out, stats

        return stateful

    def wrapped(*args: Any, **kwargs: Any) -> tuple[Any, ModelStats]:
        traced = _trace(fn, args, kwargs, activations)
        chosen = select(traced.plan.sites, sites, exclude)
        obs = _StatsObserver([s.name for s in chosen], moments)
        acc: dict[str, UnitStats] = {}
        outs = _capture.evaluate(traced.plan, traced.plan.consts, traced.dynamic, acc, obs)
        stats = ModelStats((s.name, acc[s.name]) for s in chosen)
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
) -> ModelStats:
    """Per-unit statistics of every activation site of ``fn``, over all ``batches``.

    ``fn`` maps one batch (an array or a pytree of arrays) to anything: a plain function,
    an NNX module (its state is snapshotted, never modified), or a Linen model bound to its
    variables (``functools.partial(model.apply, variables)``). Sites are found automatically
    (calls of relujax's activations, of jax.nn's ReLU family and of their Flax re-exports, and
    :func:`tag`-ged arrays; see :func:`find_sites`). ``fn`` is traced once; one jitted step
    runs the forward pass and reduces each selected site to :class:`UnitStats` (O(units)
    memory, never O(samples)), merged into a running carry.

    ``batches`` is either

    - an iterable of batches of identical shapes (a list, a generator, a data loader): a
      Python loop calls the jitted step once per batch, and peak memory does not grow with
      the number of batches; or
    - a stacked array, or a ``Mapping`` of arrays, with a leading axis of batches (or any
      pytree with ``stacked=True``): the batches are scanned with ``lax.scan`` in one call.
      This form also works under ``jax.vmap`` over model parameters (K models at once).

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

    Returns:
      A :class:`ModelStats`, ordered like the sites in ``fn``.

    Raises:
      ValueError: when there are no batches, when a batch's shapes differ from the first
        batch's (the message names the batch index), when ``fn`` has no activation site, or
        when ``init`` does not match the selected sites.

    Examples:
      >>> import jax, jax.numpy as jnp
      >>> from relujax import analysis
      >>> w = jnp.array([[1.0, -1.0, 0.0]])
      >>> def f(x):
      ...     return jax.nn.relu(x @ w)
      >>> batches = jnp.arange(-2.0, 4.0).reshape(3, 2, 1)  # 3 batches of 2 samples
      >>> stats = analysis.collect(f, batches)
      >>> stats["relu_0"].firing_rate
      Array([0.5       , 0.33333334, 0.        ], dtype=float32)
      >>> stats["relu_0"].dead
      Array([False, False,  True], dtype=bool)
    """
    fn = _frozen(fn)
    if stacked is None:
        stacked = isinstance(batches, (jax.Array, np.ndarray, Mapping))
    if stacked:
        return _collect_stacked(fn, batches, sites, exclude, activations, init, moments)
    if isinstance(batches, (str, bytes)) or not isinstance(batches, Iterable):
        raise TypeError(
            "batches must be an iterable of batches or a stacked array/pytree with a leading "
            f"batch axis; got {type(batches).__name__}."
        )
    return _collect_iterable(fn, batches, sites, exclude, activations, init, moments)


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


def _prepare(fn, spec_batch, sites, exclude, activations, init, moments):
    """Traces ``fn``; returns (consts, initial carry, cache key, step)."""
    traced = _trace(fn, (spec_batch,), {}, activations)
    chosen = select(traced.plan.sites, sites, exclude)
    names = [s.name for s in chosen]
    if init is None:
        carry = ModelStats((s.name, UnitStats.empty(s.units)) for s in chosen)
    else:
        if not isinstance(init, ModelStats) or sorted(init) != sorted(names):
            got = list(init) if isinstance(init, ModelStats) else type(init).__name__
            raise ValueError(f"init must be a ModelStats with sites {names}, got {got}.")
        for s in chosen:
            if init[s.name].units != s.units:
                raise ValueError(
                    f"init[{s.name!r}] has {init[s.name].units} units; the site has {s.units}."
                )
        carry = ModelStats((n, init[n]) for n in names)
    # Host constants (NumPy arrays the model closes over) go to the device once, not per step.
    consts = [jnp.asarray(c) if isinstance(c, np.ndarray) else c for c in traced.plan.consts]
    # The step must not keep the model's parameters alive in the cache: they are arguments.
    plan = dataclasses.replace(traced.plan, consts=[])
    obs = _StatsObserver(names, moments)
    # The printed jaxpr holds every primitive, parameter, literal and input type; with the
    # site names it identifies the step (consts enter as arguments, never as constants).
    key = (str(plan.jaxpr), tuple((s.name, s.shape) for s in chosen), moments)

    def step(consts, carry, leaves):
        acc: dict[str, UnitStats] = {}
        _capture.evaluate(plan, consts, leaves, acc, obs)
        return carry.merge(ModelStats((n, acc[n]) for n in names))

    return consts, carry, key, step


def _collect_iterable(fn, batches, sites, exclude, activations, init, moments) -> ModelStats:
    iterator = iter(batches)
    try:
        first = next(iterator)
    except StopIteration:
        raise ValueError("collect: batches is empty; give at least one batch.") from None
    treedef, sig = _signature(first)
    spec = jax.tree.unflatten(treedef, [_spec(s) for s in sig])
    consts, carry, key, step = _prepare(fn, spec, sites, exclude, activations, init, moments)
    jit_step = _cached(("loop", *key), lambda: jax.jit(step, donate_argnums=(1,)))
    # Fresh buffers: the carry is donated, and empty() / a user's init may share arrays.
    carry = jax.tree.map(lambda a: jnp.array(a, copy=True), carry)
    carry = jit_step(consts, carry, jax.tree.leaves(first))
    for index, batch in enumerate(iterator, start=1):
        treedef_i, sig_i = _signature(batch)
        if treedef_i != treedef or sig_i != sig:
            raise ValueError(
                f"collect: batch {index} has structure {treedef_i} and (shape, dtype) {sig_i}, "
                f"but batch 0 has {treedef} and {sig}. All batches must match (drop or pad "
                "the last, smaller batch)."
            )
        carry = jit_step(consts, carry, jax.tree.leaves(batch))
    return carry


def _collect_stacked(fn, batches, sites, exclude, activations, init, moments) -> ModelStats:
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
    consts, carry, key, step = _prepare(fn, spec, sites, exclude, activations, init, moments)

    def make():
        @jax.jit
        def scan_all(consts, carry, leaves):
            return lax.scan(lambda c, b: (step(consts, c, b), None), carry, leaves)[0]

        return scan_all

    return _cached(("scan", *key), make)(consts, carry, leaves)


def features(
    fn: Callable[[Any], Any],
    batch: Any,
    *,
    sites: Selector | None = None,
    exclude: Selector | None = None,
    activations: Collection[str] | None = None,
    max_rows: int | None = None,
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

    Returns:
      A dict (in call order) from site name to a float32 array ``(rows, units)``.

    Examples:
      >>> import jax, jax.numpy as jnp
      >>> from relujax import analysis
      >>> analysis.features(jax.nn.relu, jnp.array([[-1.0, 2.0], [3.0, -4.0]]))
      {'relu_0': Array([[0., 2.],
             [3., 0.]], dtype=float32)}
    """
    if max_rows is not None and (not isinstance(max_rows, int) or max_rows < 1):
        raise ValueError(f"max_rows must be a positive int or None, got {max_rows!r}.")
    fn = _frozen(fn)
    traced = _trace(fn, (batch,), {}, activations)
    outside = [s for s in traced.plan.sites if not s.in_loop]
    if not outside:
        raise ValueError("features: every site is inside a scan/while loop.")
    chosen = select(outside, sites, exclude)
    obs = _FeatureObserver([s.name for s in chosen], max_rows)
    plan = traced.plan

    @jax.jit
    def run(consts, dynamic):
        acc: dict[str, Array] = {}
        _capture.evaluate(plan, consts, dynamic, acc, obs)
        return [acc[s.name] for s in chosen]

    values = run(plan.consts, traced.dynamic)
    return {s.name: v for s, v in zip(chosen, values, strict=True)}
