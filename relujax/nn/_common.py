"""What the NNX modules (:mod:`relujax.nn`) and the Linen ones (:mod:`relujax.linen`) share.

The one interface between the two front ends: :mod:`relujax.linen` imports this module and
nothing else of :mod:`relujax.nn`. It holds every fact about the networks once:

- the argument checks of ``MLP``, ``CNN``, ``PReLU`` and ``RReLU`` (with
  :mod:`relujax._validation`: wrong type ``TypeError``, wrong value ``ValueError``, the message
  names the module and the parameter);
- the resolution of ``activation=``, ``kernel_init=`` and ``bias_init=``;
- the layer plan (kernel shapes in order) and the forward pass, written once over callables
  ``layer(i, x)`` and ``activation(i, x)`` that each front end supplies;
- the PReLU and RReLU computations around :func:`relujax.prelu` / :func:`relujax.rrelu`.
"""

from __future__ import annotations

import dataclasses
import itertools
from collections.abc import Callable, Sequence
from typing import Any

import jax.numpy as jnp
from flax import nnx
from jax import Array
from jax.typing import ArrayLike, DTypeLike

from relujax import _validation
from relujax.activations import prelu, rrelu
from relujax.nn import _resolve

POOLS = ("max", "avg", None)

Apply = Callable[[int, Array], Array]


# -- argument checks ---------------------------------------------------------------------


def positive_int(name: str, value: Any) -> int:
    """``value`` as an int >= 1 (TypeError for a non-int, ValueError below 1)."""
    return _validation.integer(name, value, minimum=1)


def widths(name: str, value: Any) -> tuple[int, ...]:
    """A sequence of ints >= 1 as a tuple (may be empty)."""
    if isinstance(value, (str, bytes)) or not isinstance(value, Sequence):
        raise TypeError(f"{name} must be a sequence of ints >= 1, got {value!r}.")
    return tuple(positive_int(f"{name}[{i}]", v) for i, v in enumerate(value))


def check_spatial_dims(name: str, value: Any) -> int:
    """1 (signals), 2 (images) or 3 (volumes)."""
    return _validation.integer(name, value, minimum=1, maximum=3)


def check_kernel_size(name: str, value: Any, dims: int) -> tuple[int, ...]:
    """An int or ``dims`` ints >= 1, as a tuple of ``dims`` ints."""
    if isinstance(value, Sequence) and not isinstance(value, (str, bytes)):
        out = tuple(positive_int(f"{name}[{i}]", k) for i, k in enumerate(value))
        if len(out) != dims:
            raise ValueError(f"{name} must have spatial_dims={dims} entries, got {value!r}.")
        return out
    return (positive_int(name, value),) * dims


def nonnegative_slope(name: str, value: Any) -> float:
    """A finite initial slope >= 0."""
    return _validation.real(name, value, minimum=0.0)


def slope_bounds(owner: str, lower: Any, upper: Any) -> tuple[float, float]:
    """RReLU bounds: finite, ``0 <= lower <= upper``."""
    lo = _validation.real(f"{owner}: lower", lower, minimum=0.0)
    hi = _validation.real(f"{owner}: upper", upper, minimum=0.0)
    _validation.order(f"{owner}: lower", lo, f"{owner}: upper", hi)
    return lo, hi


# -- activation and initializer arguments ------------------------------------------------


@dataclasses.dataclass(frozen=True)
class ActivationSpec:
    """The ``activation=`` argument resolved: a module per layer, or one shared function.

    Attributes:
      module: ``"prelu"`` or ``"rrelu"`` when each hidden layer gets its own module, else None.
      fn: the shared function when ``module`` is None.
    """

    module: str | None
    fn: Callable[..., Any] | None

    @classmethod
    def resolve(cls, owner: str, spec: Any) -> ActivationSpec:
        module = _resolve.module_activation_name(spec)
        if module is not None:
            return cls(module, None)
        try:
            return cls(None, _resolve.activation(spec))
        except (TypeError, ValueError) as e:
            raise type(e)(f"{owner}: {e}") from None


@dataclasses.dataclass(frozen=True)
class InitSpec:
    """``kernel_init`` / ``bias_init`` resolved; ``bias`` is None for a paired (RAI) kernel."""

    kernel: Callable[..., Any]
    bias: Callable[..., Any] | None

    @classmethod
    def resolve(cls, owner: str, kernel_init: Any, bias_init: Any) -> InitSpec:
        try:
            return cls(*_resolve.kernel_and_bias_init(kernel_init, bias_init))
        except (TypeError, ValueError) as e:
            raise type(e)(f"{owner}: {e}") from None

    @property
    def paired(self) -> bool:
        return self.bias is None

    def pair(self, key: Array, kernel_shape: tuple[int, ...], dtype: DTypeLike) -> tuple:
        """One joint ``(kernel, bias)`` draw of a paired initializer."""
        return self.kernel.pair(key, kernel_shape, dtype)  # type: ignore[attr-defined]


def check_rngs(owner: str, rngs: Any) -> nnx.Rngs:
    """``rngs`` if it is an ``nnx.Rngs``, else a TypeError saying how to make one."""
    if isinstance(rngs, nnx.Rngs):
        return rngs
    raise TypeError(
        f"{owner}: rngs must be an nnx.Rngs (e.g. rngs=nnx.Rngs(0)) to draw the parameters, "
        f"got {rngs!r}."
    )


# -- networks ----------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class MLPPlan:
    """The checked sizes of an ``MLP`` and its forward pass (static: ints only).

    .. math:: h_0 = x, \\quad h_{i+1} = \\sigma_i(h_i W_i + b_i) \\; (i < L), \\quad
        y = h_L W_L + b_L
    """

    in_features: int
    hidden: tuple[int, ...]
    out_features: int

    @classmethod
    def build(cls, in_features: Any, hidden: Any, out_features: Any) -> MLPPlan:
        return cls(
            positive_int("MLP: in_features", in_features),
            widths("MLP: hidden", hidden),
            positive_int("MLP: out_features", out_features),
        )

    @property
    def kernel_shapes(self) -> tuple[tuple[int, ...], ...]:
        """``(fan_in, fan_out)`` of every layer, the output layer last."""
        sizes = (self.in_features, *self.hidden, self.out_features)
        return tuple(itertools.pairwise(sizes))

    @property
    def activation_widths(self) -> tuple[int, ...]:
        """The width of each activation (one per hidden layer)."""
        return self.hidden

    def __call__(self, x: ArrayLike, layer: Apply, activation: Apply) -> Array:
        """The forward pass: ``activation(i, layer(i, x))`` per hidden layer, then the output."""
        x = jnp.asarray(x)
        if x.ndim == 0 or x.shape[-1] != self.in_features:
            raise ValueError(
                f"MLP(in_features={self.in_features}) expects inputs of shape "
                f"(..., {self.in_features}), got {x.shape}."
            )
        for i in range(len(self.hidden)):
            x = activation(i, layer(i, x))
        return layer(len(self.hidden), x)


@dataclasses.dataclass(frozen=True)
class CNNPlan:
    """The checked sizes of a ``CNN`` and its forward pass (static: ints and strings only).

    ``(conv -> activation -> pool)`` per entry of ``features`` (SAME padding, stride 1),
    global average pooling over the spatial axes, ``(dense -> activation)`` per entry of
    ``hidden``, then a dense output layer.
    """

    in_features: int
    features: tuple[int, ...]
    out_features: int
    hidden: tuple[int, ...]
    spatial_dims: int
    kernel_size: tuple[int, ...]
    pool: str | None
    pool_size: int

    @classmethod
    def build(
        cls,
        in_features: Any,
        features: Any,
        out_features: Any,
        *,
        hidden: Any,
        spatial_dims: Any,
        kernel_size: Any,
        pool: Any,
        pool_size: Any,
    ) -> CNNPlan:
        feats = widths("CNN: features", features)
        if not feats:
            raise ValueError("CNN: features must name at least one conv block; use MLP otherwise.")
        dims = check_spatial_dims("CNN: spatial_dims", spatial_dims)
        return cls(
            positive_int("CNN: in_features", in_features),
            feats,
            positive_int("CNN: out_features", out_features),
            widths("CNN: hidden", hidden),
            dims,
            check_kernel_size("CNN: kernel_size", kernel_size, dims),
            _validation.choice("CNN: pool", pool, POOLS),
            positive_int("CNN: pool_size", pool_size),
        )

    @property
    def kernel_shapes(self) -> tuple[tuple[int, ...], ...]:
        """Conv kernels ``(*kernel_size, C_in, C_out)``, then dense ``(fan_in, fan_out)``."""
        convs = tuple(
            (*self.kernel_size, c_in, c_out)
            for c_in, c_out in itertools.pairwise((self.in_features, *self.features))
        )
        sizes = (self.features[-1], *self.hidden, self.out_features)
        return convs + tuple(itertools.pairwise(sizes))

    @property
    def activation_widths(self) -> tuple[int, ...]:
        """The width of each activation: conv channels, then dense widths."""
        return (*self.features, *self.hidden)

    def pool_layer(self, x: Array) -> Array:
        """Max / average pooling with window = stride = ``pool_size`` and SAME padding."""
        if self.pool is None:
            return x
        window = (self.pool_size,) * self.spatial_dims
        if self.pool == "max":
            return nnx.max_pool(x, window, strides=window, padding="SAME")
        return nnx.avg_pool(x, window, strides=window, padding="SAME", count_include_pad=False)

    def __call__(self, x: ArrayLike, layer: Apply, activation: Apply) -> Array:
        """The forward pass over ``x`` of shape ``(N, *spatial, in_features)``."""
        x = jnp.asarray(x)
        if x.ndim < self.spatial_dims + 2 or x.shape[-1] != self.in_features:
            axes = ("L",) if self.spatial_dims == 1 else ("H", "W", "D")[: self.spatial_dims]
            raise ValueError(
                f"CNN(in_features={self.in_features}, spatial_dims={self.spatial_dims}) "
                f"expects inputs of shape (N, {', '.join(axes)}, {self.in_features}), "
                f"got {x.shape}."
            )
        n_conv = len(self.features)
        for i in range(n_conv):
            x = self.pool_layer(activation(i, layer(i, x)))
        x = jnp.mean(x, axis=tuple(range(-1 - self.spatial_dims, -1)))
        for i in range(n_conv, n_conv + len(self.hidden)):
            x = activation(i, layer(i, x))
        return layer(n_conv + len(self.hidden), x)


# -- activation modules ------------------------------------------------------------------


def prelu_shape(owner: str, num_features: Any) -> tuple[int, ...]:
    """``()`` for one shared slope, else ``(num_features,)``."""
    if num_features is None:
        return ()
    return (positive_int(f"{owner}: num_features", num_features),)


def apply_prelu(x: ArrayLike, slope: Array, shape: tuple[int, ...], dtype: Any) -> Array:
    """``prelu(x, slope)`` in ``dtype`` (None: the input's inexact dtype, else float32)."""
    x = jnp.asarray(x)
    if shape and (x.ndim == 0 or x.shape[-1] != shape[0]):
        raise ValueError(
            f"PReLU(num_features={shape[0]}) expects inputs whose last axis has size "
            f"{shape[0]}, got shape {x.shape}."
        )
    if dtype is None:
        dtype = x.dtype if jnp.issubdtype(x.dtype, jnp.inexact) else jnp.float32
    return prelu(x.astype(dtype), slope.astype(dtype))


def apply_rrelu(x: ArrayLike, key: Array | None, lower: float, upper: float, dtype: Any) -> Array:
    """``rrelu(x, key, lower, upper)`` (``key`` None: the evaluation slope), in ``dtype``."""
    x = jnp.asarray(x)
    if dtype is not None:
        x = x.astype(dtype)
    if key is not None:
        key = _validation.key("RReLU: key", key)
    return rrelu(x, key, lower, upper)
