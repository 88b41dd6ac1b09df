"""ReLU and its piecewise-linear relatives, most with a derivative read off the output.

The derivative rules of relu, relu6, capped_relu and shifted_relu read the primal output ``y``
(which the next layer keeps for its own backward pass) instead of the input ``x``: the backward
pass keeps a boolean mask at most, and after XLA's fusion usually nothing at all. threshold
reads a mask of ``x`` and squared_relu reads ``x`` itself (2 sqrt(y) overflows with y).

Inside the derivative rules the primal values are written as a ``select`` between two
branches (``max(x, 0)`` where ``x <= 0``, else ``x``) rather than a bare ``max(x, 0)``: XLA
duplicates a cheap one-operand producer such as ``max`` into its consumers, which would
rewrite the backward pass's ``y > 0`` into ``max(x, 0) > 0`` and keep ``x`` alive; a ``select``
reading ``x`` twice is not duplicated. ``benchmarks/activations.py`` and
``tests/activations/test_activations_memory.py`` measure it. Undifferentiated calls
(inference, analysis) run the plain ``max``, the same values, because XLA:CPU fuses a ``max``
but not a ``select`` into its YNNPACK convolution/pooling kernels: with the ``select`` a small
CNN's forward pass on CPU took 1.6x as long as with ``jax.nn.relu``.
"""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
from jax import Array
from jax.typing import ArrayLike

from relujax import _validation
from relujax.activations._descriptor import Activation, Param, Saturation
from relujax.activations._site import broadcast, conform, masked, site, tangent_map, tangent_sum

# --- relu -------------------------------------------------------------------------------------


def _relu_select(x: Array) -> Array:
    return jnp.where(x <= 0, jnp.maximum(x, 0), x)


@jax.custom_jvp
def _relu(x: Array) -> Array:
    return jnp.maximum(x, 0)


@_relu.defjvp
def _relu_jvp(primals, tangents):
    (x,), (t,) = primals, tangents
    y = _relu_select(x)
    return y, masked(y > 0, t)


@site("relu", like=jax.nn.relu)
def relu(x: ArrayLike) -> Array:
    r"""Rectified linear unit.

    .. math:: \mathrm{relu}(x) = \max(x, 0)

    Derivative: 1 for x > 0 and 0 for x <= 0, including x = 0 (the convention of jax.nn and
    PyTorch). The rule reads the output, so the backward pass keeps no copy of ``x``.
    Outputs are never negative; a unit fires when its output is > 0.

    Args:
      x: input array.

    Returns:
      An array of ``x``'s shape and dtype.

    Examples:
      >>> import jax, jax.numpy as jnp, relujax
      >>> relujax.relu(jnp.array([-1.0, 0.0, 2.0]))
      Array([0., 0., 2.], dtype=float32)
      >>> jax.grad(relujax.relu)(0.0)
      Array(0., dtype=float32, weak_type=True)
    """
    return _relu(x)


RELU = Activation(
    "relu", relu, nonnegative=True, sign_preserving=True, output_range=(0.0, math.inf),
    saturating=True, jax_nn="relu",
)  # fmt: skip


# --- capped relu / relu6 ----------------------------------------------------------------------


@jax.custom_jvp
def _capped(x: Array, cap: Array) -> Array:
    return jnp.where(x >= cap, jnp.minimum(x, cap), jnp.maximum(x, 0))


@_capped.defjvp
def _capped_jvp(primals, tangents):
    (x, cap), (t, _) = primals, tangents
    y = _capped(x, cap)
    return y, masked((y > 0) & (y < cap), t)


@site("relu6", like=jax.nn.relu6)
def relu6(x: ArrayLike) -> Array:
    r"""ReLU capped at 6.

    .. math:: \mathrm{relu6}(x) = \min(\max(x, 0), 6)

    Derivative: 1 for 0 < x < 6, else 0; 0 at both kinks x = 0 and x = 6 (jax.nn's and
    PyTorch's convention). Outputs lie in [0, 6]; never negative.

    Args:
      x: input array.

    Returns:
      An array of ``x``'s shape and dtype.

    Examples:
      >>> import jax, jax.numpy as jnp, relujax
      >>> relujax.relu6(jnp.array([-1.0, 3.0, 7.0]))
      Array([0., 3., 6.], dtype=float32)
      >>> jax.vmap(jax.grad(relujax.relu6))(jnp.array([0.0, 3.0, 6.0]))
      Array([0., 1., 0.], dtype=float32)
    """
    return _capped(x, 6)


RELU6 = Activation(
    "relu6", relu6, nonnegative=True, sign_preserving=True, output_range=(0.0, 6.0),
    saturating=True, saturation=Saturation(upper=6.0), jax_nn="relu6",
)  # fmt: skip


@site("capped_relu", like=lambda x, cap: jnp.minimum(jnp.maximum(x, 0), cap))
def _capped_relu(x, cap):
    return _capped(x, conform(cap, x))


_CAP = Param("cap", "the upper bound c", minimum=0.0, strict=True, scalar=True)


def capped_relu(x: ArrayLike, cap: ArrayLike = 6.0) -> Array:
    r"""ReLU capped at ``cap`` (ReLU-N; ``relu6`` is ``cap=6``).

    .. math:: f(x) = \min(\max(x, 0), c)

    Derivative: 1 for 0 < x < c, else 0; 0 at both kinks. Outputs lie in [0, c].
    ``cap`` is not differentiated.

    Args:
      x: input array.
      cap: the upper bound c, a finite scalar > 0.

    Returns:
      An array of ``x``'s shape and dtype.

    Examples:
      >>> import jax.numpy as jnp, relujax
      >>> relujax.capped_relu(jnp.array([-1.0, 0.5, 2.0]), cap=1.0)
      Array([0. , 0.5, 1. ], dtype=float32)
    """
    _CAP.check("capped_relu", cap)
    return _capped_relu(x, cap)


CAPPED_RELU = Activation(
    "capped_relu", capped_relu, params=(_CAP,), nonnegative=True, sign_preserving=True,
    output_range=(0.0, 6.0), saturating=True, saturation=Saturation(upper="cap"),
)  # fmt: skip


# --- shifted relu -----------------------------------------------------------------------------


def _shifted_select(x: Array, shift: Array) -> Array:
    return jnp.where(x <= shift, jnp.maximum(x, shift), x)


@jax.custom_jvp
def _shifted(x: Array, shift: Array) -> Array:
    return jnp.maximum(x, shift)


@_shifted.defjvp
def _shifted_jvp(primals, tangents):
    (x, shift), (t, _) = primals, tangents
    y = _shifted_select(x, shift)
    return y, masked(y > shift, t)


@site("shifted_relu", like=jnp.maximum)
def _shifted_relu(x, shift):
    return _shifted(x, conform(shift, x))


_SHIFT = Param("shift", "the floor s", scalar=True)


def shifted_relu(x: ArrayLike, shift: ArrayLike = -1.0) -> Array:
    r"""Shifted ReLU (SReLU of Clevert et al., 2016): a ReLU whose floor is ``shift``.

    .. math:: f(x) = \max(x, s)

    Derivative: 1 for x > s, 0 for x <= s, including x = s. Outputs can be negative when
    s < 0 (they are never below s). ``shift`` is not differentiated.

    Args:
      x: input array.
      shift: the floor s, a finite scalar.

    Returns:
      An array of ``x``'s shape and dtype.

    Examples:
      >>> import jax.numpy as jnp, relujax
      >>> relujax.shifted_relu(jnp.array([-3.0, -0.5, 2.0]))
      Array([-1. , -0.5,  2. ], dtype=float32)
    """
    _SHIFT.check("shifted_relu", shift)
    return _shifted_relu(x, shift)


SHIFTED_RELU = Activation(
    "shifted_relu", shifted_relu, params=(_SHIFT,), output_range=(-1.0, math.inf),
    saturating=True,
)  # fmt: skip


# --- squared relu -----------------------------------------------------------------------------


@jax.custom_jvp
def _squared(x: Array) -> Array:
    return jnp.where(x > 0, x * x, jnp.maximum(x, 0))


@tangent_map
def _squared_tangent(x: Array, t: Array) -> Array:
    # 2 max(x, 0) from x itself: finite wherever x is (2 sqrt(y) overflows with y = x^2), and
    # its derivative is 2 for x > 0, 0 for x <= 0 (sqrt(y) would lose it where y underflows).
    pos = x > 0
    return t * jnp.where(pos, 2 * x, jnp.zeros((), x.dtype)).astype(t.dtype)


@_squared.defjvp
def _squared_jvp(primals, tangents):
    (x,), (t,) = primals, tangents
    return _squared(x), _squared_tangent(x, t)


@site("squared_relu", like=lambda x: jnp.maximum(x, 0) ** 2)
def squared_relu(x: ArrayLike) -> Array:
    r"""Squared ReLU (So et al., 2021, "Primer").

    .. math:: f(x) = \max(x, 0)^2

    Derivative: 2 max(x, 0), computed from x (finite wherever x is, also where x^2
    overflows); 0 at x = 0 (no kink in the first derivative). Second derivative 2 for x > 0
    and 0 for x <= 0, including x = 0. Outputs are never negative.

    Args:
      x: input array.

    Returns:
      An array of ``x``'s shape and dtype.

    Examples:
      >>> import jax, jax.numpy as jnp, relujax
      >>> relujax.squared_relu(jnp.array([-1.0, 0.5, 3.0]))
      Array([0.  , 0.25, 9.  ], dtype=float32)
      >>> jax.grad(relujax.squared_relu)(3.0)
      Array(6., dtype=float32, weak_type=True)
    """
    return _squared(x)


# Not sign-preserving in floating point: x**2 underflows to 0 for 0 < x < 2.4e-4 in float16
# (1.1e-19 in float32), so relujax.analysis, counting firing on the output, saw such units
# silent although their pre-activation is > 0.
SQUARED_RELU = Activation(
    "squared_relu", squared_relu, nonnegative=True, sign_preserving=False,
    output_range=(0.0, math.inf), saturating=True,
)  # fmt: skip


# --- crelu ------------------------------------------------------------------------------------


@site("crelu", like=lambda x, axis: jax.nn.relu(x), static_argnames=("axis",))
def _crelu(x, axis):
    if x.ndim == 0:
        x = x[None]
    return jnp.concatenate([_relu(x), _relu(-x)], axis=axis)


def crelu(x: ArrayLike, *, axis: int = -1) -> Array:
    r"""Concatenated ReLU (Shang et al., 2016): ``[relu(x), relu(-x)]`` along ``axis``.

    Doubles the size of ``axis``; a scalar is treated as shape ``(1,)``. Derivatives follow
    :func:`relu` on each half (0 at x = 0 in both). Outputs are never negative; exactly one
    half fires for x != 0, so a CReLU unit cannot die.

    Args:
      x: input array.
      axis: the axis to concatenate along (a Python int).

    Returns:
      An array of ``x``'s dtype with ``axis`` twice as long.

    Examples:
      >>> import jax.numpy as jnp, relujax
      >>> relujax.crelu(jnp.array([-1.0, 0.0, 2.0]))
      Array([0., 0., 2., 1., 0., 0.], dtype=float32)
    """
    if not isinstance(axis, int) or isinstance(axis, bool):
        raise TypeError(f"crelu: axis must be a Python int, got {axis!r}.")
    ndim = max(jnp.ndim(x), 1)
    if not -ndim <= axis < ndim:
        raise ValueError(f"crelu: axis must be in [{-ndim}, {ndim}), got {axis}.")
    return _crelu(x, axis=axis)


CRELU = Activation("crelu", crelu, nonnegative=True, output_range=(0.0, math.inf), saturating=True)


# --- threshold --------------------------------------------------------------------------------


@jax.custom_jvp
def _threshold_core(x: Array, threshold: Array, value: Array) -> Array:
    return jnp.where(x <= threshold, value, x)


def _threshold_jvp(primals, tangents):
    (x, threshold, value), (tx, _, tv) = primals, tangents
    y = _threshold_core(x, threshold, value)
    above = x > threshold
    zero = jnp.zeros((), y.dtype)
    return y, tangent_sum(
        y,
        (tx, lambda t: masked(above, t)),
        (tv, lambda t: jnp.where(above, zero, broadcast(t, y.shape))),
    )


_threshold_core.defjvp(_threshold_jvp, symbolic_zeros=True)


@site("threshold", like=lambda x, threshold, value: jnp.where(x > threshold, x, value))
def _threshold(x, threshold, value):
    threshold, value = conform(threshold, x), conform(value, x)
    shape = jnp.broadcast_shapes(x.shape, threshold.shape, value.shape)
    return _threshold_core(
        broadcast(x, shape), broadcast(threshold, shape), broadcast(value, shape)
    )


_THRESHOLD = Param("threshold", "t, the input level at and below which v is output")
_VALUE = Param("value", "v, the replacement value", differentiable=True)


def threshold(x: ArrayLike, threshold: ArrayLike, value: ArrayLike) -> Array:
    r"""Threshold: ``x`` above ``threshold``, else ``value`` (PyTorch's ``Threshold``).

    .. math:: f(x) = x \text{ if } x > t \text{ else } v

    Derivative in x: 1 for x > t, 0 for x <= t, including x = t. Differentiable in ``value``
    (derivative 1 where x <= t); not in ``threshold``. Outputs can be negative (x or v).

    Args:
      x: input array.
      threshold: t, a finite number or array broadcastable to ``x``.
      value: v, the replacement value, a number or array broadcastable to ``x``.

    Returns:
      An array of the broadcast shape of ``x``, ``threshold`` and ``value``.

    Examples:
      >>> import jax.numpy as jnp, relujax
      >>> relujax.threshold(jnp.array([-1.0, 0.5, 2.0]), 1.0, -3.0)
      Array([-3., -3.,  2.], dtype=float32)
    """
    _THRESHOLD.check("threshold", threshold, x)
    _VALUE.check("threshold", value, x)
    _validation.same_shape_or_broadcastable(
        "threshold: value", jnp.shape(value), "threshold", jnp.shape(threshold)
    )
    return _threshold(x, threshold, value)


THRESHOLD = Activation("threshold", threshold, params=(_THRESHOLD, _VALUE), saturating=True)

DESCRIPTORS = (RELU, RELU6, CAPPED_RELU, SHIFTED_RELU, SQUARED_RELU, CRELU, THRESHOLD)
