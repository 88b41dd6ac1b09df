"""Trained collapse: how often a deep, narrow ReLU net trained on |x| ends as a constant.

``python -m experiments.trained_collapse [--quick | --full] [--out DIR] [--seed N] [--trainings N]``

Lu, Shin, Su and Karniadakis ("Dying ReLU and Initialization: Theory and Numerical
Examples", Commun. Comput. Phys. 28, 2020; arXiv:1903.06733) and Lu, Su and Karniadakis
("Collapse of deep and narrow neural nets", arXiv:1808.04947) train deep, narrow ReLU nets
on simple 1-D functions such as |x| many times over and count how often the trained net is
a constant (the mean of the target, the best constant under the squared loss), for
symmetric (He) initialization against randomized asymmetric initialization (RAI).
:mod:`experiments.born_dead` measures the initialization half of that story; this trains.

Setting (ours; the papers' exact training settings and percentages were not reachable with
the reference search available here, so every number below is an assumption stated, not
copied): target |x| on the box [-sqrt(3), sqrt(3)] of :mod:`experiments.born_dead`; 512
evenly spaced training points; fully connected ReLU nets of ``depth`` hidden layers of
``width`` units and a linear readout (:class:`relujax.nn.MLP`); He normal with zero biases
against RAI (:func:`relujax.init.rai`, joint weight/bias draw, readout included); mean
squared error; Adam at a constant learning rate 1e-3, minibatches of 64 drawn with
replacement, 3000 steps; 1000 independent trainings per initializer (seeds 0..999, the same
seeds for both). All trainings run in one compiled program of :mod:`relujax.sweep` (the
staged API: the initial parameters are read from :func:`relujax.sweep.initial_state`).

Measured per net, on a grid of 1024 evenly spaced points of the box: *born dead* (at
initialization some hidden layer is zero on the whole grid, so the net is constant and
stays so), *collapsed* after training (output variance over the grid at most
``THRESHOLD`` = 1e-3 of the target's), and the grid MSE (*fitted*: at most ``FIT`` = 1e-2
of the target's variance; the nets neither collapsed nor fitted mostly fit one side only).
Fractions carry 95% Wilson intervals (the trainings are independent); the He-RAI differences
Newcombe intervals, from which the claims are stated. The sweep's own per-layer dead
fraction on the training points gives the fraction of nets with a dead layer at every
evaluation.

Outputs: ``results.json``, ``summary.json``, ``summary.md``, ``trained_collapse.png``.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import math
import time
from collections.abc import Sequence

import jax
import numpy as np
from flax import nnx

import relujax
from experiments import _collapse_report, _common
from experiments import _collapse_stats as cs
from relujax import sweep
from relujax.data import Dataset

NAME = "trained_collapse"
INITS = ("he_normal", "rai")
BOX = math.sqrt(3.0)


@dataclasses.dataclass(frozen=True)
class Scale:
    """Sizes of one scale: ``cells`` are (width, depth) pairs, each trained ``trainings``
    times per initializer for ``steps`` Adam steps."""

    cells: tuple[tuple[int, int], ...]
    trainings: int
    steps: int
    eval_every: int
    lr: float = 1e-3
    batch_size: int = 64
    n_train: int = 512
    n_grid: int = 1024
    reference: bool = True


SCALES = {
    "quick": Scale(
        cells=((2, 2),),
        trainings=8,
        steps=40,
        eval_every=20,
        n_train=128,
        n_grid=256,
        reference=False,
    ),
    "default": Scale(cells=((2, 10),), trainings=1000, steps=3000, eval_every=300),
    "full": Scale(
        cells=((2, 10), (3, 10), (4, 10), (2, 5), (2, 20)),
        trainings=1000,
        steps=3000,
        eval_every=300,
    ),
}


def target(x: np.ndarray) -> np.ndarray:
    """The function fitted, |x|."""
    return np.abs(x)


def dataset(scale: Scale) -> Dataset:
    """Training points and the evaluation grid on the box, with targets ``[n, 1]``."""
    x = np.linspace(-BOX, BOX, scale.n_train, dtype=np.float32)[:, None]
    g = np.linspace(-BOX, BOX, scale.n_grid, dtype=np.float32)[:, None]
    return Dataset(x, target(x), g, target(g))


def _stacked(p: sweep.Plan, states) -> dict:
    """Per-config parameter dicts stacked in config order from the group states."""
    rows: list = [None] * len(p.configs)
    for st, members in zip(states, p.members, strict=True):
        host = nnx.to_pure_dict(jax.device_get(st.params))
        for j, k in enumerate(members):
            rows[k] = jax.tree.map(lambda a, j=j: np.asarray(a[j]), host)
    return jax.tree.map(lambda *a: np.stack(a), *rows)


def train(scale: Scale, width: int, depth: int, seeds: Sequence[int]) -> dict[str, np.ndarray]:
    """Trains every (init, seed) of one cell; per-net measurements ``[inits, seeds]``."""
    data = dataset(scale)
    configs = [
        sweep.Config("constant", scale.lr, "relu", init, seed=s) for init in INITS for s in seeds
    ]
    chunk = scale.eval_every * max(1, scale.steps // scale.eval_every // 3)
    while scale.steps % chunk:
        chunk -= scale.eval_every
    options = sweep.Options(
        steps=scale.steps,
        model=sweep.MLPSpec((width,) * depth),
        optimizer="adam",
        batch_size=scale.batch_size,
        eval_every=scale.eval_every,
        chunk_steps=chunk,
        probe_size=scale.n_train,
    )
    started = time.time()
    p = sweep.plan(configs, data, options)
    s = sweep.initial_state(p)
    initial = _stacked(p, s.states)
    print(f"[{NAME}] width {width} depth {depth}: {len(configs)} nets initialized "
          f"({time.time() - started:.0f} s)", flush=True)  # fmt: skip
    while s.chunks_done < p.chunks:
        s, _ = sweep.train_chunk(p, s)
        print(f"[{NAME}] width {width} depth {depth}: step {s.chunks_done * chunk}/"
              f"{scale.steps} ({time.time() - started:.0f} s)", flush=True)  # fmt: skip
    res = sweep.result(p, s)
    assert res.final_params is not None  # sweep.result returns the trained parameters
    final = jax.tree.map(lambda *a: np.stack(a), *[nnx.to_pure_dict(q) for q in res.final_params])
    grid, y = data.x_test, data.y_test[:, 0]
    at_init, trained = cs.per_net(initial, grid, y), cs.per_net(final, grid, y)
    shape = (len(INITS), len(seeds))
    m = res.metrics
    out = {
        "born_dead": at_init["dead_layer"],
        "born_float_constant": at_init["float_constant"],
        "init_relative_variance": at_init["relative_variance"],
        "relative_variance": trained["relative_variance"],
        "dead_layer_after": trained["dead_layer"],
        "grid_mse": trained["grid_mse"],
        "sweep_test_loss": m["test_loss"][:, -1],
        "sweep_dead_layer": np.any(m["dead_fraction"] >= 1.0, axis=-1),  # [K, E]
        "train_loss": m["train_loss"],
    }
    out = {k: np.asarray(v).reshape(shape + np.asarray(v).shape[1:]) for k, v in out.items()}
    out["steps"] = np.asarray(res.steps)
    out["collapsed"] = out["relative_variance"] <= cs.THRESHOLD
    out["fitted"] = trained["relative_mse"].reshape(shape) <= cs.FIT
    return out


def reference(width: int, depth: int, n: int, seed: int) -> dict[str, float]:
    """P(born dead) from :func:`relujax.analysis.born_dead_probability` (other draws)."""
    key = jax.random.fold_in(jax.random.key(seed), 7919)
    return {
        init: float(
            relujax.analysis.born_dead_probability(
                key, width=width, depth=depth, n_trials=n, init=init, n_points=256
            )
        )
        for init in INITS
    }


def readme_block(summary: dict) -> str:
    """The README's generated block (table, claims, the papers' figures), from the summary."""
    return _collapse_report.readme_block(summary)


def _parse(argv: Sequence[str] | None) -> tuple[_common.RunArgs, int | None]:
    pre = argparse.ArgumentParser(add_help=False)
    pre.add_argument("--trainings", type=int, default=None)
    ns, rest = pre.parse_known_args(argv)
    if ns.trainings is not None and ns.trainings < 1:
        raise ValueError(f"--trainings must be a positive int, got {ns.trainings}.")
    doc = (__doc__ or "").splitlines()[0] + " (--trainings N: trainings per initializer)"
    return _common.parse_args(NAME, doc, rest, run_time="about 4 minutes"), ns.trainings


def main(argv: Sequence[str] | None = None) -> dict:
    """Runs the experiment; returns the payload written to ``results.json``."""
    started = time.time()
    args, trainings = _parse(argv)
    scale = SCALES[args.scale]
    if trainings is not None:
        scale = dataclasses.replace(scale, trainings=trainings)
    seeds = [args.seed * 1_000_000 + i for i in range(scale.trainings)]
    cells = {}
    for width, depth in scale.cells:
        cells[f"{width}x{depth}"] = {
            "width": width,
            "depth": depth,
            **train(scale, width, depth, seeds),
            "reference_born_dead": reference(width, depth, scale.trainings, args.seed)
            if scale.reference
            else {init: math.nan for init in INITS},
        }
    summary = _collapse_report.summarize(scale, cells, inits=INITS)
    summary["wall_seconds"] = round(time.time() - started, 1)
    figure = _collapse_report.figure(args.out, summary, cells, inits=INITS)
    payload = {"sizes": dataclasses.asdict(scale), "inits": list(INITS), "cells": cells}
    payload.update(summary=summary, figures=[figure])
    _common.write_results(args, payload, started=started)
    (args.out / "summary.json").write_text(json.dumps(_common.jsonable(summary), indent=1) + "\n")
    _common.write_summary(args, _collapse_report.markdown(summary, args.scale, figure))
    return payload


if __name__ == "__main__":
    _common.cli(main, NAME, resumes=False)
