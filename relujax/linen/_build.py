"""Construction helpers shared by the Linen MLP and CNN (called from ``setup``)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp
from flax import linen as nn
from jax.typing import DTypeLike

from relujax.linen._prelu import PReLU
from relujax.linen._rrelu import RReLU
from relujax.nn import _resolve


def activations(
    spec: str | Callable[..., Any],
    features: tuple[int, ...],
    *,
    deterministic: bool,
    dtype: DTypeLike | None,
    param_dtype: DTypeLike,
) -> list[Any]:
    """One activation per hidden layer, named ``activations_i`` when it is a module."""
    name = _resolve.module_activation_name(spec)
    if name == "prelu":
        return [PReLU(f, dtype=dtype, param_dtype=param_dtype) for f in features]
    if name == "rrelu":
        return [RReLU(deterministic=deterministic, dtype=dtype) for _ in features]
    fn = _resolve.activation(spec)
    return [fn for _ in features]


def _shape_only(key: jax.Array, shape: tuple[int, ...], dtype: Any = None) -> jax.Array:
    # Outside init the parameters exist; Linen only evaluates the initializer abstractly
    # (jax.eval_shape) to check their shapes.
    del key
    return jnp.zeros(shape, dtype)


def inits(
    module: nn.Module,
    kernel_init: Callable[..., Any],
    bias_init: Callable[..., Any] | None,
    kernel_shape: tuple[int, ...],
    param_dtype: DTypeLike,
) -> tuple[Callable[..., Any], Callable[..., Any]]:
    """The (kernel_init, bias_init) to give one Dense / Conv.

    For a paired initializer (RAI) the pair is drawn once from the ``params`` rng while
    initializing, and both halves are handed to the layer as constant initializers.
    """
    if bias_init is not None:
        return kernel_init, bias_init
    if not module.is_initializing():
        return _shape_only, _shape_only
    kernel, bias = kernel_init.pair(module.make_rng("params"), kernel_shape, param_dtype)
    return (lambda *_: kernel), (lambda *_: bias)


def call_activation(act: Any, x: jax.Array, deterministic: bool | None) -> jax.Array:
    """Calls ``act`` on ``x``, forwarding ``deterministic`` to RReLU modules only."""
    if isinstance(act, RReLU):
        return act(x, deterministic=deterministic)
    return act(x)
