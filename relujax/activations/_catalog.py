"""Every activation's descriptor, and everything derived from them.

The registry (:func:`get`, :func:`names`), the jaxpr site names and the property sets below
are computed from the :class:`~relujax.activations.Activation` descriptors defined beside the
functions; nothing here lists an activation by hand.
"""

from __future__ import annotations

import functools
import inspect
from collections.abc import Callable

import jax
import jax.numpy as jnp
from jax import Array
from jax.typing import ArrayLike

from relujax._registry import Registry
from relujax.activations import _elu, _hard, _leaky, _relu, _smooth
from relujax.activations._descriptor import Activation

#: Every descriptor, in documentation order (one family file after another).
DESCRIPTORS: tuple[Activation, ...] = (
    *_relu.DESCRIPTORS,
    *_leaky.DESCRIPTORS,
    *_elu.DESCRIPTORS,
    *_hard.DESCRIPTORS,
    *_smooth.DESCRIPTORS,
)

REGISTRY: Registry[Activation] = Registry(
    "activation",
    {d.name: d for d in DESCRIPTORS},
    {alias: d.name for d in DESCRIPTORS for alias in d.aliases},
)


def _names_where(prop: Callable[[Activation], bool]) -> frozenset[str]:
    return frozenset(name for d in DESCRIPTORS if prop(d) for name in (d.name, *d.aliases))


SITE_NAMES = frozenset(d.name for d in DESCRIPTORS)
NONNEGATIVE = _names_where(lambda d: d.nonnegative)
SIGN_PRESERVING = _names_where(lambda d: d.sign_preserving)
SATURATING = _names_where(lambda d: d.saturating)
MODULE_ACTIVATIONS = _names_where(lambda d: d.needs_module)


def names() -> tuple[str, ...]:
    """Names accepted by :func:`get`, aliases included, sorted.

    Returns:
      A sorted tuple of names; each is also ``relujax.<name>``.

    Examples:
      >>> import relujax
      >>> names = relujax.activations.names()
      >>> "leaky_relu" in names and "swish" in names
      True
    """
    return REGISTRY.names()


def get_descriptor(name: str) -> Activation:
    """The :class:`~relujax.activations.Activation` descriptor of ``name`` (any spelling).

    Raises:
      TypeError: ``name`` is not a string.
      ValueError: unknown name; the message lists the closest and all accepted names.

    Examples:
      >>> import relujax
      >>> relujax.activations.get_descriptor("Leaky-ReLU").sign_preserving
      True
    """
    return REGISTRY.entry(name, param="activation")


def get(name: str, **params) -> Callable[[ArrayLike], Array]:
    """The activation called ``name`` with ``params`` bound, as a function of ``x`` only.

    Names are normalized (``"PReLU"``, ``" Leaky-ReLU "`` work). Parameters are validated
    now against the descriptor's domains (the function is also traced abstractly on a
    scalar), so a bad value fails here rather than inside a model.

    Args:
      name: one of :func:`names`, any case, ``-`` or space for ``_``.
      **params: keyword arguments of that activation (e.g. ``negative_slope=0.1``).

    Returns:
      A callable ``f(x) -> Array``: ``relujax.<name>`` itself without parameters, else a
      ``functools.partial`` of it.

    Raises:
      TypeError: ``name`` is not a string.
      ValueError: unknown ``name`` (the message lists the closest valid names), a parameter
        the activation does not take, a missing required one, or an invalid value.

    Examples:
      >>> import jax.numpy as jnp, relujax
      >>> f = relujax.activations.get("Leaky_ReLU", negative_slope=0.1)
      >>> f(jnp.array([-1.0, 2.0]))
      Array([-0.1,  2. ], dtype=float32)
      >>> relujax.activations.get("leaky_rleu")
      Traceback (most recent call last):
      ...
      ValueError: unknown activation 'leaky_rleu' for activation; did you mean 'leaky_relu'? ...
    """
    descriptor = get_descriptor(name)
    fn = descriptor.function
    signature = inspect.signature(fn)
    accepted = [p for p in signature.parameters if p != "x"]
    unknown = sorted(set(params) - set(accepted))
    if unknown:
        raise ValueError(
            f"{descriptor.name} takes no parameter {', '.join(map(repr, unknown))}; it "
            f"accepts: {', '.join(accepted) or 'none'}."
        )
    missing = [
        p.name
        for p in signature.parameters.values()
        if p.name != "x" and p.default is inspect.Parameter.empty and p.name not in params
    ]
    if missing:
        raise ValueError(f"{descriptor.name} needs parameter(s) {', '.join(missing)}.")
    if not params:
        return fn
    bound = functools.partial(fn, **params)
    # Runs the function's eager checks and traces it abstractly: no computation, no compile.
    jax.eval_shape(bound, jax.ShapeDtypeStruct((), jnp.float32))
    return bound


def activation_names() -> tuple[str, ...]:
    """Names accepted by :func:`get_activation`: the same as :func:`names`.

    Examples:
      >>> import relujax
      >>> "prelu" in relujax.activation_names()
      True
    """
    return names()


def get_activation(name: str, **params) -> Callable[[ArrayLike], Array]:
    """:func:`relujax.activations.get` under its top-level name (``relujax.get_activation``).

    Examples:
      >>> import jax.numpy as jnp, relujax
      >>> relujax.get_activation("elu", alpha=0.5)(jnp.array([2.0]))
      Array([2.], dtype=float32)
    """
    return get(name, **params)
