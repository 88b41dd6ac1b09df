"""Checks of an initializer call ``init(key, shape, dtype)``: key, shape, dtype and fans.

Every message starts with the initializer's name (``"he_normal: shape ..."``) and says what is
accepted, following :mod:`relujax._validation` (wrong type: ``TypeError``; wrong value:
``ValueError``).
"""

from __future__ import annotations

import math
import operator
from collections.abc import Callable, Sequence
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from jax import Array
from jax.typing import DTypeLike

from relujax import _validation


def key(fn: str, value: Any) -> jax.Array:
    """A typed PRNG key from a typed or legacy (``PRNGKey``) key: equal results for both."""
    return _validation.key(f"{fn}: key", value)


def shape(fn: str, value: Any, *, param: str = "shape") -> tuple[int, ...]:
    """``value`` as a tuple of non-negative Python ints."""
    accepted = "a tuple of non-negative ints"
    if isinstance(value, (str, bytes)) or not isinstance(value, Sequence | np.ndarray):
        raise TypeError(f"{fn}: {param} must be {accepted}, got {value!r}.")
    out = []
    for d in value:
        if isinstance(d, (bool, np.bool_)):
            raise TypeError(f"{fn}: {param} must be {accepted}, got {value!r}.")
        try:
            out.append(operator.index(d))
        except TypeError:
            raise TypeError(f"{fn}: {param} must be {accepted}, got {value!r}.") from None
    if any(d < 0 for d in out):
        raise ValueError(f"{fn}: {param} must be {accepted}, got {tuple(value)!r}.")
    return tuple(out)


def dtype(fn: str, value: DTypeLike | None, *, complex_ok: bool = True) -> np.dtype:
    """``value`` (float32 when None) as a floating (or, if allowed, complex) dtype."""
    dt = jnp.dtype(jnp.float32 if value is None else value)
    ok = jnp.issubdtype(dt, jnp.inexact if complex_ok else jnp.floating)
    if not ok:
        kinds = "a floating or complex dtype" if complex_ok else "a floating dtype"
        raise ValueError(f"{fn}: dtype must be {kinds}, got {dt}.")
    return dt


def _axes(fn: str, param: str, value: int | Sequence[int], ndim: int) -> tuple[int, ...]:
    axes = (value,) if isinstance(value, int) else tuple(value)
    for a in axes:
        if not -ndim <= a < ndim:
            raise ValueError(f"{fn}: {param}={value!r} is out of range for a {ndim}-axis shape.")
    return tuple(a % ndim for a in axes)


def fans(
    fn: str,
    dims: tuple[int, ...],
    in_axis: int | Sequence[int] = -2,
    out_axis: int | Sequence[int] = -1,
    batch_axis: int | Sequence[int] = (),
    *,
    param: str = "shape",
) -> tuple[int, int]:
    """``(fan_in, fan_out)`` of a weight, as ``jax.nn.initializers.variance_scaling`` counts them.

    ``fan_in`` is the size of the in axes times the receptive field (every axis that is
    neither in, out nor batch); ``fan_out`` likewise. Raises ``ValueError`` for fewer than 2
    axes or a zero-sized axis (no fan, so no scale).
    """
    if len(dims) < 2:
        raise ValueError(
            f"{fn}: {param} must have at least 2 axes (*receptive_field, in, out), got {dims}."
        )
    ins = _axes(fn, "in_axis", in_axis, len(dims))
    outs = _axes(fn, "out_axis", out_axis, len(dims))
    batch = _axes(fn, "batch_axis", batch_axis, len(dims))
    field = math.prod(d for i, d in enumerate(dims) if i not in {*ins, *outs, *batch})
    fan_in = field * math.prod(dims[i] for i in ins)
    fan_out = field * math.prod(dims[i] for i in outs)
    if 0 in dims:
        raise ValueError(
            f"{fn}: {param} {dims} has a zero-sized axis (fan_in = {fan_in}, fan_out = "
            f"{fan_out}); a weight needs every axis >= 1, so that fan_in, fan_out >= 1."
        )
    return fan_in, fan_out


def initializer(
    fn: str,
    draw: Callable[[Array, tuple[int, ...], np.dtype], Array],
    default: DTypeLike | None,
    *,
    complex_ok: bool = True,
    uses_key: bool = True,
    check_fans: Callable[[tuple[int, ...]], object] | None = None,
) -> Callable[..., Array]:
    """``draw(key, shape, dtype)`` behind the checks of its arguments, named after ``fn``.

    The returned ``init(key, shape, dtype=default)`` turns a legacy key into a typed one (so
    both give equal results; an initializer that ``uses_key=False`` passes it on unchecked,
    as ``jax.nn.initializers.constant`` ignores it), checks the shape and the dtype, and calls
    ``check_fans(shape)`` if given, before ``draw`` runs.
    """
    if default is not None:
        dtype(fn, default, complex_ok=complex_ok)
    check_key, check_shape, check_dtype = key, shape, dtype

    def init(key: Array, shape: Sequence[int], dtype: DTypeLike | None = default) -> Array:
        typed = check_key(fn, key) if uses_key else key
        dims = check_shape(fn, shape)
        dt = check_dtype(fn, dtype, complex_ok=complex_ok)
        if check_fans is not None:
            check_fans(dims)
        return draw(typed, dims, dt)

    init.__name__ = init.__qualname__ = fn
    return init
