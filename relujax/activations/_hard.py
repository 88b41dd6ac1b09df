"""Piecewise-linear "hard" activations: hard_tanh, hard_sigmoid and hard_swish."""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
from jax import Array
from jax.typing import ArrayLike

from relujax.activations._descriptor import Activation, Saturation
from relujax.activations._site import masked, site, tangent_map


@jax.custom_jvp
def _hard_tanh(x: Array) -> Array:
    return jnp.where(x >= 1, jnp.minimum(x, 1), jnp.maximum(x, -1))


@_hard_tanh.defjvp
def _hard_tanh_jvp(primals, tangents):
    (x,), (t,) = primals, tangents
    y = _hard_tanh(x)
    return y, masked((y > -1) & (y < 1), t)


@site("hard_tanh", like=jax.nn.hard_tanh)
def hard_tanh(x: ArrayLike) -> Array:
    r"""Hard tanh.

    .. math:: \mathrm{hard\_tanh}(x) = \min(\max(x, -1), 1)

    Derivative: 1 for -1 < x < 1, else 0; 0 at both kinks x = -1 and x = 1 (PyTorch's
    convention; jax.nn gives 1 there). Outputs lie in [-1, 1]; negative for x < 0.

    Args:
      x: input array.

    Returns:
      An array of ``x``'s shape and dtype.

    Examples:
      >>> import jax, jax.numpy as jnp, relujax
      >>> relujax.hard_tanh(jnp.array([-2.0, 0.5, 2.0]))
      Array([-1. ,  0.5,  1. ], dtype=float32)
      >>> jax.vmap(jax.grad(relujax.hard_tanh))(jnp.array([-1.0, 0.0, 1.0]))
      Array([0., 1., 0.], dtype=float32)
    """
    return _hard_tanh(x)


HARD_TANH = Activation(
    "hard_tanh", hard_tanh, sign_preserving=True, output_range=(-1.0, 1.0), saturating=True,
    saturation=Saturation(lower=-1.0, upper=1.0), jax_nn="hard_tanh",
)  # fmt: skip


@jax.custom_jvp
def _hard_sigmoid(x: Array) -> Array:
    u = (x + 3) / 6
    return jnp.where(x >= 3, jnp.minimum(u, 1), jnp.maximum(u, 0))


@_hard_sigmoid.defjvp
def _hard_sigmoid_jvp(primals, tangents):
    (x,), (t,) = primals, tangents
    y = _hard_sigmoid(x)
    return y, masked((y > 0) & (y < 1), t) / 6


@site("hard_sigmoid", like=jax.nn.hard_sigmoid)
def hard_sigmoid(x: ArrayLike) -> Array:
    r"""Hard sigmoid.

    .. math:: \mathrm{hard\_sigmoid}(x) = \mathrm{relu6}(x + 3) / 6

    Derivative: 1/6 for -3 < x < 3, else 0; 0 at both kinks x = -3 and x = 3 (PyTorch's and
    jax.nn's convention). Outputs lie in [0, 1]; never negative.

    Args:
      x: input array.

    Returns:
      An array of ``x``'s shape and dtype.

    Examples:
      >>> import jax, jax.numpy as jnp, relujax
      >>> relujax.hard_sigmoid(jnp.array([-4.0, 0.0, 1.5]))
      Array([0.  , 0.5 , 0.75], dtype=float32)
      >>> jax.vmap(jax.grad(relujax.hard_sigmoid))(jnp.array([-3.0, 0.0, 3.0]))
      Array([0.        , 0.1667, 0.        ], dtype=float32)
    """
    return _hard_sigmoid(x)


HARD_SIGMOID = Activation(
    "hard_sigmoid", hard_sigmoid, nonnegative=True, output_range=(0.0, 1.0), saturating=True,
    saturation=Saturation(lower=-3.0, upper=3.0), jax_nn="hard_sigmoid",
)  # fmt: skip


def _hard_swish_slope(x: Array) -> Array:
    # (2x + 3) / 6 on [-3, 3], continued by its outer values: 0 at x <= -3, 1 at x >= 3.
    return jnp.where(x >= 3, jnp.ones((), x.dtype), jnp.where(x <= -3, 0, (2 * x + 3) / 6))


@tangent_map
def _hard_swish_tangent(x: Array, t: Array) -> Array:
    return t * _hard_swish_slope(x).astype(t.dtype)


@jax.custom_jvp
def _hard_swish(x: Array) -> Array:
    # max(x, -1e4): 0 rather than -inf * 0 = NaN at x = -inf; no finite value changes.
    return jnp.maximum(x, -1e4) * (jnp.minimum(jnp.maximum(x + 3, 0), 6) / 6)


@_hard_swish.defjvp
def _hard_swish_jvp(primals, tangents):
    (x,), (t,) = primals, tangents
    # Recomputed from x in the backward pass: x is the only residual.
    return _hard_swish(x), _hard_swish_tangent(x, t)


@site("hard_swish", like=jax.nn.hard_swish)
def hard_swish(x: ArrayLike) -> Array:
    r"""Hard swish (Howard et al., 2019), also called hard SiLU; alias :func:`hard_silu`.

    .. math:: \mathrm{hard\_swish}(x) = x \, \mathrm{relu6}(x + 3) / 6

    Derivative: 0 for x <= -3, (2x + 3) / 6 for -3 < x < 3, 1 for x >= 3; at the kinks it is
    the outer value, 0 at x = -3 and 1 at x = 3 (jax.nn's product-rule value; PyTorch gives
    -0.5 and 1.5). Outputs are negative for -3 < x < 0 (down to -0.375).

    Args:
      x: input array.

    Returns:
      An array of ``x``'s shape and dtype.

    Examples:
      >>> import jax, jax.numpy as jnp, relujax
      >>> relujax.hard_swish(jnp.array([-1.5, -1.0, 1.0, 4.0]))  # the minimum at -1.5
      Array([-0.375     , -0.3333,  0.6667 ,  4.        ], dtype=float32)
      >>> jax.vmap(jax.grad(relujax.hard_swish))(jnp.array([-3.0, 0.0, 3.0]))
      Array([0. , 0.5, 1. ], dtype=float32)
    """
    return _hard_swish(x)


hard_silu = hard_swish

HARD_SWISH = Activation(
    "hard_swish", hard_swish, aliases=("hard_silu",), sign_preserving=True,
    output_range=(-0.375, math.inf), saturating=True, jax_nn="hard_swish",
)  # fmt: skip

DESCRIPTORS = (HARD_TANH, HARD_SIGMOID, HARD_SWISH)
