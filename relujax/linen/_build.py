"""Construction of the Linen MLP and CNN from a plan of ``relujax.nn._common`` (in ``setup``)."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import jax
import jax.numpy as jnp
from flax import linen as nn
from jax.typing import DTypeLike

from relujax.linen._prelu import PReLU
from relujax.linen._rrelu import RReLU
from relujax.nn._common import ActivationSpec, InitSpec


def activations(
    spec: ActivationSpec,
    widths: Sequence[int],
    *,
    deterministic: bool,
    dtype: DTypeLike | None,
    param_dtype: DTypeLike,
) -> list[Any]:
    """One activation per hidden layer, named ``activations_i`` when it is a module."""
    if spec.module == "prelu":
        return [PReLU(w, dtype=dtype, param_dtype=param_dtype) for w in widths]
    if spec.module == "rrelu":
        return [RReLU(deterministic=deterministic, dtype=dtype) for _ in widths]
    return [spec.fn for _ in widths]


def _shape_only(key: jax.Array, shape: tuple[int, ...], dtype: Any = None) -> jax.Array:
    # Outside init the parameters exist; Linen only evaluates the initializer abstractly
    # (jax.eval_shape) to check their shapes.
    del key
    return jnp.zeros(shape, dtype)


def _inits(
    module: nn.Module, inits: InitSpec, kernel_shape: tuple[int, ...], param_dtype: DTypeLike
) -> tuple[Callable[..., Any], Callable[..., Any]]:
    """The (kernel_init, bias_init) to give one Dense / Conv.

    For a paired initializer (RAI) the pair is drawn once from the ``params`` rng while
    initializing, and both halves are handed to the layer as constant initializers.
    """
    if inits.bias is not None:
        return inits.kernel, inits.bias
    if not module.is_initializing():
        return _shape_only, _shape_only
    kernel, bias = inits.pair(module.make_rng("params"), kernel_shape, param_dtype)
    return (lambda *_: kernel), (lambda *_: bias)


def layers(
    module: nn.Module,
    kernel_shapes: Sequence[tuple[int, ...]],
    inits: InitSpec,
    *,
    dtype: DTypeLike | None,
    param_dtype: DTypeLike,
) -> list[nn.Module]:
    """An ``nn.Conv`` (SAME padding) per kernel of 3+ axes, an ``nn.Dense`` per 2-axis one."""
    out: list[nn.Module] = []
    for shape in kernel_shapes:
        *window, _, fan_out = shape
        ki, bi = _inits(module, inits, shape, param_dtype)
        common = {"kernel_init": ki, "bias_init": bi, "dtype": dtype, "param_dtype": param_dtype}
        if window:
            out.append(nn.Conv(fan_out, tuple(window), padding="SAME", **common))
        else:
            out.append(nn.Dense(fan_out, **common))
    return out


def call_activation(act: Any, x: jax.Array, deterministic: bool | None) -> jax.Array:
    """Calls ``act`` on ``x``, forwarding ``deterministic`` to RReLU modules only."""
    if isinstance(act, RReLU):
        return act(x, deterministic=deterministic)
    return act(x)
