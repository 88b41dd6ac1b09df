"""Leaky ReLU and its learned (PReLU) and randomized (RReLU) variants.

All three share one core, ``x if x > 0 else a * x`` with slope ``a >= 0``; its derivative in x
is read off the sign of the output, so the backward pass keeps a mask, not ``x``.
"""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
from jax import Array, lax
from jax.typing import ArrayLike

from relujax.activations import _checks
from relujax.activations._site import as_float, broadcast, is_zero, site, tangent_map


@jax.custom_jvp
def _leaky(x: Array, slope: Array) -> Array:
    shape = jnp.broadcast_shapes(x.shape, slope.shape)
    x = broadcast(x, shape)
    return jnp.where(x > 0, x, broadcast(slope, shape) * x)


@tangent_map
def _leaky_tangent(pos: Array, slope: Array, t: Array) -> Array:
    t = broadcast(t, pos.shape)
    return jnp.where(pos, t, broadcast(slope, pos.shape).astype(t.dtype) * t)


def _leaky_jvp(primals, tangents):
    (x, slope), (tx, ts) = primals, tangents
    y = _leaky(x, slope)
    out = jnp.zeros_like(y)
    if not is_zero(tx):
        # slope >= 0, so y > 0 exactly where x > 0; at x = 0 the slope is used.
        out = _leaky_tangent(y > 0, slope, tx)
    if not is_zero(ts):
        xb = broadcast(x, y.shape)
        neg = jnp.where(xb > 0, jnp.zeros((), xb.dtype), xb)
        out = out + neg * broadcast(ts, y.shape)
    return y, out


_leaky.defjvp(_leaky_jvp, symbolic_zeros=True)


@site("leaky_relu")
def _leaky_relu(x, negative_slope):
    x = jnp.asarray(x)
    return _leaky(x, jnp.asarray(negative_slope, jnp.result_type(x, negative_slope)))


def leaky_relu(x: ArrayLike, negative_slope: ArrayLike = 0.01) -> Array:
    r"""Leaky rectified linear unit (Maas et al., 2013).

    .. math:: \mathrm{leaky\_relu}(x) = x \text{ if } x > 0 \text{ else } \alpha x

    Derivative: 1 for x > 0 and alpha for x <= 0, including x = 0 (PyTorch's convention and
    the seeds'; jax.nn.leaky_relu gives 1 at 0). Differentiable in ``negative_slope``
    (derivative min(x, 0)). Outputs are negative for x < 0.

    Args:
      x: input array.
      negative_slope: alpha, the slope for x <= 0; finite and >= 0 (the derivative in x is
        read off the sign of the output, which needs alpha >= 0; a traced value is not
        checked).

    Returns:
      An array of ``x``'s shape and dtype.

    Examples:
      >>> import jax, jax.numpy as jnp, relujax
      >>> relujax.leaky_relu(jnp.array([-1.0, 0.0, 2.0]))
      Array([-0.01,  0.  ,  2.  ], dtype=float32)
      >>> jax.grad(relujax.leaky_relu)(0.0)
      Array(0.01, dtype=float32, weak_type=True)
    """
    _checks.check("leaky_relu", "negative_slope", negative_slope, low=0.0)
    return _leaky_relu(x, negative_slope)


@site("prelu")
def _prelu(x, slope):
    x = jnp.asarray(x)
    return _leaky(x, jnp.asarray(slope, jnp.result_type(x, slope)))


def prelu(x: ArrayLike, slope: ArrayLike) -> Array:
    r"""Parametric ReLU (He et al., 2015): a leaky ReLU with a learned slope.

    .. math:: \mathrm{prelu}(x, a) = x \text{ if } x > 0 \text{ else } a x

    ``slope`` broadcasts against ``x`` with NumPy rules (e.g. shape ``(features,)`` for a
    slope per channel) and is differentiable: d/da = min(x, 0). Derivative in x: 1 for x > 0
    and a for x <= 0, including x = 0 (PyTorch's convention). Outputs are negative for x < 0.

    Args:
      x: input array.
      slope: a, the slope for x <= 0; an array broadcastable to ``x`` with entries >= 0.

    Returns:
      An array of the broadcast shape of ``x`` and ``slope``.

    Examples:
      >>> import jax, jax.numpy as jnp, relujax
      >>> relujax.prelu(jnp.array([[-1.0, 2.0], [-2.0, 0.0]]), jnp.array([0.25, 0.5]))
      Array([[-0.25,  2.  ],
             [-0.5 ,  0.  ]], dtype=float32)
      >>> jax.grad(relujax.prelu, argnums=1)(-2.0, 0.25)
      Array(-2., dtype=float32, weak_type=True)
    """
    _checks.check("prelu", "slope", slope, low=0.0)
    return _prelu(x, slope)


def _mix(h: Array) -> Array:
    """The "lowbias32" integer finalizer (C. Wellons): a bijective, well-avalanched uint32 hash."""
    h = h ^ (h >> 16)
    h = h * jnp.uint32(0x7FEB352D)
    h = h ^ (h >> 15)
    h = h * jnp.uint32(0x846CA68B)
    return h ^ (h >> 16)


def _slopes(seed: Array, shape: tuple[int, ...], dtype, lower: Array, upper: Array) -> Array:
    """Per-element slopes in [lower, upper) from a counter-based hash of (seed, element index).

    Unlike ``jax.random.uniform`` (threefry, a loop on CPU whose result must be materialised),
    this is a short chain of element-wise integer ops: XLA fuses it into the forward pass and
    recomputes it inside the backward pass, so the slopes are never stored.
    """
    index = lax.iota(jnp.uint32, math.prod(shape)).reshape(shape)
    h = _mix(_mix(index ^ seed[0]) + seed[1])
    # 23 random mantissa bits -> a float32 in [1, 2) -> [0, 1).
    u = lax.bitcast_convert_type((h >> 9) | jnp.uint32(0x3F800000), jnp.float32) - 1
    lo, hi = lower.astype(jnp.float32), upper.astype(jnp.float32)
    return (lo + (hi - lo) * u).astype(dtype)


@jax.custom_jvp
def _rrelu_core(x: Array, seed: Array, lower: Array, upper: Array) -> Array:
    slope = _slopes(seed, x.shape, x.dtype, lower, upper)
    return jnp.where(x > 0, x, slope * x)


@tangent_map
def _rrelu_tangent(pos: Array, seed: Array, lower: Array, upper: Array, t: Array) -> Array:
    # The slopes are recomputed from the 64-bit seed instead of being kept.
    return jnp.where(pos, t, _slopes(seed, t.shape, t.dtype, lower, upper) * t)


@_rrelu_core.defjvp
def _rrelu_jvp(primals, tangents):
    x, seed, lower, upper = primals
    y = _rrelu_core(x, seed, lower, upper)
    return y, _rrelu_tangent(y > 0, seed, lower, upper, tangents[0])


@site("rrelu")
def _rrelu(x, key, lower, upper):
    x = as_float(x)
    lower = jnp.asarray(lower, x.dtype)
    upper = jnp.asarray(upper, x.dtype)
    if key is None:
        return _leaky(x, lax.stop_gradient((lower + upper) / 2))
    seed = jax.random.bits(key, (2,), jnp.uint32)
    return _rrelu_core(x, seed, lax.stop_gradient(lower), lax.stop_gradient(upper))


def rrelu(
    x: ArrayLike,
    key: ArrayLike | None = None,
    lower: ArrayLike = 1 / 8,
    upper: ArrayLike = 1 / 3,
) -> Array:
    r"""Randomized leaky ReLU (Xu et al., 2015).

    .. math:: \mathrm{rrelu}(x) = x \text{ if } x > 0 \text{ else } a x

    With a ``key`` (training), ``a`` is drawn per element from U(lower, upper); the same key
    gives the same slopes. Without one (evaluation), ``a = (lower + upper) / 2``, a constant.
    Derivative in x: 1 for x > 0 and a for x <= 0, including x = 0. The slopes are not
    differentiated. Outputs are negative for x < 0.

    The draw is a counter-based hash of the element index (23 random mantissa bits), seeded by
    two words of ``jax.random.bits(key)``. Being a few fused integer ops, it is recomputed in
    the backward pass instead of stored, so RReLU's backward pass keeps no more than leaky
    ReLU's (``jax.random.uniform`` would keep two full-size arrays of random bits).

    Args:
      x: input array.
      key: a ``jax.random`` key (typed or legacy ``uint32``), or ``None`` for the evaluation
        form.
      lower: smallest slope, finite and >= 0.
      upper: largest slope, finite and >= ``lower``.

    Returns:
      An array of ``x``'s shape and (floating) dtype.

    Examples:
      >>> import jax, jax.numpy as jnp, relujax
      >>> relujax.rrelu(jnp.array([-1.0, 0.0, 2.0]))
      Array([-0.22916667,  0.        ,  2.        ], dtype=float32)
      >>> y = relujax.rrelu(-jnp.ones(1000), jax.random.key(0))
      >>> bool((-y >= 1 / 8).all() and (-y <= 1 / 3).all())
      True
    """
    _checks.check("rrelu", "lower", lower, low=0.0)
    _checks.check("rrelu", "upper", upper, low=0.0)
    _checks.check_order("rrelu", "lower", lower, "upper", upper)
    return _rrelu(x, key, lower, upper)
