"""Input shift and dead ReLUs: Gaussian-mixture inputs shifted by m, raw or standardized.

``python -m experiments.input_shift [--quick | --full] [--out DIR] [--seed N]``

Seed document 000 (section 2.2) claims that inputs skewed towards negative values kill ReLUs.
The inputs of :func:`relujax.data.gaussian_mixture` (4 classes in 16 dimensions) are shifted
by ``m`` in every coordinate, for m from -8 to 8; MLPs (He init) with ReLU and LeakyReLU (slope
0.01) are trained with Adam on the raw shifted inputs and on inputs standardized again with
the training mean and standard deviation. Dead units (pre-activation never positive on 1024
training examples) are measured at initialization and after training, in the first hidden
layer (where the shift acts: a unit's pre-activation moves by ``m * sum(w)``) and overall.
Positive shifts are included to test whether the sign matters: with a symmetric
initialization, ``sum(w)`` is as often positive as negative.

Outputs: ``results.json``, ``summary.md``, ``dead_vs_shift.png`` and ``accuracy_vs_shift.png``.
"""

from __future__ import annotations

import dataclasses
import json
import shutil
import time
from collections.abc import Sequence
from typing import NamedTuple

import numpy as np

import relujax
from experiments import _common, _figures, _stats, _sweeps
from experiments._stats import Interval
from relujax import sweep

NAME = "input_shift"
ACTIVATIONS = ("relu", "leaky_relu")
PREPROCESSING = ("raw", "standardized")


@dataclasses.dataclass(frozen=True)
class Scale:
    """Sizes of one scale of the experiment."""

    shifts: tuple[float, ...]
    seeds: tuple[int, ...]
    hidden: tuple[int, ...]
    steps: int
    eval_every: int
    lr: float
    n_train: int
    n_test: int
    batch_size: int = 128


SCALES = {
    "quick": Scale(
        shifts=(-4.0, 0.0),
        seeds=(0,),
        hidden=(8,),
        steps=20,
        eval_every=10,
        lr=3e-3,
        n_train=256,
        n_test=128,
        batch_size=32,
    ),
    "default": Scale(
        shifts=(-8.0, -4.0, -2.0, -1.0, 0.0, 1.0, 2.0, 4.0, 8.0),
        seeds=(0, 1, 2),
        hidden=(64, 64),
        steps=1500,
        eval_every=150,
        lr=3e-3,
        n_train=4096,
        n_test=1024,
    ),
    "full": Scale(
        shifts=(-16.0, -8.0, -4.0, -2.0, -1.0, -0.5, 0.0, 0.5, 1.0, 2.0, 4.0, 8.0, 16.0),
        seeds=(0, 1, 2, 3, 4),
        hidden=(128, 128, 128),
        steps=5000,
        eval_every=250,
        lr=3e-3,
        n_train=16384,
        n_test=4096,
    ),
}


class Arm(NamedTuple):
    """One run: its label in tables and figures, and its sweep configuration."""

    label: str
    config: sweep.Config


def _standardized(ds: relujax.data.Dataset) -> relujax.data.Dataset:
    mean = ds.x_train.mean(axis=0, dtype=np.float64)
    std = ds.x_train.std(axis=0, dtype=np.float64)
    std = np.where(std > 0, std, 1.0)
    return ds._replace(
        x_train=((ds.x_train - mean) / std).astype(np.float32),
        x_test=((ds.x_test - mean) / std).astype(np.float32),
    )


def datasets(scale: Scale, seed: int) -> list[tuple[float, str, relujax.data.Dataset]]:
    """``(shift, preprocessing, dataset)`` for every shift, raw and standardized."""
    out = []
    for m in scale.shifts:
        raw = relujax.data.gaussian_mixture(
            n_train=scale.n_train, n_test=scale.n_test, mean_shift=m, seed=seed
        )
        out.append((m, "raw", raw))
        out.append((m, "standardized", _standardized(raw)))
    return out


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


def main(argv: Sequence[str] | None = None) -> dict:
    """Runs the experiment; returns the payload written to ``results.json``."""
    started = time.time()
    args = _common.parse_args(
        NAME, __doc__.splitlines()[0], argv, run_time="about 3 minutes", resumes=True
    )
    scale = SCALES[args.scale]
    data = datasets(scale, args.seed)
    arms = [
        Arm(f"{prep} {m:g}", sweep.Config("constant", scale.lr, act, data=d, seed=args.seed + s))
        for act in ACTIVATIONS
        for d, (m, prep, _) in enumerate(data)
        for s in scale.seeds
    ]
    print(
        f"[{NAME}] {len(arms)} runs: {len(scale.shifts)} shifts x raw/standardized x "
        f"{len(ACTIVATIONS)} activations x {len(scale.seeds)} seeds, MLP {scale.hidden}, "
        f"{scale.steps} Adam steps",
        flush=True,
    )
    progress = _common.Progress(NAME, len(arms) * scale.steps)
    result = _sweeps.run(
        args,
        progress,
        "gaussian_mixture",
        [a.config for a in arms],
        [ds for _, _, ds in data],  # one data set per shift and preprocessing
        steps=scale.steps,
        model=sweep.MLPSpec(hidden=scale.hidden),
        optimizer="adam",
        batch_size=scale.batch_size,
        eval_every=scale.eval_every,
    )
    res = _sweeps.arrays(result)
    grid: dict[str, dict] = {}
    claim_rows, number_rows = [], []
    for act in ACTIVATIONS:
        for prep in PREPROCESSING:
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
    figures = _draw(args.out, scale, grid)
    payload = {
        "sizes": dataclasses.asdict(scale),
        "steps": res["steps"],
        "grid": grid,
        "runs": [
            {
                "arm": {"label": a.label, **a.config.to_dict()},
                "shift": data[a.config.data][0],
                "preprocessing": data[a.config.data][1],
                **{k: res[k][i] for k in ("dead", "dormant", "test_accuracy", "test_loss")},
            }
            for i, a in enumerate(arms)
        ],
        "figures": figures,
    }
    _common.write_results(args, payload, started=started)
    shutil.rmtree(args.out / "checkpoints", ignore_errors=True)  # only needed to resume
    summary = {
        "experiment": NAME,
        "scale": args.scale,
        "sizes": dataclasses.asdict(scale),
        "grid": grid,
        "claim_rows": claim_rows,
        "number_rows": number_rows,
        "wall_seconds": round(time.time() - started, 1),
        "cpu_seconds": round(time.process_time(), 1),
    }
    (args.out / "summary.json").write_text(json.dumps(_common.jsonable(summary), indent=1))
    text = "\n\n".join(
        [
            f"# {NAME}: input shift and dead units ({args.scale} scale)",
            readme_block(summary),
            f"Figures: {', '.join(figures)}. Wall time {time.time() - started:.0f} s.",
        ]
    )
    _common.write_summary(args, text)
    return payload


def _draw(out, scale: Scale, grid: dict[str, dict]) -> list[str]:
    """Dead units and accuracy vs shift; distinct styles, legend outside the axes."""
    plt = _figures.pyplot()
    shifts = np.asarray(scale.shifts)

    def series(key: str, when: str = "") -> dict[str, tuple]:
        out = {}
        for act in ACTIVATIONS:
            for prep in PREPROCESSING:
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


if __name__ == "__main__":
    _common.cli(main, NAME, resumes=True)
