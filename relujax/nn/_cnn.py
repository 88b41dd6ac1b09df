"""``CNN``: a small conv net for images (N, H, W, C) and 1-D signals (N, L, C)."""

from __future__ import annotations

import itertools
import operator
from collections.abc import Callable, Sequence
from typing import Any

import jax.numpy as jnp
from flax import nnx
from jax import Array
from jax.typing import ArrayLike, DTypeLike

from relujax import init as _init
from relujax.init import _validate
from relujax.nn import _build, _resolve

POOLS = ("max", "avg", None)


def kernel_size_tuple(kernel_size: int | Sequence[int], spatial_dims: int) -> tuple[int, ...]:
    """``kernel_size`` as a tuple of ``spatial_dims`` positive ints."""
    if isinstance(kernel_size, Sequence) and not isinstance(kernel_size, str):
        out = tuple(
            _resolve.positive_int(f"kernel_size[{i}]", k) for i, k in enumerate(kernel_size)
        )
        if len(out) != spatial_dims:
            raise ValueError(f"kernel_size has {len(out)} entries but spatial_dims={spatial_dims}.")
        return out
    return (_resolve.positive_int("kernel_size", kernel_size),) * spatial_dims


def check_spatial_dims(spatial_dims: Any) -> int:
    """``spatial_dims`` as 1, 2 or 3."""
    try:
        value = operator.index(spatial_dims)
    except TypeError:
        value = None
    if value not in (1, 2, 3):
        raise ValueError(
            f"spatial_dims must be 1 (signals), 2 (images) or 3 (volumes), got {spatial_dims!r}."
        )
    return value


def pool(x: Array, kind: str | None, size: int, spatial_dims: int) -> Array:
    """Max / average pooling with window = stride = ``size`` and SAME padding."""
    if kind is None:
        return x
    window = (size,) * spatial_dims
    if kind == "max":
        return nnx.max_pool(x, window, strides=window, padding="SAME")
    return nnx.avg_pool(x, window, strides=window, padding="SAME", count_include_pad=False)


def check_input(x: Array, in_features: int, spatial_dims: int) -> None:
    """A clear error for inputs that are not ``(N, ..., *spatial, in_features)``."""
    if x.ndim < spatial_dims + 2 or x.shape[-1] != in_features:
        axes = ("L",) if spatial_dims == 1 else ("H", "W", "D")[:spatial_dims]
        raise ValueError(
            f"CNN(in_features={in_features}, spatial_dims={spatial_dims}) expects inputs of "
            f"shape (N, {', '.join(axes)}, {in_features}), got {x.shape}."
        )


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
        self.in_features = _resolve.positive_int("in_features", in_features)
        self.features = _resolve.widths("features", features)
        if not self.features:
            raise ValueError("features must name at least one conv block; use MLP otherwise.")
        self.out_features = _resolve.positive_int("out_features", out_features)
        self.hidden = _resolve.widths("hidden", hidden)
        self.spatial_dims = check_spatial_dims(spatial_dims)
        self.kernel_size = kernel_size_tuple(kernel_size, self.spatial_dims)
        self.pool = _validate.choice("pool", pool, POOLS)
        self.pool_size = _resolve.positive_int("pool_size", pool_size)
        k_init, b_init = _resolve.kernel_and_bias_init(kernel_init, bias_init)
        paired = b_init is None
        inits = {
            "kernel_init": _init.zeros if paired else k_init,
            "bias_init": _init.zeros if paired else b_init,
            "dtype": dtype,
            "param_dtype": param_dtype,
            "rngs": rngs,
        }
        layers: list[nnx.Module] = []
        channels = (self.in_features, *self.features)
        for c_in, c_out in itertools.pairwise(channels):
            layers.append(nnx.Conv(c_in, c_out, self.kernel_size, padding="SAME", **inits))
        sizes = (self.features[-1], *self.hidden, self.out_features)
        for fan_in, fan_out in itertools.pairwise(sizes):
            layers.append(nnx.Linear(fan_in, fan_out, **inits))
        if paired:
            for layer in layers:
                _build.draw_pair(layer, k_init, rngs, param_dtype)
        self.layers = nnx.List(layers)
        self.activations = _build.activations(
            activation,
            (*self.features, *self.hidden),
            rngs=rngs,
            dtype=dtype,
            param_dtype=param_dtype,
        )

    def __call__(self, x: ArrayLike) -> Array:
        """Applies the network to ``x`` of shape ``(N, *spatial, in_features)``."""
        x = jnp.asarray(x)
        check_input(x, self.in_features, self.spatial_dims)
        n_conv = len(self.features)
        for i in range(n_conv):
            x = pool(
                self.activations[i](self.layers[i](x)), self.pool, self.pool_size, self.spatial_dims
            )
        x = jnp.mean(x, axis=tuple(range(-1 - self.spatial_dims, -1)))
        for i in range(n_conv, n_conv + len(self.hidden)):
            x = self.activations[i](self.layers[i](x))
        return self.layers[-1](x)
