"""ReLU and its piecewise-linear relatives whose derivative is read off the output.

Each derivative rule reads the primal output ``y`` (which the next layer keeps for its own
backward pass) instead of the input ``x``: the backward pass keeps a boolean mask at most, and
after XLA's fusion usually nothing at all.

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

import jax
import jax.numpy as jnp
from jax import Array
from jax.typing import ArrayLike

from relujax.activations import _checks
from relujax.activations._site import broadcast, is_zero, masked, site, tangent_map

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


@site("relu")
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


# --- capped relu / relu6 ----------------------------------------------------------------------


@jax.custom_jvp
def _capped(x: Array, cap: Array) -> Array:
    return jnp.where(x >= cap, jnp.minimum(x, cap), jnp.maximum(x, 0))


@_capped.defjvp
def _capped_jvp(primals, tangents):
    (x, cap), (t, _) = primals, tangents
    y = _capped(x, cap)
    return y, masked((y > 0) & (y < cap), t)


@site("relu6")
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


@site("capped_relu")
def _capped_relu(x, cap):
    return _capped(x, jnp.asarray(cap, jnp.result_type(x)))


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
    _checks.check("capped_relu", "cap", cap, low=0.0, low_open=True)
    _checks.check_scalar("capped_relu", "cap", cap)
    return _capped_relu(x, cap)


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


@site("shifted_relu")
def _shifted_relu(x, shift):
    return _shifted(x, jnp.asarray(shift, jnp.result_type(x)))


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
    _checks.check("shifted_relu", "shift", shift)
    _checks.check_scalar("shifted_relu", "shift", shift)
    return _shifted_relu(x, shift)


# --- squared relu -----------------------------------------------------------------------------


@jax.custom_jvp
def _squared(x: Array) -> Array:
    return jnp.where(x > 0, x * x, jnp.maximum(x, 0))


@tangent_map
def _squared_tangent(y: Array, t: Array) -> Array:
    # d/dx relu(x)^2 = 2 relu(x) = 2 sqrt(y); the inner where keeps sqrt'(0) = inf out of
    # second derivatives.
    pos = y > 0
    slope = jnp.where(pos, 2 * jnp.sqrt(jnp.where(pos, y, 1)), 0)
    return t * slope.astype(t.dtype)


@_squared.defjvp
def _squared_jvp(primals, tangents):
    (x,), (t,) = primals, tangents
    y = _squared(x)
    return y, _squared_tangent(y, t)


@site("squared_relu")
def squared_relu(x: ArrayLike) -> Array:
    r"""Squared ReLU (So et al., 2021, "Primer").

    .. math:: f(x) = \max(x, 0)^2

    Derivative: 2 max(x, 0), computed as 2 sqrt(f(x)) from the output; 0 at x = 0 (no kink
    in the first derivative). Outputs are never negative.

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


# --- crelu ------------------------------------------------------------------------------------


@site("crelu", static_argnames=("axis",))
def _crelu(x, axis):
    x = jnp.asarray(x)
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
    return _crelu(x, axis)


# --- threshold --------------------------------------------------------------------------------


@jax.custom_jvp
def _threshold_core(x: Array, threshold: Array, value: Array) -> Array:
    return jnp.where(x <= threshold, value, x)


def _threshold_jvp(primals, tangents):
    (x, threshold, value), (tx, _, tv) = primals, tangents
    y = _threshold_core(x, threshold, value)
    above = x > threshold
    out = jnp.zeros_like(y)
    if not is_zero(tx):
        out = masked(above, tx)
    if not is_zero(tv):
        out = out + jnp.where(above, jnp.zeros((), tv.dtype), broadcast(tv, y.shape))
    return y, out


_threshold_core.defjvp(_threshold_jvp, symbolic_zeros=True)


@site("threshold")
def _threshold(x, threshold, value):
    x = jnp.asarray(x)
    dtype = jnp.result_type(x, value)
    threshold = jnp.asarray(threshold, jnp.result_type(x))
    shape = jnp.broadcast_shapes(x.shape, jnp.shape(threshold), jnp.shape(value))
    x = broadcast(x, shape).astype(dtype)
    return _threshold_core(x, broadcast(threshold, shape), broadcast(jnp.asarray(value), shape))


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
    _checks.check("threshold", "threshold", threshold)
    _checks.check("threshold", "value", value)
    return _threshold(x, threshold, value)
