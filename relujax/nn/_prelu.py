"""``PReLU``: leaky ReLU with a learnable slope (He et al. 2015)."""

from __future__ import annotations

import jax.numpy as jnp
from flax import nnx
from jax import Array
from jax.typing import ArrayLike, DTypeLike

from relujax.nn import _common


class PReLU(nnx.Module):
    r"""Parametric ReLU with a learnable slope, shared or one per channel.

    .. math:: \mathrm{prelu}(x) = x \text{ if } x > 0 \text{ else } a x

    Thin: the call is one :func:`relujax.prelu` call (see it for the kink convention: the
    derivative at 0 is ``a``). ``a`` is the parameter ``slope``: a scalar when
    ``num_features`` is None, else a vector of length ``num_features`` broadcast along the
    last (channel) axis. Gradients reach it: :math:`\partial\,\mathrm{prelu}/\partial a =
    \min(x, 0)`.

    Args:
      num_features: None for one shared slope, else the number of channels (last axis).
      init: initial slope (He et al. use 0.25), finite and >= 0.
      dtype: computation dtype; None computes in the input's dtype (the slope is cast).
      param_dtype: dtype of the slope parameter.
      rngs: accepted for a uniform constructor; unused (the slope starts at a constant).

    Attributes:
      slope: the ``nnx.Param`` of shape ``()`` or ``(num_features,)``.

    Examples:
      >>> import jax.numpy as jnp, relujax
      >>> layer = relujax.nn.PReLU(2, init=0.25)
      >>> layer(jnp.array([[-4.0, -4.0], [1.0, 2.0]]))
      Array([[-1., -1.],
             [ 1.,  2.]], dtype=float32)
    """

    def __init__(
        self,
        num_features: int | None = None,
        *,
        init: float = 0.25,
        dtype: DTypeLike | None = None,
        param_dtype: DTypeLike = jnp.float32,
        rngs: nnx.Rngs | None = None,
    ):
        del rngs
        shape = _common.prelu_shape("PReLU", num_features)
        value = _common.nonnegative_slope("PReLU: init", init)
        self.num_features = shape[0] if shape else None
        self.dtype = dtype
        self.param_dtype = param_dtype
        self.slope = nnx.Param(jnp.full(shape, value, param_dtype))

    def __call__(self, x: ArrayLike) -> Array:
        """Applies PReLU with the current slope; ``x[..., c]`` uses ``slope[c]``."""
        shape = () if self.num_features is None else (self.num_features,)
        return _common.apply_prelu(x, self.slope[...], shape, self.dtype)
