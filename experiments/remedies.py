"""Remedies for dead ReLUs: lower LR, warmup, He init, LeakyReLU and ReDo, against doing nothing.

``python -m experiments.remedies [--quick | --full] [--out DIR] [--seed N]``

A setting that kills many units: a ReLU MLP (3 hidden layers) on MNIST-1D, Flax's default
Dense initialization (LeCun normal), Adam at a high constant learning rate (3e-2). Against it
(``nothing``), each remedy changes one thing:

- ``lower LR``: the learning rate / 10;
- ``warmup``: a linear warmup over the first 20% of the steps to the same peak;
- ``He init``: He normal instead of LeCun normal;
- ``LeakyReLU``: negative slope 0.01;
- ``ReDo``: every N steps, the units whose ReDo score is <= 0.1 on the step's batch get
  fresh incoming weights (LeCun normal, bias 0), zero outgoing weights and zeroed Adam
  moments (Sokar et al. 2023; :func:`relujax.remedies.redo`).

Dead = pre-activation never positive on 1024 training examples (for LeakyReLU such a unit
still passes a gradient of slope 0.01); dormant = ReDo score <= 0.025. ReDo recycles right
after an evaluation, so every evaluation sees the network N - 1 steps or more after the last
recycling, never a freshly recycled one.

Outputs: ``results.json``, ``summary.md``, ``dead_vs_step.png``, ``accuracy_vs_step.png``.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Sequence

import numpy as np

import relujax
from experiments import _common
from experiments import _population as pop

NAME = "remedies"
BASE_INIT = "lecun_normal"
REDO_TAU = 0.1


@dataclasses.dataclass(frozen=True)
class Scale:
    """Sizes of one scale of the experiment."""

    num_samples: int
    seeds: tuple[int, ...]
    hidden: tuple[int, ...]
    steps: int
    eval_every: int
    redo_every: int
    lr: float
    batch_size: int = 128
    #: XLA optimization level 0 (faster compilation): for the smoke run.
    fast_compile: bool = False


SCALES = {
    "quick": Scale(
        num_samples=600,
        seeds=(0,),
        hidden=(16, 16),
        steps=20,
        eval_every=10,
        redo_every=10,
        lr=3e-2,
        batch_size=32,
        fast_compile=True,
    ),
    "default": Scale(
        num_samples=5000,
        seeds=(0, 1, 2),
        hidden=(128, 128, 128),
        steps=2000,
        eval_every=100,
        redo_every=200,
        lr=3e-2,
    ),
    "full": Scale(
        num_samples=10000,
        seeds=(0, 1, 2, 3, 4),
        hidden=(256, 256, 256),
        steps=8000,
        eval_every=200,
        redo_every=400,
        lr=3e-2,
    ),
}


def arms(scale: Scale, seed: int) -> list[pop.Arm]:
    """The six arms, one run per seed each."""
    base = {"kernel_init": BASE_INIT, "lr": scale.lr}
    variants = {
        "nothing": {},
        "lower LR": {"lr": scale.lr / 10},
        "warmup": {"warmup": scale.steps // 5},
        "He init": {"kernel_init": "he_normal"},
        "LeakyReLU": {"activation": "leaky_relu"},
        "ReDo": {"redo_every": scale.redo_every},
    }
    return [
        pop.Arm(label, **(base | change), seed=seed + s)
        for label, change in variants.items()
        for s in scale.seeds
    ]


def _finding(label: str, stats: dict, base: dict) -> str:
    d, b = stats["dead"][0], base["dead"][0]
    acc, b_acc = stats["accuracy"][0], base["accuracy"][0]
    if label == "nothing":
        return (
            f"The high constant LR kills {d:.0%} of the hidden units (peak {stats['peak'][0]:.0%}) "
            f"and test accuracy ends at {acc:.3f}."
        )
    if d < b - 0.1:
        dead = f"cuts the dead fraction from {b:.0%} to {d:.0%}"
    elif d > b + 0.1:
        dead = f"raises the dead fraction from {b:.0%} to {d:.0%}"
    else:
        dead = f"leaves the dead fraction about where it was ({d:.0%} vs {b:.0%})"
    if acc > b_acc + 0.02:
        gain = f"and lifts accuracy from {b_acc:.3f} to {acc:.3f}"
    elif acc < b_acc - 0.02:
        gain = f"but accuracy drops from {b_acc:.3f} to {acc:.3f}"
    else:
        gain = f"with accuracy about the same ({acc:.3f} vs {b_acc:.3f})"
    extra = ""
    if label == "LeakyReLU":
        extra = " (never-positive leaky units still learn through their 0.01 slope)"
    if label == "ReDo":
        extra = f" ({stats['recycled']:.0f} units recycled per run"
        if stats["peak"][0] > d + 0.05:
            extra += f"; the dead fraction climbs to {stats['peak'][0]:.0%} between recyclings"
        extra += ")"
    return f"It {dead}{extra}, {gain}."


def main(argv: Sequence[str] | None = None) -> dict:
    """Runs the experiment; returns the payload written to ``results.json``."""
    started = time.time()
    args = _common.parse_args(NAME, __doc__.splitlines()[0], argv)
    scale = SCALES[args.scale]
    data = relujax.data.mnist1d(num_samples=scale.num_samples)
    runs = arms(scale, args.seed)
    print(
        f"[{NAME}] {len(runs)} runs: 6 arms x {len(scale.seeds)} seeds, MLP {scale.hidden} on "
        f"MNIST-1D, Adam lr {scale.lr:g}, {scale.steps} steps"
    )
    res = pop.train(
        runs,
        [data],
        hidden=scale.hidden,
        steps=scale.steps,
        eval_every=scale.eval_every,
        batch_size=scale.batch_size,
        optimizer="adam",
        redo_tau=REDO_TAU,
        progress=f"[{NAME}]",
        fast_compile=scale.fast_compile,
        separate_redo=not scale.fast_compile,  # smoke run: one program fewer to compile
    )
    dead = pop.unit_fraction(res["dead"], scale.hidden)  # [K, E]
    dormant = pop.unit_fraction(res["dormant"], scale.hidden)
    labels = np.array([a.label for a in runs])
    order = list(dict.fromkeys(labels))
    by_arm: dict[str, dict] = {}
    for label in order:
        sel = labels == label
        by_arm[label] = {
            "dead": pop.mean_std(dead[sel, -1]),
            "peak": pop.mean_std(np.nanmax(dead[sel], axis=1)),
            "dormant": pop.mean_std(dormant[sel, -1]),
            "accuracy": pop.mean_std(res["test_accuracy"][sel, -1]),
            "best_accuracy": pop.mean_std(np.nanmax(res["test_accuracy"][sel], axis=1)),
            "recycled": float(np.mean(res["recycled"][sel, -1])),
        }
    rows = []
    for label in order:
        s = by_arm[label]
        rows.append(
            [
                label,
                f"{s['dead'][0]:.1%} ± {s['dead'][1]:.1%}",
                f"{s['peak'][0]:.1%}",
                f"{s['dormant'][0]:.1%}",
                f"{s['accuracy'][0]:.3f} ± {s['accuracy'][1]:.3f}",
                f"{s['best_accuracy'][0]:.3f}",
                _finding(label, s, by_arm["nothing"]),
            ]
        )
    figures = _figures(args.out, scale, res, labels, order, dead)
    payload = {
        "sizes": dataclasses.asdict(scale),
        "base_init": BASE_INIT,
        "redo_tau": REDO_TAU,
        "steps": res["steps"],
        "by_arm": by_arm,
        "runs": [
            {
                "arm": dataclasses.asdict(a),
                **{
                    k: res[k][i]
                    for k in ("dead", "dormant", "test_accuracy", "test_loss", "recycled")
                },
            }
            for i, a in enumerate(runs)
        ],
        "seconds": res["seconds"],
        "figures": figures,
    }
    _common.write_results(args, payload, started=started)
    text = "\n\n".join(
        [
            f"# {NAME}: what saves ReLUs from a high learning rate ({args.scale} scale)",
            f"ReLU MLP {scale.hidden} on MNIST-1D, {BASE_INIT} init, Adam at constant lr "
            f"{scale.lr:g}, batch {scale.batch_size}, {scale.steps} steps, "
            f"{len(scale.seeds)} seed(s) (mean ± std). Each remedy changes one thing: lr "
            f"{scale.lr / 10:g}; linear warmup over {scale.steps // 5} steps; He normal init; "
            f"LeakyReLU (0.01); ReDo every {scale.redo_every} steps at tau = {REDO_TAU}. "
            "Dead = never positive on 1024 training examples, at the last evaluation; peak = "
            "the highest dead fraction seen; dormant = ReDo score <= 0.025.",
            _common.markdown_table(
                ("arm", "dead", "peak dead", "dormant", "test acc", "best acc", "finding"),
                rows,
            ),
            f"Figures: {', '.join(figures)}. Wall time {time.time() - started:.0f} s.",
        ]
    )
    _common.write_summary(args, text)
    return payload


def _figures(out, scale: Scale, res, labels, order, dead) -> list[str]:
    plt = _common.pyplot()
    steps = res["steps"]
    fig, ax = plt.subplots(figsize=(7, 4))
    for i, label in enumerate(order):
        ax.plot(steps, 100 * np.nanmean(dead[labels == label], axis=0), label=label, color=f"C{i}")
    ax.set_xlabel("step")
    ax.set_ylabel("dead hidden units (%)")
    ax.set_title(f"ReLU MLP {scale.hidden}, MNIST-1D, Adam lr {scale.lr:g} (mean over seeds)")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(out / "dead_vs_step.png", dpi=120)
    plt.close(fig)

    fig, ax = plt.subplots(figsize=(7, 4))
    for i, label in enumerate(order):
        acc = np.nanmean(res["test_accuracy"][labels == label], axis=0)
        ax.plot(steps, acc, label=label, color=f"C{i}")
    ax.set_xlabel("step")
    ax.set_ylabel("test accuracy")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(out / "accuracy_vs_step.png", dpi=120)
    plt.close(fig)
    return ["dead_vs_step.png", "accuracy_vs_step.png"]


if __name__ == "__main__":
    main()
