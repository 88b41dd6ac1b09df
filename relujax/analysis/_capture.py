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
``lax.while_loop`` / ``lax.switch`` with the statistics in the carry, so a site inside a loop
is one site pooled over its iterations. A ``custom_jvp``/``custom_vjp`` function that contains
sites deeper inside is bound unchanged (its derivative rule is kept) and its body is evaluated
a second time on ``stop_gradient`` inputs for the statistics only; XLA's CSE merges the two
forward computations.

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
import warnings
from collections.abc import Callable, Collection, Sequence
from typing import Any

import jax
import numpy as np
from jax import lax
from jax.extend import core as jcore
from jax.extend import source_info_util

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

#: Activations whose output is never negative, so that ``E|h| = E[h]``.
NONNEGATIVE: frozenset[str] = frozenset(
    {
        "relu",
        "relu6",
        "capped_relu",
        "squared_relu",
        "crelu",
        "softplus",
        "squareplus",
        "sparse_plus",
        "hard_sigmoid",
    }
)

#: Activations whose output is > 0 exactly where the input is > 0, so that firing can be
#: counted on the output (prelu, shifted_relu, threshold, softplus-like ones are not).
SIGN_PRESERVING: frozenset[str] = frozenset(
    {
        "relu",
        "relu6",
        "capped_relu",
        "squared_relu",
        "leaky_relu",
        "rrelu",
        "elu",
        "selu",
        "celu",
        "gelu",
        "silu",
        "mish",
        "hard_silu",
        "hard_swish",
        "hard_tanh",
    }
)

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
        function in that scope in call order; a tag's own name for :func:`tag`.
      function: the activation's name (``"relu"``, ``"gelu"``, ...) or ``"tag"``.
      shape: shape of the observed array; its last axis holds the units.
      in_loop: whether the site is inside ``scan``/``while`` (its statistics pool the
        iterations).

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

    @property
    def units(self) -> int:
        """Number of units: the size of the last axis (1 for a scalar)."""
        return self.shape[-1] if self.shape else 1

    @property
    def nonnegative(self) -> bool:
        """Whether the activation's output is never negative (relu, relu6, softplus, ...)."""
        return self.function in NONNEGATIVE

    @property
    def sign_preserving(self) -> bool:
        """Whether the output is > 0 exactly where the pre-activation is (relu, elu, gelu...)."""
        return self.function in SIGN_PRESERVING


@dataclasses.dataclass(frozen=True)
class _Hit:
    site: Site
    pre: Any  # an atom (Var or Literal) of the plan's jaxpr
    out: Any


@dataclasses.dataclass
class _Plan:
    jaxpr: Any  # an open jcore.Jaxpr
    consts: list[Any]
    after: dict[int, list[_Hit]] = dataclasses.field(default_factory=dict)
    subs: dict[int, tuple[_Plan | None, ...]] = dataclasses.field(default_factory=dict)
    sites: list[Site] = dataclasses.field(default_factory=list)
    sub_names: dict[int, frozenset[str]] = dataclasses.field(default_factory=dict)


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


def _direct_site(eqn: Any, acts: Collection[str]) -> tuple[str, Any, Any] | None:
    """(jit name, pre atom, out atom) if ``eqn`` itself is an activation call."""
    name = _jit_site_name(eqn, acts)
    if name is not None and eqn.invars and eqn.outvars:
        return name, eqn.invars[0], eqn.outvars[0]
    if eqn.primitive in (P.custom_jvp_call_p, P.custom_vjp_call_p):
        inner, _ = _closed(eqn.params["call_jaxpr"])
        nc = eqn.params.get("num_consts", 0)
        if len(inner.eqns) == 1 and len(eqn.invars) > nc and eqn.outvars:
            ieqn = inner.eqns[0]
            name = _jit_site_name(ieqn, acts)
            if (
                name is not None
                and ieqn.invars
                and ieqn.invars[0] is inner.invars[nc]
                and ieqn.outvars[0] is inner.outvars[0]
            ):
                return name, eqn.invars[nc], eqn.outvars[0]
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


def _sub_jaxprs(eqn: Any) -> tuple[Any, ...] | None:
    """Sub-jaxprs the interpreter knows how to recurse into, or None."""
    p, params = eqn.primitive, eqn.params
    if p is P.jit_p:
        return (params["jaxpr"],)
    if p in (P.closed_call_p, P.call_p):
        return (params["call_jaxpr"],)
    if p is P.remat_p:
        return (params["jaxpr"],)
    if p in (P.custom_jvp_call_p, P.custom_vjp_call_p):
        return (params["call_jaxpr"],)
    if p is P.scan_p:
        return (params["jaxpr"],)
    if p is P.while_p:
        return (params["body_jaxpr"],)
    if p is P.cond_p:
        return tuple(params["branches"])
    return None


def build_plan(
    jaxpr: Any,
    consts: Sequence[Any],
    acts: Collection[str],
    *,
    scope: str = "",
    namer: _Namer | None = None,
    in_loop: bool = False,
) -> _Plan:
    """Walks ``jaxpr`` and returns the plan of its sites (see the module docstring)."""
    namer = _Namer() if namer is None else namer
    plan = _Plan(jaxpr=jaxpr, consts=list(consts))
    eqns = jaxpr.eqns

    def add(i: int, function: str, pre: Any, out: Any, eqn_scope: str, tag: str | None) -> None:
        if _shape(pre) != _shape(out) or pre.aval.dtype != out.aval.dtype:
            pre = out  # e.g. crelu: observe the output alone (its units fire when > 0)
        name = namer.tagged(tag) if tag is not None else namer.auto(eqn_scope, function)
        site = Site(name=name, function=function, shape=_shape(out), in_loop=in_loop)
        plan.after.setdefault(i, []).append(_Hit(site, pre, out))
        plan.sites.append(site)

    i = 0
    while i < len(eqns):
        eqn = eqns[i]
        eqn_scope = _join(scope, eqn.source_info.name_stack)
        direct = _direct_site(eqn, acts)
        if direct is not None:
            name, pre, out = direct
            if name.startswith(TAG_PREFIX):
                add(i, "tag", out, out, eqn_scope, name[len(TAG_PREFIX) :])
            else:
                add(i, name, pre, out, eqn_scope, None)
            i += 1
            continue
        if "gelu" in acts and _in_gelu(eqn):
            end, calls = _gelu_calls(eqns, i)
            for last, pre, out in calls:
                add(last, "gelu", pre, out, _join(scope, eqns[last].source_info.name_stack), None)
            i = end
            continue
        subs = _sub_jaxprs(eqn)
        if subs is not None:
            loop = in_loop or eqn.primitive in (P.scan_p, P.while_p)
            sub_plans = []
            for sub in subs:
                sj, sc = _closed(sub)
                sp = build_plan(sj, sc, acts, scope=eqn_scope, namer=namer, in_loop=loop)
                sub_plans.append(sp if sp.sites else None)
            if any(sp is not None for sp in sub_plans):
                plan.subs[i] = tuple(sub_plans)
                names = [s for sp in sub_plans if sp is not None for s in sp.sites]
                plan.sites.extend(names)
                plan.sub_names[i] = frozenset(s.name for s in names)
        else:
            _warn_hidden(eqn, acts)
        i += 1
    return plan


def _warn_hidden(eqn: Any, acts: Collection[str]) -> None:
    for sub in jcore.jaxprs_in_params(eqn.params):
        sj, sc = _closed(sub)
        if build_plan(sj, sc, acts).sites:
            warnings.warn(
                f"relujax.analysis: activation sites inside `{eqn.primitive.name}` are not "
                "captured (only jit, closed_call, checkpoint, scan, while, cond and custom_jvp/"
                "custom_vjp bodies are searched).",
                stacklevel=4,
            )
            return


# --- the interpreter ---------------------------------------------------------------------------


class Observer:
    """What to do at a site; subclasses keep per-site state in the ``acc`` dict."""

    #: the names of the sites to observe
    selected: frozenset[str] = frozenset()

    def empty(self, site: Site) -> Any:
        raise NotImplementedError

    def observe(self, acc: dict[str, Any], site: Site, pre: Any, out: Any) -> None:
        raise NotImplementedError

    def absorb(self, acc: dict[str, Any], name: str, state: Any) -> None:
        raise NotImplementedError


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


def evaluate(plan: _Plan, consts: Sequence[Any], args: Sequence[Any], acc, obs) -> list[Any]:
    """Evaluates ``plan.jaxpr`` on ``args``, calling ``obs`` at every selected site."""
    env: dict[Any, Any] = {}

    def read(v: Any) -> Any:
        return v.val if isinstance(v, jcore.Literal) else env[v]

    for v, x in zip(plan.jaxpr.constvars, consts, strict=True):
        env[v] = x
    for v, x in zip(plan.jaxpr.invars, args, strict=True):
        env[v] = x
    for i, eqn in enumerate(plan.jaxpr.eqns):
        invals = [read(v) for v in eqn.invars]
        subs = plan.subs.get(i)
        if subs is not None and plan.sub_names[i] & obs.selected:
            outvals = _recurse(eqn, subs, invals, acc, obs)
        else:
            outvals = _bind(eqn, invals)
        for v, x in zip(eqn.outvars, outvals, strict=True):
            if not isinstance(v, jcore.DropVar):
                env[v] = x
        for hit in plan.after.get(i, ()):
            if hit.site.name in obs.selected:
                obs.observe(acc, hit.site, read(hit.pre), read(hit.out))
    return [read(v) for v in plan.jaxpr.outvars]


def _names(plans: Sequence[_Plan | None], obs: Observer) -> list[Site]:
    return [s for p in plans if p is not None for s in p.sites if s.name in obs.selected]


def _recurse(eqn: Any, subs: tuple[_Plan | None, ...], invals: list[Any], acc, obs) -> list[Any]:
    p, params = eqn.primitive, eqn.params
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

    sites = _names(subs, obs)
    names = [s.name for s in sites]
    init = [obs.empty(s) for s in sites]

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
    elif p is P.scan_p:
        (sub,) = subs
        nc, ncarry = params["num_consts"], params["num_carry"]
        consts, carry, xs = invals[:nc], invals[nc : nc + ncarry], invals[nc + ncarry :]

        def body(c, x):
            outs, st = run(sub, [*consts, *c[0], *x], c[1])
            return (outs[:ncarry], st), outs[ncarry:]

        with _context(eqn):
            (carry_out, states), ys = lax.scan(
                body,
                (carry, init),
                xs,
                length=params["length"],
                reverse=params["reverse"],
                unroll=params["unroll"],
            )
        outvals = [*carry_out, *ys]
    elif p is P.while_p:
        (sub,) = subs
        cn, bn = params["cond_nconsts"], params["body_nconsts"]
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
    else:  # pragma: no cover - _sub_jaxprs and _recurse list the same primitives
        raise AssertionError(p)
    for name, state in zip(names, states, strict=True):
        obs.absorb(acc, name, state)
    return list(outvals)


# --- tracing -------------------------------------------------------------------------------------


def _is_array(x: Any) -> bool:
    return isinstance(x, (jax.Array, np.ndarray, np.generic, jax.ShapeDtypeStruct))


@dataclasses.dataclass
class Traced:
    """A traced function: its plan, its dynamic inputs and how to rebuild its output."""

    plan: _Plan
    out_tree: Any
    dynamic: list[Any]


def trace(fn: Callable[..., Any], args: Sequence[Any], kwargs: dict[str, Any], acts) -> Traced:
    """Traces ``fn(*args, **kwargs)``; array leaves are inputs, other leaves are static."""
    leaves, treedef = jax.tree.flatten((tuple(args), dict(kwargs)))
    dyn_idx = [i for i, leaf in enumerate(leaves) if _is_array(leaf)]

    def flat_fn(*dyn):
        full = list(leaves)
        for i, v in zip(dyn_idx, dyn, strict=True):
            full[i] = v
        a, k = jax.tree.unflatten(treedef, full)
        return fn(*a, **k)

    dynamic = [leaves[i] for i in dyn_idx]
    closed, out_shape = jax.make_jaxpr(flat_fn, return_shape=True)(*dynamic)
    plan = build_plan(closed.jaxpr, closed.consts, acts)
    return Traced(plan=plan, out_tree=jax.tree.structure(out_shape), dynamic=dynamic)
