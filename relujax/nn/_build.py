"""Construction helpers shared by the NNX MLP and CNN."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from flax import nnx
from jax.typing import DTypeLike

from relujax.nn import _resolve
from relujax.nn._prelu import PReLU
from relujax.nn._rrelu import RReLU


def activations(
    spec: str | Callable[..., Any],
    features: tuple[int, ...],
    *,
    rngs: nnx.Rngs,
    dtype: DTypeLike | None,
    param_dtype: DTypeLike,
) -> nnx.List:
    """One activation per hidden layer: a PReLU / RReLU module per layer, or a shared function."""
    name = _resolve.module_activation_name(spec)
    if name == "prelu":
        return nnx.List([PReLU(f, dtype=dtype, param_dtype=param_dtype) for f in features])
    if name == "rrelu":
        return nnx.List([RReLU(rngs=rngs, dtype=dtype) for _ in features])
    fn = _resolve.activation(spec)
    return nnx.List([fn for _ in features])


def draw_pair(layer: nnx.Module, paired: Any, rngs: nnx.Rngs, param_dtype: DTypeLike) -> None:
    """Overwrites ``layer.kernel`` and ``layer.bias`` with one joint ``paired.pair`` draw."""
    kernel, bias = paired.pair(rngs.params(), layer.kernel.shape, param_dtype)
    layer.kernel.set_value(kernel)
    layer.bias.set_value(bias)
