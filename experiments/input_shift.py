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
from experiments import _common, _sweeps
from experiments._shift_report import draw, readme_block, tabulate
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


def main(argv: Sequence[str] | None = None) -> dict:
    """Runs the experiment; returns the payload written to ``results.json``."""
    started = time.time()
    args = _common.parse_args(
        NAME, (__doc__ or "").splitlines()[0], argv, run_time="about 3 minutes", resumes=True
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
    grid, claim_rows, number_rows = tabulate(
        arms, res, scale, activations=ACTIVATIONS, preprocessing=PREPROCESSING
    )
    figures = draw(args.out, scale, grid, activations=ACTIVATIONS, preprocessing=PREPROCESSING)
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


if __name__ == "__main__":
    _common.cli(main, NAME, resumes=True)
