"""Linen ``PReLU``."""

from __future__ import annotations

import jax.numpy as jnp
from flax import linen as nn
from jax import Array
from jax.typing import ArrayLike, DTypeLike

from relujax.nn import _common


class PReLU(nn.Module):
    r"""Parametric ReLU with a learnable slope (Linen); see :class:`relujax.nn.PReLU`.

    .. math:: \mathrm{prelu}(x) = x \text{ if } x > 0 \text{ else } a x

    One :func:`relujax.prelu` call. The parameter ``slope`` has shape ``()`` when
    ``num_features`` is None, else ``(num_features,)`` (one per channel, last axis).
    The initial slope is ``slope_init`` (``init`` in NNX: a Linen attribute cannot be called
    ``init``, which is ``nn.Module.init``).

    Attributes:
      num_features: None for one shared slope, else the number of channels.
      slope_init: initial slope, finite and >= 0.
      dtype: computation dtype; None computes in the input's dtype.
      param_dtype: dtype of the slope.

    Examples:
      >>> import jax, jax.numpy as jnp, relujax
      >>> layer = relujax.linen.PReLU(slope_init=0.5)
      >>> variables = layer.init(jax.random.key(0), jnp.ones(2))
      >>> layer.apply(variables, jnp.array([-2.0, 3.0]))
      Array([-1.,  3.], dtype=float32)
    """

    num_features: int | None = None
    slope_init: float = 0.25
    dtype: DTypeLike | None = None
    param_dtype: DTypeLike = jnp.float32

    @nn.compact
    def __call__(self, x: ArrayLike) -> Array:
        """Applies PReLU; ``x[..., c]`` uses ``slope[c]``."""
        shape = _common.prelu_shape("PReLU", self.num_features)
        value = _common.nonnegative_slope("PReLU: slope_init", self.slope_init)
        slope = self.param("slope", lambda _, s, d: jnp.full(s, value, d), shape, self.param_dtype)
        return _common.apply_prelu(x, slope, shape, self.dtype)
