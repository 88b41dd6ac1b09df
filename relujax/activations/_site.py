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


def tangent_map(fn: Callable[..., jax.Array]) -> Callable[..., jax.Array]:
    """Mark ``fn(*residuals, t)`` as recomputed in the backward pass.

    Inside a ``custom_jvp`` rule, everything that does not depend on the tangent is evaluated
    in the forward pass and whatever the linear part needs is kept until the backward pass. A
    checkpointed tangent map keeps exactly its non-tangent arguments (a boolean mask, the
    output ``y`` that the next layer keeps anyway, or ``x``) and recomputes the rest, including
    full-size constants that would otherwise be hoisted out of a ``lax.scan`` and kept.
    """
    return jax.checkpoint(fn)


@tangent_map
def masked(mask: jax.Array, t: jax.Array) -> jax.Array:
    """``t`` where ``mask``, else 0 (never NaN, whatever ``t`` holds where ``mask`` is false)."""
    return jnp.where(mask, t, jnp.zeros((), t.dtype))


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
