"""``trained_collapse``'s summary (fractions with Wilson intervals, claims), tables, figure."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from experiments import _collapse_stats as cs
from experiments import _common, _figures, _stats
from experiments.born_dead import bounds

LABELS = {"he_normal": "He", "rai": "RAI"}

#: What we could establish about the papers' own figures (see the module docstring of
#: experiments.trained_collapse): the search available found the abstracts, not the tables.
PAPER = {
    "source": "Lu, Shin, Su, Karniadakis, Commun. Comput. Phys. 28 (2020) 1671-1706, "
    "arXiv:1903.06733; Lu, Su, Karniadakis, arXiv:1808.04947",
    "found": False,
    "note": "the papers' collapse percentages and training settings (optimizer, learning "
    "rate, steps, training points) could not be retrieved with the reference search "
    "available when this experiment was written; the abstracts say that deep narrow nets "
    "collapse to the mean of the target with high probability and that asymmetric "
    "initialization lowers, but does not remove, that probability. Our settings are "
    "assumptions; fill in the papers' figures here when checked against the PDF.",
    "collapse": {"he_normal": None, "rai": None},
}


def _row(cell: dict[str, Any], a: int, init: str) -> dict[str, Any]:
    n = int(cell["collapsed"].shape[1])
    born, coll = cell["born_dead"][a], cell["collapsed"][a]
    mse = cell["grid_mse"][a][~coll]
    curve = cell["sweep_dead_layer"][a].mean(axis=0)
    return {
        "n": n,
        "born_dead": cs.wilson(int(born.sum()), n).to_dict(),
        "collapsed": cs.wilson(int(coll.sum()), n).to_dict(),
        "collapsed_in_training": cs.wilson(int((coll & ~born).sum()), n).to_dict(),
        "fitted": cs.wilson(int(cell["fitted"][a].sum()), n).to_dict(),
        "dead_layer_after": float(cell["dead_layer_after"][a].mean()),
        "born_float_constant": float(cell["born_float_constant"][a].mean()),
        "collapsed_at_1e-2": float((cell["relative_variance"][a] <= 1e-2).mean()),
        "born_dead_not_collapsed": int((born & ~coll).sum()),
        "reference_born_dead": cell["reference_born_dead"][init],
        "live_mse_median": float(np.median(mse)) if mse.size else None,
        "live_mse": _stats.t_interval(mse).to_dict(),
        "dead_layer_curve": [float(v) for v in curve],
    }


def summarize(scale: Any, cells: dict[str, dict[str, Any]], *, inits: Sequence[str]) -> dict:
    """The small ``summary.json``: per cell and init the fractions, claims and checks."""
    out: dict[str, Any] = {
        "sizes": {
            "steps": scale.steps,
            "lr": scale.lr,
            "batch_size": scale.batch_size,
            "n_train": scale.n_train,
            "n_grid": scale.n_grid,
            "trainings": scale.trainings,
            "threshold": cs.THRESHOLD,
            "fit": cs.FIT,
        },
        "paper": PAPER,
        "cells": {},
    }
    for name, cell in cells.items():
        rows = {init: _row(cell, a, init) for a, init in enumerate(inits)}
        he, rai = (_stats.Interval.from_dict(rows[i]["collapsed"]) for i in inits)
        he0, rai0 = (_stats.Interval.from_dict(rows[i]["born_dead"]) for i in inits)
        diff, diff0 = cs.difference(he, rai), cs.difference(he0, rai0)
        he_fit, rai_fit = (_stats.Interval.from_dict(rows[i]["fitted"]) for i in inits)
        diff_fit = cs.difference(rai_fit, he_fit)
        lo, hi = bounds(cell["width"], cell["depth"])
        gap = np.abs(cell["grid_mse"] - cell["sweep_test_loss"])
        sweep_dead = cell["sweep_dead_layer"]
        claims = {
            "rai_collapses_less_after_training": _stats.verdict(diff),
            "rai_born_dead_less": _stats.verdict(diff0),
            "rai_fits_more": _stats.verdict(diff_fit),
            **{
                f"training_collapses_live_{LABELS[i]}_nets": _stats.verdict(
                    _stats.Interval.from_dict(rows[i]["collapsed_in_training"])
                )
                for i in inits
            },
            "born_dead_nets_stay_collapsed": "holds"
            if all(r["born_dead_not_collapsed"] == 0 for r in rows.values())
            else "does not hold",
        }
        out["cells"][name] = {
            "width": cell["width"],
            "depth": cell["depth"],
            "steps": [int(s) for s in cell["steps"]],
            "inits": rows,
            "difference_he_minus_rai": {"collapsed": diff.to_dict(), "born_dead": diff0.to_dict()},
            "difference_rai_minus_he_fitted": diff_fit.to_dict(),
            "he_born_dead_bounds": [lo, hi],
            "claims": claims,
            "checks": {
                # the sweep's test loss is the grid MSE of its own model: both must agree
                "max_abs_gap_grid_mse_vs_sweep": float(gap.max()),
                # a layer dead on the training points (sweep) <=> on the grid (ours)
                "dead_layer_agreement_init": float(
                    (sweep_dead[:, :, 0] == cell["born_dead"]).mean()
                ),
                "dead_layer_agreement_final": float(
                    (sweep_dead[:, :, -1] == cell["dead_layer_after"]).mean()
                ),
            },
        }
    return out


def _ref(p: float | None) -> str:
    return "not run" if p is None or not np.isfinite(p) else f"{100 * p:.1f}%"


def _pct(d: dict[str, Any]) -> str:
    return _stats.Interval.from_dict(d).pct()


def table(summary: dict) -> str:
    """Markdown table: per cell and initializer, at initialization vs after training."""
    rows = []
    for cell in summary["cells"].values():
        for init, r in cell["inits"].items():
            paper = summary["paper"]["collapse"].get(init)
            rows.append([
                f"{cell['width']} x {cell['depth']}",
                LABELS[init],
                r["n"],
                _pct(r["born_dead"]),
                _ref(r["reference_born_dead"]),
                _pct(r["collapsed"]),
                _pct(r["collapsed_in_training"]),
                _pct(r["fitted"]),
                "not found" if paper is None else f"{100 * paper:.1f}%",
            ])  # fmt: skip
    header = (
        "width x depth",
        "init",
        "nets",
        "born dead (same nets)",
        "born dead (born_dead_probability)",
        "collapsed after training",
        "collapsed in training",
        "fitted |x|",
        "paper",
    )
    return _common.markdown_table(header, rows)


def claims(summary: dict) -> str:
    """One line per claim and cell: the claim, holds / does not hold, the interval."""
    lines = []
    for cell in summary["cells"].values():
        c, d = cell["claims"], cell["difference_he_minus_rai"]
        where = f"width {cell['width']}, depth {cell['depth']}"
        lines += [
            f"- RAI collapses less than He after training ({where}): "
            f"**{c['rai_collapses_less_after_training']}** (He - RAI "
            f"{_pct(d['collapsed'])}, Newcombe 95% interval).",
            f"- RAI is born dead less often than He ({where}): **{c['rai_born_dead_less']}** "
            f"(He - RAI {_pct(d['born_dead'])}).",
            f"- RAI fits |x| more often than He ({where}): **{c['rai_fits_more']}** (RAI - He "
            f"{_pct(cell['difference_rai_minus_he_fitted'])}).",
            f"- Training collapses nets alive at initialization ({where}): He "
            f"**{c['training_collapses_live_He_nets']}**, RAI "
            f"**{c['training_collapses_live_RAI_nets']}**.",
            f"- Every born-dead net is still constant after training ({where}): "
            f"**{c['born_dead_nets_stay_collapsed']}**.",
        ]
    return "\n".join(lines)


def live_loss(summary: dict) -> str:
    """One line per cell: the final grid MSE of the nets that did not collapse."""
    lines = []
    for cell in summary["cells"].values():
        parts = [
            f"{LABELS[i]} median {r['live_mse_median']:.2g}, mean "
            f"{_stats.Interval.from_dict(r['live_mse']).num(3)} ({r['live_mse']['n']} nets)"
            for i, r in cell["inits"].items()
            if r["live_mse_median"] is not None
        ]
        lines.append(
            f"Final grid MSE of the nets that did not collapse (width {cell['width']}, depth "
            f"{cell['depth']}; target variance 0.25): " + "; ".join(parts) + "."
        )
    return "\n\n".join(lines)


def setting(summary: dict) -> str:
    """One paragraph: what was trained and how collapse is decided."""
    sz = summary["sizes"]
    return (
        f"ReLU MLPs fitted to |x| on [-sqrt(3), sqrt(3)] ({sz['n_train']} points), MSE, Adam "
        f"lr {sz['lr']:g}, batch {sz['batch_size']}, {sz['steps']} steps, {sz['trainings']} "
        f"independent trainings per initializer (He normal with zero bias; RAI). Collapsed: "
        f"output variance on {sz['n_grid']} grid points at most {sz['threshold']:g} of the "
        "target's; born dead: a hidden layer zero on the whole grid at initialization. "
        "Fractions with 95% Wilson intervals; 'collapsed in training': alive at "
        "initialization, constant after; "
        f"'fitted': grid MSE at most {sz['fit']:g} of the target's variance (the rest mostly "
        "fit one side of |x| only). "
        "Training settings are our assumptions: the papers' could not be retrieved "
        "(see summary.json, paper.note)."
    )


def readme_block(summary: dict) -> str:
    """The README's generated block: setting, table and claims."""
    return "\n\n".join([setting(summary), table(summary), live_loss(summary), claims(summary)])


def markdown(summary: dict, scale: str, figure: str) -> str:
    """``summary.md``."""
    checks = [
        f"- {name}: grid MSE vs the sweep's test loss, max gap "
        f"{c['checks']['max_abs_gap_grid_mse_vs_sweep']:.2g}; dead layer on the grid = on the "
        f"training points (sweep) for {c['checks']['dead_layer_agreement_init']:.1%} of nets "
        f"at initialization, {c['checks']['dead_layer_agreement_final']:.1%} after training; "
        "float32-constant at initialization (born_dead_probability's former criterion): "
        + ", ".join(f"{LABELS[i]} {r['born_float_constant']:.1%}" for i, r in c["inits"].items())
        + "; "
        f"He born-dead exact bounds (zero bias) [{c['he_born_dead_bounds'][0]:.3f}, "
        f"{c['he_born_dead_bounds'][1]:.3f}]"
        for name, c in summary["cells"].items()
    ]
    return "\n\n".join([
        f"# trained_collapse: deep narrow ReLU nets trained on |x| ({scale} scale)",
        readme_block(summary),
        "Checks:\n" + "\n".join(checks),
        f"Figure: {figure}. Wall time {summary['wall_seconds']:.0f} s.",
    ])  # fmt: skip


def figure(out: Any, summary: dict, cells: dict[str, dict[str, Any]], *, inits) -> str:
    """Collapsed fraction vs step (a layer dead on every training point), Wilson bands; and
    the distribution of the trained nets' relative output variance."""
    plt = _figures.pyplot()
    name = next(iter(cells))
    cell, s = cells[name], summary["cells"][name]
    fig, (ax, bx) = plt.subplots(1, 2, figsize=(11, 4))
    series = {}
    for a, init in enumerate(inits):
        flags = cell["sweep_dead_layer"][a]
        n = flags.shape[0]
        ivs = [cs.wilson(int(k), n) for k in flags.sum(axis=0)]
        series[LABELS[init]] = tuple(
            np.array([getattr(iv, f) for iv in ivs]) for f in ("mean", "lo", "hi")
        )
    _figures.curves(ax, np.asarray(s["steps"]), series, scale=100)
    ax.set_xlabel("training step")
    ax.set_ylabel("nets with a layer dead on all training points (%)")
    ax.set_title(
        f"width {cell['width']}, depth {cell['depth']}: collapse during training", fontsize=10
    )
    ax.grid(alpha=0.3)
    bins = np.linspace(-13, 1, 57)
    for a, init in enumerate(inits):
        rv = np.log10(np.clip(np.asarray(cell["relative_variance"][a], np.float64), 1e-12, None))
        zero = int(np.sum(cell["relative_variance"][a] <= 0.0))
        label = f"{LABELS[init]} ({zero} of variance 0, at -12)"
        bx.hist(rv, bins=bins, alpha=0.5, label=label, color=f"C{a}")
    bx.axvline(np.log10(cs.THRESHOLD), color="k", ls="--", lw=1, label="collapse threshold")
    bx.set_xlabel("log10 relative output variance after training (clipped at -12)")
    bx.set_ylabel("nets")
    bx.set_yscale("log")
    _figures.legend_right(fig, bx)
    fig.tight_layout()
    _figures.save(fig, out / "trained_collapse.png")
    return "trained_collapse.png"
