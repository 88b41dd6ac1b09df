"""Remedies as per-step interventions of a compiled training loop: ``get(name, **params)``.

An :class:`Intervention` is ``(name, init, update, needs_activations)``; ``update(state,
params, opt_state, key, step, activations) -> (params, opt_state, state)`` is pure and traces
once. See :func:`get` for the remedies and their hyperparameters.
"""

from relujax.remedies._intervention import Intervention as Intervention
from relujax.remedies._intervention import get as get
from relujax.remedies._intervention import names as names

__all__ = ["Intervention", "get", "names"]
