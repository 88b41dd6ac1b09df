"""Dead units under Optax learning-rate schedules: the main job.

``python -m experiments.lr_schedules [--quick | --full] [--out DIR]``

Trains MLPs 40-64-64-64-10 on MNIST-1D and 64-64-64-64-10 on scikit-learn's digits with Adam
for 1000 steps, under 5 learning-rate schedules (constant, warmup_constant, cosine_decay,
warmup_cosine, cosine_onecycle: the warmup schedules and their counterparts without warmup)
x peak LR {1e-3, 1e-2, 3e-2, 1e-1} x {relu, leaky_relu, prelu, elu} x 3 seeds, all
configurations of one data set in one :func:`relujax.sweep.run`. Every 50 steps it records
the fraction of hidden units that never fire on a fixed probe set of 1024 training examples
(dead), the ReDo-dormant fraction (tau = 0.025) and the test accuracy. ``--full``: 8 more
schedules, 7 peak LRs, 5 seeds, width 256, 6000 steps.

Claims, each judged from the 95% t-interval over seeds of a per-seed difference:

1. a too-high learning rate kills ReLUs (dead at the highest minus the lowest peak LR);
2. warmup reduces the toll (each warmup schedule vs its counterpart, ReLU, highest LR);
3. leaky ReLU units never die: their "dead" (never positive) units keep the slope's gradient,
   so the claim is about ReDo dormancy, and about accuracy against ReLU.

Outputs in ``--out``: ``results.json`` (every run's config and curves), ``summary.json`` (the
means and intervals that ``python -m experiments.render_readme`` puts into the README),
``summary.md``, ``dead_vs_step.png``, ``dead_heatmap.png`` and ``accuracy_vs_step.png``.
"""

from __future__ import annotations

import dataclasses
import json
import os
import shutil
import sys
import time
from collections.abc import Sequence

import relujax
from experiments import _common, _lr_report
from relujax import sweep

NAME = "lr_schedules"
ACTIVATIONS = ("relu", "leaky_relu", "prelu", "elu")
SCHEDULES = ("constant", "warmup_constant", "cosine_decay", "warmup_cosine", "cosine_onecycle")
MORE_SCHEDULES = ("piecewise_constant", "exponential_decay", "sgdr", "linear_onecycle")


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


SCALES = {
    "quick": Scale(
        datasets=("mnist1d",),
        schedules=("constant", "warmup_constant"),
        peak_lrs=(1e-3, 3e-2),
        activations=("relu", "leaky_relu"),
        seeds=(0, 1),
        hidden=(32, 32),
        steps=40,
        eval_every=20,
        chunk_steps=20,
        num_samples=1000,
    ),
    "default": Scale(
        datasets=("mnist1d", "digits"),
        schedules=SCHEDULES,
        peak_lrs=(1e-3, 1e-2, 3e-2, 1e-1),
        activations=ACTIVATIONS,
        seeds=(0, 1, 2),
        hidden=(64, 64, 64),
        steps=1000,
        eval_every=50,
        chunk_steps=250,
    ),
    "full": Scale(
        datasets=("mnist1d", "digits"),
        schedules=SCHEDULES + MORE_SCHEDULES,
        peak_lrs=(3e-4, 1e-3, 3e-3, 1e-2, 3e-2, 1e-1, 3e-1),
        activations=ACTIVATIONS,
        seeds=(0, 1, 2, 3, 4),
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


def _grid(scale: Scale, seed: int) -> sweep.Grid:
    return sweep.Grid(
        schedules=list(scale.schedules),
        peak_lrs=list(scale.peak_lrs),
        activations=list(scale.activations),
        seeds=[seed + s for s in scale.seeds],
    )


def _train(args: _common.RunArgs, scale: Scale) -> dict[str, sweep.SweepResult]:
    """One sweep per data set, checkpointed (a rerun resumes), with whole-run progress."""
    k = len(_grid(scale, args.seed).configs())
    progress = _common.Progress(NAME, k * scale.steps * len(scale.datasets))
    results = {}
    for name in scale.datasets:
        data = _dataset(name, scale, args.seed)
        print(
            f"[{NAME}] {name}: {k} configurations x {scale.steps} steps "
            f"(MLP {data.input_shape[0]}-{'-'.join(map(str, scale.hidden))}-{data.output_dim})",
            flush=True,
        )
        results[name] = sweep.run(
            _grid(scale, args.seed),
            data,
            steps=scale.steps,
            model=sweep.MLPSpec(hidden=scale.hidden),
            optimizer="adam",
            batch_size=scale.batch_size,
            eval_every=scale.eval_every,
            chunk_steps=scale.chunk_steps,
            checkpoint_dir=str((args.out / "checkpoints" / name).resolve()),
            callback=progress.callback(name, k * scale.steps),
        )
        progress.finished(k * scale.steps)
    return results


def main(argv: Sequence[str] | None = None) -> dict:
    """Runs the experiment; returns the payload written to ``results.json``."""
    started = time.time()
    args = _common.parse_args(
        NAME, (__doc__ or "").splitlines()[0], argv, run_time="about 4 minutes", resumes=True
    )
    scale = SCALES[args.scale]
    results = _train(args, scale)
    summary = _lr_report.summarize(results, dataclasses.asdict(scale), args.scale)
    summary["wall_seconds"] = round(time.time() - started, 1)
    summary["load_average"] = round(os.getloadavg()[0], 1)  # was the CPU shared?
    summary["cpu_seconds"] = round(time.process_time(), 1)  # all threads of this process
    summary["command"] = " ".join(
        [f"python -m experiments.{NAME}", *(sys.argv[1:] if argv is None else argv)]
    )
    figures = _lr_report.figures(args.out, results, summary)
    payload = {
        "sizes": dataclasses.asdict(scale),
        "claims": summary["claims"],
        "sweeps": {name: res.to_dict() for name, res in results.items()},
        "figures": figures,
    }
    _common.write_results(args, payload, started=started)
    (args.out / "summary.json").write_text(json.dumps(summary, indent=1) + "\n")
    shutil.rmtree(args.out / "checkpoints", ignore_errors=True)  # only needed to resume
    _common.write_summary(args, _lr_report.summary_markdown(summary, figures))
    return payload


if __name__ == "__main__":
    _common.cli(main, NAME, resumes=True)
