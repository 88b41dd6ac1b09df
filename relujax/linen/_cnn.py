"""Linen ``CNN``."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import jax.numpy as jnp
from flax import linen as nn
from jax import Array
from jax.typing import ArrayLike, DTypeLike

from relujax.linen import _build
from relujax.nn._common import ActivationSpec, CNNPlan, InitSpec


class CNN(nn.Module):
    r"""Small conv net (Linen) with the arguments of :class:`relujax.nn.CNN`.

    ``(conv -> activation -> pool)`` per entry of ``features`` (SAME padding, stride 1),
    global average pooling over the spatial axes, ``(dense -> activation)`` per entry of
    ``hidden``, then a dense output. Images ``(N, H, W, C)`` with ``spatial_dims=2``,
    signals ``(N, L, C)`` with ``spatial_dims=1``. Parameter tree::

      params/layers_i/kernel       (*kernel_size, C_in, C_out) for convs, (in, out) for dense
      params/layers_i/bias         (fan_out_i,)
      params/activations_i/slope   (width_i,)                  only for activation="prelu"

    Given the same parameters it computes what the NNX ``CNN`` computes.

    Attributes:
      in_features: input channels.
      features: output channels of each conv block (at least one).
      out_features: size of the output's last axis.
      hidden: widths of the dense hidden layers.
      spatial_dims: 1, 2 or 3.
      kernel_size: an int or ``spatial_dims`` ints.
      pool: ``"max"``, ``"avg"`` or None.
      pool_size: pooling window and stride.
      activation: activation name or callable.
      kernel_init: initializer name or callable.
      bias_init: initializer name or callable; None means zeros (or RAI's joint bias).
      dtype: computation dtype.
      param_dtype: dtype of the parameters.
      deterministic: RReLU mode when the call does not say.

    Examples:
      >>> import jax, jax.numpy as jnp, relujax
      >>> cnn = relujax.linen.CNN(8, (8,), 8, spatial_dims=1)
      >>> x = jnp.ones((2, 40, 8))
      >>> variables = cnn.init(jax.random.key(0), x)
      >>> cnn.apply(variables, x).shape
      (2, 8)
    """

    in_features: int
    features: Sequence[int]
    out_features: int
    hidden: Sequence[int] = ()
    spatial_dims: int = 2
    kernel_size: int | Sequence[int] = 3
    pool: str | None = "max"
    pool_size: int = 2
    activation: str | Callable[..., Any] = "relu"
    kernel_init: str | Callable[..., Any] = "he_normal"
    bias_init: str | Callable[..., Any] | None = None
    dtype: DTypeLike | None = None
    param_dtype: DTypeLike = jnp.float32
    deterministic: bool = False

    def setup(self) -> None:
        self._plan = CNNPlan.build(
            self.in_features,
            self.features,
            self.out_features,
            hidden=self.hidden,
            spatial_dims=self.spatial_dims,
            kernel_size=self.kernel_size,
            pool=self.pool,
            pool_size=self.pool_size,
        )
        inits = InitSpec.resolve("CNN", self.kernel_init, self.bias_init)
        common = {"dtype": self.dtype, "param_dtype": self.param_dtype}
        self.layers = _build.layers(self, self._plan.kernel_shapes, inits, **common)
        self.activations = _build.activations(
            ActivationSpec.resolve("CNN", self.activation),
            self._plan.activation_widths,
            deterministic=self.deterministic,
            **common,
        )

    def __call__(self, x: ArrayLike, deterministic: bool | None = None) -> Array:
        """Applies the network to ``x`` of shape ``(N, *spatial, in_features)``."""
        return self._plan(
            x,
            lambda i, h: self.layers[i](h),
            lambda i, h: _build.call_activation(self.activations[i], h, deterministic),
        )
