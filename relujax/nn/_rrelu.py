"""``RReLU``: randomized leaky ReLU (Xu et al. 2015) with an NNX rng stream."""

from __future__ import annotations

import jax
from flax import nnx
from jax import Array
from jax.typing import ArrayLike, DTypeLike

from relujax import _validation
from relujax.nn import _common


class RReLU(nnx.Module):
    r"""Randomized leaky ReLU: random slopes in training, their mean in evaluation.

    .. math:: \mathrm{rrelu}(x) = x \text{ if } x > 0 \text{ else } a x, \qquad
        a \sim U(\text{lower}, \text{upper}) \text{ (training)}, \quad
        a = \tfrac{\text{lower} + \text{upper}}{2} \text{ (evaluation)}

    Thin: one :func:`relujax.rrelu` call. In training (``deterministic=False``) every call
    draws a fresh key from the module's own rng stream (forked at construction from
    ``rngs[rng_collection]``, which falls back to ``rngs``' default stream), and from it
    one slope per element; the same seed gives the same sequence of slopes. In evaluation
    (``deterministic=True``, or after ``model.eval()``) the slope is the constant
    ``(lower + upper) / 2``. Like ``nnx.Dropout``, the stream is NNX state: thread the model
    through ``nnx.jit`` (not ``jax.jit``) so that the count advances between calls.

    Args:
      lower: smallest slope, finite and >= 0.
      upper: largest slope, finite and >= ``lower``.
      deterministic: the mode used when the call does not say (False: training).
      rng_collection: name of the rng stream to fork from ``rngs``.
      dtype: computation dtype; None keeps the input's dtype.
      rngs: an ``nnx.Rngs`` or ``nnx.RngStream``; may be None for an evaluation-only layer.

    Examples:
      >>> import jax.numpy as jnp, relujax
      >>> from flax import nnx
      >>> layer = relujax.nn.RReLU(0.1, 0.3, rngs=nnx.Rngs(0))
      >>> layer.eval()
      >>> layer(jnp.array([-1.0, 2.0]))
      Array([-0.2,  2. ], dtype=float32)
    """

    def __init__(
        self,
        lower: float = 1 / 8,
        upper: float = 1 / 3,
        *,
        rngs: nnx.Rngs | nnx.RngStream | None,
        deterministic: bool = False,
        rng_collection: str = "rrelu",
        dtype: DTypeLike | None = None,
    ):
        self.lower, self.upper = _common.slope_bounds("RReLU", lower, upper)
        self.deterministic = _validation.boolean("RReLU: deterministic", deterministic)
        self.rng_collection = rng_collection
        self.dtype = dtype
        if isinstance(rngs, nnx.Rngs):
            self.rngs = rngs[rng_collection].fork()
        elif isinstance(rngs, nnx.RngStream):
            self.rngs = rngs.fork()
        elif rngs is None:
            self.rngs = nnx.data(None)
        else:
            raise TypeError(
                f"RReLU: rngs must be an nnx.Rngs, an nnx.RngStream or None, got {rngs!r}."
            )

    def __call__(
        self,
        x: ArrayLike,
        *,
        deterministic: bool | None = None,
        key: jax.Array | None = None,
    ) -> Array:
        """Applies RReLU.

        Args:
          x: input array.
          deterministic: overrides the module's mode for this call.
          key: a PRNG key to use instead of the module's stream (training only).

        Returns:
          An array of ``x``'s shape.
        """
        det = self.deterministic if deterministic is None else deterministic
        if det:
            return _common.apply_rrelu(x, None, self.lower, self.upper, self.dtype)
        if key is None:
            if self.rngs is None:
                raise ValueError(
                    "RReLU in training mode needs randomness: build it with rngs=..., pass "
                    "key=... to the call, or use deterministic=True / model.eval()."
                )
            key = self.rngs()
        return _common.apply_rrelu(x, key, self.lower, self.upper, self.dtype)
