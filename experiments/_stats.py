"""Means over seeds with 95% t-intervals, and claims judged by their intervals.

Every number an experiment reports is a mean over independent seeds with a Student-t
interval, ``mean +- t_{0.975, n-1} * s / sqrt(n)`` (``s`` the sample standard deviation over
the ``n`` seeds). A claim about a difference "holds" only where the interval of the per-seed
differences lies on the claimed side of zero, "does not hold" where it lies on the other
side, and is "not resolved" where it contains zero.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Sequence
from typing import Any

import numpy as np

#: Confidence level of every interval.
CONFIDENCE = 0.95


def t_quantile(df: int, confidence: float = CONFIDENCE) -> float:
    """Two-sided Student-t quantile ``t_{(1 + confidence) / 2, df}``.

    Examples:
      >>> round(t_quantile(2), 3), round(t_quantile(4), 3)
      (4.303, 2.776)
    """
    from scipy import stats  # scikit-learn's dependency, in the experiments extra

    return float(stats.t.ppf(0.5 + confidence / 2, df))


@dataclasses.dataclass(frozen=True)
class Interval:
    """Mean over seeds with its 95% t-interval ``[lo, hi]``; ``n`` finite seeds.

    Examples:
      >>> iv = t_interval([0.1, 0.2, 0.3])
      >>> round(iv.mean, 3), round(iv.lo, 3), round(iv.hi, 3), iv.n
      (0.2, -0.048, 0.448, 3)
      >>> iv.pct(), iv.num()
      ('20.0% [-4.8, 44.8]', '0.200 [-0.048, 0.448]')
    """

    mean: float
    lo: float
    hi: float
    n: int

    def contains(self, value: float, *, slack: float = 0.0) -> bool:
        """Whether ``value`` lies in ``[lo - slack, hi + slack]``."""
        return bool(self.lo - slack <= value <= self.hi + slack)

    def pct(self, digits: int = 1) -> str:
        """``"m% [lo, hi]"`` in percent."""
        if not math.isfinite(self.mean):
            return "n/a"
        f = f"{{:.{digits}f}}"
        if not math.isfinite(self.lo):  # one seed: no interval
            return f"{f.format(100 * self.mean)}%"
        lo, hi = f.format(100 * self.lo), f.format(100 * self.hi)
        return f"{f.format(100 * self.mean)}% [{lo}, {hi}]"

    def num(self, digits: int = 3) -> str:
        """``"m [lo, hi]"`` with ``digits`` decimals."""
        if not math.isfinite(self.mean):
            return "n/a"
        f = f"{{:.{digits}f}}"
        if not math.isfinite(self.lo):  # one seed: no interval
            return f.format(self.mean)
        return f"{f.format(self.mean)} [{f.format(self.lo)}, {f.format(self.hi)}]"

    def to_dict(self) -> dict[str, Any]:
        """``{"mean", "lo", "hi", "n"}`` (JSON; NaN as None)."""
        return {"mean": _none(self.mean), "lo": _none(self.lo), "hi": _none(self.hi), "n": self.n}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Interval:
        """Inverse of :meth:`to_dict`."""
        mean, lo, hi = (math.nan if d[k] is None else float(d[k]) for k in ("mean", "lo", "hi"))
        return cls(mean, lo, hi, int(d["n"]))

    @staticmethod
    def is_dict(d: Any) -> bool:
        """Whether ``d`` is an interval written by :meth:`to_dict`."""
        return isinstance(d, dict) and set(d) == {"mean", "lo", "hi", "n"}


def _none(x: float) -> float | None:
    return float(x) if math.isfinite(x) else None


def t_interval(
    values: Sequence[float] | np.ndarray, *, within: tuple[float, float] | None = None
) -> Interval:
    """The mean of the finite ``values`` and its 95% t-interval (a point if they agree).

    Args:
      values: one value per seed (NaN: left out).
      within: the range the quantity can take (e.g. ``(0, 1)`` for a fraction); the
        interval is intersected with it.

    Returns:
      An :class:`Interval` (``lo = hi = nan`` with fewer than 2 finite values).
    """
    v = np.asarray(values, np.float64).ravel()
    v = v[np.isfinite(v)]
    n = int(v.size)
    if n == 0:
        return Interval(math.nan, math.nan, math.nan, 0)
    mean = float(v.mean())
    if n == 1:
        return Interval(mean, math.nan, math.nan, 1)
    half = t_quantile(n - 1) * float(v.std(ddof=1)) / math.sqrt(n)
    lo, hi = mean - half, mean + half
    if within is not None:
        lo, hi = max(lo, within[0]), min(hi, within[1])
    return Interval(mean, lo, hi, n)


def verdict(difference: Interval, *, margin: float = 0.0) -> str:
    """``"holds"`` if the interval of a claimed-positive difference lies above ``margin``.

    ``"does not hold"`` if it lies wholly at or below ``margin``; ``"not resolved"`` where it
    straddles ``margin`` (or rests on fewer than 2 seeds).

    Examples:
      >>> verdict(t_interval([0.3, 0.4, 0.5])), verdict(t_interval([-0.1, 0.0, 0.2]))
      ('holds', 'not resolved')
      >>> verdict(t_interval([-0.3, -0.2, -0.25]))
      'does not hold'
    """
    if difference.n < 2 or not math.isfinite(difference.lo):
        return "not resolved"
    if difference.lo > margin:
        return "holds"
    if difference.hi <= margin:
        return "does not hold"
    return "not resolved"


def per_seed(values: np.ndarray, seeds: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """Per seed, the mean of the finite ``values[mask]`` of that seed (NaN where none).

    Args:
      values: one value per run.
      seeds: the seed of each run.
      mask: which runs to pool (e.g. all schedules of one activation and peak LR).

    Returns:
      One value per distinct seed of ``seeds[mask]``, in increasing seed order.
    """
    out = []
    for s in np.unique(seeds[mask]):
        v = values[mask & (seeds == s)]
        v = v[np.isfinite(v)]
        out.append(float(v.mean()) if v.size else math.nan)
    return np.asarray(out, np.float64)


def verdict_below(value: Interval, bound: float) -> str:
    """``"holds"`` if the interval lies below ``bound``, ``"does not hold"`` if above it.

    Examples:
      >>> zero, high = t_interval([0.0, 0.0, 0.0]), t_interval([0.2, 0.3, 0.25])
      >>> verdict_below(zero, 0.01), verdict_below(high, 0.01)
      ('holds', 'does not hold')
    """
    if value.n < 2 or not math.isfinite(value.hi):
        return "not resolved"
    if value.hi < bound:
        return "holds"
    if value.lo >= bound:
        return "does not hold"
    return "not resolved"
