"""The dead-unit report: per-site and overall findings, a text table and a JSON form."""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np


def _fraction(mask: np.ndarray) -> float:
    return float(np.mean(mask)) if mask.size else math.nan


def _json(x: Any) -> Any:
    """Plain Python values for json.dumps: NaN becomes None."""
    if isinstance(x, np.ndarray):
        return [_json(v) for v in x.tolist()]
    if isinstance(x, (list, tuple)):
        return [_json(v) for v in x]
    if isinstance(x, (np.floating, float)):
        x = float(x)
        return None if math.isnan(x) else x
    if isinstance(x, (np.integer,)):
        return int(x)
    if isinstance(x, np.bool_):
        return bool(x)
    return x


def _array(values: Any, dtype: Any) -> np.ndarray:
    return np.array([math.nan if v is None else v for v in values], dtype=dtype)


def _tau_key(tau: float) -> str:
    return f"{tau:g}"


@dataclasses.dataclass(frozen=True)
class SiteReport:
    r"""Findings for one activation site; per-unit arrays have shape ``(units,)``.

    Attributes:
      name: the site.
      samples: finite samples per unit (the largest count over units).
      firing_rate: fraction of samples with pre-activation > 0 (NaN for a unit without
        finite samples).
      score: ReDo's dormancy score :math:`s_i = E|h_i| / (\frac{1}{H}\sum_k E|h_k|)` (Sokar et
        al. 2023); all zeros when every unit of the site has :math:`E|h| = 0`.
      dead: never fired on a finite sample.
      dormant: for each tau, :math:`s_i \le \tau`.
      low_firing: firing rate below ``low_rate`` (dead units included).
      always_active: pre-activation > 0 on every sample (linearized; Lyle et al. 2024).
      pre_mean: mean pre-activation per unit.
      pre_std: standard deviation of the pre-activation per unit.
      nonfinite_fraction: fraction of all values at this site that were NaN or infinite.
      previous_dead: which units were dead in the earlier report given to :func:`diagnose`
        (None without one, or when that report had a different number of units here).
      effective_rank: effective rank of the site's feature sample (None if not computed).
      approximate_rank: 99% approximate rank of the feature sample (None if not computed).
    """

    name: str
    samples: int
    firing_rate: np.ndarray
    score: np.ndarray
    dead: np.ndarray
    dormant: Mapping[float, np.ndarray]
    low_firing: np.ndarray
    always_active: np.ndarray
    pre_mean: np.ndarray
    pre_std: np.ndarray
    nonfinite_fraction: float
    previous_dead: np.ndarray | None = None
    effective_rank: float | None = None
    approximate_rank: int | None = None

    @property
    def units(self) -> int:
        """Number of units."""
        return int(self.dead.shape[0])

    @property
    def dead_fraction(self) -> float:
        """Fraction of the units that are dead."""
        return _fraction(self.dead)

    def dormant_fraction(self, tau: float) -> float:
        """Fraction of the units whose dormancy score is <= ``tau`` (a tau of the report)."""
        return _fraction(self.dormant[tau])

    @property
    def low_firing_fraction(self) -> float:
        """Fraction of the units firing on less than ``low_rate`` of the samples."""
        return _fraction(self.low_firing)

    @property
    def always_active_fraction(self) -> float:
        """Fraction of the units whose pre-activation was positive on every sample."""
        return _fraction(self.always_active)

    @property
    def persistence(self) -> float | None:
        """Of the units dead in the earlier report, the fraction still dead (None if none)."""
        if self.previous_dead is None or not self.previous_dead.any():
            return None
        return float((self.previous_dead & self.dead).sum() / self.previous_dead.sum())

    @property
    def firing_quartiles(self) -> tuple[float, float, float]:
        """25th, 50th and 75th percentiles of the firing rate over units (NaN units skipped)."""
        rates = self.firing_rate[~np.isnan(self.firing_rate)]
        if rates.size == 0:
            return (math.nan, math.nan, math.nan)
        q = np.quantile(rates, [0.25, 0.5, 0.75])
        return (float(q[0]), float(q[1]), float(q[2]))

    def to_dict(self, *, per_unit: bool = False) -> dict[str, Any]:
        """JSON-serializable summary (NaN as None); with ``per_unit`` also the unit arrays."""
        out: dict[str, Any] = {
            "units": self.units,
            "samples": self.samples,
            "dead": int(self.dead.sum()),
            "dead_fraction": self.dead_fraction,
            "dormant_fraction": {_tau_key(t): self.dormant_fraction(t) for t in self.dormant},
            "low_firing_fraction": self.low_firing_fraction,
            "always_active_fraction": self.always_active_fraction,
            "firing_quartiles": list(self.firing_quartiles),
            "nonfinite_fraction": self.nonfinite_fraction,
            "persistence": self.persistence,
            "effective_rank": self.effective_rank,
            "approximate_rank": self.approximate_rank,
        }
        if per_unit:
            out["per_unit"] = {
                "firing_rate": self.firing_rate,
                "score": self.score,
                "dead": self.dead,
                "always_active": self.always_active,
                "pre_mean": self.pre_mean,
                "pre_std": self.pre_std,
                "previous_dead": self.previous_dead,
            }
        return _json_tree(out)


def _json_tree(d: Any) -> Any:
    if isinstance(d, dict):
        return {k: _json_tree(v) for k, v in d.items()}
    return _json(d)


@dataclasses.dataclass(frozen=True)
class Report:
    """Dead, dormant, rarely firing and always-active units, per site and overall.

    Made by :func:`diagnose`. ``report[name]`` is a :class:`SiteReport`; the ``*_fraction``
    properties and :meth:`dormant_fraction` pool all units of all sites. :meth:`summary` is a
    plain-text table, :meth:`to_dict` a JSON-serializable dict (``per_unit=True`` keeps the
    unit arrays, and :meth:`from_dict` reads it back).

    Attributes:
      sites: site name to :class:`SiteReport`, in call order.
      taus: the dormancy thresholds.
      low_rate: the low-firing threshold.

    Examples:
      >>> import json, jax.numpy as jnp
      >>> from relujax import analysis
      >>> pre = jnp.array([[-1.0, 2.0], [-3.0, 0.5]])
      >>> h = analysis.UnitStats.from_batch(pre, jnp.maximum(pre, 0.0))
      >>> stats = analysis.ModelStats({"h": h})
      >>> report = analysis.diagnose(stats)
      >>> report.dead_fraction, report["h"].dead, report["h"].always_active
      (0.5, array([ True, False]), array([False,  True]))
      >>> d = json.loads(json.dumps(report.to_dict(per_unit=True)))
      >>> analysis.Report.from_dict(d)["h"].firing_rate
      array([0., 1.], dtype=float32)
    """

    sites: Mapping[str, SiteReport]
    taus: tuple[float, ...]
    low_rate: float

    def __getitem__(self, name: str) -> SiteReport:
        return self.sites[name]

    def __iter__(self):
        return iter(self.sites)

    def __len__(self) -> int:
        return len(self.sites)

    def _pooled(self, pick) -> float:
        masks = [pick(s) for s in self.sites.values()]
        return _fraction(np.concatenate(masks)) if masks else math.nan

    @property
    def units(self) -> int:
        """Total number of units over all sites."""
        return sum(s.units for s in self.sites.values())

    @property
    def dead(self) -> int:
        """Total number of dead units."""
        return int(sum(s.dead.sum() for s in self.sites.values()))

    @property
    def dead_fraction(self) -> float:
        """Fraction of all units that are dead."""
        return self._pooled(lambda s: s.dead)

    def dormant_fraction(self, tau: float) -> float:
        """Fraction of all units dormant at ``tau`` (scores are normalized per site)."""
        return self._pooled(lambda s: s.dormant[tau])

    @property
    def low_firing_fraction(self) -> float:
        """Fraction of all units firing on less than ``low_rate`` of their samples."""
        return self._pooled(lambda s: s.low_firing)

    @property
    def always_active_fraction(self) -> float:
        """Fraction of all units that were always active."""
        return self._pooled(lambda s: s.always_active)

    @property
    def persistence(self) -> float | None:
        """Of all units dead in the earlier report, the fraction still dead (None if none)."""
        prev = [s.previous_dead for s in self.sites.values() if s.previous_dead is not None]
        now = [s.dead for s in self.sites.values() if s.previous_dead is not None]
        total = sum(int(p.sum()) for p in prev)
        still = sum(int((p & d).sum()) for p, d in zip(prev, now, strict=True))
        return still / total if total else None

    def summary(self) -> str:
        """A plain-text table: one row per site and an overall row.

        Columns: units, dead %, dormant % per tau, low-firing %, firing-rate quartiles,
        always-active %; when some site saw non-finite values, the non-finite share of its
        values (a site without any finite value shows "-" for its unit percentages, never
        0% dead); when available, persistence % and the two ranks.
        """
        has_persist = any(s.previous_dead is not None for s in self.sites.values())
        has_rank = any(s.effective_rank is not None for s in self.sites.values())
        # Shown when some site saw NaN or inf (or nothing): its unit percentages then cover
        # only the values that were finite, and a site with none shows "-", never 0%.
        has_nonfinite = any(
            s.samples == 0 or s.nonfinite_fraction != 0.0 for s in self.sites.values()
        )
        head = ["site", "units", "dead%"]
        head += [f"dorm{_tau_key(t)}%" for t in self.taus]
        head += [f"fire<{_tau_key(self.low_rate)}%", "q25", "q50", "q75", "always%"]
        if has_nonfinite:
            head.append("nonfinite%")
        if has_persist:
            head.append("persist%")
        if has_rank:
            head += ["erank", "srank"]

        def pct(x: float | None) -> str:
            return "-" if x is None or math.isnan(x) else f"{100 * x:.1f}"

        def num(x: float | None, fmt: str) -> str:
            return "-" if x is None or (isinstance(x, float) and math.isnan(x)) else fmt % x

        rows = []
        for s in self.sites.values():
            q = s.firing_quartiles
            seen = s.samples > 0
            unit_pct = pct if seen else (lambda _: "-")
            row = [s.name, str(s.units), unit_pct(s.dead_fraction)]
            row += [unit_pct(s.dormant_fraction(t)) for t in self.taus]
            row += [unit_pct(s.low_firing_fraction), *(num(v, "%.2f") for v in q)]
            row.append(unit_pct(s.always_active_fraction))
            if has_nonfinite:
                row.append(pct(s.nonfinite_fraction))
            if has_persist:
                row.append(pct(s.persistence))
            if has_rank:
                row += [num(s.effective_rank, "%.1f"), num(s.approximate_rank, "%d")]
            rows.append(row)
        rates = np.concatenate([s.firing_rate for s in self.sites.values()])
        rates = rates[~np.isnan(rates)]
        q = np.quantile(rates, [0.25, 0.5, 0.75]) if rates.size else [math.nan] * 3
        row = ["overall", str(self.units), pct(self.dead_fraction)]
        row += [pct(self.dormant_fraction(t)) for t in self.taus]
        row += [pct(self.low_firing_fraction), *(num(float(v), "%.2f") for v in q)]
        row.append(pct(self.always_active_fraction))
        if has_nonfinite:
            row.append("")
        if has_persist:
            row.append(pct(self.persistence))
        if has_rank:
            row += ["", ""]
        rows.append(row)
        widths = [max(len(r[i]) for r in [head, *rows]) for i in range(len(head))]

        def line(r: Sequence[str]) -> str:
            cells = [r[0].ljust(widths[0])] + [
                c.rjust(w) for c, w in zip(r[1:], widths[1:], strict=True)
            ]
            return "  ".join(cells).rstrip()

        rule = "-" * len(line(head))
        return "\n".join([line(head), rule, *(line(r) for r in rows[:-1]), rule, line(rows[-1])])

    def to_dict(self, *, per_unit: bool = False) -> dict[str, Any]:
        """A JSON-serializable dict (NaN as None).

        Args:
          per_unit: also keep the per-unit arrays (needed by :meth:`from_dict`).

        Returns:
          ``{"taus", "low_rate", "overall": {...}, "sites": {name: {...}}}``.
        """
        overall = {
            "units": self.units,
            "dead": self.dead,
            "dead_fraction": self.dead_fraction,
            "dormant_fraction": {_tau_key(t): self.dormant_fraction(t) for t in self.taus},
            "low_firing_fraction": self.low_firing_fraction,
            "always_active_fraction": self.always_active_fraction,
            "persistence": self.persistence,
        }
        return {
            "taus": list(self.taus),
            "low_rate": self.low_rate,
            "overall": _json_tree(overall),
            "sites": {n: s.to_dict(per_unit=per_unit) for n, s in self.sites.items()},
        }

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> Report:
        """Rebuilds a report from ``to_dict(per_unit=True)`` (e.g. after a JSON round trip).

        Raises:
          ValueError: if the dict has no per-unit arrays.
        """
        taus = tuple(float(t) for t in d["taus"])
        low_rate = float(d["low_rate"])
        sites = {}
        for name, s in d["sites"].items():
            if "per_unit" not in s:
                raise ValueError(
                    "Report.from_dict needs per-unit arrays: save with to_dict(per_unit=True)."
                )
            u = s["per_unit"]
            score = _array(u["score"], np.float32)
            rate = _array(u["firing_rate"], np.float32)
            with np.errstate(invalid="ignore"):
                low = rate < low_rate
            sites[name] = SiteReport(
                name=name,
                samples=int(s["samples"]),
                firing_rate=rate,
                score=score,
                dead=np.array(u["dead"], bool),
                dormant={t: _dormant(score, t) for t in taus},
                low_firing=low,
                always_active=np.array(u["always_active"], bool),
                pre_mean=_array(u["pre_mean"], np.float32),
                pre_std=_array(u["pre_std"], np.float32),
                nonfinite_fraction=math.nan
                if s["nonfinite_fraction"] is None
                else float(s["nonfinite_fraction"]),
                previous_dead=None
                if u.get("previous_dead") is None
                else np.array(u["previous_dead"], bool),
                effective_rank=s["effective_rank"],
                approximate_rank=s["approximate_rank"],
            )
        return cls(sites=sites, taus=taus, low_rate=low_rate)


def _dormant(score: np.ndarray, tau: float) -> np.ndarray:
    with np.errstate(invalid="ignore"):
        return score <= tau
