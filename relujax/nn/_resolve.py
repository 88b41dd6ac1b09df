"""Turn the ``activation=`` / ``*_init=`` arguments of relujax modules into callables.

Shared by :mod:`relujax.nn` (NNX) and :mod:`relujax.linen` so both accept exactly the same
arguments.
"""

from __future__ import annotations

import functools
import operator
from collections.abc import Callable, Sequence
from typing import Any

from relujax import init as _init
from relujax.activations import get_activation
from relujax.init import _validate

#: Activation names that build a module per layer (learnable or random) in MLP / CNN.
MODULE_ACTIVATIONS = ("prelu", "rrelu")


def activation(spec: str | Callable[..., Any], /, **params: Any) -> Callable[..., Any]:
    """A stateless activation from a relujax name or a callable, with ``params`` bound."""
    if isinstance(spec, str):
        return get_activation(spec, **params)
    if callable(spec):
        return functools.partial(spec, **params) if params else spec
    raise TypeError(f"activation must be a relujax activation name or a callable, got {spec!r}.")


def module_activation_name(spec: Any) -> str | None:
    """``"prelu"`` / ``"rrelu"`` when ``spec`` names a per-layer activation module, else None."""
    if isinstance(spec, str) and spec.strip().lower() in MODULE_ACTIVATIONS:
        return spec.strip().lower()
    return None


def initializer(spec: str | Callable[..., Any], *, name: str) -> Callable[..., Any]:
    """An initializer from a relujax.init name or a callable; errors name the argument."""
    if isinstance(spec, str):
        try:
            return _init.get(spec)
        except ValueError as e:
            raise ValueError(f"{name}: {e}") from None
    if callable(spec):
        return spec
    raise TypeError(f"{name} must be a relujax.init name or an initializer, got {spec!r}.")


def kernel_and_bias_init(
    kernel_init: str | Callable[..., Any], bias_init: str | Callable[..., Any] | None
) -> tuple[Callable[..., Any], Callable[..., Any] | None]:
    """Resolves the pair of init arguments of MLP / CNN.

    Returns ``(kernel_init, bias_init)``; ``bias_init`` is None exactly when ``kernel_init``
    is a :class:`relujax.init.PairedInitializer` (RAI), whose ``pair`` draws the bias too.
    """
    k = initializer(kernel_init, name="kernel_init")
    if isinstance(k, _init.PairedInitializer):
        if bias_init is not None:
            raise ValueError(
                "kernel_init draws the kernel and the bias jointly (a PairedInitializer such "
                f"as 'rai'), so bias_init must be None; got bias_init={bias_init!r}."
            )
        return k, None
    return k, initializer("zeros" if bias_init is None else bias_init, name="bias_init")


def positive_int(name: str, value: Any) -> int:
    """``value`` as a positive int, or a clear error naming ``name``."""
    try:
        out = operator.index(value)
    except TypeError:
        raise TypeError(f"{name} must be a positive int, got {value!r}.") from None
    if out < 1:
        raise ValueError(f"{name} must be a positive int, got {value!r}.")
    return out


def widths(name: str, value: Sequence[int]) -> tuple[int, ...]:
    """A sequence of positive ints as a tuple (may be empty)."""
    if isinstance(value, (str, bytes)) or not isinstance(value, Sequence):
        raise TypeError(f"{name} must be a sequence of positive ints, got {value!r}.")
    return tuple(positive_int(f"{name}[{i}]", v) for i, v in enumerate(value))


def slope_bounds(lower: Any, upper: Any) -> tuple[float, float]:
    """Validated RReLU bounds: finite, 0 <= lower <= upper."""
    lo = _validate.real("lower", lower, minimum=0.0)
    hi = _validate.real("upper", upper, minimum=0.0)
    if lo > hi:
        raise ValueError(f"lower must be <= upper, got lower={lower!r}, upper={upper!r}.")
    return lo, hi
