"""Tests for online data streams in relujax.sweep: the streams' definitions, a stream sweep
against single runs and an independent loop, resuming, fingerprints and bad input.

The reference loop here is written from the documented conventions (the minibatch of update
``t`` from ``fold_in(fold_in(key(seed), 1), t)``, the LTU target network, plain SGD), with
NumPy for the target and the permutation, independently of ``relujax.sweep``.
"""

import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

import relujax
from relujax import data, sweep

PERIOD, TASKS, LR = 10, 3, 0.05
STREAMS = [
    sweep.bit_flipping(s, tasks=TASKS, period=PERIOD, probe_size=32, test_size=16) for s in (3, 4)
]
CONFIGS = [
    sweep.Config("constant", LR, init="he_uniform", seed=0, data=0),
    sweep.Config("constant", LR, init="he_uniform", seed=1, data=1),
    sweep.Config("constant", 2 * LR, init="he_uniform", seed=2, data=0),
]
KW = dict(
    steps=TASKS * PERIOD,
    model=sweep.MLPSpec((6,)),
    optimizer="sgd",
    batch_size=2,
    eval_every=PERIOD,
    chunk_steps=PERIOD,
    strategy="map",
)


def _target(stream, x):
    """The LTU target network in NumPy, from the stream's tables."""
    w1, b1, tau = (np.asarray(a, np.float64) for a in (stream.w1, stream.b1, stream.tau))
    h = (x @ w1 + b1 > tau).astype(np.float64)
    return h @ np.asarray(stream.w2, np.float64) + np.asarray(stream.b2, np.float64)


def test_bit_flipping_tables_follow_the_paper():
    s = sweep.bit_flipping(0, tasks=50, period=7, probe_size=4, test_size=3)
    w1, b1 = np.asarray(s.w1), np.asarray(s.b1)
    assert set(np.unique(w1)) == {-1.0, 1.0} and set(np.unique(b1)) <= {-1.0, 1.0}
    # tau_j = beta (m + 1) - S_j, S_j = (m - sum_i W_ij + b_j) / 2 (fix_ltu_net.py)
    np.testing.assert_allclose(s.tau, 0.7 * 21 - (20 - w1.sum(0) + b1) / 2, rtol=1e-6)
    flips = np.asarray(s.flips)
    assert flips.shape == (50, 15)
    np.testing.assert_array_equal(np.abs(np.diff(flips, axis=0)).sum(1), np.ones(49))
    assert s.horizon == 350 and s.describe()["flipping_bits"] == 15


def test_bit_flipping_batches_and_evaluation_sets():
    s = STREAMS[0]
    key = jax.random.key(5)
    batch = jax.jit(s.batch, static_argnums=2)
    for step in (0, 9, 10, 29):
        x, y = batch(key, jnp.int32(step), 4)
        x = np.asarray(x)
        np.testing.assert_array_equal(x[:, :15], np.broadcast_to(s.flips[step // PERIOD], (4, 15)))
        bits = jax.random.bernoulli(jax.random.fold_in(key, step), 0.5, (4, 5))
        np.testing.assert_array_equal(x[:, 15:], np.asarray(bits, np.float32))
        np.testing.assert_allclose(y, _target(s, x), atol=0)
    # After `step` updates the task of the last update is evaluated: step 10 -> task 0.
    evaluation = jax.jit(s.evaluation)
    for step, task in ((0, 0), (10, 0), (11, 1), (30, 2)):
        xp, yp, xt, _ = evaluation(jnp.int32(step))
        np.testing.assert_array_equal(xp[:, :15], np.broadcast_to(s.flips[task], (32, 15)))
        np.testing.assert_array_equal(xt[:, 15:], s.test_bits)
        np.testing.assert_allclose(yp, _target(s, np.asarray(xp)), atol=0)


def test_permuted_batches():
    ds = data.gaussian_mixture(n_train=40, n_test=8, dim=5, num_classes=3)
    s = sweep.permuted(ds, 1, tasks=3, period=4, probe_size=6)
    key = jax.random.key(2)
    x, y = s.batch(key, 9, 7)  # task 2
    idx = np.asarray(jax.random.randint(jax.random.fold_in(key, 9), (7,), 0, 40))
    perm = np.asarray(s.perms[2])
    np.testing.assert_array_equal(x, ds.x_train[idx][:, perm])
    np.testing.assert_array_equal(y, ds.y_train[idx])
    xp, _, _, yt = s.evaluation(jnp.int32(8))  # the 8th update is task 1's
    np.testing.assert_array_equal(xp, ds.x_train[:6][:, np.asarray(s.perms[1])])
    np.testing.assert_array_equal(yt, ds.y_test)
    assert sorted(perm.tolist()) == list(range(5))


@pytest.fixture(scope="module")
def swept():
    return sweep.run(CONFIGS, STREAMS, **KW)


def test_stream_sweep_equals_single_runs(swept):
    assert set(swept.metrics) >= {"online_loss", "train_loss", "dead_fraction"}
    assert "online_accuracy" not in swept.metrics  # regression
    assert swept.meta["stream"]["kind"] == "bit_flipping"
    for k, c in enumerate(CONFIGS):
        single = sweep.run([c], STREAMS, **KW)
        for name, values in swept.metrics.items():
            np.testing.assert_array_equal(values[k], single.metrics[name][0], err_msg=name)
        chex.assert_trees_all_equal(swept.final_params[k], single.final_params[0])


def _reference(config, stream, steps):
    """Plain SGD on the stream, one configuration: per-step losses and final parameters."""
    key = jax.random.key(config.seed)
    model = relujax.nn.MLP(
        20,
        (6,),
        1,
        activation="relu",
        kernel_init=relujax.init.get("he_uniform"),
        rngs=nnx.Rngs(jax.random.fold_in(key, 0)),
    )
    graphdef, params = nnx.split(model, nnx.Param)
    data_key = jax.random.fold_in(key, 1)

    @jax.jit
    def grad(p, x, y):
        return jax.value_and_grad(lambda q: jnp.mean((nnx.merge(graphdef, q)(x) - y) ** 2))(p)

    losses = []
    for t in range(steps):
        bits = np.asarray(jax.random.bernoulli(jax.random.fold_in(data_key, t), 0.5, (2, 5)))
        x = np.concatenate([np.broadcast_to(stream.flips[t // PERIOD], (2, 15)), bits], 1)
        y = _target(stream, x).astype(np.float32)
        value, g = grad(params, jnp.asarray(x, jnp.float32), jnp.asarray(y))
        params = jax.tree.map(lambda p, d: p - config.peak_lr * d, params, g)
        losses.append(float(value))
    return np.asarray(losses), params


def test_online_loss_is_the_mean_training_loss_of_each_interval(swept):
    for k in (0, 2):
        losses, params = _reference(CONFIGS[k], STREAMS[CONFIGS[k].data], TASKS * PERIOD)
        online = swept.metrics["online_loss"][k]
        assert np.isnan(online[0])
        np.testing.assert_allclose(online[1:], losses.reshape(TASKS, PERIOD).mean(1), rtol=1e-4)
        chex.assert_trees_all_close(
            swept.final_params[k], jax.device_get(params), rtol=1e-4, atol=1e-6
        )


def test_resumed_stream_run_equals_uninterrupted(swept, tmp_path):
    def die(info):
        if info.chunk == 1:
            raise KeyboardInterrupt

    kw = dict(KW, checkpoint_dir=str(tmp_path / "ckpt"))
    with pytest.raises(KeyboardInterrupt):
        sweep.run(CONFIGS, STREAMS, callback=die, **kw)
    resumed = sweep.run(CONFIGS, STREAMS, **kw)
    for name, values in swept.metrics.items():
        np.testing.assert_array_equal(resumed.metrics[name], values, err_msg=name)
    # Another task sequence is another sweep: its fingerprint differs.
    other = [sweep.bit_flipping(9, tasks=TASKS, period=PERIOD, probe_size=32, test_size=16)] * 2
    with pytest.raises(ValueError, match="different sweep"):
        sweep.run(CONFIGS, other, **kw)


def test_plan_fingerprints_streams_and_checks_them():
    opts = sweep.Options(**{k: v for k, v in KW.items() if k != "strategy"})
    a = sweep.plan(CONFIGS[:1], STREAMS, opts)
    b = sweep.plan(CONFIGS[:1], STREAMS[::-1], opts)
    assert a.fingerprint != b.fingerprint and a.probe_size == 32 and a.is_stream
    with pytest.raises(ValueError, match="covers 30 updates"):
        sweep.plan(CONFIGS[:1], STREAMS, sweep.Options(**dict(opts.__dict__, steps=40)))
    short = sweep.bit_flipping(0, tasks=TASKS, period=PERIOD, probe_size=8, test_size=16)
    with pytest.raises(ValueError, match="stacked"):
        sweep.plan(CONFIGS[:1], [STREAMS[0], short], opts)
    with pytest.raises(TypeError, match="all be Streams"):
        sweep.plan(CONFIGS[:1], [STREAMS[0], data.digits()], opts)
    with pytest.raises(ValueError, match="flipping_bits must be < inputs"):
        sweep.bit_flipping(0, tasks=1, inputs=5, flipping_bits=5)


def test_rank_metrics_is_the_effective_rank_of_each_layers_probe_activations():
    from relujax.sweep import _train

    model = relujax.nn.MLP(4, (6, 3), 2, activation="relu", rngs=nnx.Rngs(0))
    graphdef, params, rest = nnx.split(model, nnx.Param, ...)
    x = np.asarray(jax.random.normal(jax.random.key(1), (300, 4)))
    got = _train.rank_metrics(_train.make_apply(graphdef), params, rest, jnp.asarray(x))
    h, want = x[: _train.RANK_ROWS].astype(np.float64), []
    for i in range(2):
        layer = params["layers"][i]
        h = np.maximum(h @ np.asarray(layer["kernel"][...]) + np.asarray(layer["bias"][...]), 0)
        s = np.linalg.svd(h, compute_uv=False)
        p = s[s > 0] / s.sum()
        want.append(np.exp(-(p * np.log(p)).sum()))
    np.testing.assert_allclose(got["effective_rank"], want, rtol=1e-4)
