"""Which axis of an activation holds the units: read from the operation that produced it.

A site's units are its feature axis: the output features of a dense layer, the channels of a
convolution. Channels-last code (Flax, Keras) puts them last; channels-first code (PyTorch
style, Equinox's ``Conv2d`` under ``vmap``) puts them at axis 1. The axis is read backwards
from the pre-activation through the equations that produced it, within one jaxpr:

- ``conv_general_dilated``: the output spec's feature dimension (``dimension_numbers``);
- ``dot_general``: the free axes of the weight, the operand that does not depend on the
  data (the batch) while the other one does, when the caller says which variables do
  (``data``); the weight must have exactly one free axis (its output features), else there is
  no answer: ``K`` stacked weights (an ensemble under ``vmap``: ``nn.vmap``, ``nnx.vmap``,
  ``eqx.filter_vmap``) have two, the model axis and the features. When both operands or
  neither depend on the data (weights passed as arguments of a traced function), or the
  dependence is unknown, the weight is the operand with exactly one free axis when the other
  has another number (``x @ W`` with ``x`` of rank >= 3, or Equinox's ``W @ x`` under
  ``vmap``);
- ``broadcast_in_dim`` of an operand with a single non-trivial axis (a bias ``(C,)`` or
  ``(C, 1, 1)``): where ``broadcast_dimensions`` puts that axis;
- ``transpose``, ``squeeze`` and ``reshape`` (when the axis survives with its size and
  position in the flattened order), followed through;
- elementwise equations (bias adds, scalings, normalizations, type conversions, ``jit``
  bodies' outputs are entered): every operand of the output's shape is followed, and the
  answers must agree.

Anything else gives no answer. Sites of rank <= 2 use the last axis by convention, so only a
site of rank >= 3 without an answer is ambiguous (the caller warns there).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

from jax.extend import core as jcore

P = jcore.primitives

_MAX_DEPTH = 24


def _shape(atom: Any) -> tuple[int, ...]:
    return tuple(int(d) for d in getattr(atom.aval, "shape", ()))


def producers(jaxpr: Any) -> dict[Any, tuple[Any, int]]:
    """Var -> (equation, output index) for every equation output of ``jaxpr``."""
    out = {}
    for eqn in jaxpr.eqns:
        for k, v in enumerate(eqn.outvars):
            out[v] = (eqn, k)
    return out


def _reshape_axis(src: tuple[int, ...], dst: tuple[int, ...], axis: int) -> int | None:
    before = math.prod(src[:axis])
    size = src[axis]
    acc = 1
    for k, d in enumerate(dst):
        if acc == before and d == size:
            return k
        acc *= d
    return None


# Call-like primitives whose single body takes the equation's operands in order.
_CALLS = {
    P.jit_p: "jaxpr",
    P.closed_call_p: "call_jaxpr",
    P.remat_p: "jaxpr",
    P.custom_jvp_call_p: "call_jaxpr",
    P.custom_vjp_call_p: "call_jaxpr",
}


class _Env:
    """A jaxpr's producers, and for a call body, where its inputs come from outside.

    ``data`` (the outermost jaxpr only) tells whether a variable depends on the data; a call
    body's variables depend on it through the body's inputs (:func:`_depends`).
    """

    def __init__(
        self,
        jaxpr: Any,
        outer: tuple[list[Any], _Env] | None = None,
        data: Callable[[Any], bool] | None = None,
    ):
        self.made_by = producers(jaxpr)
        self.inputs = dict(zip(jaxpr.invars, outer[0], strict=False)) if outer else {}
        self.outer = outer[1] if outer else None
        self.data = data
        self.memo: dict[Any, bool | None] = {}


def _into_call(eqn: Any, k: int, env: _Env) -> tuple[Any, _Env] | None:
    """Output ``k`` of a call equation (pjit, closed_call, ...) as the matching variable of
    its body and the body's environment, or None when the body does not match the call."""
    sub = eqn.params[_CALLS[eqn.primitive]]
    sub = sub.jaxpr if isinstance(sub, jcore.ClosedJaxpr) else sub
    if len(sub.invars) != len(eqn.invars) or k >= len(sub.outvars):
        return None
    return sub.outvars[k], _Env(sub, (list(eqn.invars), env))


def feature_axis(atom: Any, jaxpr: Any, data: Callable[[Any], bool] | None = None) -> int | None:
    """The units' axis of ``atom`` (a var of ``jaxpr``) as a non-negative index, or None.

    ``data(v)`` says whether a variable ``v`` of ``jaxpr`` depends on the data (the batch):
    it tells a dense layer's weight from its input (see the module docstring).
    """
    return _axis(atom, _Env(jaxpr, data=data), 0)


def _depends(atom: Any, env: _Env, depth: int = 0) -> bool | None:
    """Whether ``atom`` depends on the data; None when unknown."""
    if isinstance(atom, jcore.Literal):
        return False
    if env.data is not None:
        return env.data(atom)
    if atom in env.inputs and env.outer is not None:
        return _depends(env.inputs[atom], env.outer, depth + 1)
    if atom in env.memo:
        return env.memo[atom]
    found: bool | None = None
    if atom in env.made_by and depth <= 4 * _MAX_DEPTH:
        answers = [_depends(v, env, depth + 1) for v in env.made_by[atom][0].invars]
        found = True if any(answers) else (False if all(a is False for a in answers) else None)
    env.memo[atom] = found
    return found


def one_unit(atom: Any, jaxpr: Any, data: Callable[[Any], bool]) -> bool:
    """Whether ``atom`` (a var of ``jaxpr``) is one unit's value per sample: a dense layer whose
    weight has no free axis of size > 1 (``x @ w`` with ``w`` of shape ``(F,)`` or ``(F, 1)``
    squeezed, Equinox's ``Linear(F, "scalar")`` under ``vmap``), followed through bias adds,
    type conversions, squeezes, reshapes, transposes and call bodies. Its axes then hold
    samples, not units."""
    return _one_unit(atom, _Env(jaxpr, data=data), 0)


def _one_unit(atom: Any, env: _Env, depth: int) -> bool:
    if isinstance(atom, jcore.Literal) or depth > _MAX_DEPTH:
        return False
    if atom in env.inputs and env.outer is not None:
        return _one_unit(env.inputs[atom], env.outer, depth + 1)
    if atom not in env.made_by:
        return False
    eqn, k = env.made_by[atom]
    p, params = eqn.primitive, eqn.params
    if p is P.dot_general_p:
        contract, batch = params["dimension_numbers"]
        if batch[0]:
            return False
        free = [
            math.prod(d for a, d in enumerate(_shape(v)) if a not in set(c))
            for v, c in zip(eqn.invars[:2], contract, strict=True)
        ]
        on_data = (_depends(eqn.invars[0], env), _depends(eqn.invars[1], env))
        if on_data == (True, False):
            return free[1] == 1
        if on_data == (False, True):
            return free[0] == 1
        return False
    if p in (P.squeeze_p, P.reshape_p, P.transpose_p, P.convert_element_type_p):
        src = eqn.invars[0]
        return math.prod(_shape(src)) == math.prod(_shape(atom)) and _one_unit(src, env, depth + 1)
    if p in _CALLS and _CALLS[p] in params:
        inner = _into_call(eqn, k, env)
        return inner is not None and _one_unit(*inner, depth + 1)
    if p.multiple_results or len(eqn.outvars) != 1:
        return False
    shape = _shape(atom)
    same = [v for v in eqn.invars if not isinstance(v, jcore.Literal) and _shape(v) == shape]
    return any(_one_unit(v, env, depth + 1) for v in same)


def _agree(answers: list[int | None]) -> int | None:
    known = {a for a in answers if a is not None}
    return known.pop() if len(known) == 1 else None


def _axis(atom: Any, env: _Env, depth: int) -> int | None:
    if isinstance(atom, jcore.Literal) or depth > _MAX_DEPTH:
        return None
    if atom in env.inputs and env.outer is not None:  # inputs come from an outer jaxpr
        return _axis(env.inputs[atom], env.outer, depth + 1)
    if atom not in env.made_by:
        return None
    eqn, k = env.made_by[atom]
    p, params = eqn.primitive, eqn.params
    shape = _shape(atom)
    follow = lambda v: _axis(v, env, depth + 1)
    if p is P.conv_general_dilated_p:
        return int(params["dimension_numbers"].out_spec[1])
    if p is P.dot_general_p:
        # Output axes: batch, then lhs free, then rhs free. The weight is the operand with a
        # single free axis (its output features); the other one carries the batch (and
        # positions): ``x @ W`` (Flax, PyTorch) or ``W @ x`` under vmap (Equinox).
        # With K stacked weights (an ensemble under vmap) ranks mislead: x (B, F) against
        # W (K, F, O) has one free axis on the data's side, the samples. The data dependence
        # decides when it is known.
        contract, batch = params["dimension_numbers"]
        nb = len(batch[0])
        lhs, rhs = eqn.invars[0], eqn.invars[1]
        lhs_free = lhs.aval.ndim - len(contract[0]) - nb
        rhs_free = rhs.aval.ndim - len(contract[1]) - nb
        on_data = (_depends(lhs, env), _depends(rhs, env))
        if on_data == (True, False):  # x @ W: the weight's free axes come last
            return len(shape) - 1 if rhs_free == 1 else None
        if on_data == (False, True):  # W @ x: the weight's free axes follow the batch axes
            return nb if lhs_free == 1 else None
        if rhs_free == 1 and lhs_free != 1:
            return len(shape) - 1
        if lhs_free == 1 and rhs_free != 1:
            return nb
        return None
    if p is P.broadcast_in_dim_p:
        src = _shape(eqn.invars[0])
        wide = [a for a, d in enumerate(src) if d > 1]
        if len(wide) == 1:
            return int(params["broadcast_dimensions"][wide[0]])
        inner = follow(eqn.invars[0]) if src else None
        return int(params["broadcast_dimensions"][inner]) if inner is not None else None
    if p is P.transpose_p:
        inner = follow(eqn.invars[0])
        return list(params["permutation"]).index(inner) if inner is not None else None
    if p is P.squeeze_p:
        inner = follow(eqn.invars[0])
        dropped = {int(d) % max(len(_shape(eqn.invars[0])), 1) for d in params["dimensions"]}
        if inner is None or inner in dropped:
            return None
        return inner - sum(d < inner for d in dropped)
    if p is P.reshape_p:
        inner = follow(eqn.invars[0])
        return None if inner is None else _reshape_axis(_shape(eqn.invars[0]), shape, inner)
    if p in _CALLS and _CALLS[p] in params:
        inner = _into_call(eqn, k, env)
        return None if inner is None else _axis(*inner, depth + 1)
    if p.multiple_results or len(eqn.outvars) != 1:
        return None
    # Elementwise: operands of the output's rank whose axes match it or are 1 (broadcast).
    same = [
        v
        for v in eqn.invars
        if not isinstance(v, jcore.Literal)
        and len(_shape(v)) == len(shape)
        and all(a in (b, 1) for a, b in zip(_shape(v), shape, strict=True))
    ]
    return _agree([follow(v) for v in same]) if same else None
