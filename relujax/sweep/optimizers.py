"""The sweep's optimizers by name, read like every relujax registry: ``get`` and ``names``.

=============== ==================================================================
name            call (defaults)
=============== ==================================================================
sgd             ``optax.sgd(lr)``
momentum        ``optax.sgd(lr, momentum=0.9, nesterov=False)``
adam            ``optax.adam(lr, b1=0.9, b2=0.999, eps=1e-8)``
adamw           ``optax.adamw(lr, b1=0.9, b2=0.999, eps=1e-8, weight_decay=1e-4)``
adam_per_param  ``relujax.remedies.adam(lr, ...)``: a step count per parameter entry,
                which recycling remedies (ReDo, continual backprop) reset
adamw_per_param ``relujax.remedies.adamw(lr, ...)``
=============== ==================================================================
"""

from __future__ import annotations

from typing import Any

from relujax.sweep._spec import _OPTIMIZERS, OptimizerSpec

__all__ = ["get", "names"]


def names() -> tuple[str, ...]:
    """The optimizer names :func:`get` accepts, sorted.

    Returns:
      A sorted tuple of names.

    Examples:
      >>> from relujax import sweep
      >>> sweep.optimizers.names()
      ('adam', 'adam_per_param', 'adamw', 'adamw_per_param', 'momentum', 'sgd')
    """
    return _OPTIMIZERS.names()


def get(name: str, /, **hyperparameters: Any) -> OptimizerSpec:
    """The optimizer ``name`` with ``hyperparameters``: ``OptimizerSpec(name, **hyperparameters)``.

    Names are normalized as everywhere in relujax (``" AdamW "`` is ``"adamw"``).

    Args:
      name: one of :func:`names`.
      **hyperparameters: keywords of that Optax function (finite Python numbers or bools).

    Returns:
      An :class:`relujax.sweep.OptimizerSpec`.

    Raises:
      TypeError: ``name`` is not a string, or a hyperparameter is not a number.
      ValueError: unknown name or hyperparameter, or a non-finite value.

    Examples:
      >>> from relujax import sweep
      >>> sweep.optimizers.get("AdamW", weight_decay=0.01)
      OptimizerSpec('adamw', b1=0.9, b2=0.999, eps=1e-08, weight_decay=0.01)
    """
    return OptimizerSpec(name, **hyperparameters)
