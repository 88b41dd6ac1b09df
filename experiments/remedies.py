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
  fresh incoming weights (LeCun normal, bias 0), zero outgoing weights and a fresh Adam
  state: zeroed moments and a restarted per-weight step count (Sokar et al. 2023; Dohare et
  al. 2024 reset a per-weight count too; :func:`relujax.remedies.redo`);
- ``ReDo, Adam count kept``: the same with the step count kept (moments zeroed only), the
  old behaviour, whose first updates of recycled weights are (1 - b1) / sqrt(1 - b2) ~ 3.2x
  those of a fresh Adam.

Adam is :func:`relujax.remedies.scale_by_adam_per_param` in every arm (equal to optax's Adam
until a reset). Every number is a mean over seeds with a 95% t-interval; each remedy is
compared with doing nothing (and ReDo with ReDo keeping the count) per seed: same seed, same
initialization.

Dead = pre-activation never positive on 1024 training examples (for LeakyReLU such a unit
still passes a gradient of slope 0.01); dormant = ReDo score <= 0.025. ReDo recycles right
after an evaluation, so every evaluation sees the network N - 1 steps or more after the last
recycling, never a freshly recycled one.

Outputs: ``results.json``, ``summary.json``, ``summary.md``, ``dead_vs_step.png``,
``accuracy_vs_step.png``.
"""

from __future__ import annotations

import dataclasses
import json
import shutil
import time
from collections.abc import Sequence

import numpy as np

import relujax
from experiments import _common, _figures, _stats, _sweeps
from experiments._stats import Interval
from relujax import sweep
from relujax.schedules import Schedule

NAME = "remedies"
BASE_INIT = "lecun_normal"
COUNT_KEPT = "ReDo, Adam count kept"
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
    chunk_steps: int
    batch_size: int = 128


SCALES = {
    "quick": Scale(
        num_samples=600,
        seeds=(0, 1),
        hidden=(16, 16),
        steps=20,
        eval_every=10,
        redo_every=10,
        lr=3e-2,
        chunk_steps=20,
        batch_size=32,
    ),
    "default": Scale(
        num_samples=5000,
        seeds=(0, 1, 2),
        hidden=(128, 128, 128),
        steps=2000,
        eval_every=100,
        redo_every=200,
        lr=3e-2,
        chunk_steps=500,
    ),
    "full": Scale(
        num_samples=10000,
        seeds=(0, 1, 2, 3, 4),
        hidden=(256, 256, 256),
        steps=8000,
        eval_every=200,
        redo_every=400,
        lr=3e-2,
        chunk_steps=2000,
    ),
}


#: arm -> what it changes against "nothing" (fields of :class:`relujax.sweep.Config`).
def _variants(scale: Scale) -> dict[str, dict]:
    redo = {"redo_every": float(scale.redo_every), "redo_tau": REDO_TAU}
    return {
        "nothing": {},
        "lower LR": {"peak_lr": scale.lr / 10},
        "warmup": {"schedule": Schedule("warmup_constant", warmup_fraction=0.2)},
        "He init": {"init": "he_normal"},
        "LeakyReLU": {"activation": "leaky_relu"},
        "ReDo": {"intervention": redo},
        COUNT_KEPT: {"intervention": redo | {"redo_keep_count": 1.0}},
    }


def arms(scale: Scale, seed: int) -> tuple[list[str], list[sweep.Config]]:
    """The seven arms, one run per seed each: their labels and configurations."""
    base = {"schedule": Schedule("constant"), "peak_lr": scale.lr, "init": BASE_INIT}
    labels, configs = [], []
    for label, change in _variants(scale).items():
        for s in scale.seeds:
            labels.append(label)
            configs.append(sweep.Config(**(base | change), seed=seed + s))
    return labels, configs


def _by_arm(labels: list[str], res: dict, hidden: tuple[int, ...]) -> dict[str, dict]:
    """Per arm, intervals over seeds; per-seed differences against "nothing" (same seeds)."""
    dead = _sweeps.unit_fraction(res["dead"], hidden)  # [K, E]
    per_run = {
        "dead": dead[:, -1],
        "peak": np.nanmax(dead, axis=1),
        "dormant": _sweeps.unit_fraction(res["dormant"], hidden)[:, -1],
        "accuracy": res["test_accuracy"][:, -1],
        "best_accuracy": np.nanmax(res["test_accuracy"], axis=1),
        "recycled": res["recycled"][:, -1],
    }
    arm_of = np.asarray(labels)

    def diff(label: str, ref: str) -> dict:
        a, b = arm_of == label, arm_of == ref  # runs in seed order within each arm
        return {
            m: _stats.t_interval(per_run[m][a] - per_run[m][b]).to_dict()
            for m in ("dead", "accuracy")
        }

    out: dict[str, dict] = {}
    for label in dict.fromkeys(labels):
        sel = arm_of == label
        out[label] = {
            k: _stats.t_interval(v[sel], within=None if k == "recycled" else (0, 1)).to_dict()
            for k, v in per_run.items()
        }
        if label != "nothing":
            out[label]["vs nothing"] = diff(label, "nothing")
    if "ReDo" in out and COUNT_KEPT in out:
        out["ReDo"]["vs " + COUNT_KEPT] = diff("ReDo", COUNT_KEPT)
    return out


def _finding(label: str, arm: dict) -> str:
    if label == "nothing":
        return f"The high constant LR kills {Interval.from_dict(arm['dead']).pct()} of the units."
    parts = []
    for key in sorted((k for k in arm if k.startswith("vs ")), reverse=True):
        d, a = (Interval.from_dict(arm[key][m]) for m in ("dead", "accuracy"))
        fewer = _stats.verdict(Interval(-d.mean, -d.hi, -d.lo, d.n))
        parts.append(
            f"{key}: dead {100 * d.mean:+.1f} points [{100 * d.lo:+.1f}, {100 * d.hi:+.1f}] "
            f"(fewer: {fewer}), accuracy {a.mean:+.3f} [{a.lo:+.3f}, {a.hi:+.3f}] "
            f"(higher: {_stats.verdict(a)})"
        )
    return "; ".join(parts) + "."


def table_markdown(summary: dict) -> str:
    """Arms x (dead, peak dead, dormant, accuracy, recycled, finding), from the summary."""
    rows = []
    for label, arm in summary["by_arm"].items():
        iv = {k: Interval.from_dict(v) for k, v in arm.items() if Interval.is_dict(v)}
        rec = iv["recycled"]
        rows.append(
            [
                label,
                iv["dead"].pct(),
                iv["peak"].pct(),
                iv["dormant"].pct(),
                iv["accuracy"].num(),
                f"{rec.mean:.0f}" if rec.mean else "0",
                _finding(label, arm),
            ]
        )
    head = ("arm", "dead", "peak dead", "dormant", "test acc", "recycled", "finding")
    return _common.markdown_table(head, rows)


def readme_block(summary: dict) -> str:
    """The docs' generated block: setting, table with 95% intervals over seeds."""
    sz = summary["sizes"]
    return "\n\n".join(
        [
            f"ReLU MLP {tuple(sz['hidden'])} on MNIST-1D, {BASE_INIT} init, Adam at constant LR "
            f"{sz['lr']:g} (per-weight step counts), batch {sz['batch_size']}, {sz['steps']} "
            f"steps, {len(sz['seeds'])} seeds: mean [95% t-interval over seeds]. ReDo every "
            f"{sz['redo_every']} steps at tau = {REDO_TAU}, its recycled weights restarting "
            "Adam (per-weight step count reset) or, as before, keeping Adam's step count "
            "(moments zeroed). Dead = never positive on 1024 training examples at the last "
            "evaluation; peak = the highest dead fraction seen; dormant = ReDo score <= 0.025; "
            "differences are per seed (same initialization).",
            table_markdown(summary),
        ]
    )


def main(argv: Sequence[str] | None = None) -> dict:
    """Runs the experiment; returns the payload written to ``results.json``."""
    started = time.time()
    args = _common.parse_args(
        NAME, (__doc__ or "").splitlines()[0], argv, run_time="about 4 minutes", resumes=True
    )
    scale = SCALES[args.scale]
    data = relujax.data.mnist1d(num_samples=scale.num_samples)
    labels, configs = arms(scale, args.seed)
    print(
        f"[{NAME}] {len(configs)} runs: {len(_variants(scale))} arms x {len(scale.seeds)} "
        f"seeds, MLP {scale.hidden} on MNIST-1D, Adam lr {scale.lr:g}, {scale.steps} steps",
        flush=True,
    )
    progress = _common.Progress(NAME, len(configs) * scale.steps)
    result = _sweeps.run(
        args,
        progress,
        "mnist1d",
        configs,
        data,
        steps=scale.steps,
        model=sweep.MLPSpec(hidden=scale.hidden),
        optimizer="adam_per_param",
        batch_size=scale.batch_size,
        eval_every=scale.eval_every,
        chunk_steps=scale.chunk_steps,
        intervention=_sweeps.ReDo(layers=len(scale.hidden), kernel_init=BASE_INIT),
    )
    res = _sweeps.arrays(result)
    by_arm = _by_arm(labels, res, scale.hidden)
    summary = {
        "experiment": NAME,
        "scale": args.scale,
        "sizes": dataclasses.asdict(scale),
        "by_arm": by_arm,
        "wall_seconds": round(time.time() - started, 1),
        "cpu_seconds": round(time.process_time(), 1),
    }
    dead = _sweeps.unit_fraction(res["dead"], scale.hidden)
    figures = _draw(args.out, scale, res, np.asarray(labels), list(by_arm), dead)
    payload = {
        "sizes": dataclasses.asdict(scale),
        "base_init": BASE_INIT,
        "redo_tau": REDO_TAU,
        "steps": res["steps"],
        "by_arm": by_arm,
        "runs": [
            {
                "arm": {"label": label, **config.to_dict()},
                **{
                    k: res[k][i]
                    for k in ("dead", "dormant", "test_accuracy", "test_loss", "recycled")
                },
            }
            for i, (label, config) in enumerate(zip(labels, configs, strict=True))
        ],
        "figures": figures,
    }
    _common.write_results(args, payload, started=started)
    (args.out / "summary.json").write_text(json.dumps(summary, indent=1) + "\n")
    text = "\n\n".join(
        [
            f"# {NAME}: what saves ReLUs from a high learning rate ({args.scale} scale)",
            readme_block(summary),
            f"Figures: {', '.join(figures)}. Wall time {time.time() - started:.0f} s.",
        ]
    )
    _common.write_summary(args, text)
    shutil.rmtree(args.out / "checkpoints", ignore_errors=True)  # only needed to resume
    return payload


def _draw(out, scale: Scale, res, labels, order, dead) -> list[str]:
    """Dead units and test accuracy vs step per arm (mean and 95% band over seeds)."""
    plt = _figures.pyplot()
    steps = res["steps"]
    files = []
    for name, values, scale_by, ylabel in (
        ("dead_vs_step.png", dead, 100, "dead hidden units (%)"),
        ("accuracy_vs_step.png", res["test_accuracy"], 1, "test accuracy"),
    ):
        series = {}
        for label in order:
            sel = values[labels == label]
            ivs = [_stats.t_interval(sel[:, e], within=(0, 1)) for e in range(len(steps))]
            series[label] = tuple(
                np.array([getattr(iv, k) for iv in ivs]) for k in ("mean", "lo", "hi")
            )
        fig, ax = plt.subplots(figsize=(7, 4))
        _figures.curves(ax, steps, series, scale=scale_by)
        ax.set_xlabel("step")
        ax.set_ylabel(ylabel)
        ax.set_title(f"ReLU MLP {scale.hidden}, MNIST-1D, Adam lr {scale.lr:g}", fontsize=10)
        ax.grid(alpha=0.3)
        _figures.legend_right(fig, ax, title=f"mean, 95% band, {len(scale.seeds)} seeds")
        _figures.save(fig, out / name)
        files.append(name)
    return files


if __name__ == "__main__":
    _common.cli(main, NAME, resumes=True)
