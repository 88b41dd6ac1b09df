"""The report of ``experiments.continual``: claims with verdicts, tables, README block, figures.

Rendered from the small summary alone (``experiments/summaries/continual.json``), so the README
and the docs can be regenerated without rerunning the experiment.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from experiments import _common, _figures, _stats
from experiments._stats import Interval

if TYPE_CHECKING:
    from experiments.continual import Scale

#: The arm every remedy is compared with.
BASELINE = "backprop"


def _iv(d: dict) -> Interval:
    return Interval.from_dict(d)


def _fraction(d: dict) -> Interval:
    """A fraction's interval, intersected with [0, 1] (a t-interval can cross 0)."""
    iv = Interval.from_dict(d)
    return Interval(iv.mean, max(iv.lo, 0.0), min(iv.hi, 1.0), iv.n)


def _scaled(iv: Interval, k: float) -> Interval:
    """The interval of ``k`` times the quantity (bounds swapped when ``k < 0``)."""
    lo, hi = sorted((k * iv.lo, k * iv.hi))
    return Interval(k * iv.mean, lo, hi, iv.n)


def claims(summary: dict) -> dict[str, dict[str, str]]:
    """The three claims per stream, each with its verdict and the interval it rests on."""
    out: dict[str, dict[str, str]] = {}
    for part, err, worse in (("bits", "online_loss", 1.0), ("digits", "online_accuracy", -1.0)):
        s = summary[part]["by_arm"]
        bp = s[BASELINE]
        d = _iv(bp[err]["late - early"])
        signed = _scaled(d, worse)
        dead = _iv(bp["dead"]["late - early"])
        c = {
            "backprop loses plasticity": f"{_stats.verdict(signed)} (late - early {err}: "
            f"{d.num(4)})",
            "dead units grow with tasks": f"{_stats.verdict(dead)} (late - early dead "
            f"fraction: {dead.pct()})",
        }
        for arm, a in s.items():
            if arm == BASELINE:
                continue
            vs = _iv(a[err]["late - backprop late"])
            better = _scaled(vs, -worse)
            own = _iv(a[err]["late - early"])
            own_s = _scaled(own, worse)
            lost = _stats.verdict(own_s)
            c[f"{arm} holds plasticity"] = (
                f"better than backprop late: {_stats.verdict(better)} ({vs.num(4)}); "
                f"loses plasticity itself: {lost} (late - early {own.num(4)})"
            )
        out[part] = c
    return out


def table_markdown(summary: dict, part: str) -> str:
    """Arms x (early, late, late - early, vs backprop, dead, effective rank) of one stream."""
    s = summary[part]["by_arm"]
    err = "online_loss" if part == "bits" else "online_accuracy"
    rows = []
    for arm, a in s.items():
        e = a[err]
        vs = e.get("late - backprop late")
        row = [
            arm,
            _iv(e["early"]).num(3),
            _iv(e["late"]).num(3),
            _iv(e["late - early"]).num(3),
            _iv(vs).num(3) if vs else "",
            _fraction(a["dead"]["early"]).pct(),
            _fraction(a["dead"]["late"]).pct(),
            _iv(a["effective_rank"]["late"]).num(2),
        ]
        if part == "digits":
            row.insert(4, _iv(a["test_accuracy"]["late"]).num(3))
        rows.append(row)
    name = "online error" if part == "bits" else "online accuracy"
    head = [
        "arm",
        f"{name} early",
        "late",
        "late - early",
        "late - backprop",
        "dead early",
        "dead late",
        "eff. rank late",
    ]
    if part == "digits":
        head.insert(4, "test acc. late")
    return _common.markdown_table(head, rows)


def readme_block(summary: dict) -> str:
    """The README/docs block: both settings, their tables and the claims with intervals."""
    sz = summary["sizes"]
    b, d = sz["bits"], sz["digits"]
    s_b, s_d = summary["bits"], summary["digits"]
    lines = [
        f"Slowly-changing regression (Dohare et al. 2024): 20 bits, 15 flipping (one flips "
        f"every T = {b['period']} examples), a target of 100 LTUs (beta 0.7); learner "
        f"MLP {tuple(b['hidden'])} of ReLUs, SGD {b['lr']:g}, one example per step, "
        f"{b['tasks']} tasks; {sz['seeds']} seeds, mean [95% t-interval]. Online error = "
        f"mean squared error of each example before its update, averaged over tasks "
        f"{s_b['early_tasks'][0]}-{s_b['early_tasks'][1]} (early) and "
        f"{s_b['late_tasks'][0]}-{s_b['late_tasks'][1]} (late); dead = never positive on "
        f"the task's probe set; effective rank of the hidden features (of {b['hidden'][0]}).",
        table_markdown(summary, "bits"),
        f"Permuted digits: scikit-learn digits, a new pixel permutation every "
        f"{d['period']} steps, {d['tasks']} tasks; MLP {tuple(d['hidden'])}, "
        f"{d['optimizer'].replace('_per_param', '')} {d['lr']:g}, batch {d['batch_size']}. "
        f"Online accuracy on each task's minibatches before their "
        f"updates, tasks {s_d['early_tasks'][0]}-{s_d['early_tasks'][1]} vs "
        f"{s_d['late_tasks'][0]}-{s_d['late_tasks'][1]}; test accuracy at each task's end.",
        table_markdown(summary, "digits"),
        "Claims (verdicts from the intervals of per-seed differences):",
    ]
    for part, title in (("bits", "slowly-changing regression"), ("digits", "permuted digits")):
        for claim, text in summary["claims"][part].items():
            lines.append(f"- {title}: {claim}: {text}.")
    return "\n\n".join(lines[:5]) + "\n\n" + "\n".join(lines[5:])


def draw(out: Path, labels: list[str], series: dict, scale: Scale) -> list[str]:
    """Per stream: the error (accuracy), dead fraction and effective rank per task."""
    plt = _figures.pyplot()
    labels_a = np.asarray(labels)
    files = []
    panels = {
        "bits": [
            ("online_loss", "online error (MSE)"),
            ("dead", "dead hidden units (%)"),
            ("effective_rank", "effective rank"),
        ],
        "digits": [
            ("online_accuracy", "online accuracy"),
            ("test_accuracy", "test accuracy at task end"),
            ("dead", "dead hidden units (%)"),
            ("effective_rank", "effective rank"),
        ],
    }
    for part, name, title in (
        ("bits", "bit_flipping.png", "slowly-changing regression"),
        ("digits", "permuted_digits.png", "permuted digits"),
    ):
        fig, axes = plt.subplots(1, len(panels[part]), figsize=(4.2 * len(panels[part]), 3.6))
        for ax, (metric, ylabel) in zip(axes, panels[part], strict=True):
            v = series[part][metric]
            tasks = np.arange(1, v.shape[1] + 1)
            curves = {}
            for arm in dict.fromkeys(labels):
                sel = v[labels_a == arm]
                ivs = [_stats.t_interval(sel[:, t]) for t in range(v.shape[1])]
                curves[arm] = tuple(
                    np.array([getattr(iv, k) for iv in ivs]) for k in ("mean", "lo", "hi")
                )
            _figures.curves(ax, tasks, curves, scale=100 if metric == "dead" else 1)
            ax.set_xlabel("task")
            ax.set_ylabel(ylabel)
            ax.grid(alpha=0.3)
        fig.suptitle(f"{title}: mean and 95% band over {scale.seeds} seeds", fontsize=10)
        _figures.legend_right(fig, axes[-1])
        _figures.save(fig, out / name)
        files.append(name)
    return files
