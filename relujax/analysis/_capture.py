"""Find activation sites in a jaxpr and re-evaluate it with an observer at every site.

How capture works. ``fn`` is traced once to a closed jaxpr (``jax.make_jaxpr``). A *plan* walks
the jaxpr and records, for every equation after which an activation's output exists, the site
(name, function, shape) and the two atoms to observe: the pre-activation (first input) and
the output (first output). Recognised equations:

- ``jit[name=N]`` with ``N`` a recognised activation (relujax's :data:`SITE_NAMES` and the
  jax.nn ReLU family: ``jax.nn.silu``, ``leaky_relu``, ``elu``, ... are jitted under their
  names) or a :func:`tag` (``N = "relujax_tag:<name>"``);
- ``custom_jvp_call`` / ``custom_vjp_call`` whose body is a single such ``jit``
  (``jax.nn.relu`` and ``relu6`` are ``custom_jvp(jit(...))``; so are Flax's re-exports,
  which are the same objects);
- ``jax.nn.gelu``, which is not jitted and is inlined as ~8 primitive equations: runs of
  equations whose traceback passes through ``jax.nn.gelu`` are split into calls by matching
  the primitive sequence of ``jax.nn.gelu`` itself (traced on the same shape and dtype), with
  the run's first input as pre-activation and the last output as output.

The plan recurses into ``jit`` (any other name), ``closed_call``, ``remat``/``checkpoint``,
``scan``, ``while`` (body) and ``cond`` equations that contain sites. The interpreter then
evaluates the jaxpr equation by equation under the caller's trace (normally inside one
``jit``), binding every primitive with its original parameters, so the compiled forward pass
is the model's own plus per-unit reductions; XLA fuses the reductions into the step, so no
activation leaves it. Recursion rebuilds control flow with the statistics threaded through:
``jit`` and ``closed_call`` bodies are inlined; ``remat`` is re-wrapped in
``jax.checkpoint`` with the same policy; ``scan``/``while``/``cond`` become ``lax.scan`` /
``lax.while_loop`` / ``lax.switch`` with the statistics in the carry (a site pooled over its
iterations) or, for a site kept per iteration of a ``scan``, in the scan's stacked outputs
(one statistic per iteration; by default where the scan's carry feeds the site, a loop over
layers). Control-flow parameters are read in :mod:`relujax.analysis._primitives`, which
raises on any it does not know (naming the primitive and the JAX version) instead of
guessing. Each site's unit axis is read from the operation that produced it
(:mod:`relujax.analysis._axis`) and moved last before the observer sees it. A
``custom_jvp``/``custom_vjp`` function that contains sites deeper inside is bound unchanged
(its derivative rule is kept) and its body is evaluated a second time on ``stop_gradient``
inputs for the statistics only; XLA's CSE merges the two forward computations.

Known limits: sites inside ``shard_map``, ``pmap``, ``custom_linear_solve`` and callbacks are
not captured (a warning names them); ``jax.nn.gelu`` is found only when tracebacks are
recorded (the default) and its primitive sequence matches; activations written inline
(``jnp.maximum(x, 0)``, ``jnp.where``) are invisible unless wrapped in :func:`tag`.
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import inspect
import types
import warnings
from collections.abc import Callable, Collection, Mapping, Sequence
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from jax import lax
from jax.extend import core as jcore
from jax.extend import source_info_util

from relujax import activations as _activations
from relujax.analysis import _axis, _primitives
from relujax.analysis._tag import TAG_PREFIX

P = jcore.primitives

#: jax.nn's ReLU family and its relatives, by the names their ``jit`` equations carry.
JAX_NN_ACTIVATIONS: frozenset[str] = frozenset(
    {
        "relu",
        "relu6",
        "leaky_relu",
        "elu",
        "selu",
        "celu",
        "gelu",
        "silu",
        "hard_silu",
        "hard_tanh",
        "mish",
        "softplus",
        "squareplus",
        "sparse_plus",
    }
)

#: Activations whose output is never negative, so that ``E|h| = E[h]``: relujax's, from their
#: descriptors (:data:`relujax.activations.NONNEGATIVE`), and jax.nn's squareplus, sparse_plus.
NONNEGATIVE: frozenset[str] = _activations.NONNEGATIVE | {"squareplus", "sparse_plus"}

#: Activations whose output is > 0 exactly where the input is > 0, so that firing can be
#: counted on the output (prelu, shifted_relu, threshold, softplus-like ones are not); from the
#: descriptors (:data:`relujax.activations.SIGN_PRESERVING`).
SIGN_PRESERVING: frozenset[str] = _activations.SIGN_PRESERVING

_GELU_FILE = inspect.unwrap(jax.nn.gelu).__code__.co_filename


def default_activations() -> frozenset[str]:
    """Names recognised by default: relujax's activations and jax.nn's ReLU family.

    Returns:
      A frozenset of ``jit`` equation names.

    Examples:
      >>> from relujax.analysis import default_activations
      >>> {"relu", "leaky_relu", "gelu", "silu"} <= default_activations()
      True
    """
    from relujax.activations import SITE_NAMES

    return JAX_NN_ACTIVATIONS | SITE_NAMES


@dataclasses.dataclass(frozen=True)
class Site:
    """An activation site found in a traced function.

    Attributes:
      name: stable, readable name: ``<scope>/<function>_<k>`` where ``scope`` is the module
        path when the jaxpr records one (Flax Linen does) and ``k`` counts calls of that
        function in that scope in call order; a tag's own name for :func:`tag`. A site kept
        per iteration of a loop carries the iteration after the loop's own path component:
        ``Net/layers[3]/relu_0`` (``relu_0[3]`` when the loop has no module path).
      function: the activation's name (``"relu"``, ``"gelu"``, ...) or ``"tag"``.
      shape: shape of the observed array (of one iteration, inside a loop).
      in_loop: whether the site is inside a ``scan``/``while`` body.
      unit_axis: the axis of ``shape`` that holds the units (non-negative); every other axis
        is pooled. Read from the operation that produced the pre-activation (see
        :func:`collect`'s ``unit_axis``).
      iteration: for a site kept per iteration, its index in each enclosing loop that keeps
        one statistic per iteration, outermost first; ``()`` otherwise (the statistics of a
        site in a loop then pool its iterations).

    Examples:
      >>> import jax, jax.numpy as jnp
      >>> from relujax import analysis
      >>> (site,) = analysis.find_sites(jax.nn.leaky_relu, jnp.ones((8, 3)))
      >>> site.name, site.function, site.units, site.sign_preserving
      ('leaky_relu_0', 'leaky_relu', 3, True)
    """

    name: str
    function: str
    shape: tuple[int, ...]
    in_loop: bool = False
    unit_axis: int = -1
    iteration: tuple[int, ...] = ()

    def __post_init__(self) -> None:
        if self.shape and self.unit_axis < 0:
            object.__setattr__(self, "unit_axis", self.unit_axis % len(self.shape))

    @property
    def units(self) -> int:
        """Number of units: the size of the unit axis (1 for a scalar)."""
        return self.shape[self.unit_axis] if self.shape else 1

    @property
    def nonnegative(self) -> bool:
        """Whether the activation's output is never negative (relu, relu6, softplus, ...)."""
        return self.function in NONNEGATIVE

    @property
    def sign_preserving(self) -> bool:
        """Whether the output is > 0 exactly where the pre-activation is (relu, elu, gelu...)."""
        return self.function in SIGN_PRESERVING


#: Taint label of the variables that depend on the data (the batch), as opposed to parameters.
DATA = "data"

#: How sites inside ``scan`` loops are kept (see :func:`relujax.analysis.collect`).
LOOP_MODES = ("auto", "per_iteration", "pooled")


@dataclasses.dataclass(frozen=True)
class _Loop:
    """An enclosing ``scan`` (or ``while``: ``length`` None) as seen from a site in its body."""

    depth: int  # number of scans around the equation
    length: int | None
    scope: str
    label: object  # taint label of its carried inputs


@dataclasses.dataclass(frozen=True)
class _Slot:
    """One observed equation: what the observer sees, and the public sites it yields.

    ``key`` is the site the observer is called with: its name keys the accumulated state and
    its ``shape`` has the units last (arrays are moved there before observing). ``stack``
    lists the ``(depth, length)`` of every scan that keeps one statistic per iteration,
    outermost first; the state then has those leading axes. ``views`` are the public sites:
    one, or one per iteration (``index`` into the stacked axes).
    """

    key: Site
    axis: int
    stack: tuple[tuple[int, int], ...]
    views: tuple[Site, ...]

    def lead(self, depth: int) -> tuple[int, ...]:
        """Leading (stacked) axes of the state at an equation ``depth`` scans deep."""
        return tuple(n for d, n in self.stack if d >= depth)


@dataclasses.dataclass(frozen=True)
class _Hit:
    slot: _Slot
    pre: Any  # an atom (Var or Literal) of the plan's jaxpr
    out: Any
    operands: tuple = ()  # atoms of the activation call's other operands (its parameters)


@dataclasses.dataclass
class _Plan:
    jaxpr: Any  # an open jcore.Jaxpr
    consts: list[Any]
    depth: int = 0
    after: dict[int, list[_Hit]] = dataclasses.field(default_factory=dict)
    subs: dict[int, tuple[_Plan | None, ...]] = dataclasses.field(default_factory=dict)
    specs: dict[int, Any] = dataclasses.field(default_factory=dict)
    slots: list[_Slot] = dataclasses.field(default_factory=list)
    sub_names: dict[int, frozenset[str]] = dataclasses.field(default_factory=dict)

    @property
    def sites(self) -> list[Site]:
        """The public sites, in call order."""
        return [v for slot in self.slots for v in slot.views]


class _Namer:
    def __init__(self) -> None:
        self.counters: dict[tuple[str, str], int] = {}
        self.used: set[str] = set()

    def auto(self, scope: str, function: str) -> str:
        while True:
            k = self.counters.get((scope, function), 0)
            self.counters[(scope, function)] = k + 1
            name = f"{scope}/{function}_{k}" if scope else f"{function}_{k}"
            if name not in self.used:
                self.used.add(name)
                return name

    def tagged(self, name: str) -> str:
        k, candidate = 0, name
        while candidate in self.used:
            k += 1
            candidate = f"{name}_{k}"
        self.used.add(candidate)
        return candidate


UnitAxis = Mapping[str, int] | Callable[[Site], int | None] | None


@dataclasses.dataclass
class _Context:
    """What every level of :func:`build_plan` shares."""

    acts: Collection[str]
    loops_mode: str = "auto"
    unit_axis: UnitAxis = None
    namer: _Namer = dataclasses.field(default_factory=_Namer)
    used_overrides: set[str] = dataclasses.field(default_factory=set)


def _closed(j: Any) -> tuple[Any, list[Any]]:
    if isinstance(j, jcore.ClosedJaxpr):
        return j.jaxpr, list(j.consts)
    return j, []


def _join(scope: str, name_stack: Any) -> str:
    extra = str(name_stack)
    if not extra:
        return scope
    return f"{scope}/{extra}" if scope else extra


def _shape(atom: Any) -> tuple[int, ...]:
    return tuple(int(d) for d in atom.aval.shape)


def _jit_site_name(eqn: Any, acts: Collection[str]) -> str | None:
    if eqn.primitive is not P.jit_p:
        return None
    name = eqn.params.get("name", "")
    if name.startswith(TAG_PREFIX) or name in acts:
        return name
    return None


def _direct_site(eqn: Any, acts: Collection[str]) -> tuple[str, Any, Any, tuple] | None:
    """(jit name, pre atom, out atom, atoms of the call's other operands) if ``eqn`` itself is
    an activation call (the operands hold its parameters, e.g. capped_relu's ``cap``)."""
    name = _jit_site_name(eqn, acts)
    if name is not None and eqn.invars and eqn.outvars:
        return name, eqn.invars[0], eqn.outvars[0], tuple(eqn.invars[1:])
    if eqn.primitive in (P.custom_jvp_call_p, P.custom_vjp_call_p):
        inner, _ = _closed(eqn.params["call_jaxpr"])
        nc = _primitives.num_consts(eqn)
        if len(inner.eqns) == 1 and len(eqn.invars) > nc and eqn.outvars:
            ieqn = inner.eqns[0]
            name = _jit_site_name(ieqn, acts)
            if (
                name is not None
                and ieqn.invars
                and ieqn.invars[0] is inner.invars[nc]
                and ieqn.outvars[0] is inner.outvars[0]
            ):
                outer = dict(zip(inner.invars, eqn.invars, strict=True))
                operands = tuple(
                    v if isinstance(v, jcore.Literal) else outer.get(v) for v in ieqn.invars[1:]
                )
                if any(v is None for v in operands):  # a constant of the wrapper's body
                    operands = ()
                return name, eqn.invars[nc], eqn.outvars[0], operands
    return None


def _in_gelu(eqn: Any) -> bool:
    tb = eqn.source_info.traceback
    if tb is None:
        return False
    return any(f.function_name == "gelu" and f.file_name == _GELU_FILE for f in tb.frames)


@functools.lru_cache(maxsize=64)
def _gelu_patterns(shape: tuple[int, ...], dtype: Any) -> tuple[tuple[str, ...], ...]:
    spec = jax.ShapeDtypeStruct(shape, dtype)
    out = []
    for approximate in (True, False):
        j = jax.make_jaxpr(functools.partial(jax.nn.gelu, approximate=approximate))(spec)
        out.append(tuple(e.primitive.name for e in j.jaxpr.eqns))
    return tuple(out)


def _first_var(eqn: Any) -> Any:
    for v in eqn.invars:
        if not isinstance(v, jcore.Literal):
            return v
    return None


def _gelu_calls(eqns: Sequence[Any], start: int) -> tuple[int, list[tuple[int, Any, Any]]]:
    """Splits the run of jax.nn.gelu equations from ``start``; returns (end, [(last, pre, out)])."""
    end = start
    while end < len(eqns) and _in_gelu(eqns[end]):
        end += 1
    calls, k = [], start
    while k < end:
        x = _first_var(eqns[k])
        matched = 0
        if x is not None:
            for pattern in _gelu_patterns(_shape(x), x.aval.dtype):
                names = tuple(e.primitive.name for e in eqns[k : k + len(pattern)])
                if names == pattern and k + len(pattern) <= end:
                    matched = len(pattern)
                    break
        if matched:
            last = eqns[k + matched - 1]
            calls.append((k + matched - 1, x, last.outvars[0]))
            k += matched
        else:
            warnings.warn(
                "relujax.analysis: found equations of jax.nn.gelu that do not match its "
                f"primitive sequence (at {eqns[k].primitive.name}); that call is not observed. "
                "Wrap its output in relujax.analysis.tag(x, name) to observe it.",
                stacklevel=4,
            )
            k += 1
    return end, calls


def _taint_of(atoms: Sequence[Any], taint: dict[Any, frozenset]) -> frozenset:
    out: frozenset = frozenset()
    for v in atoms:
        if not isinstance(v, jcore.Literal):
            out |= taint.get(v, frozenset())
    return out


def _view_name(name: str, loops: Sequence[_Loop], index: tuple[int, ...]) -> str:
    """``name`` with each loop's iteration after that loop's first path component."""
    parts = name.split("/")
    for loop, i in zip(loops, index, strict=True):
        prefix = loop.scope.split("/") if loop.scope else []
        at = len(prefix) if parts[: len(prefix)] == prefix else 0
        at = min(at, len(parts) - 1)
        parts[at] += f"[{i}]"
    return "/".join(parts)


def _override(ctx: _Context, names: Sequence[str], site: Site) -> int | None:
    spec = ctx.unit_axis
    if spec is None:
        return None
    if callable(spec):
        axis = spec(site)
    else:
        hits = [n for n in names if n in spec]
        if not hits:
            return None
        ctx.used_overrides.update(hits)
        axes = {spec[n] for n in hits}
        if len(axes) > 1:
            raise ValueError(f"unit_axis gives different axes {sorted(axes)} for {hits}.")
        (axis,) = axes
    if axis is None:
        return None
    from relujax import _validation

    rank = len(site.shape)
    return _validation.integer(f"unit_axis[{site.name!r}]", axis, minimum=-rank, maximum=rank - 1)


def _sub_taints(eqn: Any, subs: Sequence[Any], taint, spec, label) -> list[dict[Any, frozenset]]:
    """Taint of each sub-jaxpr's inputs (conservative: loops spread any taint to the carry)."""
    p = eqn.primitive
    ins = [_taint_of([v], taint) for v in eqn.invars]
    everything = _taint_of(eqn.invars, taint)
    out = []
    for sub in subs:
        sj, _ = _closed(sub)
        if p is P.cond_p:
            index = ins[0]
            labels = [index | t for t in ins[1:]]
        elif p is P.while_p:
            cn = eqn.params.get("cond_nconsts", 0)
            labels = ins[cn:]
            bn = eqn.params.get("body_nconsts", 0)
            labels = labels[:bn] + [everything] * (len(labels) - bn)
        elif p is P.scan_p and spec is not None:
            nc, ncarry = spec.num_consts, spec.num_carry
            carried = everything | {label}
            labels = ins[:nc] + [carried] * ncarry + ins[nc + ncarry :]
        else:
            labels = ins
        if len(labels) != len(sj.invars):
            labels = [everything] * len(sj.invars)
        out.append(dict(zip(sj.invars, labels, strict=True)))
    return out


def build_plan(
    jaxpr: Any,
    consts: Sequence[Any],
    ctx: _Context,
    *,
    scope: str = "",
    depth: int = 0,
    loops: tuple[_Loop, ...] = (),
    taint: dict[Any, frozenset] | None = None,
) -> _Plan:
    """Walks ``jaxpr`` and returns the plan of its sites (see the module docstring)."""
    plan = _Plan(jaxpr=jaxpr, consts=list(consts), depth=depth)
    taint = dict(taint or {})
    eqns = jaxpr.eqns

    def add(
        i: int, function: str, pre: Any, out: Any, eqn_scope: str, tag: str | None, operands=()
    ) -> None:
        if _shape(pre) != _shape(out) or pre.aval.dtype != out.aval.dtype:
            pre = out  # e.g. crelu: observe the output alone (its units fire when > 0)
        name = ctx.namer.tagged(tag) if tag is not None else ctx.namer.auto(eqn_scope, function)
        shape = _shape(out)
        labels = _taint_of([pre, out], taint)
        stacking = [  # a loop of no iterations has none to keep apart: it pools (count 0)
            lp
            for lp in loops
            if lp.length  # a static trip count > 0
            and (
                ctx.loops_mode == "per_iteration"
                or (ctx.loops_mode == "auto" and lp.label in labels)
            )
        ]
        lengths = [lp.length for lp in stacking if lp.length is not None]  # all of stacking
        indices = list(np.ndindex(*lengths)) if stacking else [()]
        names = [_view_name(name, stacking, ix) if ix else name for ix in indices]
        in_loop = bool(loops)
        probe = Site(name=names[0], function=function, shape=shape, in_loop=in_loop)
        axis = _override(ctx, [name, *names], probe)
        if axis is None:
            on_data = lambda v: DATA in taint.get(v, frozenset())
            axis = len(shape) - 1 if len(shape) <= 2 else _axis.feature_axis(pre, jaxpr, on_data)
            if len(shape) == 1 and shape[0] > 1 and _axis.one_unit(pre, jaxpr, on_data):
                warnings.warn(
                    f"relujax.analysis: site {names[0]!r} of shape {shape} holds one value per "
                    "sample (a dense layer with a single output), but the axis of a rank-1 "
                    f"site is its units: its statistics are per sample position ({shape[0]} "
                    "'units'), not of one unit. Apply the activation to x[..., None] to get "
                    "one unit.",
                    stacklevel=5,
                )
            if axis is None:
                axis = len(shape) - 1
                warnings.warn(
                    f"relujax.analysis: site {names[0]!r} of shape {shape}: cannot tell which "
                    "axis holds its units (it is not made by a convolution, a dense layer "
                    "whose weight has one output axis (K stacked weights have two), or a bias "
                    "add that can be followed); using "
                    f"the last axis. Pass unit_axis={{{names[0]!r}: k}} to choose.",
                    stacklevel=5,
                )
        views = []
        for view_name, ix in zip(names, indices, strict=True):
            if ix:
                view_name = ctx.namer.tagged(view_name)
            views.append(
                Site(view_name, function, shape, in_loop=in_loop, unit_axis=axis, iteration=ix)
            )
        axis %= max(len(shape), 1)
        moved = tuple(d for k, d in enumerate(shape) if k != axis) + shape[axis : axis + 1]
        key = Site(name=name, function=function, shape=moved, in_loop=in_loop)
        stack = tuple((lp.depth, n) for lp, n in zip(stacking, lengths, strict=True))
        slot = _Slot(key=key, axis=axis if shape else -1, stack=stack, views=tuple(views))
        plan.after.setdefault(i, []).append(_Hit(slot, pre, out, tuple(operands)))
        plan.slots.append(slot)

    i = 0
    while i < len(eqns):
        eqn = eqns[i]
        labels = _taint_of(eqn.invars, taint)
        for v in eqn.outvars:
            taint[v] = labels
        eqn_scope = _join(scope, eqn.source_info.name_stack)
        direct = _direct_site(eqn, ctx.acts)
        if direct is not None:
            name, pre, out, operands = direct
            if name.startswith(TAG_PREFIX):
                add(i, "tag", out, out, eqn_scope, name[len(TAG_PREFIX) :])
            else:
                add(i, name, pre, out, eqn_scope, None, operands)
            i += 1
            continue
        if "gelu" in ctx.acts and _in_gelu(eqn):
            end, calls = _gelu_calls(eqns, i)
            for k in range(i, end):
                labels = _taint_of(eqns[k].invars, taint)
                for v in eqns[k].outvars:
                    taint[v] = labels
            for last, pre, out in calls:
                add(last, "gelu", pre, out, _join(scope, eqns[last].source_info.name_stack), None)
            i = end
            continue
        subs = _primitives.sub_jaxprs(eqn)
        if subs is not None:
            _plan_subs(plan, i, eqn, subs, ctx, eqn_scope, depth, loops, taint)
        else:
            _warn_hidden(eqn, ctx.acts)
        i += 1
    return plan


def _plan_subs(plan, i, eqn, subs, ctx, eqn_scope, depth, loops, taint) -> None:
    p = eqn.primitive
    spec, problem = None, None
    try:
        if p is P.scan_p:
            spec = _primitives.scan_spec(eqn)
        elif p is P.while_p:
            spec = _primitives.while_spec(eqn)
    except _primitives.UnsupportedPrimitiveError as e:
        problem = e
    label = object()
    sub_depth, sub_loops = depth, loops
    if p is P.scan_p:
        sub_depth = depth + 1
        length = spec.length if isinstance(spec, _primitives.ScanSpec) else None
        sub_loops = (*loops, _Loop(depth, length, eqn_scope, label))
    elif p is P.while_p:
        sub_loops = (*loops, _Loop(depth, None, eqn_scope, label))
    sub_plans = []
    for sub, sub_taint in zip(subs, _sub_taints(eqn, subs, taint, spec, label), strict=True):
        sj, sc = _closed(sub)
        sp = build_plan(
            sj, sc, ctx, scope=eqn_scope, depth=sub_depth, loops=sub_loops, taint=sub_taint
        )
        sub_plans.append(sp if sp.slots else None)
    if any(sp is not None for sp in sub_plans):
        if problem is not None:
            raise problem
        _primitives.check_params(eqn)
        plan.subs[i] = tuple(sub_plans)
        plan.specs[i] = spec
        slots = [s for sp in sub_plans if sp is not None for s in sp.slots]
        plan.slots.extend(slots)
        plan.sub_names[i] = frozenset(s.key.name for s in slots)


def _warn_hidden(eqn: Any, acts: Collection[str]) -> None:
    for sub in jcore.jaxprs_in_params(eqn.params):
        sj, sc = _closed(sub)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            try:
                found = bool(build_plan(sj, sc, _Context(acts=acts)).slots)
            except _primitives.UnsupportedPrimitiveError:
                found = True  # sites inside something not rebuildable: not captured either
        if found:
            warnings.warn(
                f"relujax.analysis: activation sites inside `{eqn.primitive.name}` are not "
                f"captured under jax {jax.__version__} (only jit, closed_call, checkpoint, "
                "scan, while, cond and custom_jvp/custom_vjp bodies are searched).",
                stacklevel=4,
            )
            return


# --- the interpreter ---------------------------------------------------------------------------


class Observer:
    """What to do at a site; subclasses keep per-site state in the ``acc`` dict."""

    #: the names of the sites to observe
    selected: frozenset[str] = frozenset()
    #: functions applied to a variable's value where it is defined (every use then reads the
    #: result), keyed by the plan's variables; :func:`relujax.analysis.with_site_grads` adds
    #: its zero probes to the pre-activations this way. Empty for statistics.
    perturb: Mapping[Any, Callable[[Any], Any]] = types.MappingProxyType({})

    def empty(self, site: Site) -> Any:
        raise NotImplementedError

    def observe(self, acc: dict[str, Any], site: Site, pre: Any, out: Any) -> None:
        raise NotImplementedError

    def absorb(self, acc: dict[str, Any], name: str, state: Any) -> None:
        raise NotImplementedError

    def observe_call(
        self, acc: dict[str, Any], site: Site, pre: Any, out: Any, operands: Sequence[Any]
    ) -> None:
        """:meth:`observe`, also given the values of the activation call's other operands
        (its parameters as the call received them, e.g. capped_relu's ``cap``; empty for a
        tag or an activation recognized by its pattern). The default ignores them."""
        self.observe(acc, site, pre, out)

    def scan_inputs(self, slots: Sequence[_Slot]) -> Any:
        """Arrays stacked along a ``scan``'s iterations that its body needs, given the slots
        observed inside it: threaded in as extra ``xs`` (iteration ``i`` gets slice ``i``);
        :func:`relujax.analysis.with_site_grads` threads its per-iteration probes this way.
        None (nothing) for statistics."""
        return None

    @contextlib.contextmanager
    def iteration(self, inputs: Any):
        """In force while a ``scan``'s body is traced, with its slices of :meth:`scan_inputs`."""
        yield


@contextlib.contextmanager
def _context(eqn: Any):
    name_stack = source_info_util.current_name_stack() + eqn.source_info.name_stack
    ctx = getattr(eqn, "ctx", None)
    manager = ctx.manager if ctx is not None else contextlib.nullcontext()
    with source_info_util.user_context(eqn.source_info.traceback, name_stack=name_stack), manager:
        yield


def _bind(eqn: Any, invals: list[Any]) -> list[Any]:
    params = eqn.primitive.get_bind_params(eqn.params)
    with _context(eqn):
        ans = eqn.primitive.bind(*invals, **params)
    return list(ans) if eqn.primitive.multiple_results else [ans]


def _units_last(x: Any, axis: int) -> Any:
    if axis < 0 or axis == np.ndim(x) - 1:
        return x
    return jnp.moveaxis(x, axis, -1)


def _empty(obs: Observer, slot: _Slot, lead: tuple[int, ...]) -> Any:
    state = obs.empty(slot.key)
    if not lead:
        return state
    return jax.tree.map(lambda a: jnp.broadcast_to(a, lead + jnp.shape(a)), state)


def evaluate(plan: _Plan, consts: Sequence[Any], args: Sequence[Any], acc, obs) -> list[Any]:
    """Evaluates ``plan.jaxpr`` on ``args``, calling ``obs`` at every selected site.

    ``acc`` maps each observed slot's key name to its state: stacked along the loops that
    keep one statistic per iteration (see :func:`views`).
    """
    env: dict[Any, Any] = {}
    perturb = obs.perturb

    def read(v: Any) -> Any:
        return v.val if isinstance(v, jcore.Literal) else env[v]

    def write(v: Any, x: Any) -> None:
        env[v] = perturb[v](x) if v in perturb else x

    for v, x in zip(plan.jaxpr.constvars, consts, strict=True):
        write(v, x)
    for v, x in zip(plan.jaxpr.invars, args, strict=True):
        write(v, x)
    for i, eqn in enumerate(plan.jaxpr.eqns):
        invals = [read(v) for v in eqn.invars]
        subs = plan.subs.get(i)
        if subs is not None and plan.sub_names[i] & obs.selected:
            outvals = _recurse(plan, i, eqn, subs, invals, acc, obs)
        else:
            outvals = _bind(eqn, invals)
        for v, x in zip(eqn.outvars, outvals, strict=True):
            if not isinstance(v, jcore.DropVar):
                write(v, x)
        for hit in plan.after.get(i, ()):
            slot = hit.slot
            if slot.key.name in obs.selected:
                out = _units_last(read(hit.out), slot.axis)
                pre = out if hit.pre is hit.out else _units_last(read(hit.pre), slot.axis)
                obs.observe_call(acc, slot.key, pre, out, [read(v) for v in hit.operands])
    return [read(v) for v in plan.jaxpr.outvars]


def _selected(plans: Sequence[_Plan | None], obs: Observer) -> list[_Slot]:
    return [s for p in plans if p is not None for s in p.slots if s.key.name in obs.selected]


def _recurse(plan: _Plan, i: int, eqn: Any, subs, invals: list[Any], acc, obs) -> list[Any]:
    p, params, depth = eqn.primitive, eqn.params, plan.depth
    if p in (P.jit_p, P.closed_call_p, P.call_p):
        (sub,) = subs
        with _context(eqn):
            return evaluate(sub, sub.consts, invals, acc, obs)
    if p in (P.custom_jvp_call_p, P.custom_vjp_call_p):
        outvals = _bind(eqn, invals)
        (sub,) = subs
        with _context(eqn):
            evaluate(sub, sub.consts, [lax.stop_gradient(x) for x in invals], acc, obs)
        return outvals

    slots = _selected(subs, obs)
    if p is P.scan_p:
        return _recurse_scan(plan.specs[i], eqn, subs, slots, depth, invals, acc, obs)
    names = [s.key.name for s in slots]
    init = [_empty(obs, s, s.lead(depth)) for s in slots]

    def run(sub: _Plan, args: list[Any], states: list[Any]) -> tuple[list[Any], list[Any]]:
        local = dict(zip(names, states, strict=True))
        outs = evaluate(sub, sub.consts, args, local, obs)
        return outs, [local[n] for n in names]

    if p is P.remat_p:
        (sub,) = subs
        fun = jax.checkpoint(
            lambda *a: run(sub, list(a), init),
            prevent_cse=params["prevent_cse"],
            policy=params["policy"],
        )
        with _context(eqn):
            outvals, states = fun(*invals)
    elif p is P.while_p:
        (sub,) = subs
        spec = plan.specs[i]
        cn, bn = spec.cond_nconsts, spec.body_nconsts
        cconsts, bconsts, carry = invals[:cn], invals[cn : cn + bn], invals[cn + bn :]
        cond_fun = jcore.jaxpr_as_fun(params["cond_jaxpr"])

        def cond(c):
            return cond_fun(*cconsts, *c[0])[0]

        def loop_body(c):
            return tuple(run(sub, [*bconsts, *c[0]], c[1]))

        with _context(eqn):
            outvals, states = lax.while_loop(cond, loop_body, (carry, init))
    elif p is P.cond_p:
        index, *ops = invals
        branches = []
        for closed, sub in zip(params["branches"], subs, strict=True):
            if sub is None:
                f = jcore.jaxpr_as_fun(closed)
                branches.append(lambda st, *o, f=f: (list(f(*o)), st))
            else:
                branches.append(lambda st, *o, sub=sub: run(sub, list(o), st))
        with _context(eqn):
            outvals, states = lax.switch(index, branches, init, *ops)
    else:  # pragma: no cover - sub_jaxprs and _recurse list the same primitives
        raise _primitives.unsupported(eqn, "no rebuild rule")
    for name, state in zip(names, states, strict=True):
        obs.absorb(acc, name, state)
    return list(outvals)


def _recurse_scan(spec, eqn, subs, slots, depth, invals, acc, obs) -> list[Any]:
    """``scan`` as ``lax.scan``: pooled sites in the carry, per-iteration sites in the ys."""
    (sub,) = subs
    stacked = [s for s in slots if any(d == depth for d, _ in s.stack)]
    pooled = [s for s in slots if not any(d == depth for d, _ in s.stack)]
    nc, ncarry = spec.num_consts, spec.num_carry
    consts, carry, xs = invals[:nc], invals[nc : nc + ncarry], invals[nc + ncarry :]
    init = [_empty(obs, s, s.lead(depth + 1)) for s in pooled]
    extra = obs.scan_inputs(slots)

    def body(c, x_extra):
        x, ex = x_extra
        local = {s.key.name: st for s, st in zip(pooled, c[1], strict=True)}
        with obs.iteration(ex):
            outs = evaluate(sub, sub.consts, [*consts, *c[0], *x], local, obs)
        per_iteration = [
            local[s.key.name] if s.key.name in local else _empty(obs, s, s.lead(depth + 1))
            for s in stacked
        ]
        kept = [local[s.key.name] for s in pooled]
        return (outs[:ncarry], kept), (outs[ncarry:], per_iteration)

    with _context(eqn):
        (carry_out, pooled_states), (ys, stacked_states) = lax.scan(
            body,
            (carry, init),
            (xs, extra),
            length=spec.length,
            reverse=spec.reverse,
            unroll=spec.unroll,
        )
    for s, state in zip([*pooled, *stacked], [*pooled_states, *stacked_states], strict=True):
        obs.absorb(acc, s.key.name, state)
    return [*carry_out, *ys]


def views(slots: Sequence[_Slot], acc: Mapping[str, Any], chosen: Collection[str]) -> list:
    """``(site name, state)`` of every chosen public site, per-iteration states unstacked."""
    out = []
    for slot in slots:
        state = acc.get(slot.key.name)
        for view in slot.views:
            if view.name not in chosen:
                continue
            if view.iteration:
                out.append((view.name, jax.tree.map(lambda a, ix=view.iteration: a[ix], state)))
            else:
                out.append((view.name, state))
    return out


# --- tracing -------------------------------------------------------------------------------------


def _is_array(x: Any) -> bool:
    return isinstance(x, (jax.Array, np.ndarray, np.generic, jax.ShapeDtypeStruct))


@dataclasses.dataclass
class Traced:
    """A traced function: its plan, its dynamic inputs and how to rebuild its output."""

    plan: _Plan
    out_tree: Any
    dynamic: list[Any]

    def observed(self, chosen: Sequence[Site]) -> tuple[list[_Slot], frozenset[str]]:
        """The slots behind the ``chosen`` public sites, and their key names."""
        names = {s.name for s in chosen}
        slots = [s for s in self.plan.slots if any(v.name in names for v in s.views)]
        return slots, frozenset(s.key.name for s in slots)


def trace(
    fn: Callable[..., Any],
    args: Sequence[Any],
    kwargs: dict[str, Any],
    acts,
    *,
    loops: str = "auto",
    unit_axis: UnitAxis = None,
    param_args: Collection[int] = (),
) -> Traced:
    """Traces ``fn(*args, **kwargs)``; array leaves are inputs, other leaves are static.

    The array leaves of the arguments, but for ``args[i]`` with ``i`` in ``param_args`` (an NNX
    module's state), are the data: a dense layer's weight is told from its input by which
    operand depends on them (:func:`relujax.analysis._axis.feature_axis`); parameters that
    ``fn`` closes over are constants of its jaxpr.
    """
    leaves, treedef = jax.tree.flatten((tuple(args), dict(kwargs)))
    dyn_idx = [i for i, leaf in enumerate(leaves) if _is_array(leaf)]
    is_data = [k not in param_args for k, arg in enumerate(args) for _ in jax.tree.leaves(arg)]
    is_data += [True] * (len(leaves) - len(is_data))

    def flat_fn(*dyn):
        full = list(leaves)
        for i, v in zip(dyn_idx, dyn, strict=True):
            full[i] = v
        a, k = jax.tree.unflatten(treedef, full)
        return fn(*a, **k)

    dynamic = [leaves[i] for i in dyn_idx]
    closed, out_shape = jax.make_jaxpr(flat_fn, return_shape=True)(*dynamic)
    ctx = _Context(acts=acts, loops_mode=loops, unit_axis=unit_axis)
    data = {
        v: frozenset({DATA})
        for v, i in zip(closed.jaxpr.invars, dyn_idx, strict=True)
        if is_data[i]
    }
    plan = build_plan(closed.jaxpr, closed.consts, ctx, taint=data)
    if isinstance(unit_axis, Mapping):
        unknown = sorted(set(unit_axis) - ctx.used_overrides)
        if unknown:
            raise ValueError(
                f"unit_axis: no site named {unknown}; the sites are {[s.name for s in plan.sites]}."
            )
    return Traced(plan=plan, out_tree=jax.tree.structure(out_shape), dynamic=dynamic)
