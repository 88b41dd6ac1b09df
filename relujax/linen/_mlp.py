"""Linen ``MLP``."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import jax.numpy as jnp
from flax import linen as nn
from jax import Array
from jax.typing import ArrayLike, DTypeLike

from relujax.linen import _build
from relujax.nn._common import ActivationSpec, InitSpec, MLPPlan


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
        self._plan = MLPPlan.build(self.in_features, self.hidden, self.out_features)
        inits = InitSpec.resolve("MLP", self.kernel_init, self.bias_init)
        common = {"dtype": self.dtype, "param_dtype": self.param_dtype}
        self.layers = _build.layers(self, self._plan.kernel_shapes, inits, **common)
        self.activations = _build.activations(
            ActivationSpec.resolve("MLP", self.activation),
            self._plan.activation_widths,
            deterministic=self.deterministic,
            **common,
        )

    def __call__(self, x: ArrayLike, deterministic: bool | None = None) -> Array:
        """Applies the network to ``x`` of shape ``(..., in_features)``."""
        return self._plan(
            x,
            lambda i, h: self.layers[i](h),
            lambda i, h: _build.call_activation(self.activations[i], h, deterministic),
        )
