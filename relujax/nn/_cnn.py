"""``CNN``: a small conv net for images (N, H, W, C) and 1-D signals (N, L, C)."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import jax.numpy as jnp
from flax import nnx
from jax import Array
from jax.typing import ArrayLike, DTypeLike

from relujax.nn import _build
from relujax.nn._common import ActivationSpec, CNNPlan, InitSpec, check_rngs


class CNN(nnx.Module):
    r"""Small convolutional network: ``(conv -> activation -> pool)`` blocks, then dense.

    For images ``(N, H, W, C)`` use ``spatial_dims=2`` (default); for 1-D signals
    ``(N, L, C)`` use ``spatial_dims=1``. The forward pass is

    .. code-block:: text

      for c in features:  x = pool(activation(conv_c(x)))   # SAME padding, stride 1
      x = mean of x over the spatial axes                    # global average pooling
      for h in hidden:    x = activation(dense_h(x))
      y = dense_out(x)

    Global average pooling keeps channel identity (channel ``j`` of the last conv is input
    ``j`` of the first dense layer) and makes the net accept any spatial size. Pooling
    windows are ``pool_size`` wide with stride ``pool_size`` and SAME padding (``pool``
    may be ``"max"``, ``"avg"`` or None). As in :class:`MLP`, each activation is ONE call
    on the layer's pre-activation, in layer order, and ``activation`` / ``kernel_init`` /
    ``bias_init`` take names or callables (``"prelu"`` gives one slope per channel,
    ``kernel_init="rai"`` draws kernel and bias jointly over the ``prod(window) * C_in``
    fan-in).

    Parameter tree (``nnx.state(model, nnx.Param)``), ``C = len(features)``,
    ``L = C + len(hidden)``::

      layers/i/kernel       (*kernel_size, C_in_i, features[i])   i < C: nnx.Conv
      layers/i/kernel       (fan_in_i, fan_out_i)                  i >= C: nnx.Linear
      layers/i/bias         (fan_out_i,)                           layers[L] is the output
      activations/i/slope   (width_i,)                             only for "prelu"

    ``model.activations[i]`` follows ``model.layers[i]`` for ``i < L``. Unit (channel)
    ``j`` of layer ``i`` reads ``layers[i].kernel[..., j]`` and ``layers[i].bias[j]`` and
    feeds ``layers[i + 1].kernel[..., j, :]``, for conv and dense layers alike.

    Args:
      in_features: input channels (the last axis).
      features: output channels of each conv block (at least one).
      out_features: size of the output's last axis.
      hidden: widths of the dense hidden layers after pooling.
      spatial_dims: 1 for signals ``(N, L, C)``, 2 for images, 3 for volumes.
      kernel_size: conv window, an int or ``spatial_dims`` ints.
      pool: ``"max"``, ``"avg"`` or None (no pooling between blocks).
      pool_size: pooling window and stride.
      activation: activation name or callable.
      kernel_init: initializer name or callable for the kernels (He normal by default).
      bias_init: initializer name or callable for the biases; None means zeros.
      dtype: computation dtype (None: inferred).
      param_dtype: dtype of the parameters.
      rngs: ``nnx.Rngs`` for the parameters (and the RReLU streams).

    Examples:
      >>> import jax.numpy as jnp, relujax
      >>> from flax import nnx
      >>> cnn = relujax.nn.CNN(8, [8, 8], 8, rngs=nnx.Rngs(0))  # 8 channels in, 8 out
      >>> cnn(jnp.ones((2, 28, 28, 8))).shape
      (2, 8)
      >>> cnn1d = relujax.nn.CNN(8, [8], 8, spatial_dims=1, rngs=nnx.Rngs(0))
      >>> cnn1d(jnp.ones((2, 40, 8))).shape
      (2, 8)
      >>> cnn1d.layers[0].kernel.shape  # (window, C_in, C_out)
      (3, 8, 8)
    """

    def __init__(
        self,
        in_features: int,
        features: Sequence[int],
        out_features: int,
        *,
        hidden: Sequence[int] = (),
        spatial_dims: int = 2,
        kernel_size: int | Sequence[int] = 3,
        pool: str | None = "max",
        pool_size: int = 2,
        activation: str | Callable[..., Any] = "relu",
        kernel_init: str | Callable[..., Any] = "he_normal",
        bias_init: str | Callable[..., Any] | None = None,
        dtype: DTypeLike | None = None,
        param_dtype: DTypeLike = jnp.float32,
        rngs: nnx.Rngs,
    ):
        plan = CNNPlan.build(
            in_features,
            features,
            out_features,
            hidden=hidden,
            spatial_dims=spatial_dims,
            kernel_size=kernel_size,
            pool=pool,
            pool_size=pool_size,
        )
        act = ActivationSpec.resolve("CNN", activation)
        inits = InitSpec.resolve("CNN", kernel_init, bias_init)
        check_rngs("CNN", rngs)
        self._plan = plan
        self.in_features, self.features, self.out_features = (
            plan.in_features,
            plan.features,
            plan.out_features,
        )
        self.hidden, self.spatial_dims, self.kernel_size = (
            plan.hidden,
            plan.spatial_dims,
            plan.kernel_size,
        )
        self.pool, self.pool_size = plan.pool, plan.pool_size
        self.layers = _build.layers(
            plan.kernel_shapes, inits, rngs=rngs, dtype=dtype, param_dtype=param_dtype
        )
        self.activations = _build.activations(
            act, plan.activation_widths, rngs=rngs, dtype=dtype, param_dtype=param_dtype
        )

    def __call__(self, x: ArrayLike) -> Array:
        """Applies the network to ``x`` of shape ``(N, *spatial, in_features)``."""
        return self._plan(x, lambda i, h: self.layers[i](h), lambda i, h: self.activations[i](h))
