"""ReDo's dormancy score: the one definition used by diagnose, the sweeps and the remedies."""

from __future__ import annotations

import jax.numpy as jnp
from jax import Array
from jax.typing import ArrayLike

from relujax import _validation


def dormancy_score(abs_mean: ArrayLike) -> Array:
    r"""ReDo's dormancy score of every unit of a layer (Sokar et al. 2023, eq. 1).

    .. math:: s_i = \frac{E|h_i|}{\frac{1}{H'}\sum_{k} E|h_k|}

    with :math:`E|h_i|` the mean absolute activation of unit :math:`i` over the data (and
    the spatial positions, for a channel), and the mean taken over the :math:`H'` units of
    the layer that have a finite :math:`E|h|`.

    - A unit without finite samples (:math:`E|h|` is NaN: it saw nothing, or only NaN and
      inf) has score NaN: it is not dormant, and it is left out of the layer mean. Such
      units are counted as non-finite by :func:`diagnose`, never as dormant by zero.
    - A layer whose every finite :math:`E|h_k|` is 0 has score 0 for those units (all
      dormant at every :math:`\tau \ge 0`).

    Args:
      abs_mean: :math:`E|h|` per unit, shape ``(..., units)`` (leading axes, e.g. of
        ``vmap``-ed models, are separate layers). A NumPy or JAX array; works under ``jit``.

    Returns:
      A float array of ``abs_mean``'s shape (at least float32).

    Examples:
      >>> import jax.numpy as jnp
      >>> from relujax.analysis import dormancy_score
      >>> dormancy_score(jnp.array([0.0, 0.5, 1.5, jnp.nan]))  # mean of the finite ones: 2/3
      Array([0.  , 0.75, 2.25,  nan], dtype=float32)
    """
    a = jnp.asarray(abs_mean)
    a = a.astype(jnp.promote_types(a.dtype, jnp.float32))
    valid = jnp.isfinite(a)
    values = jnp.where(valid, a, 0.0)
    n = jnp.sum(valid, axis=-1, keepdims=True)
    mean = jnp.sum(values, axis=-1, keepdims=True) / jnp.maximum(n, 1)
    positive = mean > 0
    score = jnp.where(positive, values / jnp.where(positive, mean, 1.0), 0.0)
    return jnp.where(valid, score, jnp.nan)


def dormant(abs_mean: ArrayLike, tau: ArrayLike) -> Array:
    r"""ReDo's :math:`\tau`-dormant units: :math:`s_i \le \tau` (see :func:`dormancy_score`).

    Units without finite samples (score NaN) are never dormant. With ``tau=0`` the dormant
    units are those with :math:`E|h_i| = 0`: for the ReLUs, exactly the dead units.

    Args:
      abs_mean: :math:`E|h|` per unit, shape ``(..., units)``.
      tau: the threshold, a finite number >= 0 (ReDo uses 0 to 0.1); may be traced (e.g.
        one per ``vmap``-ed configuration), and then broadcasts against the scores.

    Returns:
      A boolean array of ``abs_mean``'s shape.

    Raises:
      TypeError, ValueError: for a ``tau`` that is not a finite number >= 0.

    Examples:
      >>> import jax.numpy as jnp
      >>> from relujax.analysis import dormant
      >>> dormant(jnp.array([0.0, 0.05, 1.0, 2.95, jnp.nan]), tau=0.1)  # mean 1
      Array([ True,  True, False, False, False], dtype=bool)
    """
    _validation.number_array("dormant: tau", tau, minimum=0.0)  # checked when concrete
    score = dormancy_score(abs_mean)
    return jnp.isfinite(score) & (score <= tau)
