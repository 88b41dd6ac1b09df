"""The helpers every activation shares: its named ``jit`` site, dtype rule and tangent sums.

Every public activation runs as ONE ``jit`` equation whose ``name`` parameter is the public
function name (``jit[name=leaky_relu]`` in a jaxpr), with the pre-activation ``x`` as its first
input and the activation as its first output. :mod:`relujax.analysis` finds activations in a
model's jaxpr by these names (:data:`relujax.activations.SITE_NAMES`).

Dtypes follow jax.nn: :func:`site` evaluates a dtype rule (jax.nn's own function where it has
one) abstractly at trace time and converts ``x`` to the result's dtype and weak type, so an
integer, bool, Python scalar or weakly typed input gives what jax.nn gives, in default and in
x64 mode. The conversion costs nothing at run time: it happens while tracing.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from jax.custom_derivatives import SymbolicZero

from relujax import _validation


def _weak(v: Any) -> bool:
    return bool(getattr(v, "weak_type", False) or getattr(jax.typeof(v), "weak_type", False))


def conform(v: Any, like: Any) -> jax.Array:
    """``v`` with the dtype and weak type of ``like`` (an array or ``jax.ShapeDtypeStruct``).

    A weak result is made by arithmetic with a weak Python scalar (``v * 1``), the only
    public way to keep a weak type; ``v`` is then an integer, bool or weak value, and the
    product is exact.
    """
    v = jnp.asarray(v)
    dtype, weak = jnp.dtype(like.dtype), bool(getattr(like, "weak_type", False))
    if v.dtype == dtype and _weak(v) == weak:
        return v
    if weak:
        w = v * (1.0 if jnp.issubdtype(dtype, jnp.inexact) else 1)
        if w.dtype == dtype and _weak(w):
            return w
    return v.astype(dtype)


def _scalar_struct(v: Any) -> jax.ShapeDtypeStruct:
    """A scalar of ``v``'s dtype and weak type: dtype rules are evaluated shape-free."""
    v = v if hasattr(v, "dtype") else jnp.asarray(v)
    return jax.ShapeDtypeStruct((), v.dtype, weak_type=_weak(v))


def site(
    name: str,
    *,
    like: Callable[..., Any],
    static_argnames: tuple[str, ...] = (),
) -> Callable[[Callable], Any]:
    """Jit ``impl(x, *args, **static)`` under the public name ``name``, dtypes as ``like``'s.

    Args:
      name: the public name, the ``name`` of the ``jit`` equation.
      like: the dtype rule, a function of the same arguments as ``impl`` (jax.nn's function
        where it has one); evaluated abstractly when tracing. ``x`` reaches ``impl`` with the
        dtype and weak type of its result.
      static_argnames: keyword arguments passed to ``jax.jit`` as static.
    """

    def wrap(impl: Callable) -> Any:
        @functools.wraps(impl)
        def traced(x, *args, **kwargs):
            scalars = jax.tree.map(_scalar_struct, (x, *args))
            target = jax.eval_shape(functools.partial(like, **kwargs), *scalars)
            return impl(conform(x, target), *args, **kwargs)

        traced.__name__ = name
        traced.__qualname__ = name
        return jax.jit(traced, static_argnames=static_argnames)

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


def positive(src: jax.Array) -> jax.Array:
    """``src`` if it is a boolean mask, else ``src > 0``."""
    return src if src.dtype == jnp.bool_ else src > 0


def tangent_sum(y: jax.Array, *terms: tuple[Any, Callable[[jax.Array], jax.Array]]) -> jax.Array:
    """The output tangent of a ``symbolic_zeros=True`` rule: ``sum(fn(t) for t, fn in terms)``.

    Terms whose tangent ``t`` is a symbolic zero (an argument not being differentiated) are
    skipped without computing anything; with none left the result is zeros like ``y``.
    """
    out = None
    for t, fn in terms:
        if isinstance(t, SymbolicZero):
            continue
        term = jnp.broadcast_to(fn(t), y.shape).astype(y.dtype)
        out = term if out is None else out + term
    return jnp.zeros_like(y) if out is None else out


def broadcast(a: jax.Array, shape: tuple[Any, ...]) -> jax.Array:
    """Broadcast ``a`` to ``shape`` explicitly (scalars are left alone: they broadcast freely)."""
    if a.shape == shape or a.ndim == 0:
        return a
    return jnp.broadcast_to(a, shape)


def nonnegative(value: Any) -> bool:
    """Whether ``value`` is concrete (known while tracing) and has no negative entry.

    Rules that read the derivative off the sign of the output are valid only for parameters
    >= 0; a traced parameter, whose sign is unknown until run time, takes the general rule.
    """
    arr = _validation.concrete(value)
    return arr is not None and bool(np.all(arr >= 0))
