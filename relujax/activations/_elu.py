"""The exponential linear units ELU, SELU and CELU.

Their derivative for x <= 0 is an affine function of the output (elu' = y + alpha,
celu' = y / alpha + 1), so like ReLU's it is read off the output and the backward pass keeps no
copy of ``x``. The price: for x << 0 the derivative (about alpha * e^x) is computed with an
absolute error of one ulp of alpha instead of a relative one.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
from jax import Array
from jax.typing import ArrayLike

from relujax.activations import _checks
from relujax.activations._site import broadcast, is_zero, site, tangent_map

SELU_ALPHA = 1.6732632423543772848170429916717
SELU_SCALE = 1.0507009873554804934193349852946


def _neg_part(x: Array) -> Array:
    """``min(x, 0)``: the exponential branch never sees a large positive x (no overflow)."""
    return jnp.minimum(x, 0)


def _common(x: Array, alpha: Array) -> tuple[Array, Array, tuple[int, ...]]:
    shape = jnp.broadcast_shapes(x.shape, alpha.shape)
    return broadcast(x, shape), broadcast(alpha, shape), shape


# --- elu --------------------------------------------------------------------------------------


@jax.custom_jvp
def _elu(x: Array, alpha: Array) -> Array:
    x, alpha, _ = _common(x, alpha)
    return jnp.where(x > 0, x, alpha * jnp.expm1(_neg_part(x)))


@tangent_map
def _elu_tangent(y: Array, alpha: Array, t: Array) -> Array:
    slope = jnp.where(y > 0, jnp.ones((), y.dtype), y + broadcast(alpha, y.shape).astype(y.dtype))
    return broadcast(t, y.shape) * slope.astype(t.dtype)


def _elu_jvp(primals, tangents):
    (x, alpha), (tx, ta) = primals, tangents
    y = _elu(x, alpha)
    out = jnp.zeros_like(y)
    if not is_zero(tx):
        out = _elu_tangent(y, alpha, tx)
    if not is_zero(ta):
        xb = broadcast(x, y.shape)
        out = out + jnp.expm1(_neg_part(xb)) * broadcast(ta, y.shape)
    return y, out


_elu.defjvp(_elu_jvp, symbolic_zeros=True)


@site("elu")
def _elu_site(x, alpha):
    x = jnp.asarray(x)
    return _elu(x, jnp.asarray(alpha, jnp.result_type(x, alpha)))


def elu(x: ArrayLike, alpha: ArrayLike = 1.0) -> Array:
    r"""Exponential linear unit (Clevert et al., 2016).

    .. math:: \mathrm{elu}(x) = x \text{ if } x > 0 \text{ else } \alpha (e^x - 1)

    Derivative: 1 for x > 0 and alpha e^x for x <= 0, so alpha at x = 0 (PyTorch's and
    jax.nn's convention). Computed from the output as y + alpha, so the backward pass keeps
    no copy of ``x``. Differentiable in ``alpha``. Outputs are negative for x < 0 (down to -alpha).

    Args:
      x: input array.
      alpha: the negative saturation value; finite and >= 0.

    Returns:
      An array of ``x``'s shape and dtype.

    Examples:
      >>> import jax, jax.numpy as jnp, relujax
      >>> relujax.elu(jnp.array([-1.0, 0.0, 2.0]))
      Array([-0.63212055,  0.        ,  2.        ], dtype=float32)
      >>> jax.grad(relujax.elu)(0.0, 0.5)
      Array(0.5, dtype=float32, weak_type=True)
    """
    _checks.check("elu", "alpha", alpha, low=0.0)
    return _elu_site(x, alpha)


# --- selu -------------------------------------------------------------------------------------


@jax.custom_jvp
def _selu(x: Array) -> Array:
    # The scale sits inside both branches so that the output is a select, which XLA keeps
    # rather than recomputing from x in the backward pass.
    return jnp.where(x > 0, SELU_SCALE * x, SELU_SCALE * SELU_ALPHA * jnp.expm1(_neg_part(x)))


@tangent_map
def _selu_tangent(y: Array, t: Array) -> Array:
    slope = jnp.where(y > 0, SELU_SCALE, y + SELU_SCALE * SELU_ALPHA)
    return t * slope.astype(t.dtype)


@_selu.defjvp
def _selu_jvp(primals, tangents):
    (x,), (t,) = primals, tangents
    y = _selu(x)
    return y, _selu_tangent(y, t)


@site("selu")
def selu(x: ArrayLike) -> Array:
    r"""Scaled exponential linear unit (Klambauer et al., 2017).

    .. math:: \mathrm{selu}(x) = \lambda x \text{ if } x > 0 \text{ else }
        \lambda \alpha (e^x - 1)

    with :math:`\lambda \approx 1.0507` and :math:`\alpha \approx 1.6733` (jax.nn's
    constants). Derivative: lambda for x > 0 and lambda alpha e^x for x <= 0, so
    lambda alpha at x = 0 (PyTorch's and jax.nn's convention). Computed from the output.
    Outputs are negative for x < 0.

    Args:
      x: input array.

    Returns:
      An array of ``x``'s shape and dtype.

    Examples:
      >>> import jax, jax.numpy as jnp, relujax
      >>> relujax.selu(jnp.array([-1.0, 0.0, 2.0]))
      Array([-1.1113307,  0.       ,  2.101402 ], dtype=float32)
      >>> jax.grad(relujax.selu)(0.0)
      Array(1.7580993, dtype=float32, weak_type=True)
    """
    return _selu(x)


# --- celu -------------------------------------------------------------------------------------


@jax.custom_jvp
def _celu(x: Array, alpha: Array) -> Array:
    x, alpha, _ = _common(x, alpha)
    return jnp.where(x > 0, x, alpha * jnp.expm1(_neg_part(x) / alpha))


@tangent_map
def _celu_tangent(y: Array, alpha: Array, t: Array) -> Array:
    a = broadcast(alpha, y.shape).astype(y.dtype)
    slope = jnp.where(y > 0, jnp.ones((), y.dtype), y / a + 1)
    return broadcast(t, y.shape) * slope.astype(t.dtype)


def _celu_jvp(primals, tangents):
    (x, alpha), (tx, ta) = primals, tangents
    y = _celu(x, alpha)
    out = jnp.zeros_like(y)
    if not is_zero(tx):
        out = _celu_tangent(y, alpha, tx)
    if not is_zero(ta):
        xb, a, _ = _common(x, alpha)
        z = _neg_part(xb) / a
        out = out + (jnp.expm1(z) - z * jnp.exp(z)) * broadcast(ta, y.shape)
    return y, out


_celu.defjvp(_celu_jvp, symbolic_zeros=True)


@site("celu")
def _celu_site(x, alpha):
    x = jnp.asarray(x)
    return _celu(x, jnp.asarray(alpha, jnp.result_type(x, alpha)))


def celu(x: ArrayLike, alpha: ArrayLike = 1.0) -> Array:
    r"""Continuously differentiable exponential linear unit (Barron, 2017).

    .. math:: \mathrm{celu}(x) = x \text{ if } x > 0 \text{ else }
        \alpha (e^{x / \alpha} - 1)

    Derivative: 1 for x > 0 and e^(x / alpha) for x <= 0, so 1 at x = 0 (no kink).
    Computed from the output as y / alpha + 1. Differentiable in ``alpha``. Outputs are
    negative for x < 0 (down to -alpha).

    Args:
      x: input array.
      alpha: the negative saturation value; finite and > 0 (undefined at 0).

    Returns:
      An array of ``x``'s shape and dtype.

    Examples:
      >>> import jax, jax.numpy as jnp, relujax
      >>> relujax.celu(jnp.array([-1.0, 0.0, 2.0]), 2.0)
      Array([-0.7869387,  0.       ,  2.       ], dtype=float32)
      >>> jax.grad(relujax.celu)(0.0)
      Array(1., dtype=float32, weak_type=True)
    """
    _checks.check("celu", "alpha", alpha, low=0.0, low_open=True)
    return _celu_site(x, alpha)
