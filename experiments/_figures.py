"""Figures readable at a glance: distinct line styles, legends outside the axes, bands.

Curves that coincide (several schedules all at 0% dead, say) must stay distinguishable: each
series gets its own colour, line style and marker, and the markers of series ``i`` sit at
staggered positions so that overlapping lines still show every marker. Legends go beside
the axes, never over the curves.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

_LINESTYLES = ("-", "--", "-.", ":", (0, (5, 1, 1, 1)), (0, (3, 1, 1, 1, 1, 1)))
_MARKERS = ("o", "s", "^", "D", "v", "P", "X", "*")


def pyplot() -> Any:
    """matplotlib.pyplot with the non-interactive Agg backend."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def style(i: int, n_points: int) -> dict[str, Any]:
    """Keyword arguments of ``ax.plot`` for series ``i`` of curves with ``n_points`` points."""
    every = max(n_points // 6, 1)
    return {
        "color": f"C{i % 10}",
        "linestyle": _LINESTYLES[i % len(_LINESTYLES)],
        "marker": _MARKERS[i % len(_MARKERS)],
        "markevery": (i % every, every),
        "markersize": 5,
        "linewidth": 1.6,
    }


def curves(
    ax: Any,
    x: np.ndarray,
    series: Mapping[Any, tuple[np.ndarray, np.ndarray, np.ndarray]],
    *,
    scale: float = 1.0,
    spread: float = 0.0,
) -> None:
    """Plots ``label -> (mean, lo, hi)`` with distinct styles and shaded intervals.

    ``spread`` > 0 shifts series ``i`` sideways by a fraction of the x range, so that series
    with equal values at few points stay visible side by side.
    """
    x = np.asarray(x, float)
    width = spread * (x.max() - x.min()) if x.size > 1 else 0.0
    for i, (label, (mean, lo, hi)) in enumerate(series.items()):
        xi = x + (i - (len(series) - 1) / 2) * width
        ax.plot(xi, scale * np.asarray(mean), label=label, **style(i, len(x)))
        lo, hi = np.asarray(lo, float), np.asarray(hi, float)
        if np.isfinite(lo).any():
            ax.fill_between(xi, scale * lo, scale * hi, color=f"C{i % 10}", alpha=0.12, lw=0)


def legend_right(fig: Any, ax: Any, *, title: str | None = None) -> None:
    """One legend for the figure, just right of ``ax`` (the right-most axes), outside it."""
    del fig  # the legend belongs to ``ax``; the figure is saved with a tight bounding box
    ax.legend(loc="center left", bbox_to_anchor=(1.02, 0.5), fontsize=8, title=title)


def save(fig: Any, path: Any, *, dpi: int = 120) -> None:
    """Saves with a tight bounding box (legends outside the axes included) and closes."""
    fig.savefig(path, dpi=dpi, bbox_inches="tight")
    pyplot().close(fig)


def labels_of(values: Sequence[float]) -> list[str]:
    """Tick labels of learning rates: ``1e-3`` -> ``"0.001"``."""
    return [f"{v:g}" for v in values]
