"""Eager validation of activation parameters given as Python or NumPy numbers.

Only concrete host values are checked: a traced value (inside ``jit``, ``grad``, ...) or a
``jax.Array`` is passed through untouched, so validation never breaks tracing.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np


def _concrete(value: Any) -> np.ndarray | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, (int, float, np.number, np.ndarray)):
        arr = np.asarray(value)
        if np.issubdtype(arr.dtype, np.number):
            return arr
    return None


def check(
    fn: str,
    name: str,
    value: Any,
    *,
    low: float = -math.inf,
    high: float = math.inf,
    low_open: bool = False,
    nonzero: bool = False,
) -> None:
    """Raise ``ValueError`` if a concrete ``value`` is non-finite or outside the given range.

    Args:
      fn: public function name, for the message.
      name: parameter name, for the message.
      value: the parameter; checked only when it is a Python/NumPy number or NumPy array.
      low: smallest accepted value.
      high: largest accepted value.
      low_open: whether ``low`` itself is excluded.
      nonzero: whether 0 is excluded.
    """
    arr = _concrete(value)
    if arr is None:
        return
    if not np.all(np.isfinite(arr)):
        raise ValueError(f"{fn}: {name} must be finite, got {value!r}.")
    bad = (arr <= low) if low_open else (arr < low)
    bad = bad | (arr > high)
    if nonzero:
        bad = bad | (arr == 0)
    if np.any(bad):
        lo = "(" if low_open else "["
        accepted = f"in {lo}{low}, {high}]" if math.isfinite(low) else f"<= {high}"
        if math.isfinite(low) and not math.isfinite(high):
            accepted = f"{'>' if low_open else '>='} {low}"
        if nonzero and not math.isfinite(low) and not math.isfinite(high):
            accepted = "non-zero"
        raise ValueError(f"{fn}: {name} must be {accepted}, got {value!r}.")


def check_order(fn: str, lower_name: str, lower: Any, upper_name: str, upper: Any) -> None:
    """Raise ``ValueError`` if concrete ``lower > upper``."""
    lo, hi = _concrete(lower), _concrete(upper)
    if lo is not None and hi is not None and np.any(lo > hi):
        raise ValueError(
            f"{fn}: {lower_name} must be <= {upper_name}, got {lower_name}={lower!r}, "
            f"{upper_name}={upper!r}."
        )


def check_scalar(fn: str, name: str, value: Any) -> None:
    """Raise ``ValueError`` if ``value`` (concrete or traced) is not a scalar; shapes are static."""
    shape = np.shape(value) if not hasattr(value, "shape") else tuple(value.shape)
    if shape != ():
        raise ValueError(f"{fn}: {name} must be a scalar, got shape {shape}.")
