"""Named jit sites and small helpers shared by every activation.

Every public activation runs as ONE ``jit`` equation whose ``name`` parameter is the public
function name (``jit[name=leaky_relu]`` in a jaxpr), with the pre-activation ``x`` as its first
input and the activation as its first output. :mod:`relujax.analysis` finds activations in a
model's jaxpr by these names; :data:`SITE_NAMES` lists them.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp
from jax import lax
from jax.custom_derivatives import SymbolicZero

_SITES: set[str] = set()


def site(name: str, *, static_argnames: tuple[str, ...] = ()) -> Callable[[Callable], Any]:
    """Jit ``impl`` under the public name ``name`` and record the name as an activation site."""

    def wrap(impl: Callable) -> Any:
        impl.__name__ = name
        impl.__qualname__ = name
        _SITES.add(name)
        return jax.jit(impl, static_argnames=static_argnames)

    return wrap


def barrier(y: jax.Array) -> jax.Array:
    """Hide how ``y`` was computed from XLA's algebraic simplifier.

    A mask such as ``relu(x) > 0`` would otherwise be rewritten into ``x > 0``, which keeps the
    input ``x`` alive until the backward pass although the output ``y`` (kept anyway by the next
    layer) carries the same information.
    """
    return lax.optimization_barrier(y)


def is_zero(t: Any) -> bool:
    """Whether a tangent given to a ``symbolic_zeros=True`` rule is a symbolic zero."""
    return isinstance(t, SymbolicZero)


def as_float(x: jax.typing.ArrayLike) -> jax.Array:
    """``x`` as an array of an inexact dtype (integers and bools become the default float)."""
    x = jnp.asarray(x)
    if not jnp.issubdtype(x.dtype, jnp.inexact):
        x = x.astype(jnp.result_type(float))
    return x


def broadcast(a: jax.Array, shape: tuple[int, ...]) -> jax.Array:
    """Broadcast ``a`` to ``shape`` explicitly (scalars are left alone: they broadcast freely)."""
    if a.shape == shape or a.ndim == 0:
        return a
    return jnp.broadcast_to(a, shape)
