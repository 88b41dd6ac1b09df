"""The experiments' shared command line: progress over the whole run, Ctrl-C, intervals."""

from __future__ import annotations

import math
from types import SimpleNamespace

import numpy as np
import pytest
from scipy import stats

from experiments import _common, _stats


def _info(chunk: int, chunks: int, chunk_steps: int) -> SimpleNamespace:
    return SimpleNamespace(chunk=chunk, chunks=chunks, step=chunk * chunk_steps)


def test_progress_counts_every_sweep_of_the_run(capsys):
    progress = _common.Progress("exp", total=2 * 4 * 100)  # two sweeps of 4 configs x 100 steps
    first = progress.callback("a", 400)
    first(_info(1, 2, 50))
    first(_info(2, 2, 50))
    progress.finished(400)
    second = progress.callback("b", 400)
    second(_info(1, 2, 50))
    lines = capsys.readouterr().out.splitlines()
    assert [line.split("|")[1].strip() for line in lines] == [
        "whole run 25%",
        "whole run 50%",
        "whole run 75%",
    ]
    assert lines[0].startswith("[exp] a: step 50/100") and "ETA" in lines[0]
    assert progress.where == "b at step 50/100"


def test_progress_of_a_resumed_sweep_counts_restored_chunks_as_done(capsys):
    progress = _common.Progress("exp", total=400)
    report = progress.callback("a", 400)
    report(_info(3, 4, 25))  # chunks 1 and 2 came from the checkpoint
    assert "whole run 75%" in capsys.readouterr().out


def test_ctrl_c_prints_one_line_and_exits_130(capsys):
    progress = _common.Progress("exp", total=100)
    progress.where = "digits at step 250/1000"

    def main():
        raise KeyboardInterrupt

    with pytest.raises(SystemExit) as exc:
        _common.cli(main, "exp", resumes=True)
    assert exc.value.code == 130
    err = capsys.readouterr().err.strip()
    assert err == (
        "[exp] interrupted digits at step 250/1000; rerun the same command to resume from "
        "the last checkpoint."
    )


@pytest.mark.parametrize("values", [[0.1, 0.2, 0.3], [0.5, 0.52, 0.49, 0.55, 0.51], [1.0, 3.0]])
def test_t_interval_matches_scipy(values):
    iv = _stats.t_interval(values)
    lo, hi = stats.t.interval(0.95, len(values) - 1, loc=np.mean(values), scale=stats.sem(values))
    np.testing.assert_allclose([iv.mean, iv.lo, iv.hi], [np.mean(values), lo, hi], rtol=1e-12)
    assert iv.n == len(values)


def test_t_interval_edge_cases():
    same = _stats.t_interval([0.2, 0.2, 0.2])  # seeds that agree: a point
    np.testing.assert_allclose([same.mean, same.lo, same.hi], 0.2, rtol=1e-12)
    one = _stats.t_interval([0.2, math.nan])  # NaN (a diverged run) is left out
    assert one.n == 1 and math.isnan(one.lo) and one.pct() == "20.0%"
    clipped = _stats.t_interval([0.0, 0.0, 0.3], within=(0, 1))
    assert clipped.lo == 0.0 and clipped.hi < 1.0
    iv = _stats.Interval(0.25, 0.125, 0.375, 2)
    assert _stats.Interval.from_dict(iv.to_dict()) == iv


def test_per_seed_means_over_the_masked_runs():
    values = np.array([0.1, 0.3, 0.5, np.nan, 9.0])
    seeds = np.array([0, 0, 1, 1, 2])
    mask = np.array([True, True, True, True, False])
    np.testing.assert_allclose(_stats.per_seed(values, seeds, mask), [0.2, 0.5])


def test_no_experiment_trains_anything_itself():
    # One engine: the experiments declare configurations and read results; relujax.sweep
    # trains. No gradients and no optimizers under experiments/.
    from pathlib import Path

    import experiments

    for path in Path(experiments.__file__).parent.glob("*.py"):
        text = path.read_text()
        for banned in ("jax.grad", "value_and_grad", "import optax", "from optax"):
            assert banned not in text, f"{path.name} uses {banned}"


@pytest.mark.parametrize(("keep_count", "expected_count"), [(0.0, 0), (1.0, 3)])
def test_redo_intervention_restarts_or_keeps_adam_counts(keep_count, expected_count):
    import jax
    import jax.numpy as jnp
    from flax import nnx

    import relujax
    from experiments import _sweeps
    from relujax import analysis, remedies, sweep

    # A hidden layer whose bias of -10 keeps every unit dead: ReDo recycles all 8.
    model = relujax.nn.MLP(4, [8], 3, bias_init=relujax.init.constant(-10.0), rngs=nnx.Rngs(0))
    graphdef, params = nnx.split(model, nnx.Param)
    x = jax.random.normal(jax.random.key(1), (16, 4))
    opt = remedies.adam(1e-3)
    opt_state = opt.init(params)
    grads = jax.tree.map(jnp.ones_like, params)
    for _ in range(3):
        _, opt_state = opt.update(grads, opt_state, params)
    _, stats = analysis.with_stats(lambda p, x: nnx.merge(graphdef, p)(x))(params, x)
    hp = {"redo_every": 1.0, "redo_tau": 0.1, "redo_keep_count": keep_count}
    ctx = sweep.StepContext(
        step=jnp.int32(1),
        key=jax.random.key(2),
        x=x,
        y=jnp.zeros(16, jnp.int32),
        stats=stats,
        hparams={k: jnp.float32(v) for k, v in hp.items()},
        apply=None,
        initial_params=None,
    )
    redo = _sweeps.ReDo(layers=1, kernel_init="lecun_normal")
    new_params, new_opt, recycled = redo.apply(ctx, params, opt_state, redo.init(params))
    assert int(recycled) == 8
    np.testing.assert_array_equal(new_params["layers"][0]["bias"][...], 0.0)  # fresh units
    np.testing.assert_array_equal(new_params["layers"][1]["kernel"][...], 0.0)  # no output yet
    (adam,) = [
        s
        for s in jax.tree.leaves(
            new_opt, is_leaf=lambda s: isinstance(s, remedies.ScaleByAdamPerParamState)
        )
        if isinstance(s, remedies.ScaleByAdamPerParamState)
    ]
    np.testing.assert_array_equal(adam.count["layers"][0]["kernel"][...], expected_count)
    np.testing.assert_array_equal(adam.mu["layers"][0]["kernel"][...], 0.0)
