"""``Activation``: a parameter-free module around any relujax or jax.nn activation."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from flax import nnx
from jax import Array
from jax.typing import ArrayLike

from relujax.nn import _resolve


class Activation(nnx.Module):
    r"""A thin NNX module around an activation function.

    ``Activation("leaky_relu", negative_slope=0.1)(x)`` is
    ``relujax.leaky_relu(x, negative_slope=0.1)``: the name is resolved once with
    :func:`relujax.get_activation` (unknown names fail here, with the closest valid names),
    and the call is exactly one call of the pure function. A callable (``jax.nn.relu``, a
    lambda, ...) is wrapped as is, with ``params`` bound as keywords. The module holds no
    parameters, so it is free in ``nnx.split`` / ``nnx.state``.

    ``"rrelu"`` is refused: its randomness needs an rng stream and a train/eval switch; use
    :class:`RReLU`. For a learnable slope use :class:`PReLU`.

    Args:
      fn: a relujax activation name (see :func:`relujax.activation_names`) or a callable.
      **params: keyword parameters of the activation.

    Attributes:
      fn: the resolved callable ``x -> Array``.

    Examples:
      >>> import jax.numpy as jnp, relujax
      >>> act = relujax.nn.Activation("leaky_relu", negative_slope=0.1)
      >>> act(jnp.array([-2.0, 3.0]))
      Array([-0.2,  3. ], dtype=float32)
    """

    def __init__(self, fn: str | Callable[..., Any], /, **params: Any):
        if _resolve.module_activation_name(fn) == "rrelu":
            raise ValueError(
                "Activation('rrelu') would silently use the fixed evaluation slope; use "
                "relujax.nn.RReLU(rngs=...) for the randomized activation."
            )
        try:
            self.fn = _resolve.activation(fn, **params)
        except (TypeError, ValueError) as e:
            raise type(e)(f"Activation: {e}") from None

    def __call__(self, x: ArrayLike) -> Array:
        """Applies the activation to ``x``."""
        return self.fn(x)
