"""``MLP``: a multilayer perceptron whose activation and initialization are one argument each."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import jax.numpy as jnp
from flax import nnx
from jax import Array
from jax.typing import ArrayLike, DTypeLike

from relujax.nn import _build
from relujax.nn._common import ActivationSpec, InitSpec, MLPPlan, check_rngs


class MLP(nnx.Module):
    r"""Multilayer perceptron: ``Linear -> activation`` per hidden layer, then a Linear output.

    .. math:: h_0 = x, \quad h_{i+1} = \sigma_i(h_i W_i + b_i) \; (i < L), \quad
        y = h_L W_L + b_L

    Each hidden layer's activation is ONE call of the activation function on that layer's
    pre-activation, in layer order, so in a jaxpr of the model hidden layer ``i`` appears as
    the ``i``-th named ``jit`` equation of the activation (``jit[name=relu]`` for
    ``"relu"``); :mod:`relujax.analysis` relies on this.

    Activation (``activation=``): a relujax name (resolved with
    :func:`relujax.get_activation`), or any callable (``jax.nn.relu``,
    ``functools.partial(relujax.leaky_relu, negative_slope=0.1)``, an ``nnx.Module``
    instance, which is then shared by all layers). Two names build a module per hidden
    layer: ``"prelu"`` (a :class:`PReLU` with one learnable slope per unit, init 0.25) and
    ``"rrelu"`` (an :class:`RReLU` drawing from ``rngs``; ``model.eval()`` makes it
    deterministic).

    Initialization: ``kernel_init`` and ``bias_init`` take a :mod:`relujax.init` name or
    an initializer; they apply to every layer, the output layer included. ``bias_init=None``
    means zeros. ``kernel_init="rai"`` (or any :class:`relujax.init.PairedInitializer`,
    such as ``relujax.init.rai(sigma=0.5)``) draws each layer's kernel and bias jointly
    (Lu et al. 2020), and then ``bias_init`` must stay None.

    Parameter tree (``nnx.state(model, nnx.Param)``), with ``L = len(hidden)``::

      layers/i/kernel       (fan_in_i, fan_out_i)   i = 0..L; layers[L] is the output layer
      layers/i/bias         (fan_out_i,)
      activations/i/slope   (hidden[i],)           only for activation="prelu"

    ``model.layers`` is an ``nnx.List`` of ``nnx.Linear``; ``model.activations[i]`` is the
    callable applied after ``model.layers[i]`` (``len(hidden)`` entries). Unit ``j`` of
    hidden layer ``i`` reads ``layers[i].kernel[:, j]`` and ``layers[i].bias[j]``
    (incoming) and feeds ``layers[i + 1].kernel[j, :]`` (outgoing): what a recycling remedy
    such as ReDo re-initializes and zeroes.

    Args:
      in_features: size of the input's last axis.
      hidden: widths of the hidden layers (may be empty: a linear model).
      out_features: size of the output's last axis.
      activation: activation name or callable (see above).
      kernel_init: initializer name or callable for the kernels (He normal by default).
      bias_init: initializer name or callable for the biases; None means zeros.
      dtype: computation dtype of the layers (None: inferred from inputs and params).
      param_dtype: dtype of the parameters.
      rngs: ``nnx.Rngs`` for the parameters (and the RReLU streams).

    Examples:
      >>> import jax.numpy as jnp, relujax
      >>> from flax import nnx
      >>> model = relujax.nn.MLP(8, [8, 8], 8, activation="leaky_relu", rngs=nnx.Rngs(0))
      >>> model(jnp.ones((5, 8))).shape
      (5, 8)
      >>> [layer.kernel.shape for layer in model.layers]
      [(8, 8), (8, 8), (8, 8)]
    """

    def __init__(
        self,
        in_features: int,
        hidden: Sequence[int],
        out_features: int,
        *,
        activation: str | Callable[..., Any] = "relu",
        kernel_init: str | Callable[..., Any] = "he_normal",
        bias_init: str | Callable[..., Any] | None = None,
        dtype: DTypeLike | None = None,
        param_dtype: DTypeLike = jnp.float32,
        rngs: nnx.Rngs,
    ):
        plan = MLPPlan.build(in_features, hidden, out_features)
        act = ActivationSpec.resolve("MLP", activation)
        inits = InitSpec.resolve("MLP", kernel_init, bias_init)
        check_rngs("MLP", rngs)
        self._plan = plan
        self.in_features, self.hidden, self.out_features = (
            plan.in_features,
            plan.hidden,
            plan.out_features,
        )
        self.layers = _build.layers(
            plan.kernel_shapes, inits, rngs=rngs, dtype=dtype, param_dtype=param_dtype
        )
        self.activations = _build.activations(
            act,
            plan.activation_widths,
            rngs=rngs,
            dtype=dtype,
            param_dtype=param_dtype,
        )

    def __call__(self, x: ArrayLike) -> Array:
        """Applies the network to ``x`` of shape ``(..., in_features)``."""
        return self._plan(x, lambda i, h: self.layers[i](h), lambda i, h: self.activations[i](h))
