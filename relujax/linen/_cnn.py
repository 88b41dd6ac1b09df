"""Linen ``CNN``."""

from __future__ import annotations

import itertools
from collections.abc import Callable, Sequence
from typing import Any

import jax.numpy as jnp
from flax import linen as nn
from jax import Array
from jax.typing import ArrayLike, DTypeLike

from relujax.init import _validate
from relujax.linen import _build
from relujax.nn import _cnn, _resolve


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
        n_in = _resolve.positive_int("in_features", self.in_features)
        features = _resolve.widths("features", self.features)
        if not features:
            raise ValueError("features must name at least one conv block; use MLP otherwise.")
        n_out = _resolve.positive_int("out_features", self.out_features)
        hidden = _resolve.widths("hidden", self.hidden)
        dims = _cnn.check_spatial_dims(self.spatial_dims)
        window = _cnn.kernel_size_tuple(self.kernel_size, dims)
        _validate.choice("pool", self.pool, _cnn.POOLS)
        _resolve.positive_int("pool_size", self.pool_size)
        k_init, b_init = _resolve.kernel_and_bias_init(self.kernel_init, self.bias_init)
        common = {"dtype": self.dtype, "param_dtype": self.param_dtype}
        layers: list[nn.Module] = []
        for c_in, c_out in itertools.pairwise((n_in, *features)):
            ki, bi = _build.inits(self, k_init, b_init, (*window, c_in, c_out), self.param_dtype)
            layers.append(
                nn.Conv(c_out, window, padding="SAME", kernel_init=ki, bias_init=bi, **common)
            )
        for fan_in, fan_out in itertools.pairwise((features[-1], *hidden, n_out)):
            ki, bi = _build.inits(self, k_init, b_init, (fan_in, fan_out), self.param_dtype)
            layers.append(nn.Dense(fan_out, kernel_init=ki, bias_init=bi, **common))
        self.layers = layers
        self.activations = _build.activations(
            self.activation,
            (*features, *hidden),
            deterministic=self.deterministic,
            **common,
        )

    def __call__(self, x: ArrayLike, deterministic: bool | None = None) -> Array:
        """Applies the network to ``x`` of shape ``(N, *spatial, in_features)``."""
        x = jnp.asarray(x)
        _cnn.check_input(x, self.in_features, self.spatial_dims)
        n_conv = len(self.features)
        for i in range(n_conv):
            x = _build.call_activation(self.activations[i], self.layers[i](x), deterministic)
            x = _cnn.pool(x, self.pool, self.pool_size, self.spatial_dims)
        x = jnp.mean(x, axis=tuple(range(-1 - self.spatial_dims, -1)))
        for i in range(n_conv, len(self.layers) - 1):
            x = _build.call_activation(self.activations[i], self.layers[i](x), deterministic)
        return self.layers[-1](x)
