"""Construction of the NNX MLP and CNN from a plan of :mod:`relujax.nn._common`."""

from __future__ import annotations

from collections.abc import Sequence

from flax import nnx
from jax.typing import DTypeLike

from relujax import init as _init
from relujax.nn._common import ActivationSpec, InitSpec
from relujax.nn._prelu import PReLU
from relujax.nn._rrelu import RReLU


def activations(
    spec: ActivationSpec,
    widths: Sequence[int],
    *,
    rngs: nnx.Rngs,
    dtype: DTypeLike | None,
    param_dtype: DTypeLike,
) -> nnx.List:
    """One activation per hidden layer: a PReLU / RReLU module per layer, or a shared function."""
    if spec.module == "prelu":
        return nnx.List([PReLU(w, dtype=dtype, param_dtype=param_dtype) for w in widths])
    if spec.module == "rrelu":
        return nnx.List([RReLU(rngs=rngs, dtype=dtype) for _ in widths])
    return nnx.List([spec.fn for _ in widths])


def layers(
    kernel_shapes: Sequence[tuple[int, ...]],
    inits: InitSpec,
    *,
    rngs: nnx.Rngs,
    dtype: DTypeLike | None,
    param_dtype: DTypeLike,
) -> nnx.List:
    """An ``nnx.Conv`` (SAME padding) per kernel of 3+ axes, an ``nnx.Linear`` per 2-axis one.

    A paired initializer (RAI) draws each layer's kernel and bias jointly from one
    ``rngs.params()`` key.
    """
    common = {
        "kernel_init": _init.zeros if inits.paired else inits.kernel,
        "bias_init": _init.zeros if inits.paired else inits.bias,
        "dtype": dtype,
        "param_dtype": param_dtype,
        "rngs": rngs,
    }
    out: list[nnx.Module] = []
    for shape in kernel_shapes:
        *window, fan_in, fan_out = shape
        if window:
            layer = nnx.Conv(fan_in, fan_out, tuple(window), padding="SAME", **common)
        else:
            layer = nnx.Linear(fan_in, fan_out, **common)
        if inits.paired:
            kernel, bias = inits.pair(rngs.params(), shape, param_dtype)
            layer.kernel.set_value(kernel)
            layer.bias.set_value(bias)  # type: ignore[union-attr]
        out.append(layer)
    return nnx.List(out)
