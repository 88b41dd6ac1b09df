"""Python-level argument checks shared by the initializer factories."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any


def real(name: str, value: Any, *, minimum: float | None = None, strict: bool = False) -> float:
    """Returns ``value`` as a finite Python float, or raises a ValueError naming ``name``."""
    try:
        out = float(value)
    except (TypeError, ValueError):
        raise TypeError(f"{name} must be a real number, got {value!r}.") from None
    if not math.isfinite(out):
        raise ValueError(f"{name} must be finite, got {value!r}.")
    if minimum is not None:
        if strict and not out > minimum:
            raise ValueError(f"{name} must be > {minimum}, got {value!r}.")
        if not strict and not out >= minimum:
            raise ValueError(f"{name} must be >= {minimum}, got {value!r}.")
    return out


def choice(name: str, value: Any, accepted: Sequence[str]) -> str:
    """Returns ``value`` if it is one of ``accepted``, else raises a ValueError listing them."""
    if value not in accepted:
        raise ValueError(f"{name} must be one of {', '.join(map(repr, accepted))}; got {value!r}.")
    return value
