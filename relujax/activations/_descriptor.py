"""What relujax knows about an activation, in one place: :class:`Activation` and :class:`Param`.

Each activation's file defines its function and, beside it, one :class:`Activation`. The
registry (:func:`relujax.activations.get`), the jaxpr site names, the sign tables of
:mod:`relujax.analysis` and the list of activations that need a module are all derived from
these descriptors (:mod:`relujax.activations._catalog`).
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable, Mapping
from typing import Any

import numpy as np

from relujax import _validation

__all__ = ["Activation", "Param", "Saturation"]


@dataclasses.dataclass(frozen=True)
class Param:
    """A numeric parameter of an activation and the values it accepts.

    Attributes:
      name: the keyword, as in the function's signature.
      doc: one line, for documentation.
      minimum: smallest accepted value (``-inf``: unbounded).
      maximum: largest accepted value.
      strict: whether ``minimum`` itself is excluded.
      nonzero: whether 0 is excluded.
      scalar: whether only a scalar is accepted (else an array broadcastable to ``x``).
      differentiable: whether derivatives with respect to it are defined.

    Examples:
      >>> from relujax.activations import Param
      >>> Param("alpha", "saturation", nonzero=True).accepted
      'a finite number, non-zero'
    """

    name: str
    doc: str = ""
    minimum: float = -math.inf
    maximum: float = math.inf
    strict: bool = False
    nonzero: bool = False
    scalar: bool = False
    differentiable: bool = False

    @property
    def accepted(self) -> str:
        """The accepted values, in words."""
        low = self.minimum if math.isfinite(self.minimum) else None
        high = self.maximum if math.isfinite(self.maximum) else None
        if low is not None and high is not None:
            text = f"in {'(' if self.strict else '['}{low}, {high}]"
        elif low is not None:
            text = f"{'>' if self.strict else '>='} {low}"
        elif high is not None:
            text = f"<= {high}"
        else:
            text = "a finite number"
        if self.nonzero:
            text += ", non-zero"
        return text + ("" if not self.scalar else " (a scalar)")

    def check(self, fn: str, value: Any, x: Any = None) -> None:
        """Raise if a concrete ``value`` is outside the domain, or its shape does not fit ``x``.

        Traced values are not checked (their shapes are: shapes are static).

        Raises:
          TypeError: ``value`` is not numeric.
          ValueError: a concrete entry is non-finite or outside the domain; a non-scalar
            where a scalar is needed; a shape that does not broadcast against ``x``'s.
        """
        label = f"{fn}: {self.name}"
        _validation.number_array(
            label,
            value,
            minimum=self.minimum,
            maximum=self.maximum,
            strict=self.strict,
            nonzero=self.nonzero,
        )
        shape = tuple(np.shape(value)) if not hasattr(value, "shape") else tuple(value.shape)
        if self.scalar and shape != ():
            raise ValueError(f"{label} must be a scalar, got shape {shape}.")
        if x is not None and shape:
            x_shape = tuple(np.shape(x)) if not hasattr(x, "shape") else tuple(x.shape)
            _validation.same_shape_or_broadcastable(label, shape, "x", x_shape)


@dataclasses.dataclass(frozen=True)
class Saturation:
    r"""Where a bounded activation is saturated: flat at a bound of its output.

    A sample of a unit is saturated when its pre-activation :math:`z` lies in a flat region
    (derivative exactly 0) in which the output sits at one of its bounds:

    .. math:: z \le \text{lower} \quad \text{or} \quad z \ge \text{upper}

    The thresholds are the kinks, and both inequalities include them because relujax's
    derivative is 0 at these kinks (see the table in :mod:`relujax.activations`). ``None``
    leaves that side out: relu6's lower flat region (z <= 0, output 0) is where a ReLU is
    silent, which the dead and dormant counts already measure, so relu6 saturates at its
    upper bound only; hard_tanh and hard_sigmoid, sigmoid-like, saturate at either bound. A
    bound that is a parameter of the activation (capped_relu's ``cap``) is given by the
    parameter's name: :mod:`relujax.analysis` reads its value from each call.

    Attributes:
      lower: z at and below which the output sits at its lowest value: a number, the name
        of the activation's parameter that holds it, or None.
      upper: z at and above which the output sits at its highest value, in the same forms.

    Examples:
      >>> import relujax
      >>> relujax.activations.get_descriptor("relu6").saturation
      Saturation(lower=None, upper=6.0)
      >>> relujax.activations.get_descriptor("capped_relu").saturation
      Saturation(lower=None, upper='cap')
    """

    lower: float | str | None = None
    upper: float | str | None = None

    def resolve(self, values: Mapping[str, Any]) -> tuple[Any, Any]:
        """``(lower, upper)`` with a parameter's name replaced by ``values[name]``.

        Args:
          values: the activation's parameter values by name (those that the bounds name).

        Returns:
          The two bounds: numbers, the given values (arrays, possibly traced) or None.

        Examples:
          >>> from relujax.activations import Saturation
          >>> Saturation(lower=-1.0, upper="cap").resolve({"cap": 2.5})
          (-1.0, 2.5)
        """
        lower, upper = (values[b] if isinstance(b, str) else b for b in (self.lower, self.upper))
        return lower, upper

    @property
    def params(self) -> tuple[str, ...]:
        """The names of the parameters that hold a bound, in the order lower, upper."""
        return tuple(b for b in (self.lower, self.upper) if isinstance(b, str))


@dataclasses.dataclass(frozen=True)
class Activation:
    """One activation function and its properties, from which relujax's tables are derived.

    The sign and range properties hold for the default parameters and for every parameter in
    the documented usual domain (slopes and alphas >= 0); they are what
    :mod:`relujax.analysis` reads to count firing and dead units.

    Attributes:
      name: canonical name: the public function ``relujax.<name>`` and its jaxpr site name.
      function: the public function.
      aliases: other accepted names (``swish`` for ``silu``).
      params: its numeric parameters and their domains.
      nonnegative: outputs are never negative, so ``E|h| = E[h]``.
      sign_preserving: the output is > 0 exactly where the input is > 0, so firing can be
        counted on the output.
      output_range: (lowest, highest) output for the default parameters.
      saturating: the derivative is exactly 0 on a half-line (relu below 0, hard_tanh
        outside [-1, 1]): units can saturate there and pass no gradient.
      saturation: for a bounded activation, where it is saturated (flat at a bound;
        :class:`Saturation`, whose bounds are numbers or parameter names: capped_relu's
        upper bound is its ``cap``); None otherwise.
      needs_module: a model needs a module per layer for it (a learned or random state).
      jax_nn: name of the jax.nn function with the same definition and defaults, if any.

    Examples:
      >>> import relujax
      >>> d = relujax.activations.get_descriptor("PReLU")
      >>> d.name, d.needs_module, [p.name for p in d.params]
      ('prelu', True, ['slope'])
    """

    name: str
    function: Callable[..., Any]
    aliases: tuple[str, ...] = ()
    params: tuple[Param, ...] = ()
    nonnegative: bool = False
    sign_preserving: bool = False
    output_range: tuple[float, float] = (-math.inf, math.inf)
    saturating: bool = False
    saturation: Saturation | None = None
    needs_module: bool = False
    jax_nn: str | None = None

    def __post_init__(self) -> None:
        if self.saturation is not None:
            names = [p.name for p in self.params]
            for b in self.saturation.params:
                if b not in names:
                    raise ValueError(
                        f"Activation {self.name!r}: saturation bound {b!r} is not one of its "
                        f"parameters {names}."
                    )

    def param(self, name: str) -> Param:
        """The parameter called ``name``."""
        for p in self.params:
            if p.name == name:
                return p
        raise KeyError(name)
