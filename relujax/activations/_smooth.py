"""Smooth activations: GELU, SiLU (swish), Mish and softplus.

Their derivative is not a function of the output, so the backward pass keeps the input ``x``
and nothing else: each rule is a checkpointed function of ``x`` recomputed in the backward
pass (jax.nn's versions keep intermediate values as well).
"""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
from jax import Array, lax
from jax.typing import ArrayLike

from relujax import _validation
from relujax.activations._descriptor import Activation, Param
from relujax.activations._site import conform, site, tangent_map, tangent_sum

# Each derivative formula is evaluated on x clipped to [-_BIG, _BIG]: beyond that it equals its
# limit (1 as x -> +inf, 0 as x -> -inf) to working precision, and clipping keeps inf and
# overflowing intermediates (x**3 in float16, x * 0 with x = inf) out. A clip, unlike a double
# where, is a single cheap op that XLA fuses into the backward pass instead of keeping.
_BIG = 1e4


def _tangent(fprime, bound: float = _BIG):
    """A tangent map ``(x, t) -> t * fprime(x)`` whose only residual is ``x``."""

    @tangent_map
    def tangent(x: Array, t: Array) -> Array:
        return t * fprime(jnp.clip(x, -bound, bound)).astype(t.dtype)

    return tangent


# --- gelu -------------------------------------------------------------------------------------

_SQRT_2_OVER_PI = math.sqrt(2 / math.pi)
_INV_SQRT_2PI = 1 / math.sqrt(2 * math.pi)


def _left(x: Array) -> Array:
    """``x`` floored at -_BIG, for ``x * cdf(x)`` forms: gives 0 rather than NaN at x = -inf
    (cdf is exactly 0 below -_BIG, so finite values do not change)."""
    return jnp.maximum(x, -_BIG)


def _gelu_tanh_value(x):
    cdf = 0.5 * (1.0 + jnp.tanh(_SQRT_2_OVER_PI * (x + 0.044715 * (x**3))))
    return _left(x) * cdf


# x**3 overflows float16 beyond ~40; the tanh form is saturated long before.
_GELU_BOUND = 40.0


def _sigmoid_pair(z: Array) -> tuple[Array, Array]:
    """(sigmoid(z), sigmoid(-z)) from one exp, each accurate in its own tail (unlike
    1 - sigmoid(z), whose cancellation the derivatives below would multiply by x)."""
    e = jnp.exp(-jnp.abs(z))
    p = 1 / (1 + e)
    pos = z >= 0
    return jnp.where(pos, p, e * p), jnp.where(pos, e * p, p)


def _gelu_tanh_slope(x):
    # With u = sqrt(2/pi)(x + 0.044715 x^3): (1 + tanh u) / 2 = sigmoid(2u) and
    # sech(u)^2 = 4 sigmoid(2u) sigmoid(-2u).
    u = _SQRT_2_OVER_PI * (x + 0.044715 * (x**3))
    s, s_neg = _sigmoid_pair(2 * u)
    return s + 2 * x * s * s_neg * _SQRT_2_OVER_PI * (1 + 0.134145 * x * x)


def _gelu_erf_value(x):
    # erfc(-x / sqrt 2) rather than 1 + erf(x / sqrt 2): accurate in the left tail (jax.nn's).
    return 0.5 * _left(x) * lax.erfc(-x * math.sqrt(0.5))


def _gelu_erf_slope(x):
    return 0.5 * lax.erfc(-x * math.sqrt(0.5)) + x * jnp.exp(-0.5 * x * x) * _INV_SQRT_2PI


@jax.custom_jvp
def _gelu_tanh(x: Array) -> Array:
    return _gelu_tanh_value(x)


@_gelu_tanh.defjvp
def _gelu_tanh_jvp(primals, tangents):
    (x,), (t,) = primals, tangents
    return _gelu_tanh(x), _tangent(_gelu_tanh_slope, _GELU_BOUND)(x, t)


@jax.custom_jvp
def _gelu_erf(x: Array) -> Array:
    return _gelu_erf_value(x)


@_gelu_erf.defjvp
def _gelu_erf_jvp(primals, tangents):
    (x,), (t,) = primals, tangents
    return _gelu_erf(x), _tangent(_gelu_erf_slope, _GELU_BOUND)(x, t)


@site("gelu", like=jax.nn.gelu, static_argnames=("approximate",))
def _gelu(x, approximate):
    return _gelu_tanh(x) if approximate else _gelu_erf(x)


def gelu(x: ArrayLike, approximate: bool = True) -> Array:
    r"""Gaussian error linear unit (Hendrycks & Gimpel, 2016).

    .. math:: \mathrm{gelu}(x) = x \, \Phi(x)
        \approx \tfrac{x}{2} \left(1 + \tanh\left(\sqrt{2/\pi}(x + 0.044715 x^3)\right)\right)

    Exact (erf) form when ``approximate=False``, tanh form otherwise (jax.nn's default).
    Smooth, no kink; the derivative is exact up to rounding for every finite x (1 and 0 as
    x -> +inf, -inf). Outputs are negative for x < 0 (down to about -0.17).

    Args:
      x: input array.
      approximate: whether to use the tanh approximation (a Python or NumPy bool).

    Returns:
      An array of ``x``'s shape and (floating) dtype.

    Examples:
      >>> import jax, jax.numpy as jnp, relujax
      >>> relujax.gelu(jnp.array([-1.0, 0.0, 2.0]))
      Array([-0.1588,  0.        ,  1.9546 ], dtype=float32)
      >>> jax.grad(relujax.gelu)(0.0)
      Array(0.5, dtype=float32, weak_type=True)
    """
    approximate = _validation.boolean("gelu: approximate", approximate)
    return _gelu(x, approximate=approximate)


GELU = Activation("gelu", gelu, sign_preserving=True, output_range=(-0.17, math.inf), jax_nn="gelu")


# --- silu / swish -----------------------------------------------------------------------------


def _silu_slope(z: Array) -> Array:
    """d/dx of x sigmoid(beta x) as a function of z = beta x."""
    s, s_neg = _sigmoid_pair(z)
    return s + z * s * s_neg


@tangent_map
def _silu_tangent(x: Array, beta: Array, t: Array) -> Array:
    z = jnp.clip(beta.astype(x.dtype) * x, -_BIG, _BIG)
    return t * _silu_slope(z).astype(t.dtype)


@jax.custom_jvp
def _silu(x: Array, beta: Array) -> Array:
    return _left(x) * jax.nn.sigmoid(beta * x)


def _silu_jvp(primals, tangents):
    (x, beta), (tx, tb) = primals, tangents
    y = _silu(x, beta)

    def d_beta(t):
        # x^2 s(bx) s(-bx), as (x s(bx))(x s(-bx)) on a clipped x to stay finite.
        xc = jnp.clip(x, -_BIG, _BIG)
        z = beta.astype(x.dtype) * xc
        return (xc * jax.nn.sigmoid(z)) * (xc * jax.nn.sigmoid(-z)) * t.astype(y.dtype)

    return y, tangent_sum(y, (tx, lambda t: _silu_tangent(x, beta, t)), (tb, d_beta))


_silu.defjvp(_silu_jvp, symbolic_zeros=True)


def _float_like(x):
    """jnp's promotion of ``x`` to an inexact dtype (int32 -> float32, a Python int -> weak)."""
    x = jnp.asarray(x)
    return x if jnp.issubdtype(x.dtype, jnp.inexact) else jnp.sin(x)


@site("silu", like=lambda x, beta: jax.nn.silu(_float_like(x)))
def _silu_site(x, beta):
    return _silu(x, conform(beta, x))


_BETA = Param("beta", "the sigmoid's scale", minimum=0.0, scalar=True, differentiable=True)


def silu(x: ArrayLike, *, beta: ArrayLike = 1.0) -> Array:
    r"""Sigmoid linear unit, also called swish (Ramachandran et al., 2017); alias :func:`swish`.

    .. math:: \mathrm{silu}(x) = x \, \sigma(\beta x)

    ``beta = 1`` (the default) is jax.nn.silu. Smooth, no kink; derivative
    sigma(bx) + bx sigma(bx)(1 - sigma(bx)), finite for every finite x. Differentiable in
    ``beta`` (a scalar). Outputs are negative for x < 0 (down to about -0.28 / beta).

    Args:
      x: input array.
      beta: a finite scalar >= 0 (0 gives x / 2).

    Returns:
      An array of ``x``'s shape and (floating) dtype.

    Examples:
      >>> import jax, jax.numpy as jnp, relujax
      >>> relujax.silu(jnp.array([-1.0, 0.0, 2.0]))
      Array([-0.2689,  0.        ,  1.7616  ], dtype=float32)
      >>> jax.grad(relujax.silu)(0.0)
      Array(0.5, dtype=float32, weak_type=True)
    """
    _BETA.check("silu", beta)
    return _silu_site(x, beta)


swish = silu

SILU = Activation(
    "silu", silu, aliases=("swish",), params=(_BETA,), sign_preserving=True,
    output_range=(-0.28, math.inf), jax_nn="silu",
)  # fmt: skip


# --- mish -------------------------------------------------------------------------------------


def _mish_slope(x: Array) -> Array:
    # mish' = tanh(sp) + x sech^2(sp) sigmoid(x), sp = softplus(x), from e = e^-|x| <= 1 only
    # (no overflow in any dtype, none in the second derivative either). For x <= 0, n = e:
    # with w = n (n + 2), tanh(sp) = w / (w + 2), sech^2(sp) = 4 (w + 1) / (w + 2)^2 and
    # sigmoid(x) = n / (1 + n). For x > 0, m = e, the same multiplied through by m^2:
    # tanh(sp) = a / b and x sech^2(sp) sigmoid(x) = 4 x m^2 (1 + m) / b^2, a = 1 + 2m,
    # b = a + 2m^2. -|x| is written as a where so that its derivative at 0 is 1 (mish''(0)
    # right), and one exp serves both branches (XLA then keeps x only).
    pos = x > 0
    e = jnp.exp(jnp.where(pos, -x, x))
    sq = e * e
    a = 1 + 2 * e
    b = a + 2 * sq
    right = a / b + 4 * x * sq * (1 + e) / (b * b)
    w = e * (e + 2)
    d = w + 2
    left = w / d + x * (4 * (w + 1) / (d * d)) * (e / (1 + e))
    return jnp.where(pos, right, left)


@jax.custom_jvp
def _mish(x: Array) -> Array:
    return _left(x) * jnp.tanh(jax.nn.softplus(x))


@_mish.defjvp
def _mish_jvp(primals, tangents):
    (x,), (t,) = primals, tangents
    return _mish(x), _tangent(_mish_slope)(x, t)


@site("mish", like=jax.nn.mish)
def mish(x: ArrayLike) -> Array:
    r"""Mish (Misra, 2019).

    .. math:: \mathrm{mish}(x) = x \tanh(\mathrm{softplus}(x))

    Smooth, no kink; the derivative tanh(sp) + x sech^2(sp) sigma(x) is computed from
    exponentials of :math:`-|x|` only, so it and the second derivative are finite for every finite x
    in every float dtype (1 and 0 as x -> +inf, -inf). Outputs are negative for x < 0 (down to about
    -0.31).

    Args:
      x: input array.

    Returns:
      An array of ``x``'s shape and (floating) dtype.

    Examples:
      >>> import jax, jax.numpy as jnp, relujax
      >>> relujax.mish(jnp.array([-1.0, 0.0, 2.0]))
      Array([-0.3034,  0.        ,  1.9440  ], dtype=float32)
      >>> jax.grad(relujax.mish)(0.0)
      Array(0.6, dtype=float32, weak_type=True)
    """
    return _mish(x)


MISH = Activation("mish", mish, sign_preserving=True, output_range=(-0.31, math.inf), jax_nn="mish")


# --- softplus ---------------------------------------------------------------------------------


@tangent_map
def _softplus_tangent(x: Array, beta: Array, threshold: Array, t: Array) -> Array:
    z = beta * x
    slope = jnp.where(z > threshold, jnp.ones((), x.dtype), jax.nn.sigmoid(z))
    return t * slope.astype(t.dtype)


@jax.custom_jvp
def _softplus(x: Array, beta: Array, threshold: Array) -> Array:
    z = beta * x
    linear = z > threshold
    # log(1 + e^z) = max(z, 0) + log1p(e^-|z|), as jnp.logaddexp(z, 0) computes it; written
    # out so that no full-size constant is created (lax.scan would hoist and keep it).
    zc = jnp.minimum(z, threshold)
    return jnp.where(linear, x, (jnp.maximum(zc, 0) + jnp.log1p(jnp.exp(-jnp.abs(zc)))) / beta)


@_softplus.defjvp
def _softplus_jvp(primals, tangents):
    (x, beta, threshold), (t, _, _) = primals, tangents

    return _softplus(x, beta, threshold), _softplus_tangent(x, beta, threshold, t)


@site("softplus", like=lambda x, beta, threshold: jax.nn.softplus(x))
def _softplus_site(x, beta, threshold):
    threshold = jnp.inf if threshold is None else threshold
    return _softplus(x, conform(beta, x), conform(threshold, x))


_SOFTPLUS_BETA = Param("beta", "the sharpness", minimum=0.0, strict=True, scalar=True)
_THRESHOLD = Param("threshold", "linear above beta * x > threshold (None: nowhere)", scalar=True)


def softplus(x: ArrayLike, *, beta: ArrayLike = 1.0, threshold: ArrayLike | None = None) -> Array:
    r"""Softplus, a smooth ReLU (jax.nn's by default; PyTorch's parametrisation).

    .. math:: \mathrm{softplus}(x) = \tfrac{1}{\beta} \log(1 + e^{\beta x}),
        \text{ or } x \text{ where } \beta x > \text{threshold}

    With the defaults it is jax.nn.softplus, ``log(1 + e^x)`` computed stably as
    ``max(x, 0) + log1p(e^-|x|)``: exact to working precision in every dtype (no linear
    branch). PyTorch's ``threshold=20`` switches to ``x`` above it, which in float64 drops up
    to 2e-9. Derivative sigma(beta x) (1 on the linear branch), finite for every finite x.
    ``beta`` and ``threshold`` are not differentiated. Outputs are never negative.

    Args:
      x: input array.
      beta: a finite scalar > 0.
      threshold: a finite scalar, or ``None`` (the default) for no linear branch.

    Returns:
      An array of ``x``'s shape and jax.nn's (floating) dtype.

    Examples:
      >>> import jax, jax.numpy as jnp, relujax
      >>> relujax.softplus(jnp.array([-1.0, 0.0, 2.0]))
      Array([0.3133, 0.6931, 2.1269 ], dtype=float32)
      >>> jax.grad(relujax.softplus)(0.0)
      Array(0.5, dtype=float32, weak_type=True)
    """
    _SOFTPLUS_BETA.check("softplus", beta)
    if threshold is not None:
        _THRESHOLD.check("softplus", threshold)
    return _softplus_site(x, beta, threshold)


SOFTPLUS = Activation(
    "softplus", softplus, params=(_SOFTPLUS_BETA, _THRESHOLD), nonnegative=True,
    output_range=(0.0, math.inf), jax_nn="softplus",
)  # fmt: skip

DESCRIPTORS = (GELU, SILU, MISH, SOFTPLUS)
