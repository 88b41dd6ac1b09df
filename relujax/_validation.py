"""Argument validation for every public relujax function: one module, one rule.

The rule: a value of the wrong *type* raises ``TypeError``; a value of the right type but
outside what is accepted raises ``ValueError``. Every message names the parameter (prefixed by
the public function where it helps: ``"celu: alpha"``) and states what is accepted.

Only concrete values are checked. A traced value (inside ``jit``, ``grad``, ``vmap``, ...) is
passed through untouched, so validation never breaks tracing; concrete ``jax.Array`` values
*are* checked (``celu(x, jnp.array(0.))`` fails as ``celu(x, 0.)`` does).
"""

from __future__ import annotations

import math
import operator
from collections.abc import Sequence
from typing import Any

import jax
import jax.core
import jax.numpy as jnp
import numpy as np

__all__ = [
    "UINT32_SEEDS",
    "boolean",
    "choice",
    "concrete",
    "finite_rows",
    "instance",
    "integer",
    "key",
    "number_array",
    "order",
    "real",
    "same_shape_or_broadcastable",
    "seed",
]

#: Seeds are 32-bit: ``jax.random.key(seed)`` keeps only the low 32 bits of larger values in
#: the default mode, so two seeds 2**32 apart would be the same run.
UINT32_SEEDS = 2**32


def _range_text(minimum: float | None, maximum: float | None, *, strict: bool) -> str:
    low = None if minimum is None or minimum == -math.inf else minimum
    high = None if maximum is None or maximum == math.inf else maximum
    if low is not None and high is not None:
        return f"in {'(' if strict else '['}{low}, {high}]"
    if low is not None:
        return f"{'>' if strict else '>='} {low}"
    if high is not None:
        return f"<= {high}"
    return "a finite number"


def concrete(value: Any) -> np.ndarray | None:
    """``value`` as a NumPy array if it is a concrete number or array, else ``None``.

    Tracers (abstract values inside a transformation) and non-numeric values give ``None``.
    Booleans are numbers here only inside arrays; a bare Python ``bool`` gives ``None``.
    """
    if isinstance(value, bool) or value is None:
        return None
    if isinstance(value, jax.core.Tracer):
        return None
    if isinstance(value, jax.Array):
        if jnp.issubdtype(value.dtype, jax.dtypes.prng_key):
            return None
        try:
            arr = np.asarray(value)
        except Exception:  # e.g. a non-addressable multi-host array
            return None
    elif isinstance(value, (int, float, np.number, np.ndarray, list, tuple)):
        try:
            arr = np.asarray(value)
        except Exception:
            return None
    else:
        return None
    if arr.dtype == object or not (
        np.issubdtype(arr.dtype, np.number) or np.issubdtype(arr.dtype, np.bool_)
    ):
        return None
    return arr


def number_array(
    name: str,
    value: Any,
    *,
    minimum: float = -math.inf,
    maximum: float = math.inf,
    strict: bool = False,
    nonzero: bool = False,
    finite: bool = True,
) -> None:
    """Check a numeric parameter that may be a scalar or an array, if it is concrete.

    Args:
      name: the parameter's name as the user sees it (e.g. ``"celu: alpha"``).
      value: the parameter; checked when concrete (Python/NumPy number, NumPy or JAX array).
      minimum: smallest accepted value.
      maximum: largest accepted value.
      strict: whether ``minimum`` itself is excluded.
      nonzero: whether 0 is excluded.
      finite: whether NaN and +-inf are rejected.

    Raises:
      TypeError: ``value`` is a string or another non-numeric object.
      ValueError: a concrete entry is non-finite or outside the accepted range.
    """
    if isinstance(value, (str, bytes)):
        raise TypeError(f"{name} must be a number or an array of numbers, got {value!r}.")
    arr = concrete(value)
    if arr is None:
        return
    if arr.dtype == np.bool_:
        arr = arr.astype(np.int8)
    if finite and not np.all(np.isfinite(arr)):
        raise ValueError(f"{name} must be finite, got {value!r}.")
    bad = (arr <= minimum) if strict else (arr < minimum)
    bad = bad | (arr > maximum)
    if nonzero:
        bad = bad | (arr == 0)
    if np.any(bad):
        accepted = _range_text(minimum, maximum, strict=strict)
        if nonzero:
            accepted = "non-zero" if accepted == "a finite number" else f"{accepted}, non-zero"
        raise ValueError(f"{name} must be {accepted}, got {value!r}.")


def order(lower_name: str, lower: Any, upper_name: str, upper: Any) -> None:
    """Raise ``ValueError`` if concrete ``lower > upper`` (entrywise)."""
    lo, hi = concrete(lower), concrete(upper)
    if lo is not None and hi is not None and np.any(lo > hi):
        raise ValueError(
            f"{lower_name} must be <= {upper_name}, got {lower_name}={lower!r}, "
            f"{upper_name}={upper!r}."
        )


def real(
    name: str,
    value: Any,
    *,
    minimum: float | None = None,
    maximum: float | None = None,
    strict: bool = False,
    finite: bool = True,
) -> float:
    """``value`` as a Python float, checked.

    Args:
      name: the parameter's name, for the message.
      value: a real number (Python, NumPy or a concrete scalar array).
      minimum: smallest accepted value (``None``: unbounded).
      maximum: largest accepted value (``None``: unbounded).
      strict: whether ``minimum`` itself is excluded.
      finite: whether NaN and +-inf are rejected.

    Returns:
      The value as a float.

    Raises:
      TypeError: not a real number (a string, ``None``, a bool, an array with several entries).
      ValueError: non-finite or outside the range.
    """
    if isinstance(value, (bool, np.bool_, str, bytes)) or value is None:
        raise TypeError(f"{name} must be a real number, got {value!r}.")
    try:
        out = float(value)
    except (TypeError, ValueError):
        raise TypeError(f"{name} must be a real number, got {value!r}.") from None
    if math.isnan(out) or (finite and not math.isfinite(out)):
        raise ValueError(f"{name} must be finite, got {value!r}.")
    low_bad = minimum is not None and (out <= minimum if strict else out < minimum)
    high_bad = maximum is not None and out > maximum
    if low_bad or high_bad:
        raise ValueError(
            f"{name} must be {_range_text(minimum, maximum, strict=strict)}, got {value!r}."
        )
    return out


def integer(
    name: str, value: Any, *, minimum: int | None = None, maximum: int | None = None
) -> int:
    """``value`` as a Python int, checked (bools and floats are rejected, NumPy ints accepted).

    Raises:
      TypeError: not an integer.
      ValueError: outside ``[minimum, maximum]``.
    """
    if isinstance(value, (bool, np.bool_)):
        raise TypeError(f"{name} must be an int, got {value!r}.")
    try:
        out = operator.index(value)
    except TypeError:
        raise TypeError(f"{name} must be an int, got {value!r}.") from None
    if (minimum is not None and out < minimum) or (maximum is not None and out > maximum):
        if maximum is None:
            accepted = f">= {minimum}"
        elif minimum is None:
            accepted = f"<= {maximum}"
        else:
            accepted = f"in [{minimum}, {maximum}]"
        raise ValueError(f"{name} must be an int {accepted}, got {value!r}.")
    return out


def argnums(name: str, value: Any) -> tuple[int, ...]:
    """An int or a sequence of ints (positional argument numbers, negative ones allowed) as a
    tuple; checked against the number of arguments at call time by :func:`argnums_in`."""
    seq = (value,) if not isinstance(value, (tuple, list)) else tuple(value)
    return tuple(integer(name, k) for k in seq)


def argnums_in(name: str, nums: Sequence[int], n_args: int) -> tuple[int, ...]:
    """``nums`` as non-negative positions among ``n_args`` positional arguments.

    Raises:
      ValueError: a number outside ``[-n_args, n_args)``.
    """
    for k in nums:
        if not -n_args <= k < n_args:
            raise ValueError(
                f"{name}: {k} is out of range for {n_args} positional arguments "
                f"(accepted: -{n_args} to {n_args - 1})."
            )
    return tuple(k % n_args for k in nums)


def seed(name: str, value: Any) -> int:
    """A seed: an int in ``[0, 2**32)``, so that distinct seeds give distinct keys."""
    return integer(name, value, minimum=0, maximum=UINT32_SEEDS - 1)


def boolean(name: str, value: Any) -> bool:
    """``value`` if it is a Python or NumPy bool, else ``TypeError``."""
    if isinstance(value, (bool, np.bool_)):
        return bool(value)
    raise TypeError(f"{name} must be a bool, got {value!r}.")


def choice(name: str, value: Any, accepted: Sequence[Any]) -> Any:
    """``value`` if it is one of ``accepted``, else an error listing them.

    Raises:
      TypeError: ``value``'s type differs from every accepted value's type.
      ValueError: the right type, but not one of ``accepted``.
    """
    if value in accepted:
        return value
    listed = ", ".join(map(repr, accepted))
    if not any(isinstance(value, type(a)) for a in accepted):
        raise TypeError(f"{name} must be one of {listed}; got {value!r}.")
    raise ValueError(f"{name} must be one of {listed}; got {value!r}.")


def key(name: str, value: Any) -> jax.Array:
    """A PRNG key: a typed key (``jax.random.key``) or a legacy ``uint32[2]`` one (``PRNGKey``).

    Returns a typed key, so that both spellings give equal results downstream.

    Raises:
      TypeError: anything else (an int seed, a float array, ...).
    """
    if isinstance(value, (jax.Array, np.ndarray)):  # tracers are jax.Arrays too
        dtype = value.dtype
        if jnp.issubdtype(dtype, jax.dtypes.prng_key):
            return value  # type: ignore[return-value]
        if dtype == np.uint32 and value.shape[-1:] == (2,):
            return jax.random.wrap_key_data(jnp.asarray(value))
    raise TypeError(
        f"{name} must be a jax.random key (jax.random.key(seed) or the legacy "
        f"jax.random.PRNGKey(seed)), got {type(value).__name__} {value!r}."
    )


def instance(name: str, value: Any, cls: type | tuple[type, ...], accepted: str) -> Any:
    """``value`` if it is an instance of ``cls``, else a ``TypeError`` naming ``name``."""
    if not isinstance(value, cls):
        raise TypeError(f"{name} must be {accepted}, got {type(value).__name__}.")
    return value


def finite_rows(name: str, value: Any) -> None:
    """Raise ``ValueError`` naming the first row with a NaN or inf, if ``value`` has one."""
    arr = np.asarray(value)
    if not np.issubdtype(arr.dtype, np.inexact) or arr.size == 0:
        return
    finite = np.isfinite(arr)
    if finite.all():
        return
    rows = finite.reshape(arr.shape[0], -1).all(axis=1) if arr.ndim else finite.reshape(1)
    first = int(np.argmin(rows))
    raise ValueError(
        f"{name} has non-finite values (NaN or inf): first at row {first} of {arr.shape[0]}; "
        "clean or drop those rows before training."
    )


def same_shape_or_broadcastable(
    name: str, value_shape: tuple[int, ...], other_name: str, other_shape: tuple[int, ...]
) -> None:
    """Raise ``ValueError`` if ``value_shape`` does not broadcast against ``other_shape``."""
    try:
        np.broadcast_shapes(tuple(value_shape), tuple(other_shape))
    except ValueError:
        raise ValueError(
            f"{name} of shape {tuple(value_shape)} does not broadcast against {other_name} of "
            f"shape {tuple(other_shape)}; give a scalar or a shape that broadcasts (e.g. one "
            f"entry per channel, shape ({other_shape[-1] if other_shape else 1},))."
        ) from None
