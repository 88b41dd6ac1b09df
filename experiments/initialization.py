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
import math
import shutil
import time
from collections.abc import Sequence
from typing import NamedTuple

import numpy as np

import relujax
from experiments import _common, _figures, _stats, _sweeps
from experiments._stats import Interval
from relujax import sweep

NAME = "initialization"
LN10 = math.log(10.0)


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


def _iv(values: np.ndarray, *, fraction: bool = True) -> Interval:
    """Mean over seeds and its 95% t-interval."""
    return _stats.t_interval(values, within=(0, 1) if fraction else None)


def _shallow_rows(arms, res, hidden) -> tuple[list[list], dict[str, dict]]:
    dead = _sweeps.unit_fraction(res["dead"], hidden)  # [K, E]
    labels = np.array([a.label for a in arms])
    he = labels == "He normal"
    he_acc = _iv(res["test_accuracy"][he, -1]).mean
    rows, per = [], {}
    for label in INITS:
        sel = labels == label
        d0 = _iv(dead[sel, 0])
        d1 = _iv(dead[sel, -1])
        acc = _iv(res["test_accuracy"][sel, -1])
        per_layer0 = np.nanmean(res["dead"][sel, 0], axis=0)
        per[label] = {
            "dead_init": d0.to_dict(),
            "dead_final": d1.to_dict(),
            "accuracy": acc.to_dict(),
            "dead_init_per_layer": per_layer0,
        }
        if d0.mean > 0.02:
            born = f"kills {d0.mean:.1%} of the units before any training step"
            if per_layer0[-1] > per_layer0[0] + 0.05:
                born += " (more in deeper layers)"
        else:
            born = f"kills almost no unit at initialization ({d0.mean:.1%})"
        if d1.mean > d0.mean + 0.02:
            train = f"training kills more ({d1.mean:.1%})"
        elif d1.mean < d0.mean - 0.02:
            train = f"training revives some ({d1.mean:.1%} left)"
        else:
            train = f"training leaves it at {d1.mean:.1%}"
        if acc.mean < he_acc - 0.05:
            outcome = f"and accuracy falls short of He's ({acc.mean:.3f} vs {he_acc:.3f})"
        else:
            outcome = f"with accuracy on par with He's ({acc.mean:.3f} vs {he_acc:.3f})"
        rows.append(
            [
                label,
                d0.pct(),
                d1.pct(),
                acc.num(),
                f"It {born}; {train}, {outcome}.",
            ]
        )
    return rows, per


def _deep_rows(arms, res, scale: Scale) -> tuple[list[list], dict[str, dict]]:
    hidden = (scale.deep_width,) * scale.deep_depth
    dead = _sweeps.unit_fraction(res["dead"], hidden)
    labels = np.array([a.label for a in arms])
    rows, per = [], {}
    for label in ("He normal", "Xavier normal"):
        sel = labels == label
        loss = _iv(res["test_loss"][sel, -1], fraction=False)
        acc = _iv(res["test_accuracy"][sel, -1])
        curves = res["test_loss"][sel]  # [seeds, E]
        moved = curves[:, 0] - np.nanmin(curves, axis=1)
        stalled_seeds = (curves[:, -1] > LN10 - 0.05) & (moved < 0.05)
        n_stalled, n = int(stalled_seeds.sum()), int(sel.sum())
        stalled = n_stalled == n
        d0, d1 = _iv(dead[sel, 0]), _iv(dead[sel, -1])
        per[label] = {
            "loss": loss.to_dict(),
            "accuracy": acc.to_dict(),
            "stalled_seeds": n_stalled,
            "seeds": n,
        }
        if stalled:
            verdict = (
                f"Stalls in every seed: the test loss stays at ln 10 = {LN10:.2f} (chance) for "
                f"{scale.deep_steps} steps, as He et al. report for Xavier."
            )
        elif n_stalled:
            verdict = (
                f"Stalls at ln 10 = {LN10:.2f} (chance) in {n_stalled} of {n} seeds and trains "
                "in the others."
            )
        else:
            verdict = f"Trains in every seed: the test loss falls to {loss.mean:.2f}."
        rows.append(
            [
                label,
                loss.num(),
                acc.num(),
                d0.pct(),
                d1.pct(),
                verdict,
            ]
        )
    return rows, per


def _draw(out, scale: Scale, shallow, deep) -> list[str]:
    plt = _common.pyplot()
    arms, res = shallow
    labels = np.array([a.label for a in arms])
    dead = _sweeps.unit_fraction(res["dead"], scale.hidden)
    names = list(INITS)
    x = np.arange(len(names))
    fig, ax = plt.subplots(figsize=(8, 4))
    for offset, (e, what) in zip(
        (-0.2, 0.2), ((0, "at init"), (-1, "after training")), strict=True
    ):
        ivs = [_iv(dead[labels == n, e]) for n in names]
        means = np.asarray([iv.mean for iv in ivs])
        err = np.nan_to_num(np.asarray([[iv.mean - iv.lo, iv.hi - iv.mean] for iv in ivs]).T)
        ax.bar(x + offset, 100 * means, 0.4, yerr=100 * err, capsize=3, label=what)
    ax.set_xticks(x, names, rotation=20, ha="right", fontsize=8)
    ax.set_ylabel("dead hidden units (%, 95% interval)")
    ax.set_title(f"ReLU MLP {scale.hidden}, MNIST-1D, SGD+momentum, {scale.steps} steps")
    ax.legend()
    ax.grid(axis="y", alpha=0.3)
    fig.tight_layout()
    fig.savefig(out / "dead_by_init.png", dpi=120)
    plt.close(fig)

    fig, ax = plt.subplots(figsize=(7, 4))
    series = {}
    for n in names:
        acc = res["test_accuracy"][labels == n]
        ivs = [_iv(acc[:, e]) for e in range(acc.shape[1])]
        series[n] = tuple(np.array([getattr(iv, k) for iv in ivs]) for k in ("mean", "lo", "hi"))
    _figures.curves(ax, res["steps"], series)
    ax.set_xlabel("step")
    ax.set_ylabel("test accuracy")
    ax.grid(alpha=0.3)
    _figures.legend_right(fig, ax, title=f"mean, 95% band, {len(scale.seeds)} seeds")
    _figures.save(fig, out / "accuracy_by_init.png")

    arms_d, res_d = deep
    labels_d = np.array([a.label for a in arms_d])
    fig, axes = plt.subplots(1, 2, figsize=(10, 4))
    for i, (n, color) in enumerate((("He normal", "C0"), ("Xavier normal", "C3"))):
        sel = labels_d == n
        for j, k in enumerate(np.flatnonzero(sel)):  # every seed: stalls show one by one
            kw = _figures.style(i, len(res_d["steps"])) | {"color": color, "alpha": 0.8}
            axes[0].plot(res_d["steps"], res_d["test_loss"][k], label=n if j == 0 else None, **kw)
        acc = res_d["test_accuracy"][sel]
        ivs = [_iv(acc[:, e]) for e in range(acc.shape[1])]
        mean, lo, hi = (np.array([getattr(iv, a) for iv in ivs]) for a in ("mean", "lo", "hi"))
        axes[1].plot(
            res_d["steps"], mean, label=n, **_figures.style(i, len(mean)) | {"color": color}
        )
        axes[1].fill_between(res_d["steps"], lo, hi, color=color, alpha=0.12, lw=0)
    axes[0].axhline(LN10, color="gray", ls=":", label="ln 10 (chance)")
    axes[0].set_ylabel("test loss (each seed)")
    axes[1].set_ylabel("test accuracy (mean, 95% band)")
    for ax in axes:
        ax.set_xlabel("step")
        ax.grid(alpha=0.3)
    _figures.legend_right(fig, axes[1])
    axes[0].legend(fontsize=8)
    fig.suptitle(
        f"Plain {scale.deep_depth}-layer ReLU MLP (width {scale.deep_width}), SGD+momentum"
    )
    fig.tight_layout()
    _figures.save(fig, out / "deep_plain_net.png")
    return ["dead_by_init.png", "accuracy_by_init.png", "deep_plain_net.png"]


def readme_block(summary: dict) -> str:
    """The docs' generated block: both parts' settings and tables, from the summary."""
    sz = summary["sizes"]
    return "\n\n".join(
        [
            f"Part 1: ReLU MLP {tuple(sz['hidden'])} on MNIST-1D, SGD + momentum 0.9, lr "
            f"{sz['lr']:g}, batch {sz['batch_size']}, {sz['steps']} steps, {len(sz['seeds'])} "
            "seeds: mean [95% t-interval over seeds]. Dead = pre-activation never positive on "
            "1024 training examples, as a fraction of all hidden units.",
            _common.markdown_table(
                ("init", "dead at init", "dead after training", "test acc", "finding"),
                summary["shallow_rows"],
            ),
            f"Part 2: plain {sz['deep_depth']}-layer ReLU MLP (width {sz['deep_width']}), SGD "
            f"+ momentum 0.9, lr {sz['deep_lr']:g}, {sz['deep_steps']} steps, "
            f"{len(sz['deep_seeds'])} seeds; He et al. (2015): He converges, Xavier stalls.",
            _common.markdown_table(
                ("init", "final test loss", "test acc", "dead at init", "dead after", "finding"),
                summary["deep_rows"],
            ),
        ]
    )


def main(argv: Sequence[str] | None = None) -> dict:
    """Runs the experiment; returns the payload written to ``results.json``."""
    started = time.time()
    args = _common.parse_args(
        NAME, __doc__.splitlines()[0], argv, run_time="about 5 minutes", resumes=True
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
    rows, per_init = _shallow_rows(*shallow, scale.hidden)
    deep_rows, per_deep = _deep_rows(*deep, scale)
    figures = _draw(args.out, scale, shallow, deep)

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
        "deep_rows": deep_rows,
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
