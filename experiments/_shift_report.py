"""Tables, findings, figures and docs block of ``experiments.input_shift``.

:func:`tabulate` turns the sweep into the grid of intervals (mean over seeds with a 95%
t-interval per activation, preprocessing and shift) and the table rows with their findings;
:func:`draw` draws the two figures; :func:`readme_block` renders the docs' block from
``summary.json`` alone, so ``python -m experiments.render_readme`` can regenerate it.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

import numpy as np

from experiments import _common, _figures, _stats, _sweeps
from experiments._stats import Interval

if TYPE_CHECKING:
    from experiments.input_shift import Scale


def _cell(arms, res, hidden, act, prep, shift, e):
    """(first-layer dead, all-units dead, accuracy) over seeds at evaluation ``e``.

    Each is the mean with its 95% t-interval over the seeds (:class:`_stats.Interval`).
    """
    sel = np.array(
        [a.config.activation == act and a.label == f"{prep} {shift:g}" for a in arms],
        dtype=bool,
    )
    first = _stats.t_interval(res["dead"][sel, e, 0], within=(0, 1))
    total = _stats.t_interval(_sweeps.unit_fraction(res["dead"][sel, e], hidden), within=(0, 1))
    acc = _stats.t_interval(res["test_accuracy"][sel, e], within=(0, 1))
    return first, total, acc


def _finding(act: str, prep: str, init_first: dict, end_first: dict, acc: dict) -> str:
    lo, hi = min(init_first), max(init_first)
    base = end_first[0.0]
    neg, pos = end_first[lo], end_first[hi]
    if prep == "standardized":
        spread = max(end_first.values()) - min(end_first.values())
        return (
            "Standardization undoes the shift: the dead fraction is the same at every m "
            f"(spread {spread:.1%}) and accuracy stays at {min(acc.values()):.3f} or above."
        )
    verb = "kills" if act == "relu" else "silences (never positive, still a 0.01 gradient)"
    parts = []
    if neg > base + 0.1:
        parts.append(
            f"the shift {verb} first-layer units: {init_first[lo]:.0%} at init and "
            f"{neg:.0%} after training at m = {lo:g}, vs {base:.0%} at m = 0"
        )
    else:
        parts.append(
            f"a shift of {lo:g} leaves the first layer about as alive as m = 0 "
            f"({neg:.0%} vs {base:.0%} never positive after training)"
        )
    if hi > 0:
        if abs(pos - neg) < 0.1:
            parts.append(
                f"a positive shift (m = {hi:g}) does the same ({pos:.0%}): the sign does not matter"
            )
        else:
            parts.append(f"a positive shift (m = {hi:g}) gives {pos:.0%}")
    return "; ".join(parts).capitalize() + f"; accuracy {acc[lo]:.3f} at m = {lo:g}."


def tabulate(
    arms, res, scale: Scale, *, activations: Sequence[str], preprocessing: Sequence[str]
) -> tuple[dict[str, dict], list[list], list[list]]:
    """``(grid, claim_rows, number_rows)``: every cell's intervals, findings, numbers.

    ``grid`` maps ``"<activation> <preprocessing> <m>"`` to the first-layer and all-units dead
    fractions at init and after training and the final accuracy (mean with 95% t-interval);
    ``claim_rows`` holds one finding per activation and preprocessing, ``number_rows`` one
    row per cell.
    """
    grid: dict[str, dict] = {}
    claim_rows, number_rows = [], []
    for act in activations:
        for prep in preprocessing:
            init_first, end_first, acc = {}, {}, {}
            for m in scale.shifts:
                f0, t0, _ = _cell(arms, res, scale.hidden, act, prep, m, 0)
                f1, t1, a1 = _cell(arms, res, scale.hidden, act, prep, m, -1)
                init_first[m], end_first[m], acc[m] = f0.mean, f1.mean, a1.mean
                grid[f"{act} {prep} {m:g}"] = {
                    "first_layer_dead_init": f0.to_dict(),
                    "dead_init": t0.to_dict(),
                    "first_layer_dead_final": f1.to_dict(),
                    "dead_final": t1.to_dict(),
                    "accuracy": a1.to_dict(),
                }
                number_rows.append(
                    [act, prep, f"{m:g}", *(v.pct() for v in (f0, f1, t0, t1)), a1.num()]
                )
            claim_rows.append([act, prep, _finding(act, prep, init_first, end_first, acc)])
    return grid, claim_rows, number_rows


def readme_block(summary: dict) -> str:
    """The docs' generated block: setting, findings and the table, from the summary."""
    sz = summary["sizes"]
    return "\n\n".join(
        [
            f"Gaussian mixture (16-d, 4 classes), inputs + m in every coordinate; MLP "
            f"{tuple(sz['hidden'])}, He init, Adam lr {sz['lr']:g}, {sz['steps']} steps, "
            f"{len(sz['seeds'])} seeds: mean [95% t-interval over seeds]. Dead = "
            "pre-activation never positive on 1024 training examples.",
            _common.markdown_table(("activation", "inputs", "finding"), summary["claim_rows"]),
            _common.markdown_table(
                (
                    "activation",
                    "inputs",
                    "m",
                    "layer-1 dead at init",
                    "layer-1 dead after",
                    "all dead at init",
                    "all dead after",
                    "test acc",
                ),
                summary["number_rows"],
            ),
        ]
    )


def draw(
    out,
    scale: Scale,
    grid: dict[str, dict],
    *,
    activations: Sequence[str],
    preprocessing: Sequence[str],
) -> list[str]:
    """Dead units and accuracy vs shift; distinct styles, legend outside the axes."""
    plt = _figures.pyplot()
    shifts = np.asarray(scale.shifts)

    def series(key: str, when: str = "") -> dict[str, tuple]:
        out = {}
        for act in activations:
            for prep in preprocessing:
                name = f"{key}_{when}" if when else key
                ivs = [Interval.from_dict(grid[f"{act} {prep} {m:g}"][name]) for m in shifts]
                label = f"{act}, {prep}"  # the panel titles say when
                out[label] = tuple(
                    np.array([getattr(iv, k) for iv in ivs]) for k in ("mean", "lo", "hi")
                )
        return out

    fig, axes = plt.subplots(2, 2, figsize=(11, 7), sharey=True, sharex=True)
    for row, when in enumerate(("init", "final")):
        for col, (key, title) in enumerate(
            (("first_layer_dead", "first hidden layer"), ("dead", "all hidden units"))
        ):
            ax = axes[row][col]
            _figures.curves(ax, shifts, series(key, when), scale=100, spread=0.01)
            ax.set_title(
                f"{title}, {'at initialization' if when == 'init' else 'after training'}",
                fontsize=10,
            )
            ax.grid(alpha=0.3)
        axes[row][0].set_ylabel("dead units (%)")
    for ax in axes[1]:
        ax.set_xlabel("input shift m")
    _figures.legend_right(fig, axes[0][1], title=f"mean, 95% band, {len(scale.seeds)} seeds")
    fig.tight_layout()
    _figures.save(fig, out / "dead_vs_shift.png")

    fig, ax = plt.subplots(figsize=(6, 4))
    _figures.curves(ax, shifts, series("accuracy"), spread=0.01)
    ax.set_xlabel("input shift m")
    ax.set_ylabel("test accuracy after training")
    ax.grid(alpha=0.3)
    _figures.legend_right(fig, ax, title=f"mean, 95% band, {len(scale.seeds)} seeds")
    _figures.save(fig, out / "accuracy_vs_shift.png")
    return ["dead_vs_shift.png", "accuracy_vs_shift.png"]
