"""Sub-batching: is a traced model per-sample, so that its batch may be split into blocks?

:func:`relujax.analysis.collect` can run the forward pass on sub-batches of each batch
(``lax.scan`` over blocks of ``sub_batch`` samples) and merge the blocks' statistics with the
monoid. On CPU each block's activations then stay in cache while they are reduced. The result
equals the unblocked pass only for a *per-sample* model: the outputs for a block of samples
depend on those samples alone, and on nothing that depends on the batch size. BatchNorm in
training mode (a mean over the batch), per-batch random draws (dropout masks drawn with the
batch's shape) and models that use ``x.shape[0]`` as a number are not.

:func:`unproved` decides it from two traces of the model, at the full batch size ``B`` and at
the block size ``s``, walked in lockstep. Every variable gets a kind: *constant* (no batch input
reaches it; same shape, and the same value, in both traces), *batched along axis a* (its axis
``a`` holds ``B * m`` rows in the full trace and ``s * m`` in the block trace, sample ``i``
owning rows ``i*m .. (i+1)*m - 1``, and those rows depend on sample ``i`` only). The inputs
are batched along axis 0; a rule per primitive (elementwise operations, ``dot_general``,
convolutions, reductions and windows that leave the batch axis alone, reshapes that keep whole
samples together, transposes, broadcasts, slices and pads that leave the batch axis whole, and
calls into nested jaxprs) propagates the kinds. The two traces must agree on every primitive,
parameter, literal and constant: a literal ``B`` in one trace and ``s`` in the other refuses.
Anything else that touches a batched value (a reduction over the batch axis, a gather, a loop,
an unknown primitive) or creates a batch-sized array from no batch input (``random_bits``,
``iota``) refuses, naming the equation. The check is conservative: it may refuse a per-sample
model, never accept a batch-coupled one it has traced.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np
from jax.extend import core as jcore

#: Primitives that act elementwise on operands of one shape (scalars and size-1 axes broadcast).
ELEMENTWISE: frozenset[str] = frozenset(
    """abs acos acosh add and asin asinh atan atan2 atanh cbrt ceil clamp conj convert_element_type
    copy copy_p cos cosh digamma div eq erf erf_inv erfc exp exp2 expm1 floor ge gt igamma imag
    integer_pow is_finite le lgamma log log1p logistic lt max min mul ne neg nextafter not or
    population_count pow real reduce_precision rem round rsqrt select_n shift_left
    shift_right_arithmetic shift_right_logical sign sin sinh sqrt square stop_gradient sub tan
    tanh xor""".split()
)

#: Reductions with an ``axes`` parameter.
REDUCTIONS: frozenset[str] = frozenset(
    "reduce_sum reduce_max reduce_min reduce_prod reduce_and reduce_or reduce_xor argmax "
    "argmin".split()
)

#: Calls into a nested jaxpr, evaluated once on the call's operands.
CALLS: frozenset[str] = frozenset(
    "pjit jit closed_call core_call custom_jvp_call custom_vjp_call custom_vjp_call_jaxpr "
    "remat remat2 checkpoint".split()
)

_JAXPR_PARAMS = ("jaxpr", "call_jaxpr", "fun_jaxpr")
# Parameters that hold shapes (checked through the output shapes) or callables and jaxprs.
_SKIPPED_PARAMS = frozenset(
    {"shape", "new_sizes", "limit_indices", "sharding", "out_sharding", "jvp", "fwd", "bwd",
     "jvp_jaxpr_fun", "jvp_jaxpr_thunk", "fwd_jaxpr_thunk", "out_trees", "num_consts",
     "symbolic_zeros", "prevent_cse", "differentiated", "policy", *_JAXPR_PARAMS}
)  # fmt: skip

CONST = -1  # the kind of a value that no batch input reaches


class Refused(Exception):
    """Raised inside the walk with the reason the model is not proved per-sample."""


def unproved(
    full: Any,
    part: Any,
    full_consts: Sequence[Any],
    part_consts: Sequence[Any],
    *,
    batched: Sequence[int],
    batch: int,
    block: int,
    unchanged: Sequence[tuple[int, int]] = (),
) -> str | None:
    """Why splitting the batch of a traced model into blocks could change its values, or None.

    Args:
      full: the model's jaxpr (a ``jax.extend.core.Jaxpr``) traced at batch size ``batch``.
      part: the same model's jaxpr traced at batch size ``block``.
      full_consts: the values of ``full``'s constvars.
      part_consts: the values of ``part``'s constvars.
      batched: positions of ``full.invars`` that hold the batch (samples along axis 0); the
        other inputs are constants (parameters, state).
      batch: the full batch size ``B``.
      block: the block size ``s`` (``1 < s < B``, dividing ``B``).
      unchanged: ``(output, input)`` position pairs: outputs that must be the input itself
        (an NNX module's state, which would otherwise be threaded through the blocks).

    Returns:
      ``None`` when the model is proved per-sample, else a sentence naming the obstacle.

    Examples:
      >>> import jax, jax.numpy as jnp
      >>> w = jnp.ones((3, 2))
      >>> def trace(f, n):
      ...     closed = jax.make_jaxpr(f)(jnp.ones((n, 3)))
      ...     return closed.jaxpr, closed.consts
      >>> def check(f):
      ...     (a, ca), (b, cb) = trace(f, 8), trace(f, 2)
      ...     return unproved(a, b, ca, cb, batched=[0], batch=8, block=2)
      >>> check(lambda x: jax.nn.relu(x @ w)) is None
      True
      >>> print(check(lambda x: jax.nn.relu(x - x.mean(0, keepdims=True)) @ w))
      reduce_sum reduces the batch axis
    """
    try:
        if len(full.invars) != len(part.invars) or len(full.outvars) != len(part.outvars):
            raise Refused("the program differs between batch sizes")
        _consts(full.constvars, part.constvars, full_consts, part_consts)
        kinds: dict[Any, int] = {v: CONST for v in full.constvars}
        positions = set(batched)
        for k, (v, w) in enumerate(zip(full.invars, part.invars, strict=True)):
            kinds[v] = 0 if k in positions else CONST
            _check(v.aval, w.aval, kinds[v], batch, block, "an input")
        _walk(full, part, kinds, batch, block)
        for out, inp in unchanged:
            if full.outvars[out] is not full.invars[inp]:
                raise Refused(
                    "the model updates its state during a call (BatchNorm statistics, RNG "
                    "counters), which blocks would update once per block"
                )
    except Refused as e:
        return str(e)
    return None


def choose(batch: int, sample_bytes: int, target: int) -> int | None:
    """The largest block size ``s`` that divides ``batch`` with ``s * sample_bytes <= target``.

    Args:
      batch: samples per batch.
      sample_bytes: bytes of the largest activation per sample.
      target: bytes of one block (about a core's L2 cache).

    Returns:
      ``s`` with ``2 <= s < batch``, or ``None`` when no such divisor exists.

    Examples:
      >>> choose(256, 28 * 28 * 32 * 4, 1 << 20)  # 100 KiB per sample: 8 samples a block
      8
      >>> choose(7, 1000, 1 << 20) is None  # a prime batch has no proper divisor
      True
    """
    best = None
    for s in range(2, batch):
        if batch % s == 0 and s * sample_bytes <= target:
            best = s
    return best


def _consts(fv, pv, fc, pc) -> None:
    if len(fv) != len(pv) or len(fc) != len(pc):
        raise Refused("the program's constants differ between batch sizes")
    for a, b in zip(fc, pc, strict=True):
        if a is b:
            continue
        try:
            same = np.shape(a) == np.shape(b) and np.array_equal(np.asarray(a), np.asarray(b))
        except Exception:  # e.g. two distinct tracers (collect under vmap): cannot compare
            same = False
        if not same:
            raise Refused("a constant of the program depends on the batch size")


def _check(fa: Any, pa: Any, kind: int, batch: int, block: int, what: str) -> None:
    """Shapes of one value in the two traces agree with its kind."""
    fs, ps = tuple(getattr(fa, "shape", ())), tuple(getattr(pa, "shape", ()))
    if kind == CONST:
        if fs != ps:
            raise Refused(f"{what} makes a batch-sized array from no batch input")
        return
    ok = len(fs) == len(ps) and all(
        (f == p) if k != kind else (f % batch == 0 and f // batch * block == p)
        for k, (f, p) in enumerate(zip(fs, ps, strict=True))
    )
    if not ok:
        raise Refused(f"{what} changes the batch axis ({fs} at batch {batch}, {ps} at {block})")


def _same_literal(a: Any, b: Any) -> bool:
    """Equal literal values, a NaN equal to a NaN (``jnp.std``'s ``where`` holds one)."""
    a, b = np.asarray(a), np.asarray(b)
    if a.dtype != b.dtype or a.shape != b.shape:
        return False
    if np.issubdtype(a.dtype, np.inexact):
        return bool(np.array_equal(a, b, equal_nan=True))
    return bool(np.array_equal(a, b))


def _literal_or_param_mismatch(fe: Any, pe: Any) -> bool:
    for a, b in zip(fe.invars, pe.invars, strict=True):
        if isinstance(a, jcore.Literal) != isinstance(b, jcore.Literal):
            return True
        if isinstance(a, jcore.Literal) and not _same_literal(a.val, b.val):
            return True
    keys = set(fe.params) | set(pe.params)
    return any(
        str(fe.params.get(k)) != str(pe.params.get(k)) for k in keys if k not in _SKIPPED_PARAMS
    )


def _walk(full: Any, part: Any, kinds: dict[Any, int], batch: int, block: int) -> None:
    if len(full.eqns) != len(part.eqns):
        raise Refused("the program differs between batch sizes")
    for fe, pe in zip(full.eqns, part.eqns, strict=True):
        name = fe.primitive.name
        if name != pe.primitive.name or len(fe.invars) != len(pe.invars):
            raise Refused("the program differs between batch sizes")
        if _literal_or_param_mismatch(fe, pe):
            raise Refused(f"{name} has a literal or parameter that depends on the batch size")
        ins = [CONST if isinstance(v, jcore.Literal) else kinds[v] for v in fe.invars]
        if name in CALLS:
            outs = _call(fe, pe, ins, batch, block)
        elif all(k == CONST for k in ins):
            outs = [CONST] * len(fe.outvars)
            if name == "broadcast_in_dim":  # a constant spread along the batch: uniform rows
                outs = [_broadcast_const(fe, pe)]
        else:
            outs = _rule(name, fe, ins)
        for v, w, k in zip(fe.outvars, pe.outvars, outs, strict=True):
            _check(v.aval, w.aval, k, batch, block, name)
            kinds[v] = k


def _call(fe: Any, pe: Any, ins: list[int], batch: int, block: int) -> list[int]:
    key = next((k for k in _JAXPR_PARAMS if k in fe.params), None)
    if key is None or key not in pe.params:
        raise Refused(f"{fe.primitive.name} has no nested jaxpr to analyse")
    fj, pj = fe.params[key], pe.params[key]
    fc, pc = getattr(fj, "consts", []), getattr(pj, "consts", [])
    fj, pj = getattr(fj, "jaxpr", fj), getattr(pj, "jaxpr", pj)
    if len(fj.invars) != len(ins) or len(pj.invars) != len(ins):
        raise Refused(f"{fe.primitive.name}'s operands do not match its jaxpr")
    _consts(fj.constvars, pj.constvars, fc, pc)
    kinds: dict[Any, int] = {v: CONST for v in fj.constvars}
    kinds.update(zip(fj.invars, ins, strict=True))
    _walk(fj, pj, kinds, batch, block)
    return [CONST if isinstance(v, jcore.Literal) else kinds[v] for v in fj.outvars]


def _broadcast_const(fe: Any, pe: Any) -> int:
    fs, ps = fe.params["shape"], pe.params["shape"]
    differ = [k for k, (f, p) in enumerate(zip(fs, ps, strict=True)) if f != p]
    if not differ:
        return CONST
    if len(differ) == 1 and differ[0] not in fe.params["broadcast_dimensions"]:
        return differ[0]
    raise Refused("broadcast_in_dim makes a batch-sized array from no batch input")


def _one(name: str, ins: list[int]) -> tuple[int, int]:
    """The single batched operand (position, axis) of ``name``."""
    batched = [(k, a) for k, a in enumerate(ins) if a != CONST]
    if len(batched) != 1:
        raise Refused(f"{name} combines several batched operands")
    return batched[0]


def _rule(name: str, eqn: Any, ins: list[int]) -> list[int]:
    p = eqn.params
    if name in ELEMENTWISE:
        axes = {a for a in ins if a != CONST}
        if len(axes) != 1:
            raise Refused(f"{name} mixes batched operands along different axes")
        (axis,) = axes
        for v, a in zip(eqn.invars, ins, strict=True):
            shape = getattr(v.aval, "shape", ())
            if a == CONST and shape and shape[axis] != 1:
                raise Refused(f"{name} combines the batch with a batch-sized constant")
        return [axis] * len(eqn.outvars)
    if name == "dot_general":
        return [_dot(eqn, ins)]
    if name == "conv_general_dilated":
        k, axis = _one(name, ins)
        dn = p["dimension_numbers"]
        if k != 0 or axis != dn.lhs_spec[0] or p["batch_group_count"] != 1:
            raise Refused("conv_general_dilated convolves over the batch axis")
        return [dn.out_spec[0]]
    if name in REDUCTIONS:
        _, axis = _one(name, ins)
        if axis in p["axes"]:
            raise Refused(f"{name} reduces the batch axis")
        return [axis - sum(a < axis for a in p["axes"])] * len(eqn.outvars)
    if name.startswith("reduce_window"):
        axis = _same_axis(name, ins)
        dims, strides = p["window_dimensions"], p["window_strides"]
        pad, base = p["padding"], p["base_dilation"]
        if dims[axis] != 1 or strides[axis] != 1 or tuple(pad[axis]) != (0, 0) or base[axis] != 1:
            raise Refused(f"{name} has a window across the batch axis")
        return [axis] * len(eqn.outvars)
    if name == "transpose":
        _, axis = _one(name, ins)
        return [list(p["permutation"]).index(axis)]
    if name == "broadcast_in_dim":
        _, axis = _one(name, ins)
        return [p["broadcast_dimensions"][axis]]
    if name == "squeeze":
        _, axis = _one(name, ins)
        if axis in p["dimensions"]:
            raise Refused("squeeze drops the batch axis")
        return [axis - sum(d < axis for d in p["dimensions"])]
    if name == "reshape":
        return [_reshape(eqn, ins)]
    if name == "rev":
        _, axis = _one(name, ins)
        if axis in p["dimensions"]:
            raise Refused("rev reverses the batch axis")
        return [axis]
    if name == "slice":
        _, axis = _one(name, ins)
        strides = p["strides"] or (1,) * len(p["start_indices"])
        shape = eqn.invars[0].aval.shape
        if p["start_indices"][axis] != 0 or p["limit_indices"][axis] != shape[axis]:
            raise Refused("slice cuts the batch axis")
        if strides[axis] != 1:
            raise Refused("slice strides over the batch axis")
        return [axis]
    if name == "pad":
        k, axis = _one(name, ins)
        if k != 0 or tuple(p["padding_config"][axis]) != (0, 0, 0):
            raise Refused("pad pads the batch axis")
        return [axis]
    if name == "concatenate":
        axis = _same_axis(name, ins)
        if any(a == CONST for a in ins) or p["dimension"] == axis:
            raise Refused("concatenate joins along the batch axis or with a constant")
        return [axis]
    raise Refused(f"{name} is not known to keep samples apart")


def _same_axis(name: str, ins: list[int]) -> int:
    axes = {a for a in ins if a != CONST}
    if len(axes) != 1:
        raise Refused(f"{name} mixes batched operands along different axes")
    return axes.pop()


def _dot(eqn: Any, ins: list[int]) -> int:
    (lc, rc), (lb, rb) = eqn.params["dimension_numbers"]
    lr, rr = len(eqn.invars[0].aval.shape), len(eqn.invars[1].aval.shape)
    lfree = [d for d in range(lr) if d not in lc and d not in lb]
    rfree = [d for d in range(rr) if d not in rc and d not in rb]
    la, ra = ins
    if la != CONST and ra != CONST:  # a per-sample product: both batched along a batch dim
        if la in lb and ra in rb and list(lb).index(la) == list(rb).index(ra):
            return list(lb).index(la)
        raise Refused("dot_general contracts batched operands across samples")
    if la != CONST:
        if la in lc or la in lb:
            raise Refused("dot_general contracts the batch axis")
        return len(lb) + lfree.index(la)
    if ra in rc or ra in rb:
        raise Refused("dot_general contracts the batch axis")
    return len(lb) + len(lfree) + rfree.index(ra)


def _reshape(eqn: Any, ins: list[int]) -> int:
    _, axis = _one("reshape", ins)
    if eqn.params.get("dimensions") is not None or axis != 0:
        raise Refused("reshape moves the batch axis")
    shape_in = eqn.invars[0].aval.shape
    shape_out = eqn.outvars[0].aval.shape
    # Sample rows are contiguous in row-major order: a reshape keeps every output row of axis 0
    # inside one sample when the rows of the output divide the elements of one input row.
    per_row_in = math.prod(shape_in[1:])
    per_row_out = math.prod(shape_out[1:])
    if not shape_out or per_row_out == 0 or per_row_in % per_row_out:
        raise Refused("reshape merges samples")
    return 0
