"""Turn per-unit statistics into a dead-unit diagnosis."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import jax
import numpy as np
from jax.typing import ArrayLike

from relujax import _validation
from relujax.analysis._dormancy import dormancy_score
from relujax.analysis._model_stats import ModelStats
from relujax.analysis._rank import approximate_rank, effective_rank
from relujax.analysis._report import Report, SiteReport, _dormant
from relujax.analysis._stats import UnitStats

#: ReDo's thresholds (Sokar et al. 2023 use 0 and 0.025 for ReLU, 0.1 as a looser one).
DEFAULT_TAUS = (0.0, 0.025, 0.1)


def _check_taus(taus: Sequence[float]) -> tuple[float, ...]:
    if isinstance(taus, (str, bytes)) or not isinstance(taus, Sequence):
        raise TypeError(f"diagnose: taus must be a sequence of numbers >= 0, got {taus!r}.")
    if not taus:
        raise ValueError(
            f"diagnose: taus must be a non-empty sequence of finite numbers >= 0, got {taus!r}."
        )
    return tuple(
        _validation.real(f"diagnose: taus[{k}]", t, minimum=0.0) for k, t in enumerate(taus)
    )


def _site(
    name: str,
    s: UnitStats,
    taus: tuple[float, ...],
    low_rate: float,
    previous: Any,
    features: ArrayLike | None,
) -> SiteReport:
    if s.pre_mean.ndim != 1:
        raise ValueError(
            f"diagnose: stats[{name!r}] has shape {s.pre_mean.shape}, expected (units,). For "
            "stats of several models (vmap), diagnose one at a time: "
            "jax.tree.map(lambda a: a[k], stats)."
        )
    count = s.count.to_numpy()
    firing = s.firing.to_numpy()
    nonfinite = s.nonfinite.to_numpy()
    seen = count > 0
    rate = np.asarray(s.firing_rate)
    score = np.asarray(dormancy_score(np.where(seen, np.asarray(s.abs_mean), np.nan)))
    total = count.sum() + nonfinite.sum()
    with np.errstate(invalid="ignore"):
        low = rate < low_rate
    prev_dead = None
    if previous is not None and name in previous.sites:
        before = previous.sites[name].dead
        if before.shape == firing.shape:
            prev_dead = before
    erank = srank = None
    if features is not None:
        erank = float(effective_rank(features))
        srank = int(approximate_rank(features))
    return SiteReport(
        name=name,
        samples=int(count.max()) if count.size else 0,
        firing_rate=rate,
        score=score,
        dead=(firing == 0) & seen,
        dormant={t: _dormant(score, t) for t in taus},
        low_firing=low,
        always_active=(firing == count) & seen,
        pre_mean=np.where(seen, np.asarray(s.pre_mean), np.nan).astype(np.float32),
        pre_std=np.asarray(s.pre_std),
        nonfinite_fraction=float(nonfinite.sum() / total) if total else math.nan,
        previous_dead=prev_dead,
        effective_rank=erank,
        approximate_rank=srank,
    )


def _check_stats(stats: Any) -> None:
    if not isinstance(stats, Mapping):
        raise TypeError(
            "diagnose: stats must be a ModelStats or a mapping from site name to UnitStats "
            f"(from collect or with_stats); got {type(stats).__name__}."
        )
    if not stats:
        raise ValueError("diagnose: stats has no site; collect statistics first.")
    for name, value in stats.items():
        if not isinstance(name, str):
            raise TypeError(f"diagnose: site names must be strings, got {name!r}.")
        if not isinstance(value, UnitStats):
            raise TypeError(
                f"diagnose: stats[{name!r}] must be a UnitStats (from collect, with_stats or "
                f"UnitStats.from_batch), got {type(value).__name__}."
            )


def diagnose(
    stats: ModelStats | Mapping[str, UnitStats],
    *,
    taus: Sequence[float] = DEFAULT_TAUS,
    low_rate: float = 0.01,
    previous: Report | ModelStats | None = None,
    features: Mapping[str, ArrayLike] | None = None,
) -> Report:
    r"""Dead, dormant, rarely firing and always-active units of every site.

    For each unit with :math:`n` finite samples, firing count :math:`f` and mean absolute
    output :math:`E|h|`:

    - **dead**: :math:`f = 0` (never fired on anything seen; units without finite samples are
      neither dead nor alive);
    - **dormant** at :math:`\tau` (ReDo, Sokar et al. 2023):
      :math:`s_i = E|h_i| / (\frac{1}{H'}\sum_k E|h_k|) \le \tau`, normalized within the
      site over its :math:`H'` units with finite samples (:func:`dormancy_score`); at
      :math:`\tau = 0` this is :math:`E|h_i| = 0`; units without finite samples have score
      NaN and are never dormant (they show in the non-finite share);
    - **low firing**: :math:`f / n <` ``low_rate`` (1% as in Dohare et al. 2024);
    - **always active** (linearized; Lyle et al. 2024): :math:`f = n`;
    - pre-activation mean and standard deviation, fraction of non-finite values;
    - **persistence** against an earlier report: of the units dead then, the fraction dead now;
    - optionally, on a feature sample, :func:`effective_rank` and :func:`approximate_rank`.

    Args:
      stats: from :func:`collect` or :func:`with_stats` (one model: no leading vmap axis).
      taus: dormancy thresholds.
      low_rate: low-firing threshold, in (0, 1].
      previous: an earlier :class:`Report` (or the ``ModelStats`` it came from) for
        persistence; sites are matched by name and number of units.
      features: optional site name to ``(samples, units)`` matrix (see :func:`features`).

    Returns:
      A :class:`Report` (host numpy arrays; call outside ``jit``).

    Raises:
      TypeError: when ``stats`` is not a mapping from site name to :class:`UnitStats`.
      ValueError: for empty stats, bad thresholds, stats with a leading (vmap) axis, or
        features of an unknown site.

    Examples:
      >>> import jax, jax.numpy as jnp
      >>> from relujax import analysis
      >>> w = jnp.array([[1.0, -1.0, 0.01, 2.0]])
      >>> x = jnp.linspace(0.1, 1.0, 10).reshape(2, 5, 1)  # 2 batches of 5 positive inputs
      >>> report = analysis.diagnose(analysis.collect(lambda x: jax.nn.relu(x @ w), x))
      >>> report["relu_0"].dead, report["relu_0"].always_active
      (array([False,  True, False, False]), array([ True, False,  True,  True]))
      >>> report.dead_fraction, report.dormant_fraction(0.025)
      (0.25, 0.5)
      >>> print(report.summary())
      site     units  dead%  dorm0%  dorm0.025%  dorm0.1%  fire<0.01%   q25   q50   q75  always%
      ------------------------------------------------------------------------------------------
      relu_0       4   25.0    25.0        50.0      50.0        25.0  0.75  1.00  1.00     75.0
      ------------------------------------------------------------------------------------------
      overall      4   25.0    25.0        50.0      50.0        25.0  0.75  1.00  1.00     75.0
    """
    _check_stats(stats)
    taus_t = _check_taus(taus)
    low_rate = _validation.real(
        "diagnose: low_rate", low_rate, minimum=0.0, maximum=1.0, strict=True
    )
    if isinstance(previous, ModelStats):
        previous = diagnose(previous, taus=taus_t, low_rate=low_rate)
    if previous is not None and not isinstance(previous, Report):
        raise TypeError(f"previous must be a Report or ModelStats, got {type(previous).__name__}.")
    features = dict(features or {})
    unknown = sorted(set(features) - set(stats))
    if unknown:
        raise ValueError(f"features for unknown sites {unknown}; the sites are {list(stats)}.")
    host = jax.device_get(stats)
    sites = {
        name: _site(name, host[name], taus_t, low_rate, previous, features.get(name))
        for name in stats
    }
    return Report(sites=sites, taus=taus_t, low_rate=float(low_rate))
