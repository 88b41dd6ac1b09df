"""Initialization and dead ReLUs: He vs Xavier vs LeCun vs small std vs negative bias vs RAI.

``python -m experiments.initialization [--quick | --full] [--out DIR] [--seed N]``

Part 1 (shallow). ReLU MLPs (3 hidden layers) on MNIST-1D, trained with SGD + momentum 0.9,
initialized with He normal, Xavier (Glorot) normal, LeCun normal, a small-std normal
N(0, 0.01^2), He normal with a negative bias (-1), and RAI (Lu et al. 2020). Dead units (never
positive on a probe set of 1024 training examples) are measured at initialization and after
training, with the test accuracy. The seed documents claim bad initializations kill ReLUs
and that He/Xavier prevent it.

Part 2 (deep). A plain 30-hidden-layer ReLU MLP (no normalization, no skip connections),
He vs Xavier: He, Zhang, Ren and Sun ("Delving Deep into Rectifiers", 2015, Fig. 3) report
that their 30-layer plain net converges with He init and stalls with Xavier.

Outputs: ``results.json``, ``summary.md``, ``dead_by_init.png`` (dead fraction at init and
after training per initializer), ``accuracy_by_init.png``, ``deep_plain_net.png`` (test
loss and accuracy vs step, He vs Xavier, 30 layers).
"""

from __future__ import annotations

import dataclasses
import json
import shutil
import time
from collections.abc import Sequence
from typing import NamedTuple

import relujax
from experiments import _common, _sweeps
from experiments._init_report import deep_rows, draw, readme_block, shallow_rows
from relujax import sweep

NAME = "initialization"


@dataclasses.dataclass(frozen=True)
class Scale:
    """Sizes of one scale of the experiment."""

    num_samples: int
    seeds: tuple[int, ...]
    hidden: tuple[int, ...]
    steps: int
    eval_every: int
    lr: float
    deep_width: int
    deep_depth: int
    deep_steps: int
    deep_eval_every: int
    deep_lr: float
    deep_seeds: tuple[int, ...]
    batch_size: int = 128


SCALES = {
    "quick": Scale(
        num_samples=600,
        seeds=(0,),
        hidden=(16, 16),
        steps=20,
        eval_every=10,
        lr=0.01,
        deep_width=8,
        deep_depth=6,
        deep_steps=10,
        deep_eval_every=10,
        deep_lr=0.01,
        deep_seeds=(0,),
        batch_size=32,
    ),
    "default": Scale(
        num_samples=5000,
        seeds=(0, 1, 2),
        hidden=(128, 128, 128),
        steps=2000,
        eval_every=200,
        lr=0.01,
        deep_width=64,
        deep_depth=30,
        deep_steps=1500,
        deep_eval_every=100,
        deep_lr=0.01,
        deep_seeds=(0, 1, 2),
    ),
    "full": Scale(
        num_samples=10000,
        seeds=(0, 1, 2, 3, 4),
        hidden=(256, 256, 256),
        steps=6000,
        eval_every=300,
        lr=0.01,
        deep_width=128,
        deep_depth=30,
        deep_steps=6000,
        deep_eval_every=300,
        deep_lr=0.01,
        deep_seeds=(0, 1, 2),
    ),
}

#: label -> (kernel_init, bias_init)
INITS = {
    "He normal": {"init": "he_normal"},
    "Xavier normal": {"init": "xavier_normal"},
    "LeCun normal": {"init": "lecun_normal"},
    "small std N(0, 0.01^2)": {"init": "normal", "init_params": {"stddev": 0.01}},
    "He + bias -1": {
        "init": "he_normal",
        "bias_init": "constant",
        "bias_init_params": {"value": -1.0},
    },
    "RAI": {"init": "rai"},
}


class Arm(NamedTuple):
    """One run: its label in tables and figures, and its sweep configuration."""

    label: str
    config: sweep.Config


def _train(args, progress, part: str, arms: list[Arm], data, hidden, steps, eval_every, scale):
    result = _sweeps.run(
        args,
        progress,
        part,
        [a.config for a in arms],
        data,
        steps=steps,
        model=sweep.MLPSpec(hidden=hidden),
        optimizer="momentum",  # optax.sgd(lr, momentum=0.9)
        batch_size=scale.batch_size,
        eval_every=eval_every,
    )
    return _sweeps.arrays(result)


def _arms(labels_inits, lr: float, seeds, seed: int) -> list[Arm]:
    return [
        Arm(label, sweep.Config("constant", lr, seed=seed + s, **spec))
        for label, spec in labels_inits
        for s in seeds
    ]


def main(argv: Sequence[str] | None = None) -> dict:
    """Runs the experiment; returns the payload written to ``results.json``."""
    started = time.time()
    args = _common.parse_args(
        NAME, (__doc__ or "").splitlines()[0], argv, run_time="about 5 minutes", resumes=True
    )
    scale = SCALES[args.scale]
    data = relujax.data.mnist1d(num_samples=scale.num_samples)
    shallow_arms = _arms(INITS.items(), scale.lr, scale.seeds, args.seed)
    deep_inits = (("He normal", INITS["He normal"]), ("Xavier normal", INITS["Xavier normal"]))
    deep_arms = _arms(deep_inits, scale.deep_lr, scale.deep_seeds, args.seed)
    deep_hidden = (scale.deep_width,) * scale.deep_depth
    progress = _common.Progress(
        NAME, len(shallow_arms) * scale.steps + len(deep_arms) * scale.deep_steps
    )
    print(
        f"[{NAME}] part 1: {len(shallow_arms)} runs of MLP {scale.hidden} x {scale.steps} "
        f"steps; part 2: {len(deep_arms)} runs of a plain {scale.deep_depth}-layer MLP "
        f"(width {scale.deep_width}) x {scale.deep_steps} steps",
        flush=True,
    )
    shallow = (
        shallow_arms,
        _train(
            args,
            progress,
            "shallow",
            shallow_arms,
            data,
            scale.hidden,
            scale.steps,
            scale.eval_every,
            scale,
        ),
    )
    deep = (
        deep_arms,
        _train(
            args,
            progress,
            "deep",
            deep_arms,
            data,
            deep_hidden,
            scale.deep_steps,
            scale.deep_eval_every,
            scale,
        ),
    )
    rows, per_init = shallow_rows(*shallow, scale.hidden, tuple(INITS))
    deep_table, per_deep = deep_rows(*deep, scale)
    figures = draw(args.out, scale, shallow, deep, tuple(INITS))

    def runs(arms, res):
        return [
            {
                "arm": {"label": a.label, **a.config.to_dict()},
                **{k: res[k][i] for k in ("dead", "dormant", "test_accuracy", "test_loss")},
            }
            for i, a in enumerate(arms)
        ]

    payload = {
        "sizes": dataclasses.asdict(scale),
        "steps": shallow[1]["steps"],
        "deep_steps": deep[1]["steps"],
        "shallow": {"runs": runs(*shallow), "by_init": per_init},
        "deep": {"runs": runs(*deep), "by_init": per_deep},
        "figures": figures,
    }
    _common.write_results(args, payload, started=started)
    summary = {
        "experiment": NAME,
        "scale": args.scale,
        "sizes": dataclasses.asdict(scale),
        "shallow": per_init,
        "deep": per_deep,
        "shallow_rows": rows,
        "deep_rows": deep_table,
        "wall_seconds": round(time.time() - started, 1),
        "cpu_seconds": round(time.process_time(), 1),
    }
    (args.out / "summary.json").write_text(json.dumps(_common.jsonable(summary), indent=1))
    text = "\n\n".join(
        [
            f"# {NAME}: initialization and dead ReLUs ({args.scale} scale)",
            readme_block(summary),
            f"Figures: {', '.join(figures)}. Wall time {time.time() - started:.0f} s.",
        ]
    )
    _common.write_summary(args, text)
    shutil.rmtree(args.out / "checkpoints", ignore_errors=True)  # only needed to resume
    return payload


if __name__ == "__main__":
    _common.cli(main, NAME, resumes=True)
