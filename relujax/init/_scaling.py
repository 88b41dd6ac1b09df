"""Variance-scaling initializers: He (Kaiming), Xavier (Glorot), LeCun, and orthogonal.

Each function is a factory in the style of ``jax.nn.initializers``: it takes the
hyperparameters and returns an initializer ``init(key, shape, dtype=None) -> Array``.
They wrap ``jax.nn.initializers.variance_scaling`` and ``jax.nn.initializers.orthogonal``;
what they add is the leaky-ReLU gain, checked arguments (a bad key, shape or dtype is an
error naming the initializer and the parameter, before any JAX code runs) and an orthogonal
initializer that works in float16 and bfloat16.
"""

from __future__ import annotations

from collections.abc import Sequence

import jax.numpy as jnp
from jax import Array
from jax.nn import initializers as jinit
from jax.typing import DTypeLike

from relujax import _validation
from relujax.init import _checks

Initializer = jinit.Initializer

_DISTRIBUTIONS = ("truncated_normal", "normal", "uniform")
# Dtypes that jnp.linalg.qr accepts; orthogonal computes in float32 for the others.
_QR_DTYPES = (jnp.float32, jnp.float64, jnp.complex64, jnp.complex128)


def _axes(name: str, value: int | Sequence[int]) -> int | tuple[int, ...]:
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    if isinstance(value, (str, bytes)):
        raise TypeError(f"{name} must be an int or a sequence of ints, got {value!r}.")
    try:
        out = tuple(value)  # type: ignore[arg-type]
    except TypeError:
        raise TypeError(f"{name} must be an int or a sequence of ints, got {value!r}.") from None
    if not all(isinstance(a, int) and not isinstance(a, bool) for a in out):
        raise TypeError(f"{name} must be an int or a sequence of ints, got {value!r}.")
    return out


def _scaling(
    fn: str,
    scale: float,
    mode: str,
    distribution: str,
    in_axis: int | Sequence[int],
    out_axis: int | Sequence[int],
    batch_axis: int | Sequence[int],
    dtype: DTypeLike | None,
) -> Initializer:
    _validation.choice(f"{fn}: distribution", distribution, _DISTRIBUTIONS)
    ins = _axes(f"{fn}: in_axis", in_axis)
    outs = _axes(f"{fn}: out_axis", out_axis)
    batch = _axes(f"{fn}: batch_axis", batch_axis)
    inner = jinit.variance_scaling(
        scale,
        mode,  # type: ignore[arg-type]
        distribution,  # type: ignore[arg-type]
        in_axis=ins,
        out_axis=outs,
        batch_axis=batch,
    )
    return _checks.initializer(
        fn, inner, dtype, check_fans=lambda dims: _checks.fans(fn, dims, ins, outs, batch)
    )


def leaky_gain(negative_slope: float = 0.0) -> float:
    r"""The He variance gain of a leaky ReLU with slope ``negative_slope`` for x < 0.

    .. math:: g(a) = \frac{2}{1 + a^2}

    so that a (leaky) ReLU layer initialised with variance :math:`g(a) / \text{fan\_in}`
    preserves the second moment of its input (He et al. 2015, eq. 15). ``g(0) = 2`` is
    ReLU; ``g(1) = 1`` is the identity (LeCun).

    Args:
      negative_slope: the slope ``a`` of the activation for x < 0.

    Returns:
      The gain as a Python float.

    Examples:
      >>> import relujax
      >>> relujax.init.leaky_gain(0.0), relujax.init.leaky_gain(1.0)
      (2.0, 1.0)
    """
    a = _validation.real("leaky_gain: negative_slope", negative_slope)
    return 2.0 / (1.0 + a * a)


def he_normal(
    *,
    negative_slope: float = 0.0,
    distribution: str = "truncated_normal",
    in_axis: int | Sequence[int] = -2,
    out_axis: int | Sequence[int] = -1,
    batch_axis: int | Sequence[int] = (),
    dtype: DTypeLike | None = None,
) -> Initializer:
    r"""He (Kaiming) normal initializer for (leaky) ReLU layers.

    Draws zero-mean weights with variance

    .. math:: \operatorname{Var}[w] = \frac{2}{(1 + a^2)\, \text{fan\_in}}

    where ``a`` is ``negative_slope`` (He, Zhang, Ren, Sun, "Delving Deep into
    Rectifiers", 2015). ``fan_in`` is the product of the sizes of ``in_axis`` and of the
    receptive-field axes (every axis that is neither in, out nor batch), so the same
    initializer serves Dense kernels ``(in, out)`` and Conv kernels ``(*window, in, out)``.

    With the default ``distribution="truncated_normal"`` and ``negative_slope=0`` this is
    exactly ``jax.nn.initializers.he_normal()`` (a normal truncated at two standard
    deviations and rescaled to the stated variance). ``distribution="normal"`` gives the
    untruncated Gaussian of the paper and of PyTorch's ``kaiming_normal_``.

    Args:
      negative_slope: slope ``a`` of the activation for x < 0 (0 for ReLU).
      distribution: ``"truncated_normal"``, ``"normal"`` or ``"uniform"``.
      in_axis: axis or axes of the input dimension of the weights.
      out_axis: axis or axes of the output dimension.
      batch_axis: axis or axes to ignore when counting fans.
      dtype: default dtype of the weights (float32 when None).

    Returns:
      An initializer ``init(key, shape, dtype=dtype) -> Array``.

    Examples:
      >>> import jax, relujax
      >>> init = relujax.init.he_normal()
      >>> w = init(jax.random.key(0), (800, 600))
      >>> w.shape, w.dtype
      ((800, 600), dtype('float32'))
      >>> print(f"{float(w.var()) * 800:.2f}")  # fan_in * Var[w] = 2
      2.00
    """
    a = _validation.real("he_normal: negative_slope", negative_slope)
    return _scaling(
        "he_normal",
        leaky_gain(a),
        "fan_in",
        distribution,
        in_axis,
        out_axis,
        batch_axis,
        dtype,
    )


def he_uniform(
    *,
    negative_slope: float = 0.0,
    in_axis: int | Sequence[int] = -2,
    out_axis: int | Sequence[int] = -1,
    batch_axis: int | Sequence[int] = (),
    dtype: DTypeLike | None = None,
) -> Initializer:
    r"""He (Kaiming) uniform initializer for (leaky) ReLU layers.

    .. math:: w \sim U(-b, b), \qquad b = \sqrt{\frac{6}{(1 + a^2)\, \text{fan\_in}}}

    so that :math:`\operatorname{Var}[w] = 2 / ((1 + a^2)\,\text{fan\_in})`, as
    :func:`he_normal`. With ``negative_slope=0`` this equals
    ``jax.nn.initializers.he_uniform()``.

    Args:
      negative_slope: slope ``a`` of the activation for x < 0 (0 for ReLU).
      in_axis: axis or axes of the input dimension of the weights.
      out_axis: axis or axes of the output dimension.
      batch_axis: axis or axes to ignore when counting fans.
      dtype: default dtype of the weights (float32 when None).

    Returns:
      An initializer ``init(key, shape, dtype=dtype) -> Array``.

    Examples:
      >>> import jax, relujax
      >>> w = relujax.init.he_uniform()(jax.random.key(0), (800, 600))
      >>> bool(abs(w).max() <= (6 / 800) ** 0.5)
      True
    """
    a = _validation.real("he_uniform: negative_slope", negative_slope)
    return _scaling(
        "he_uniform", leaky_gain(a), "fan_in", "uniform", in_axis, out_axis, batch_axis, dtype
    )


def xavier_normal(
    *,
    gain: float = 1.0,
    distribution: str = "truncated_normal",
    in_axis: int | Sequence[int] = -2,
    out_axis: int | Sequence[int] = -1,
    batch_axis: int | Sequence[int] = (),
    dtype: DTypeLike | None = None,
) -> Initializer:
    r"""Xavier (Glorot) normal initializer.

    .. math:: \operatorname{Var}[w] = \text{gain}^2 \, \frac{2}{\text{fan\_in} + \text{fan\_out}}

    (Glorot and Bengio, 2010); for a Conv kernel ``(*window, in, out)`` both fans include
    the window: ``fan_in = prod(window) * in``, ``fan_out = prod(window) * out``. With
    ``gain=1`` and the default truncated normal this is
    ``jax.nn.initializers.glorot_normal()``. Designed for symmetric activations; for ReLU it
    halves the second moment at every layer, which is why :func:`he_normal` exists.

    Args:
      gain: multiplies the standard deviation.
      distribution: ``"truncated_normal"``, ``"normal"`` or ``"uniform"``.
      in_axis: axis or axes of the input dimension of the weights.
      out_axis: axis or axes of the output dimension.
      batch_axis: axis or axes to ignore when counting fans.
      dtype: default dtype of the weights (float32 when None).

    Returns:
      An initializer ``init(key, shape, dtype=dtype) -> Array``.

    Examples:
      >>> import jax, relujax
      >>> w = relujax.init.xavier_normal()(jax.random.key(0), (800, 600))
      >>> print(f"{float(w.var()) * (800 + 600) / 2:.2f}")
      1.00
    """
    g = _validation.real("xavier_normal: gain", gain, minimum=0.0, strict=True)
    return _scaling(
        "xavier_normal", g * g, "fan_avg", distribution, in_axis, out_axis, batch_axis, dtype
    )


def xavier_uniform(
    *,
    gain: float = 1.0,
    in_axis: int | Sequence[int] = -2,
    out_axis: int | Sequence[int] = -1,
    batch_axis: int | Sequence[int] = (),
    dtype: DTypeLike | None = None,
) -> Initializer:
    r"""Xavier (Glorot) uniform initializer.

    .. math:: w \sim U(-b, b), \qquad
        b = \text{gain} \sqrt{\frac{6}{\text{fan\_in} + \text{fan\_out}}}

    With ``gain=1`` this is ``jax.nn.initializers.glorot_uniform()`` (Flax's default
    ``nnx.Linear`` kernel initializer is LeCun normal, not this one).

    Args:
      gain: multiplies the bound.
      in_axis: axis or axes of the input dimension of the weights.
      out_axis: axis or axes of the output dimension.
      batch_axis: axis or axes to ignore when counting fans.
      dtype: default dtype of the weights (float32 when None).

    Returns:
      An initializer ``init(key, shape, dtype=dtype) -> Array``.

    Examples:
      >>> import jax, relujax
      >>> w = relujax.init.xavier_uniform()(jax.random.key(0), (800, 600))
      >>> bool(abs(w).max() <= (6 / 1400) ** 0.5)
      True
    """
    g = _validation.real("xavier_uniform: gain", gain, minimum=0.0, strict=True)
    return _scaling(
        "xavier_uniform", g * g, "fan_avg", "uniform", in_axis, out_axis, batch_axis, dtype
    )


def lecun_normal(
    *,
    distribution: str = "truncated_normal",
    in_axis: int | Sequence[int] = -2,
    out_axis: int | Sequence[int] = -1,
    batch_axis: int | Sequence[int] = (),
    dtype: DTypeLike | None = None,
) -> Initializer:
    r"""LeCun normal initializer (Flax's default kernel initializer).

    .. math:: \operatorname{Var}[w] = \frac{1}{\text{fan\_in}}

    Equals ``jax.nn.initializers.lecun_normal()`` with the default truncated normal. It is
    :func:`he_normal` with ``negative_slope=1`` (the identity's gain); for ReLU it halves
    the second moment at every layer.

    Args:
      distribution: ``"truncated_normal"``, ``"normal"`` or ``"uniform"``.
      in_axis: axis or axes of the input dimension of the weights.
      out_axis: axis or axes of the output dimension.
      batch_axis: axis or axes to ignore when counting fans.
      dtype: default dtype of the weights (float32 when None).

    Returns:
      An initializer ``init(key, shape, dtype=dtype) -> Array``.

    Examples:
      >>> import jax, relujax
      >>> w = relujax.init.lecun_normal()(jax.random.key(0), (800, 600))
      >>> print(f"{float(w.var()) * 800:.2f}")
      1.00
    """
    return _scaling(
        "lecun_normal", 1.0, "fan_in", distribution, in_axis, out_axis, batch_axis, dtype
    )


def orthogonal(
    *, scale: float = 1.0, column_axis: int = -1, dtype: DTypeLike | None = None
) -> Initializer:
    r"""Orthogonal initializer (Saxe, McClelland, Ganguli, 2014).

    Draws a matrix with orthonormal columns (or rows, whichever are fewer) times
    ``scale``, reshaping the other axes into the rows: :math:`W^\top W = s^2 I` when the
    columns are fewer. For ReLU layers ``scale=sqrt(2)`` matches the He gain. In float32 and
    float64 it equals ``jax.nn.initializers.orthogonal``; float16 and bfloat16 (where JAX's
    QR decomposition is not defined) draw the same matrix in float32 and round it once.

    Args:
      scale: multiplies the orthogonal matrix.
      column_axis: the axis holding the columns (outputs).
      dtype: default dtype of the weights (float32 when None).

    Returns:
      An initializer ``init(key, shape, dtype=dtype) -> Array``.

    Examples:
      >>> import jax, jax.numpy as jnp, relujax
      >>> w = relujax.init.orthogonal(scale=2.0)(jax.random.key(0), (4, 3))
      >>> bool(jnp.allclose(w.T @ w, 4.0 * jnp.eye(3), atol=1e-5))
      True
      >>> relujax.init.orthogonal()(jax.random.key(0), (4, 3), jnp.bfloat16).dtype
      dtype(bfloat16)
    """
    s = _validation.real("orthogonal: scale", scale)
    col = _validation.integer("orthogonal: column_axis", column_axis)
    inner = jinit.orthogonal(scale=s, column_axis=col)

    def fans(dims: tuple[int, ...]) -> None:
        n = len(dims)
        if n >= 2 and not -n <= col < n:
            raise ValueError(f"orthogonal: column_axis={col} is out of range for a {n}-axis shape.")
        rows = tuple(i for i in range(n) if i != col % max(n, 1))
        _checks.fans("orthogonal", dims, in_axis=rows, out_axis=col)

    def draw(key: Array, dims: tuple[int, ...], dt: jnp.dtype) -> Array:
        compute = dt if dt in _QR_DTYPES else jnp.dtype(jnp.float32)
        return inner(key, dims, compute).astype(dt)

    return _checks.initializer("orthogonal", draw, dtype, check_fans=fans)
