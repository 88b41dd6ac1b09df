"""Dead units under Optax learning-rate schedules: the main job.

``python -m experiments.lr_schedules [--quick | --full] [--out DIR]``

Trains MLPs on MNIST-1D (and, at the default and full scales, scikit-learn's digits) with Adam
under many learning-rate schedules x peak learning rates x activations (relu, leaky_relu,
prelu, elu), all configurations of one dataset in one :func:`relujax.sweep.run`, and records at
every evaluation the fraction of hidden units that never fire on a fixed probe set of training
examples (dead), the fraction that are ReDo-dormant (tau = 0.025), and the test accuracy.

It checks three claims:

1. a too-high learning rate kills ReLUs (dead fraction at the highest vs the lowest peak LR);
2. warmup reduces the toll (schedules with warmup vs their counterparts without, at the
   highest peak LR);
3. LeakyReLU units never die, but can go dormant. For non-ReLU activations "dead" is measured
   as for ReLU (pre-activation never positive on the probe set), so a "dead" leaky unit still
   passes gradient through its negative slope; the dormant fraction is reported beside it.

Outputs in ``--out`` (default ``results/lr_schedules/``): ``results.json`` (every run's config
and curves), ``summary.md``, ``dead_vs_step.png`` (the headline: dead fraction vs step, one line
per schedule, ReLU at the highest peak LR), ``dead_heatmap.png`` (final dead fraction per
schedule x peak LR for each activation) and ``accuracy_vs_step.png``.
"""

from __future__ import annotations

import dataclasses
import shutil
import time
from collections.abc import Sequence

import numpy as np

import relujax
from experiments import _common
from relujax import sweep

NAME = "lr_schedules"
ACTIVATIONS = ("relu", "leaky_relu", "prelu", "elu")
WARMUP_PAIRS = (
    ("warmup_constant", "constant"),
    ("warmup_cosine", "cosine_decay"),
    ("cosine_onecycle", "cosine_decay"),
)


@dataclasses.dataclass(frozen=True)
class Scale:
    """Sizes of one scale of the experiment."""

    datasets: tuple[str, ...]
    schedules: tuple[str, ...]
    peak_lrs: tuple[float, ...]
    activations: tuple[str, ...]
    seeds: tuple[int, ...]
    hidden: tuple[int, ...]
    steps: int
    eval_every: int
    chunk_steps: int
    batch_size: int = 128
    num_samples: int = 5000


_ALL_SCHEDULES = (
    "constant",
    "warmup_constant",
    "piecewise_constant",
    "exponential_decay",
    "cosine_decay",
    "warmup_cosine",
    "cosine_onecycle",
    "sgdr",
)

SCALES = {
    "quick": Scale(
        datasets=("mnist1d",),
        schedules=("constant", "warmup_constant", "cosine_decay", "cosine_onecycle"),
        peak_lrs=(1e-3, 3e-2),
        activations=("relu", "leaky_relu"),
        seeds=(0,),
        hidden=(32, 32),
        steps=40,
        eval_every=20,
        chunk_steps=40,
        num_samples=1000,
    ),
    "default": Scale(
        datasets=("mnist1d", "digits"),
        schedules=_ALL_SCHEDULES,
        peak_lrs=(1e-3, 1e-2, 3e-2, 1e-1),
        activations=ACTIVATIONS,
        seeds=(0,),
        hidden=(64, 64, 64),
        steps=1000,
        eval_every=50,
        chunk_steps=250,
    ),
    "full": Scale(
        datasets=("mnist1d", "digits"),
        schedules=(*_ALL_SCHEDULES, "linear_onecycle", "warmup_exponential", "inverse_sqrt"),
        peak_lrs=(3e-4, 1e-3, 3e-3, 1e-2, 3e-2, 1e-1, 3e-1),
        activations=ACTIVATIONS,
        seeds=(0, 1, 2),
        hidden=(256, 256, 256),
        steps=6000,
        eval_every=200,
        chunk_steps=1000,
        num_samples=10000,
    ),
}


def _dataset(name: str, scale: Scale, seed: int) -> relujax.data.Dataset:
    if name == "mnist1d":
        return relujax.data.mnist1d(num_samples=scale.num_samples)
    return relujax.data.digits(seed=seed)


def _mean_over(values: np.ndarray, mask: np.ndarray) -> float:
    """Mean of ``values[mask]`` ignoring NaN (diverged runs), NaN if nothing is left."""
    picked = values[mask]
    picked = picked[np.isfinite(picked)]
    return float(picked.mean()) if picked.size else float("nan")


def _columns(result: sweep.SweepResult, hidden: Sequence[int]) -> dict[str, np.ndarray]:
    """Per-configuration arrays: axes of the grid and final metrics over all hidden units."""
    dead = result.metrics["dead_fraction"]  # [K, E, L]
    dormant = result.metrics["dormant_fraction"]
    w = np.asarray(hidden, dtype=float) / sum(hidden)  # layer fractions -> unit fractions
    dead_curve = dead @ w  # [K, E]
    seen = np.where(np.isfinite(dead_curve), dead_curve, -np.inf).max(axis=1)
    return {
        "schedule": np.array([c.schedule.name for c in result.configs]),
        "peak_lr": np.array([c.peak_lr for c in result.configs]),
        "activation": np.array([c.activation for c in result.configs]),
        "dead_curve": dead_curve,
        "dead": dead_curve[:, -1],
        "dead_max": np.where(np.isfinite(seen), seen, np.nan),
        "dormant": (dormant @ w)[:, -1],
        "accuracy": result.final("test_accuracy"),
        "diverged": result.diverged,
    }


def _claims(name: str, cols: dict[str, np.ndarray], scale: Scale) -> list[list]:
    """Rows of the findings table for one dataset."""
    rows = []
    lo, hi = min(scale.peak_lrs), max(scale.peak_lrs)
    relu = cols["activation"] == "relu"
    d_lo = _mean_over(cols["dead"], relu & (cols["peak_lr"] == lo))
    d_hi = _mean_over(cols["dead"], relu & (cols["peak_lr"] == hi))
    holds = d_hi > d_lo + 0.05
    rows.append(
        [
            name,
            "a too-high LR kills ReLUs",
            f"relu dead {d_lo:.1%} at lr {lo:g} vs {d_hi:.1%} at lr {hi:g} (mean over schedules)",
            "Holds: more ReLUs die at the high LR."
            if holds
            else "Does not hold at this scale: the high LR kills no more than 5 points more.",
        ]
    )
    diffs = []
    for warm, plain in WARMUP_PAIRS:
        if warm in scale.schedules and plain in scale.schedules:
            sel = relu & (cols["peak_lr"] == hi)
            dw = _mean_over(cols["dead"], sel & (cols["schedule"] == warm))
            dp = _mean_over(cols["dead"], sel & (cols["schedule"] == plain))
            diffs.append((warm, plain, dw, dp))
    if diffs:
        text = "; ".join(f"{w} {dw:.1%} vs {p} {dp:.1%}" for w, p, dw, dp in diffs)
        better = sum(dw < dp - 0.01 for _, _, dw, dp in diffs)
        verdict = (
            "Holds: every warmup schedule ends with fewer dead ReLUs than its counterpart."
            if better == len(diffs)
            else f"Partly holds: {better} of {len(diffs)} warmup schedules end with fewer "
            "dead ReLUs (by > 1 point)."
            if better
            else "Does not hold here: warmup does not lower the final dead fraction."
        )
        rows.append([name, f"warmup reduces the toll (relu, lr {hi:g})", text, verdict])
    for act in ("leaky_relu", "prelu", "elu"):
        if act not in scale.activations:
            continue
        sel = (cols["activation"] == act) & (cols["peak_lr"] == hi)
        d = _mean_over(cols["dead"], sel)
        dm = _mean_over(cols["dormant"], sel)
        rows.append(
            [
                name,
                f"{act} units never die (lr {hi:g})",
                f"never-positive {d:.1%}, dormant {dm:.1%}; relu never-positive {d_hi:.1%}",
                ("Holds in the gradient sense only" if d >= 0.5 * d_hi else "Mostly holds")
                + f": {d:.0%} of {act} units never turn positive (ReLU: {d_hi:.0%}) and "
                f"{dm:.0%} are dormant, but unlike ReLU they keep a gradient for x <= 0.",
            ]
        )
    return rows


def _activation_rows(name: str, cols: dict[str, np.ndarray], scale: Scale) -> list[list]:
    """Per activation x peak LR, means over schedules and seeds."""
    rows = []
    for act in scale.activations:
        for lr in scale.peak_lrs:
            sel = (cols["activation"] == act) & (cols["peak_lr"] == lr)
            rows.append(
                [
                    name,
                    act,
                    f"{lr:g}",
                    _mean_over(cols["dead"], sel),
                    _mean_over(cols["dead_max"], sel),
                    _mean_over(cols["dormant"], sel),
                    _mean_over(cols["accuracy"], sel),
                    f"{int(cols['diverged'][sel].sum())}/{int(sel.sum())}",
                ]
            )
    return rows


def _schedule_rows(name: str, cols: dict[str, np.ndarray], scale: Scale) -> list[list]:
    """Per schedule, ReLU at the highest peak LR, means over seeds."""
    hi = max(scale.peak_lrs)
    rows = []
    for sched in scale.schedules:
        sel = (cols["activation"] == "relu") & (cols["peak_lr"] == hi) & (cols["schedule"] == sched)
        rows.append(
            [
                name,
                sched,
                _mean_over(cols["dead"], sel),
                _mean_over(cols["dead_max"], sel),
                _mean_over(cols["dormant"], sel),
                _mean_over(cols["accuracy"], sel),
            ]
        )
    return rows


def _figures(out, results: dict[str, sweep.SweepResult], scale: Scale) -> list[str]:
    plt = _common.pyplot()
    files = []
    hi = max(scale.peak_lrs)
    n = len(results)
    fig, axes = plt.subplots(1, n, figsize=(6 * n, 4), squeeze=False)
    for ax, (name, res) in zip(axes[0], results.items(), strict=True):
        cols = _columns(res, scale.hidden)
        for sched in scale.schedules:
            sel = (
                (cols["activation"] == "relu")
                & (cols["peak_lr"] == hi)
                & (cols["schedule"] == sched)
            )
            curve = np.nanmean(cols["dead_curve"][sel], axis=0)
            ax.plot(res.steps, 100 * curve, label=sched)
        ax.set_title(f"{name}: ReLU MLP, Adam, peak LR {hi:g}")
        ax.set_xlabel("step")
        ax.set_ylabel("dead units (%)")
        ax.grid(alpha=0.3)
    axes[0][-1].legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(out / "dead_vs_step.png", dpi=120)
    plt.close(fig)
    files.append("dead_vs_step.png")

    acts = scale.activations
    fig, axes = plt.subplots(n, len(acts), figsize=(3.2 * len(acts), 3.2 * n), squeeze=False)
    for row, (name, res) in enumerate(results.items()):
        cols = _columns(res, scale.hidden)
        for j, act in enumerate(acts):
            grid = np.full((len(scale.schedules), len(scale.peak_lrs)), np.nan)
            for a, sched in enumerate(scale.schedules):
                for b, lr in enumerate(scale.peak_lrs):
                    sel = (
                        (cols["activation"] == act)
                        & (cols["peak_lr"] == lr)
                        & (cols["schedule"] == sched)
                    )
                    grid[a, b] = _mean_over(cols["dead"], sel)
            ax = axes[row][j]
            im = ax.imshow(100 * grid, vmin=0, vmax=100, cmap="magma", aspect="auto")
            ax.set_xticks(range(len(scale.peak_lrs)), [f"{lr:g}" for lr in scale.peak_lrs])
            ax.set_yticks(range(len(scale.schedules)), scale.schedules if j == 0 else [])
            ax.set_title(f"{name}: {act}", fontsize=9)
            ax.set_xlabel("peak LR")
    fig.colorbar(im, ax=axes, label="final dead units (%)", shrink=0.8)
    fig.savefig(out / "dead_heatmap.png", dpi=120)
    plt.close(fig)
    files.append("dead_heatmap.png")

    fig, axes = plt.subplots(1, n, figsize=(6 * n, 4), squeeze=False)
    for ax, (name, res) in zip(axes[0], results.items(), strict=True):
        cols = _columns(res, scale.hidden)
        acc = res.metrics["test_accuracy"]
        for act in acts:
            for lr in (min(scale.peak_lrs), hi):
                sel = (cols["activation"] == act) & (cols["peak_lr"] == lr)
                ax.plot(res.steps, np.nanmean(acc[sel], axis=0), label=f"{act}, lr {lr:g}")
        ax.set_title(f"{name}: test accuracy (mean over schedules)")
        ax.set_xlabel("step")
        ax.set_ylabel("accuracy")
        ax.grid(alpha=0.3)
    axes[0][-1].legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(out / "accuracy_vs_step.png", dpi=120)
    plt.close(fig)
    files.append("accuracy_vs_step.png")
    return files


def main(argv: Sequence[str] | None = None) -> dict:
    """Runs the experiment; returns the payload written to ``results.json``."""
    started = time.time()
    args = _common.parse_args(NAME, __doc__.splitlines()[0], argv)
    scale = SCALES[args.scale]
    results: dict[str, sweep.SweepResult] = {}
    for name in scale.datasets:
        data = _dataset(name, scale, args.seed)
        grid = sweep.Grid(
            schedules=list(scale.schedules),
            peak_lrs=list(scale.peak_lrs),
            activations=list(scale.activations),
            seeds=[args.seed + s for s in scale.seeds],
        )
        print(
            f"[{NAME}] {name}: {len(grid.configs())} configurations x {scale.steps} steps "
            f"(MLP {data.input_shape[0]}-{'-'.join(map(str, scale.hidden))}-{data.output_dim})"
        )
        results[name] = sweep.run(
            grid,
            data,
            steps=scale.steps,
            model=sweep.MLPSpec(hidden=scale.hidden),
            optimizer="adam",
            batch_size=scale.batch_size,
            eval_every=scale.eval_every,
            chunk_steps=scale.chunk_steps,
            checkpoint_dir=str((args.out / "checkpoints" / name).resolve()),
            progress=True,
        )
    claims, act_rows, sched_rows = [], [], []
    for name, res in results.items():
        cols = _columns(res, scale.hidden)
        claims += _claims(name, cols, scale)
        act_rows += _activation_rows(name, cols, scale)
        sched_rows += _schedule_rows(name, cols, scale)
    figures = _figures(args.out, results, scale)
    payload = {
        "sizes": dataclasses.asdict(scale),
        "claims": [
            dict(zip(("dataset", "claim", "measured", "finding"), r, strict=True)) for r in claims
        ],
        "sweeps": {name: res.to_dict() for name, res in results.items()},
        "figures": figures,
    }
    _common.write_results(args, payload, started=started)
    shutil.rmtree(args.out / "checkpoints", ignore_errors=True)  # only needed to resume
    hi = max(scale.peak_lrs)
    text = "\n\n".join(
        [
            f"# {NAME}: dead units under learning-rate schedules ({args.scale} scale)",
            f"Adam, MLP hidden {scale.hidden}, {scale.steps} steps, batch {scale.batch_size}, "
            f"{len(scale.seeds)} seed(s). Dead = pre-activation never positive on the probe "
            "set (first 1024 training examples); dormant = ReDo score <= 0.025; fractions of "
            "all hidden units at the last evaluation; max dead = the highest dead fraction "
            "seen at any evaluation.",
            "## Claims",
            _common.markdown_table(("dataset", "claim", "measured", "finding"), claims),
            "## Activation x peak LR (means over schedules)",
            _common.markdown_table(
                (
                    "dataset",
                    "activation",
                    "peak LR",
                    "dead",
                    "max dead",
                    "dormant",
                    "test acc",
                    "diverged",
                ),
                act_rows,
            ),
            f"## Schedules, ReLU at peak LR {hi:g}",
            _common.markdown_table(
                ("dataset", "schedule", "dead", "max dead", "dormant", "test acc"), sched_rows
            ),
            f"Figures: {', '.join(figures)}. Wall time {time.time() - started:.0f} s.",
        ]
    )
    _common.write_summary(args, text)
    return payload


if __name__ == "__main__":
    main()
