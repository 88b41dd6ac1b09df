"""Linen ``RReLU``."""

from __future__ import annotations

from flax import linen as nn
from jax import Array
from jax.typing import ArrayLike, DTypeLike

from relujax.nn import _common


class RReLU(nn.Module):
    r"""Randomized leaky ReLU (Linen); see :class:`relujax.nn.RReLU`.

    .. math:: \mathrm{rrelu}(x) = x \text{ if } x > 0 \text{ else } a x, \qquad
        a \sim U(\text{lower}, \text{upper}) \text{ (training)}, \quad
        a = \tfrac{\text{lower} + \text{upper}}{2} \text{ (evaluation)}

    One :func:`relujax.rrelu` call. In training the key comes from
    ``self.make_rng(rng_collection)``: pass ``rngs={"rrelu": key}`` to ``apply``.

    Attributes:
      lower: smallest slope, finite and >= 0.
      upper: largest slope, >= ``lower``.
      deterministic: the mode used when the call does not say (False: training).
      rng_collection: the rng name to draw from.
      dtype: computation dtype; None keeps the input's dtype.

    Examples:
      >>> import jax, jax.numpy as jnp, relujax
      >>> layer = relujax.linen.RReLU(0.1, 0.3, deterministic=True)
      >>> layer.apply({}, jnp.array([-1.0, 2.0]))
      Array([-0.2,  2. ], dtype=float32)
    """

    lower: float = 1 / 8
    upper: float = 1 / 3
    deterministic: bool = False
    rng_collection: str = "rrelu"
    dtype: DTypeLike | None = None

    @nn.compact
    def __call__(self, x: ArrayLike, deterministic: bool | None = None) -> Array:
        """Applies RReLU; ``deterministic`` overrides the attribute for this call."""
        lower, upper = _common.slope_bounds("RReLU", self.lower, self.upper)
        det = self.deterministic if deterministic is None else deterministic
        key = None if det else self.make_rng(self.rng_collection)
        return _common.apply_rrelu(x, key, lower, upper, self.dtype)
