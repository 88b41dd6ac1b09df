"""Claims, tables and figures of ``experiments.lr_schedules``, from its sweeps or its summary.

:func:`summarize` reduces the sweeps to ``summary.json``: per data set and activation the
final dead fraction at every peak LR (mean over seeds of each seed's mean over schedules,
with a 95% t-interval), the claims with their per-seed differences and verdicts, and the
dead-vs-step curves of the headline figure. :func:`readme_block` and :func:`readme_figure`
render the README's table, claims and figure from that summary alone, so that
``python -m experiments.render_readme`` can regenerate them and a test can check them.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from experiments import _figures, _stats
from experiments._stats import Interval
from relujax import sweep

NAME = "lr_schedules"
LABELS = {"mnist1d": "MNIST-1D", "digits": "digits"}
WARMUP_PAIRS = (
    ("warmup_constant", "constant"),
    ("warmup_cosine", "cosine_decay"),
    ("cosine_onecycle", "cosine_decay"),
)


def _columns(result: sweep.SweepResult, hidden: tuple[int, ...]) -> dict[str, np.ndarray]:
    """Per configuration: grid axes and metrics as fractions of all hidden units."""
    w = np.asarray(hidden, float) / sum(hidden)
    dead_curve = result.metrics["dead_fraction"] @ w  # [K, E]
    return {
        "schedule": np.array([c.schedule.name for c in result.configs]),
        "peak_lr": np.array([c.peak_lr for c in result.configs]),
        "activation": np.array([c.activation for c in result.configs]),
        "seed": np.array([c.seed for c in result.configs]),
        "dead_curve": dead_curve,
        "dead": dead_curve[:, -1],
        "dormant": (result.metrics["dormant_fraction"] @ w)[:, -1],
        "accuracy": result.final("test_accuracy"),
        "diverged": result.diverged,
    }


def _iv(cols: dict, metric: str, mask: np.ndarray) -> Interval:
    """Interval of a fraction over seeds (each seed: mean over the masked runs)."""
    return _stats.t_interval(_stats.per_seed(cols[metric], cols["seed"], mask), within=(0, 1))


def _diff(cols: dict, metric: str, a: np.ndarray, b: np.ndarray) -> Interval:
    """Interval of the per-seed differences mean(a) - mean(b)."""
    va = _stats.per_seed(cols[metric], cols["seed"], a)
    vb = _stats.per_seed(cols[metric], cols["seed"], b)
    return _stats.t_interval(va - vb)


def _dataset_summary(name: str, cols: dict, sizes: dict, steps: np.ndarray) -> tuple[dict, list]:
    lrs, hi, lo = sizes["peak_lrs"], max(sizes["peak_lrs"]), min(sizes["peak_lrs"])
    act, lr, sched = cols["activation"], cols["peak_lr"], cols["schedule"]
    table = []
    for a in sizes["activations"]:
        row: dict[str, Any] = {"activation": a}
        for metric in ("dead", "dormant", "accuracy"):
            row[metric] = {
                f"{v:g}": _iv(cols, metric, (act == a) & (lr == v)).to_dict() for v in lrs
            }
        row["diverged"] = int(cols["diverged"][act == a].sum())
        table.append(row)
    relu_hi = (act == "relu") & (lr == hi)
    series = {}
    for s in sizes["schedules"]:
        per_step = [
            _stats.t_interval(cols["dead_curve"][relu_hi & (sched == s), e], within=(0, 1))
            for e in range(len(steps))
        ]
        series[s] = {k: [round(getattr(iv, k), 5) for iv in per_step] for k in ("mean", "lo", "hi")}
    claims: list[dict[str, Any]] = []
    if "relu" in sizes["activations"]:
        relu = act == "relu"
        d = _diff(cols, "dead", relu & (lr == hi), relu & (lr == lo))
        claims.append(
            {
                "id": "lr_kills",
                "dataset": name,
                "low": _iv(cols, "dead", relu & (lr == lo)).to_dict(),
                "high": _iv(cols, "dead", relu & (lr == hi)).to_dict(),
                "difference": d.to_dict(),
                "verdict": _stats.verdict(d),
            }
        )
        pairs = []
        for w, p in WARMUP_PAIRS:
            if w in sizes["schedules"] and p in sizes["schedules"]:
                d = _diff(cols, "dead", relu_hi & (sched == p), relu_hi & (sched == w))
                pairs.append(
                    {
                        "warmup": w,
                        "plain": p,
                        "reduction": d.to_dict(),
                        "verdict": _stats.verdict(d),
                    }
                )
        if pairs:
            claims.append({"id": "warmup", "dataset": name, "pairs": pairs})
        for a in sizes["activations"]:
            if a == "relu":
                continue
            sel = (act == a) & (lr == hi)
            dormant = _iv(cols, "dormant", sel)
            # "Never" is a claim about every run: count the runs above the bound. With none
            # of n, the share of such runs is below 1 - 0.05**(1/n) at 95% (about 3/n).
            runs = int(np.isfinite(cols["dormant"][sel]).sum())
            above = int((cols["dormant"][sel] >= 0.01).sum())
            gain = _diff(cols, "accuracy", sel, relu_hi)
            claims.append(
                {
                    "id": "never_die",
                    "dataset": name,
                    "activation": a,
                    "never_positive": _iv(cols, "dead", sel).to_dict(),
                    "dormant": dormant.to_dict(),
                    "relu_dead": _iv(cols, "dead", relu_hi).to_dict(),
                    "accuracy_gain": gain.to_dict(),
                    "runs": runs,
                    "runs_dormant": above,
                    # never dormant: no run with 1% of its units dormant
                    "verdict": "holds" if runs and not above else "does not hold",
                    "accuracy_verdict": _stats.verdict(gain),
                }
            )
    summary = {
        "label": LABELS.get(name, name),
        "table": table,
        "curves": {"steps": steps.tolist(), "relu_at_peak": series},
    }
    return summary, claims


def summarize(results: dict[str, sweep.SweepResult], sizes: dict, scale: str) -> dict[str, Any]:
    """The ``summary.json`` of a run: tables, claims and curves with intervals over seeds."""
    out: dict[str, Any] = {
        "experiment": NAME,
        "scale": scale,
        "sizes": sizes,
        "datasets": {},
        "claims": [],
    }
    for name, res in results.items():
        cols = _columns(res, tuple(sizes["hidden"]))
        summary, claims = _dataset_summary(name, cols, sizes, res.steps)
        out["datasets"][name] = summary
        out["claims"] += claims
    first = next(iter(results.values()))
    out["versions"] = first.meta.get("versions", {})
    return out


# ---------------------------------------------------------------------------------------------
# rendering: from the summary alone


def _p(d: dict) -> str:
    return Interval.from_dict(d).pct()


def _points(d: dict) -> str:
    iv = Interval.from_dict(d)
    return f"{100 * iv.mean:.1f} points [{100 * iv.lo:.1f}, {100 * iv.hi:.1f}]"


def table_markdown(summary: dict[str, Any]) -> str:
    """Dead units per data set x activation x peak LR, and test accuracy at the highest LR."""
    lrs = [f"{v:g}" for v in summary["sizes"]["peak_lrs"]]
    hi = lrs[-1] if lrs == sorted(lrs, key=float) else f"{max(map(float, lrs)):g}"
    head = ["data", "activation", *[f"dead at LR {v}" for v in lrs], f"test acc at {hi}"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for ds in summary["datasets"].values():
        for row in ds["table"]:
            cells = [ds["label"], row["activation"], *[_p(row["dead"][v]) for v in lrs]]
            cells.append(Interval.from_dict(row["accuracy"][hi]).num())
            lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def _signed(d: dict, *, points: bool) -> str:
    iv = Interval.from_dict(d)
    if points:
        return f"{100 * iv.mean:+.1f} points [{100 * iv.lo:+.1f}, {100 * iv.hi:+.1f}]"
    return f"{iv.mean:+.3f} [{iv.lo:+.3f}, {iv.hi:+.3f}]"


def _runs(c: dict) -> str:
    n, k = c.get("runs"), c.get("runs_dormant")
    if n is None:
        return "runs not counted"
    if k:
        return f"{k} of {n} runs above 1%"
    return f"0 of {n} runs above 1% (so at most {1 - 0.05 ** (1 / n):.0%} of runs, at 95%)"


def claims_markdown(summary: dict[str, Any]) -> str:
    """A table of the claims: what was measured per data set, and the verdict."""
    label = {n: d["label"] for n, d in summary["datasets"].items()}
    lo, hi = (f"{f(summary['sizes']['peak_lrs']):g}" for f in (min, max))
    rows = []
    for c in summary["claims"]:
        data = label[c["dataset"]]
        if c["id"] == "lr_kills":
            rows.append(
                [
                    f"a too-high LR kills ReLUs (dead at peak LR {lo} -> {hi})",
                    data,
                    f"{_p(c['low'])} -> {_p(c['high'])}: {_signed(c['difference'], points=True)}",
                    c["verdict"],
                ]
            )
        elif c["id"] == "warmup":
            for p in c["pairs"]:
                rows.append(
                    [
                        f"warmup reduces the toll: {p['warmup']} vs {p['plain']} (ReLU, LR {hi})",
                        data,
                        f"{_signed(p['reduction'], points=True)} fewer dead",
                        p["verdict"],
                    ]
                )
        elif c["id"] == "never_die":
            act = c["activation"]
            rows.append(
                [
                    f"{act} units never die: no run with 1% of its units ReDo-dormant (LR {hi})",
                    data,
                    # Run counts, not the dormant fraction's interval: rare runs with dormant
                    # units make [0, 0] (all seeds agreeing) a fragile interval.
                    f"{_runs(c)}; never positive {_p(c['never_positive'])} (ReLU dead: "
                    f"{_p(c['relu_dead'])})",
                    c["verdict"],
                ]
            )
            rows.append(
                [
                    f"{act} keeps more test accuracy than ReLU (LR {hi})",
                    data,
                    f"{_signed(c['accuracy_gain'], points=False)}",
                    c["accuracy_verdict"],
                ]
            )
    head = ["claim", "data", "measured: mean [95% interval over seeds]", "verdict"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    lines += ["| " + " | ".join(r) + " |" for r in rows]
    return "\n".join(lines)


def readme_block(summary: dict[str, Any]) -> str:
    """The README's generated block: what was run, the table and the claims."""
    sz = summary["sizes"]
    n_seeds, n_sched = len(sz["seeds"]), len(sz["schedules"])
    k = n_sched * len(sz["peak_lrs"]) * len(sz["activations"]) * n_seeds
    data = " and ".join(d["label"] for d in summary["datasets"].values())
    wall = summary.get("wall_seconds", float("nan"))
    load, cpu = summary.get("load_average"), summary.get("cpu_seconds")
    machine = f", load average {load:.1f} at the end" if load is not None else ""
    machine += f", {cpu:.0f} s of CPU time" if cpu is not None else ""
    return "\n\n".join(
        [
            f"The default run trains {k} MLPs per data set ({data}; hidden layers "
            f"{'-'.join(map(str, sz['hidden']))}) with Adam for {sz['steps']} steps, batch "
            f"{sz['batch_size']}: schedules {', '.join(sz['schedules'])} x peak LR "
            f"{', '.join(f'{v:g}' for v in sz['peak_lrs'])} x {', '.join(sz['activations'])} "
            f"x {n_seeds} seeds (`--full`: more schedules, peak LRs, seeds, wider and longer). "
            f"Wall time of the run behind these numbers: {wall:.0f} s on a 2-core CPU{machine}.",
            f"Fractions of all hidden units dead (never positive on the probe set) at step "
            f"{sz['steps']}: mean over {n_seeds} seeds of each seed's mean over the {n_sched} "
            "schedules [95% t-interval over seeds].",
            table_markdown(summary),
            "Claims: one holds where the 95% interval of the per-seed difference lies on the "
            "claimed side of zero (or of the stated bound), does not hold where it lies on the "
            "other side, and is not resolved where it straddles it.",
            claims_markdown(summary),
        ]
    )


def readme_figure(summary: dict[str, Any], path: Any) -> None:
    """Dead ReLUs vs step per schedule at the highest peak LR, one panel per data set."""
    plt = _figures.pyplot()
    datasets = summary["datasets"]
    hi = max(summary["sizes"]["peak_lrs"])
    n = len(datasets)
    fig, axes = plt.subplots(1, n, figsize=(5.2 * n, 3.8), squeeze=False, sharey=True)
    for ax, ds in zip(axes[0], datasets.values(), strict=True):
        steps = np.asarray(ds["curves"]["steps"])
        series = {
            s: (
                np.asarray(v["mean"], float),
                np.asarray(v["lo"], float),
                np.asarray(v["hi"], float),
            )
            for s, v in ds["curves"]["relu_at_peak"].items()
        }
        _figures.curves(ax, steps, series, scale=100)
        ax.set_title(f"{ds['label']}: ReLU MLP, Adam, peak LR {hi:g}")
        ax.set_xlabel("step")
        ax.grid(alpha=0.3)
    axes[0][0].set_ylabel("dead hidden units (%)")
    _figures.legend_right(
        fig, axes[0][-1], title=f"schedule (mean, 95% band, {len(summary['sizes']['seeds'])} seeds)"
    )
    _figures.save(fig, path)


def summary_markdown(summary: dict[str, Any], figures: list[str]) -> str:
    """``summary.md``: the README block plus the per-schedule table at the highest LR."""
    hi = max(summary["sizes"]["peak_lrs"])
    lines = ["| data | schedule | dead (final) | max dead |", "|---|---|---|---|"]
    for ds in summary["datasets"].values():
        for s, v in ds["curves"]["relu_at_peak"].items():
            mean = np.asarray(v["mean"], float)
            lines.append(
                f"| {ds['label']} | {s} | {100 * mean[-1]:.1f}% | {100 * np.nanmax(mean):.1f}% |"
            )
    return "\n\n".join(
        [
            f"# {NAME}: dead units under learning-rate schedules ({summary['scale']} scale)",
            readme_block(summary),
            f"## Schedules, ReLU at peak LR {hi:g} (means over seeds)",
            "\n".join(lines),
            f"Figures: {', '.join(figures)}.",
        ]
    )


def figures(out: Any, results: dict[str, sweep.SweepResult], summary: dict[str, Any]) -> list[str]:
    """Writes ``dead_vs_step.png``, ``dead_heatmap.png`` and ``accuracy_vs_step.png``."""
    plt = _figures.pyplot()
    sz = summary["sizes"]
    readme_figure(summary, out / "dead_vs_step.png")

    acts, lrs, scheds = sz["activations"], sz["peak_lrs"], sz["schedules"]
    n = len(results)
    fig, axes = plt.subplots(
        n,
        len(acts),
        figsize=(2.6 * len(acts) + 2.2, 0.5 * len(scheds) * n + 1.4 * n),
        squeeze=False,
        layout="constrained",
    )
    im = None
    for row, (name, res) in enumerate(results.items()):
        cols = _columns(res, tuple(sz["hidden"]))
        for j, act in enumerate(acts):
            grid = np.full((len(scheds), len(lrs)), np.nan)
            for a, s in enumerate(scheds):
                for b, v in enumerate(lrs):
                    sel = (
                        (cols["activation"] == act)
                        & (cols["peak_lr"] == v)
                        & (cols["schedule"] == s)
                    )
                    grid[a, b] = np.nanmean(cols["dead"][sel]) if sel.any() else np.nan
            ax = axes[row][j]
            im = ax.imshow(100 * grid, vmin=0, vmax=100, cmap="magma", aspect="auto")
            for (a, b), v in np.ndenumerate(grid):
                if np.isfinite(v):
                    ax.text(
                        b,
                        a,
                        f"{100 * v:.0f}",
                        ha="center",
                        va="center",
                        fontsize=7,
                        color="white" if v < 0.6 else "black",
                    )
            ax.set_xticks(range(len(lrs)), _figures.labels_of(lrs), fontsize=7)
            ax.set_yticks(range(len(scheds)), scheds if j == 0 else [], fontsize=7)
            ax.set_title(f"{LABELS.get(name, name)}: {act}", fontsize=9)
            if row == n - 1:
                ax.set_xlabel("peak LR")
    assert im is not None, "no heatmap drawn"
    fig.colorbar(im, ax=axes, label="final dead units (%, mean over seeds)", shrink=0.8)
    _figures.save(fig, out / "dead_heatmap.png")

    fig, axes = plt.subplots(1, n, figsize=(5.2 * n, 3.8), squeeze=False, sharey=True)
    for ax, (name, res) in zip(axes[0], results.items(), strict=True):
        cols = _columns(res, tuple(sz["hidden"]))
        acc = res.metrics["test_accuracy"]
        series = {}
        for act in acts:
            for v in (min(lrs), max(lrs)):
                sel = (cols["activation"] == act) & (cols["peak_lr"] == v)
                m = np.nanmean(acc[sel], axis=0)
                series[f"{act}, LR {v:g}"] = (m, np.full_like(m, np.nan), np.full_like(m, np.nan))
        _figures.curves(ax, res.steps, series)
        ax.set_title(
            f"{LABELS.get(name, name)}: test accuracy (mean over schedules, seeds)", fontsize=9
        )
        ax.set_xlabel("step")
        ax.grid(alpha=0.3)
    axes[0][0].set_ylabel("test accuracy")
    _figures.legend_right(fig, axes[0][-1])
    _figures.save(fig, out / "accuracy_vs_step.png")
    return ["dead_vs_step.png", "dead_heatmap.png", "accuracy_vs_step.png"]
