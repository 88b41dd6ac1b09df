"""When a periodic remedy fires: a traced condition, so one compiled step serves every step."""

from __future__ import annotations

import jax.numpy as jnp
from jax import Array
from jax.typing import ArrayLike

from relujax import _validation


def due(step: ArrayLike, every: ArrayLike) -> Array:
    r"""Whether a remedy applied every ``every`` steps fires at ``step``.

    .. math:: \text{due} = (N > 0) \wedge (t > 0) \wedge (t \bmod N = 0)

    with :math:`t` = ``step``, the number of optimizer updates made so far (1 after the first),
    so the remedy acts after updates :math:`N, 2N, \dots`; :math:`N \le 0` never fires. Both
    may be traced (a ``lax.scan`` counter; a vmapped per-configuration :math:`N`).

    Args:
      step: the number of updates made so far (int).
      every: the period :math:`N` (an int; a float, e.g. a traced per-configuration
        hyperparameter, is truncated to one); 0 disables the remedy.

    Returns:
      A boolean array (the broadcast shape of ``step`` and ``every``).

    Examples:
      >>> import jax.numpy as jnp
      >>> from relujax import remedies
      >>> remedies.due(jnp.arange(7), 3)
      Array([False, False, False,  True, False, False,  True], dtype=bool)
    """
    _validation.number_array("due: every", every)
    _validation.number_array("due: step", step, minimum=0)
    step, every = jnp.asarray(step), jnp.asarray(every)
    # A period given as a float (a vmapped per-configuration hyperparameter) counts whole
    # steps; so does a float step.
    step = step if jnp.issubdtype(step.dtype, jnp.integer) else step.astype(jnp.int32)
    every = every if jnp.issubdtype(every.dtype, jnp.integer) else every.astype(jnp.int32)
    return (every > 0) & (step > 0) & (step % jnp.maximum(every, 1) == 0)
