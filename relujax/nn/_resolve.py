"""Turn the ``activation=`` / ``*_init=`` arguments of relujax modules into callables.

Shared by :mod:`relujax.nn` (NNX) and :mod:`relujax.linen` (through ``relujax.nn._common``)
so both accept exactly the same arguments. Names are read in any spelling that
:func:`relujax._registry.normalize` maps to a registered one (``"ReLU"``, ``" Leaky-ReLU "``).
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any

from relujax import init as _init
from relujax._registry import normalize
from relujax.activations import MODULE_ACTIVATIONS as _MODULE_ACTIVATIONS
from relujax.activations import get_activation
from relujax.init._registry import lookup

#: Activation names that build a module per layer (learnable or random) in MLP / CNN.
MODULE_ACTIVATIONS = tuple(sorted(_MODULE_ACTIVATIONS))  # from the descriptors


def activation(spec: str | Callable[..., Any], /, **params: Any) -> Callable[..., Any]:
    """A stateless activation from a relujax name or a callable, with ``params`` bound."""
    if isinstance(spec, str):
        return get_activation(normalize(spec), **params)
    if callable(spec):
        return functools.partial(spec, **params) if params else spec
    raise TypeError(f"activation must be a relujax activation name or a callable, got {spec!r}.")


def module_activation_name(spec: Any) -> str | None:
    """``"prelu"`` / ``"rrelu"`` when ``spec`` names a per-layer activation module, else None."""
    if isinstance(spec, str) and normalize(spec) in MODULE_ACTIVATIONS:
        return normalize(spec)
    return None


def initializer(spec: str | Callable[..., Any], *, name: str) -> Callable[..., Any]:
    """An initializer from a relujax.init name or a callable; errors name the argument."""
    if isinstance(spec, str):
        canonical, _ = lookup(spec, param=name)
        return _init.get(canonical)
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
        return k, None  # type: ignore[return-value]  # a PairedInitializer is callable too
    return k, initializer("zeros" if bias_init is None else bias_init, name="bias_init")
