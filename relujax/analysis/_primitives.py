"""What the jaxpr interpreter knows about each control-flow primitive, per JAX version.

The interpreter of :mod:`relujax.analysis._capture` rebuilds ``jit``, ``closed_call``,
``checkpoint``, ``custom_jvp``/``custom_vjp``, ``scan``, ``while`` and ``cond`` equations that
contain activation sites. It reads their parameters here, and only here: every parameter it
meets must be one it knows (used or provably irrelevant to the values computed), so that a
JAX release that changes a primitive's parameters makes analysis fail with an error naming
the primitive, the parameters and the JAX version, instead of rebuilding a different program.

Known layouts: ``scan`` carries ``num_consts``/``num_carry`` up to jax 0.10 and ``ft_in``/
``ft_out`` (flat trees of (consts, carry, xs) and (carry, ys)) from jax 0.11 on.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import jax
from jax.extend import core as jcore

P = jcore.primitives

# Parameters of ``jit`` that only place or compile the computation: inlining the body keeps
# every value.
_JIT = frozenset(
    {
        "jaxpr",
        "in_shardings",
        "out_shardings",
        "in_layouts",
        "out_layouts",
        "donated_invars",
        "ctx_mesh",
        "name",
        "keep_unused",
        "inline",
        "compiler_options_kvs",
    }
)

#: Known parameter names of each primitive the interpreter rebuilds.
KNOWN_PARAMS: dict[Any, frozenset[str]] = {
    P.jit_p: _JIT,
    P.closed_call_p: frozenset({"call_jaxpr"}),
    P.call_p: frozenset({"call_jaxpr"}),
    P.remat_p: frozenset({"jaxpr", "prevent_cse", "differentiated", "policy"}),
    P.custom_jvp_call_p: frozenset({"call_jaxpr", "jvp_jaxpr_fun", "num_consts", "symbolic_zeros"}),
    P.custom_vjp_call_p: frozenset(
        {"call_jaxpr", "fwd_jaxpr_thunk", "bwd", "num_consts", "out_trees", "symbolic_zeros"}
    ),
    # ``linear`` and ``_split_transpose`` only steer transposition.
    P.scan_p: frozenset(
        {"jaxpr", "length", "reverse", "unroll", "num_consts", "num_carry", "ft_in", "ft_out"}
        | {"linear", "_split_transpose"}
    ),
    P.while_p: frozenset({"cond_jaxpr", "body_jaxpr", "cond_nconsts", "body_nconsts"}),
    P.cond_p: frozenset({"branches"}),
}


#: Parameters the interpreter reads when it rebuilds each primitive.
REQUIRED_PARAMS: dict[Any, frozenset[str]] = {
    P.jit_p: frozenset({"jaxpr"}),
    P.closed_call_p: frozenset({"call_jaxpr"}),
    P.call_p: frozenset({"call_jaxpr"}),
    P.remat_p: frozenset({"jaxpr", "prevent_cse", "policy"}),
    P.custom_jvp_call_p: frozenset({"call_jaxpr", "num_consts"}),
    P.custom_vjp_call_p: frozenset({"call_jaxpr", "num_consts"}),
    P.scan_p: frozenset({"jaxpr", "length", "reverse", "unroll"}),
    P.while_p: frozenset({"cond_jaxpr", "body_jaxpr", "cond_nconsts", "body_nconsts"}),
    P.cond_p: frozenset({"branches"}),
}


class UnsupportedPrimitiveError(NotImplementedError):
    """A primitive whose parameters the interpreter does not know (a JAX version it predates)."""


def _versions() -> str:
    import jaxlib.version

    return f"jax {jax.__version__}, jaxlib {jaxlib.version.__version__}"


def unsupported(eqn: Any, why: str) -> UnsupportedPrimitiveError:
    """The error for an equation the interpreter cannot rebuild exactly."""
    return UnsupportedPrimitiveError(
        f"relujax.analysis cannot rebuild the `{eqn.primitive.name}` equation that contains "
        f"activation sites under {_versions()}: {why}. Rather than guess, it stops. Observe "
        "only sites outside it (sites=/exclude= do not help: the program is read first), "
        "pin a supported JAX version, or report this with the versions above."
    )


def check_params(eqn: Any) -> None:
    """Raise :class:`UnsupportedPrimitiveError` unless every parameter of ``eqn`` is known."""
    known = KNOWN_PARAMS.get(eqn.primitive)
    if known is None:
        raise unsupported(eqn, "the interpreter has no rule for this primitive")
    extra = sorted(set(eqn.params) - known)
    if extra:
        raise unsupported(eqn, f"unknown parameters {extra}")
    missing = sorted(REQUIRED_PARAMS[eqn.primitive] - set(eqn.params))
    if missing:
        raise unsupported(eqn, f"parameters {missing} are missing")


def _param(eqn: Any, name: str) -> Any:
    try:
        return eqn.params[name]
    except KeyError:
        raise unsupported(eqn, f"parameter {name!r} is missing") from None


def num_consts(eqn: Any) -> int:
    """``num_consts`` of a ``custom_jvp_call``/``custom_vjp_call`` equation."""
    return int(_param(eqn, "num_consts"))


@dataclasses.dataclass(frozen=True)
class ScanSpec:
    """A ``scan`` equation's layout: ``invars = consts + carry + xs``, ``outvars = carry + ys``."""

    num_consts: int
    num_carry: int
    length: int
    reverse: bool
    unroll: Any


def scan_spec(eqn: Any) -> ScanSpec:
    """Reads a ``scan`` equation's layout under jax 0.10 (``num_consts``) or 0.11+ (``ft_in``)."""
    check_params(eqn)
    params = eqn.params
    if "ft_in" in params or "ft_out" in params:
        try:
            consts, carry, xs = _param(eqn, "ft_in").unpack()
            carry_out, ys = _param(eqn, "ft_out").unpack()
            nc, ncarry, nxs = len(consts), len(carry), len(xs)
            ny = len(ys)
        except (AttributeError, TypeError, ValueError) as e:
            raise unsupported(eqn, f"ft_in/ft_out of an unknown form ({e})") from None
        if len(carry_out) != ncarry:
            raise unsupported(eqn, f"{ncarry} carried inputs but {len(carry_out)} outputs")
    else:
        nc, ncarry = int(_param(eqn, "num_consts")), int(_param(eqn, "num_carry"))
        nxs = len(eqn.invars) - nc - ncarry
        ny = len(eqn.outvars) - ncarry
    body = _param(eqn, "jaxpr").jaxpr
    if (
        nc + ncarry + nxs != len(eqn.invars)
        or len(body.invars) != len(eqn.invars)
        or ncarry + ny != len(eqn.outvars)
        or len(body.outvars) != len(eqn.outvars)
    ):
        raise unsupported(
            eqn,
            f"layout consts={nc}, carry={ncarry}, xs={nxs}, ys={ny} does not match its "
            f"{len(eqn.invars)} inputs and {len(eqn.outvars)} outputs",
        )
    return ScanSpec(
        num_consts=nc,
        num_carry=ncarry,
        length=int(_param(eqn, "length")),
        reverse=bool(_param(eqn, "reverse")),
        unroll=_param(eqn, "unroll"),
    )


@dataclasses.dataclass(frozen=True)
class WhileSpec:
    """A ``while`` equation's layout: ``invars = cond consts + body consts + carry``."""

    cond_nconsts: int
    body_nconsts: int


def while_spec(eqn: Any) -> WhileSpec:
    """Reads a ``while`` equation's layout."""
    check_params(eqn)
    cn, bn = int(_param(eqn, "cond_nconsts")), int(_param(eqn, "body_nconsts"))
    if cn + bn > len(eqn.invars) or len(eqn.invars) - cn - bn != len(eqn.outvars):
        raise unsupported(eqn, f"cond_nconsts={cn}, body_nconsts={bn} do not match its operands")
    return WhileSpec(cond_nconsts=cn, body_nconsts=bn)


def sub_jaxprs(eqn: Any) -> tuple[Any, ...] | None:
    """Sub-jaxprs of a primitive the interpreter can rebuild, or None.

    Parameters are not checked here (an equation without sites is bound unchanged, whatever
    its parameters); :func:`check_params` runs once the sub-jaxprs are known to hold sites.
    """
    p, params = eqn.primitive, eqn.params
    if p not in KNOWN_PARAMS:
        return None
    if p in (P.jit_p, P.remat_p, P.scan_p):
        found = (params.get("jaxpr"),)
    elif p in (P.closed_call_p, P.call_p, P.custom_jvp_call_p, P.custom_vjp_call_p):
        found = (params.get("call_jaxpr"),)
    elif p is P.while_p:
        found = (params.get("body_jaxpr"),)
    else:  # cond
        found = tuple(params.get("branches", ()))
    if not found or any(j is None for j in found):
        raise unsupported(eqn, f"no sub-jaxprs where expected (parameters {sorted(params)})")
    return found
