"""Plain initializers, mostly the deliberately bad ones used in dead-unit experiments."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
from jax import Array
from jax.nn import initializers as jinit
from jax.typing import DTypeLike

from relujax import _validation
from relujax.init import _checks

Initializer = jinit.Initializer


def normal(
    stddev: float = 1e-2, *, mean: float = 0.0, dtype: DTypeLike | None = None
) -> Initializer:
    r"""Fixed-scale normal initializer, ignorant of fan-in.

    .. math:: w \sim \mathcal{N}(\text{mean}, \text{stddev}^2)

    The "small random numbers" recipe. Because the scale does not follow the fan-in,
    a deep ReLU network initialised this way shrinks (stddev too small) or explodes
    (too large) its signal geometrically with depth; a negative ``mean`` kills units at
    birth. Kept for experiments on how units die.

    Args:
      stddev: standard deviation, >= 0.
      mean: mean of the distribution.
      dtype: default dtype (float32 when None).

    Returns:
      An initializer ``init(key, shape, dtype=dtype) -> Array``.

    Examples:
      >>> import jax, relujax
      >>> w = relujax.init.normal(0.5)(jax.random.key(0), (800, 600))
      >>> print(f"{float(w.std()):.2f}")
      0.50
    """
    s = _validation.real("normal: stddev", stddev, minimum=0.0)
    m = _validation.real("normal: mean", mean)

    def draw(key: Array, dims: tuple[int, ...], dt: np.dtype) -> Array:
        return m + s * jax.random.normal(key, dims, dt)

    return _checks.initializer("normal", draw, dtype)  # type: ignore[return-value]


def constant(value: float, *, dtype: DTypeLike | None = None) -> Initializer:
    r"""Constant initializer: every entry equals ``value``.

    Typical use: ``bias_init=constant(-1.0)`` makes every ReLU unit whose weighted input
    stays below 1 dead from the first step, a controlled way to produce dead units.

    Args:
      value: the constant (a finite real number).
      dtype: default dtype (float32 when None).

    Returns:
      An initializer ``init(key, shape, dtype=dtype) -> Array``; ``key`` is unused.

    Examples:
      >>> import jax, relujax
      >>> relujax.init.constant(-0.5)(jax.random.key(0), (3,))
      Array([-0.5, -0.5, -0.5], dtype=float32)
    """
    v = _validation.real("constant: value", value)

    def draw(key: Array, dims: tuple[int, ...], dt: np.dtype) -> Array:
        del key
        return jnp.full(dims, v, dt)

    return _checks.initializer("constant", draw, dtype, uses_key=False)  # type: ignore[return-value]


def zeros(key: Array, shape: tuple[int, ...], dtype: DTypeLike | None = None) -> Array:
    r"""The all-zeros initializer (an initializer itself, as ``jax.nn.initializers.zeros``).

    Zero biases are the usual default. Zero *kernels* make every unit of a layer compute
    the same function forever (no symmetry breaking) and every ReLU unit inactive in the
    sense that its gradient w.r.t. earlier layers is zero.

    Args:
      key: unused PRNG key.
      shape: output shape.
      dtype: output dtype (float32 when None).

    Returns:
      An array of zeros.

    Examples:
      >>> import jax, relujax
      >>> relujax.init.zeros(jax.random.key(0), (2,))
      Array([0., 0.], dtype=float32)
    """
    del key
    return jnp.zeros(_checks.shape("zeros", shape), _checks.dtype("zeros", dtype))


def ones(key: Array, shape: tuple[int, ...], dtype: DTypeLike | None = None) -> Array:
    r"""The all-ones initializer (an initializer itself, as ``jax.nn.initializers.ones``).

    Args:
      key: unused PRNG key.
      shape: output shape.
      dtype: output dtype (float32 when None).

    Returns:
      An array of ones.

    Examples:
      >>> import jax, relujax
      >>> relujax.init.ones(jax.random.key(0), (2,))
      Array([1., 1.], dtype=float32)
    """
    del key
    return jnp.ones(_checks.shape("ones", shape), _checks.dtype("ones", dtype))
