"""Linen ``MLP``."""

from __future__ import annotations

import itertools
from collections.abc import Callable, Sequence
from typing import Any

import jax.numpy as jnp
from flax import linen as nn
from jax import Array
from jax.typing import ArrayLike, DTypeLike

from relujax.linen import _build
from relujax.nn import _resolve


class MLP(nn.Module):
    r"""Multilayer perceptron (Linen) with the arguments of :class:`relujax.nn.MLP`.

    .. math:: h_0 = x, \quad h_{i+1} = \sigma_i(h_i W_i + b_i) \; (i < L), \quad
        y = h_L W_L + b_L

    Same layers, activations (one call per hidden layer, in order), initializers
    (``kernel_init="rai"`` draws kernel and bias jointly) and parameter names as the NNX
    version; given the same parameters (:func:`relujax.linen.params_from_nnx`) both compute
    the same outputs. Parameter tree::

      params/layers_i/kernel       (fan_in_i, fan_out_i)    i = 0..L (L: output layer)
      params/layers_i/bias         (fan_out_i,)
      params/activations_i/slope   (hidden[i],)             only for activation="prelu"

    With ``activation="rrelu"`` training calls need ``rngs={"rrelu": key}``.

    Attributes:
      in_features: size of the input's last axis.
      hidden: widths of the hidden layers.
      out_features: size of the output's last axis.
      activation: relujax activation name or callable; "prelu"/"rrelu" build modules.
      kernel_init: initializer name or callable (He normal by default).
      bias_init: initializer name or callable; None means zeros (or RAI's joint bias).
      dtype: computation dtype (None: inferred).
      param_dtype: dtype of the parameters.
      deterministic: RReLU mode when the call does not say.

    Examples:
      >>> import jax, jax.numpy as jnp, relujax
      >>> model = relujax.linen.MLP(8, (8,), 8)
      >>> variables = model.init(jax.random.key(0), jnp.ones((1, 8)))
      >>> jax.tree.map(jnp.shape, variables["params"]["layers_0"])
      {'bias': (8,), 'kernel': (8, 8)}
    """

    in_features: int
    hidden: Sequence[int]
    out_features: int
    activation: str | Callable[..., Any] = "relu"
    kernel_init: str | Callable[..., Any] = "he_normal"
    bias_init: str | Callable[..., Any] | None = None
    dtype: DTypeLike | None = None
    param_dtype: DTypeLike = jnp.float32
    deterministic: bool = False

    def setup(self) -> None:
        n_in = _resolve.positive_int("in_features", self.in_features)
        hidden = _resolve.widths("hidden", self.hidden)
        n_out = _resolve.positive_int("out_features", self.out_features)
        k_init, b_init = _resolve.kernel_and_bias_init(self.kernel_init, self.bias_init)
        layers = []
        for fan_in, fan_out in itertools.pairwise((n_in, *hidden, n_out)):
            ki, bi = _build.inits(self, k_init, b_init, (fan_in, fan_out), self.param_dtype)
            layers.append(
                nn.Dense(
                    fan_out,
                    kernel_init=ki,
                    bias_init=bi,
                    dtype=self.dtype,
                    param_dtype=self.param_dtype,
                )
            )
        self.layers = layers
        self.activations = _build.activations(
            self.activation,
            hidden,
            deterministic=self.deterministic,
            dtype=self.dtype,
            param_dtype=self.param_dtype,
        )

    def __call__(self, x: ArrayLike, deterministic: bool | None = None) -> Array:
        """Applies the network to ``x`` of shape ``(..., in_features)``."""
        x = jnp.asarray(x)
        if x.ndim == 0 or x.shape[-1] != self.in_features:
            raise ValueError(
                f"MLP(in_features={self.in_features}) expects inputs of shape "
                f"(..., {self.in_features}), got {x.shape}."
            )
        n_hidden = len(self.layers) - 1
        for i in range(n_hidden):
            x = _build.call_activation(self.activations[i], self.layers[i](x), deterministic)
        return self.layers[n_hidden](x)
