"""Look activations up by name: :func:`get_activation` and :func:`activation_names`."""

from __future__ import annotations

import difflib
import functools
import inspect
from collections.abc import Callable

import jax
import jax.numpy as jnp
from jax import Array

from relujax.activations import _elu, _hard, _leaky, _relu, _smooth

_REGISTRY: dict[str, Callable[..., Array]] = {
    "relu": _relu.relu,
    "relu6": _relu.relu6,
    "capped_relu": _relu.capped_relu,
    "shifted_relu": _relu.shifted_relu,
    "squared_relu": _relu.squared_relu,
    "crelu": _relu.crelu,
    "threshold": _relu.threshold,
    "leaky_relu": _leaky.leaky_relu,
    "prelu": _leaky.prelu,
    "rrelu": _leaky.rrelu,
    "elu": _elu.elu,
    "selu": _elu.selu,
    "celu": _elu.celu,
    "hard_tanh": _hard.hard_tanh,
    "hard_sigmoid": _hard.hard_sigmoid,
    "hard_swish": _hard.hard_swish,
    "hard_silu": _hard.hard_silu,
    "gelu": _smooth.gelu,
    "silu": _smooth.silu,
    "swish": _smooth.swish,
    "mish": _smooth.mish,
    "softplus": _smooth.softplus,
}


def activation_names() -> tuple[str, ...]:
    """Names accepted by :func:`get_activation`, aliases included, sorted.

    Returns:
      A sorted tuple of names; each is also ``relujax.<name>``.

    Examples:
      >>> import relujax
      >>> names = relujax.activation_names()
      >>> "leaky_relu" in names and "swish" in names
      True
    """
    return tuple(sorted(_REGISTRY))


def get_activation(name: str, **params) -> Callable[[Array], Array]:
    """The activation called ``name`` with ``params`` bound, as a function of ``x`` only.

    Parameters given as Python numbers are validated now (the function is traced abstractly
    on a scalar), so a bad value fails here rather than inside a model.

    Args:
      name: one of :func:`activation_names`.
      **params: keyword arguments of that activation (e.g. ``negative_slope=0.1``).

    Returns:
      A callable ``f(x) -> Array``: ``relujax.<name>`` itself without parameters, else a
      ``functools.partial`` of it.

    Raises:
      ValueError: unknown ``name`` (the message lists the closest valid names), a parameter
        the activation does not take, a missing required one, or an invalid value.

    Examples:
      >>> import jax.numpy as jnp, relujax
      >>> f = relujax.get_activation("leaky_relu", negative_slope=0.1)
      >>> f(jnp.array([-1.0, 2.0]))
      Array([-0.1,  2. ], dtype=float32)
      >>> relujax.get_activation("leaky_rleu")
      Traceback (most recent call last):
      ...
      ValueError: unknown activation 'leaky_rleu'; did you mean 'leaky_relu'? ...
    """
    if not isinstance(name, str) or name not in _REGISTRY:
        close = difflib.get_close_matches(str(name), _REGISTRY, n=3, cutoff=0.5)
        hint = f"did you mean {' or '.join(repr(c) for c in close)}? " if close else ""
        raise ValueError(
            f"unknown activation {name!r}; {hint}valid names: {', '.join(activation_names())}."
        )
    fn = _REGISTRY[name]
    signature = inspect.signature(fn)
    accepted = [p for p in signature.parameters if p != "x"]
    unknown = sorted(set(params) - set(accepted))
    if unknown:
        raise ValueError(
            f"{name} takes no parameter {', '.join(map(repr, unknown))}; it accepts: "
            f"{', '.join(accepted) or 'none'}."
        )
    missing = [
        p.name
        for p in signature.parameters.values()
        if p.name != "x" and p.default is inspect.Parameter.empty and p.name not in params
    ]
    if missing:
        raise ValueError(f"{name} needs parameter(s) {', '.join(missing)}.")
    if not params:
        return fn
    bound = functools.partial(fn, **params)
    # Runs the function's eager checks and traces it abstractly: no computation, no compile.
    jax.eval_shape(bound, jax.ShapeDtypeStruct((), jnp.float32))
    return bound
