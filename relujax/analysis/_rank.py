"""Ranks of a feature matrix: effective rank and the 99% approximate rank."""

from __future__ import annotations

import jax.numpy as jnp
from jax import Array
from jax.typing import ArrayLike

from relujax import _validation


def _singular_values(features: ArrayLike, fn: str) -> Array:
    f = jnp.asarray(features)
    if f.ndim != 2:
        raise ValueError(f"{fn}: features must be a 2-D (samples, units) matrix, got {f.shape}.")
    if not jnp.issubdtype(f.dtype, jnp.inexact):
        f = f.astype(jnp.float32)
    return jnp.linalg.svd(f, compute_uv=False)


def effective_rank(features: ArrayLike) -> Array:
    r"""Effective rank of a feature matrix (Roy and Vetterli 2007).

    With singular values :math:`\sigma_1 \ge \dots \ge \sigma_k` of the ``(samples, units)``
    matrix and :math:`p_i = \sigma_i / \sum_j \sigma_j`,

    .. math:: \operatorname{erank} = \exp\Big(-\sum_i p_i \log p_i\Big) \in [1, k]

    (:math:`0 \log 0 = 0`). It is 1 for a rank-one matrix and k when all singular values are
    equal; the zero matrix has effective rank 0. The matrix is not centered. Differentiable
    where the singular values are distinct and non-zero.

    Args:
      features: ``(samples, units)`` matrix, e.g. from :func:`features`.

    Returns:
      A scalar float array.

    Examples:
      >>> import jax.numpy as jnp
      >>> from relujax.analysis import effective_rank
      >>> effective_rank(jnp.diag(jnp.array([3.0, 1.0])))  # p = (3/4, 1/4)
      Array(1.7548, dtype=float32)
    """
    s = _singular_values(features, "effective_rank")
    total = jnp.sum(s)
    nonzero = total > 0
    p = s / jnp.where(nonzero, total, 1.0)
    positive = p > 0
    plogp = jnp.where(positive, p * jnp.log(jnp.where(positive, p, 1.0)), 0.0)
    return jnp.where(nonzero, jnp.exp(-jnp.sum(plogp)), 0.0)


def approximate_rank(features: ArrayLike, *, threshold: float = 0.99) -> Array:
    r"""Approximate rank: how many singular values hold ``threshold`` of their sum.

    .. math:: \operatorname{srank}_\delta = \min\Big\{k : \frac{\sum_{i \le k} \sigma_i}
       {\sum_i \sigma_i} \ge 1 - \delta\Big\}, \qquad 1 - \delta = \text{threshold}

    with singular values in decreasing order; the "srank" of Kumar et al. (2021,
    *Implicit under-parameterization*) with :math:`\delta = 0.01`, also used by Lyle et al.
    (2022) to measure capacity loss. The zero matrix has rank 0. Not differentiable (an
    integer).

    Args:
      features: ``(samples, units)`` matrix.
      threshold: fraction of the sum of singular values to keep, in (0, 1].

    Returns:
      A scalar int32 array.

    Raises:
      ValueError: if ``threshold`` is not in (0, 1].

    Examples:
      >>> import jax.numpy as jnp
      >>> from relujax.analysis import approximate_rank
      >>> approximate_rank(jnp.diag(jnp.array([100.0, 0.5, 0.25])))  # 100/100.75 > 0.99
      Array(1, dtype=int32)
      >>> approximate_rank(jnp.diag(jnp.array([3.0, 1.0])))
      Array(2, dtype=int32)
    """
    threshold = _validation.real(
        "approximate_rank: threshold", threshold, minimum=0.0, maximum=1.0, strict=True
    )
    s = _singular_values(features, "approximate_rank")
    total = jnp.sum(s)
    fraction = jnp.cumsum(s) / jnp.where(total > 0, total, 1.0)
    # Count the prefixes that fall short of the threshold; the next one reaches it. The
    # tolerance absorbs float32 rounding of the cumulative sum at threshold = 1.
    short = jnp.sum(fraction < threshold * (1.0 - 1e-6), dtype=jnp.int32)
    rank = jnp.minimum(short + 1, s.shape[0]).astype(jnp.int32)
    return jnp.where(total > 0, rank, jnp.int32(0))
