"""The exponential linear units ELU, SELU and CELU.

Their derivative for x <= 0 is an affine function of the output (elu' = y + alpha,
celu' = y / alpha + 1), so like ReLU's it is read off the output and the backward pass keeps no
copy of ``x``. The price: for x << 0 the derivative (about alpha * e^x) is computed with an
absolute error of one ulp of alpha instead of a relative one. Which branch applies is read off
the sign of y where that is valid (elu with alpha >= 0 known when tracing; celu and selu
always) and off a boolean mask of x > 0 otherwise (elu with a negative or traced alpha, whose
y is >= 0 on both sides).
"""

from __future__ import annotations

import functools
import math

import jax
import jax.numpy as jnp
from jax import Array
from jax.typing import ArrayLike

from relujax.activations._descriptor import Activation, Param
from relujax.activations._site import (
    broadcast,
    conform,
    nonnegative,
    site,
    tangent_map,
    tangent_sum,
)

SELU_ALPHA = 1.6732632423543772848170429916717
SELU_SCALE = 1.0507009873554804934193349852946


def _neg_part(x: Array) -> Array:
    """``min(x, 0)``: the exponential branch never sees a large positive x (no overflow)."""
    return jnp.minimum(x, 0)


def _common(x: Array, alpha: Array) -> tuple[Array, Array, tuple[int, ...]]:
    shape = jnp.broadcast_shapes(x.shape, alpha.shape)
    return broadcast(x, shape), broadcast(alpha, shape), shape


# --- elu --------------------------------------------------------------------------------------


@functools.partial(jax.custom_jvp, nondiff_argnums=(2,))
def _elu(x: Array, alpha: Array, nonneg: bool) -> Array:
    x, alpha, _ = _common(x, alpha)
    return jnp.where(x > 0, x, alpha * jnp.expm1(_neg_part(x)))


@tangent_map
def _elu_tangent(pos: Array | None, y: Array, alpha: Array, t: Array) -> Array:
    pos = y > 0 if pos is None else pos
    slope = jnp.where(pos, jnp.ones((), y.dtype), y + broadcast(alpha, y.shape).astype(y.dtype))
    return broadcast(t, y.shape) * slope.astype(t.dtype)


def _elu_jvp(nonneg, primals, tangents):
    (x, alpha), (tx, ta) = primals, tangents
    y = _elu(x, alpha, nonneg)
    # alpha >= 0: y > 0 exactly where x > 0. alpha < 0: y >= 0 on both sides; mask x.
    pos = None if nonneg else broadcast(x > 0, y.shape)
    xb = broadcast(x, y.shape)
    return y, tangent_sum(
        y,
        (tx, lambda t: _elu_tangent(pos, y, alpha, t)),
        (ta, lambda t: jnp.expm1(_neg_part(xb)) * broadcast(t, y.shape)),
    )


_elu.defjvp(_elu_jvp, symbolic_zeros=True)


@site("elu", like=lambda x, alpha, nonneg: jax.nn.elu(x, alpha), static_argnames=("nonneg",))
def _elu_site(x, alpha, nonneg):
    return _elu(x, conform(alpha, x), nonneg)


_ALPHA = Param("alpha", "the negative saturation value (any sign)", differentiable=True)


def elu(x: ArrayLike, alpha: ArrayLike = 1.0) -> Array:
    r"""Exponential linear unit (Clevert et al., 2016).

    .. math:: \mathrm{elu}(x) = x \text{ if } x > 0 \text{ else } \alpha (e^x - 1)

    Derivative: 1 for x > 0 and alpha e^x for x <= 0, so alpha at x = 0 (PyTorch's and
    jax.nn's convention), for every alpha, negative ones included. Computed from
    the output as y + alpha, so the backward pass keeps no copy of ``x`` (a boolean mask of
    x > 0 when alpha is negative or traced). Differentiable in ``alpha``. Outputs are negative
    for x < 0 (down to -alpha) when alpha > 0.

    Args:
      x: input array.
      alpha: the negative saturation value: finite, a number or an array broadcastable to
        ``x``.

    Returns:
      An array of the broadcast shape of ``x`` and ``alpha``, of jax.nn's dtype.

    Examples:
      >>> import jax, jax.numpy as jnp, relujax
      >>> relujax.elu(jnp.array([-1.0, 0.0, 2.0]))
      Array([-0.6321,  0.        ,  2.        ], dtype=float32)
      >>> jax.grad(relujax.elu)(0.0, 0.5)
      Array(0.5, dtype=float32, weak_type=True)
    """
    _ALPHA.check("elu", alpha, x)
    return _elu_site(x, alpha, nonneg=nonnegative(alpha))


ELU = Activation(
    "elu", elu, params=(_ALPHA,), sign_preserving=True, output_range=(-1.0, math.inf),
    jax_nn="elu",
)  # fmt: skip


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


@site("selu", like=jax.nn.selu)
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
      Array([-1.1113,  0.       ,  2.1014 ], dtype=float32)
      >>> jax.grad(relujax.selu)(0.0)
      Array(1.7581, dtype=float32, weak_type=True)
    """
    return _selu(x)


SELU = Activation(
    "selu", selu, sign_preserving=True,
    output_range=(-SELU_SCALE * SELU_ALPHA, math.inf), jax_nn="selu",
)  # fmt: skip


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

    def d_alpha(t):
        xb, a, _ = _common(x, alpha)
        z = _neg_part(xb) / a
        return (jnp.expm1(z) - z * jnp.exp(z)) * broadcast(t, y.shape)

    return y, tangent_sum(y, (tx, lambda t: _celu_tangent(y, alpha, t)), (ta, d_alpha))


_celu.defjvp(_celu_jvp, symbolic_zeros=True)


@site("celu", like=jax.nn.celu)
def _celu_site(x, alpha):
    return _celu(x, conform(alpha, x))


_CELU_ALPHA = Param(
    "alpha", "the negative saturation value (any sign but 0)", nonzero=True, differentiable=True
)


def celu(x: ArrayLike, alpha: ArrayLike = 1.0) -> Array:
    r"""Continuously differentiable exponential linear unit (Barron, 2017).

    .. math:: \mathrm{celu}(x) = x \text{ if } x > 0 \text{ else }
        \alpha (e^{x / \alpha} - 1)

    Derivative: 1 for x > 0 and e^(x / alpha) for x <= 0, so 1 at x = 0 (no kink in the
    first derivative); second derivative 1/alpha at x = 0 (the left value). Computed from the
    output as y / alpha + 1, valid for every alpha != 0 (y > 0 exactly where x > 0 for either
    sign of alpha). Differentiable in ``alpha``. Outputs are negative for x < 0 (down to
    -alpha) when alpha > 0.

    Args:
      x: input array.
      alpha: the negative saturation value; finite and non-zero (celu is undefined at 0), a
        number or an array broadcastable to ``x``.

    Returns:
      An array of ``x``'s shape and dtype.

    Examples:
      >>> import jax, jax.numpy as jnp, relujax
      >>> relujax.celu(jnp.array([-1.0, 0.0, 2.0]), 2.0)
      Array([-0.7869,  0.       ,  2.       ], dtype=float32)
      >>> jax.grad(relujax.celu)(0.0)
      Array(1., dtype=float32, weak_type=True)
    """
    _CELU_ALPHA.check("celu", alpha, x)
    return _celu_site(x, alpha)


CELU = Activation(
    "celu", celu, params=(_CELU_ALPHA,), sign_preserving=True, output_range=(-1.0, math.inf),
    jax_nn="celu",
)  # fmt: skip

DESCRIPTORS = (ELU, SELU, CELU)
