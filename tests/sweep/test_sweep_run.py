"""Tests for relujax.sweep.run: K configs == K single runs, divergence, metrics, results, errors.

All runs here share one tiny problem so that the few compiled programs are reused (a sweep's
program is cached on its static settings). ``reference`` is the independent loop of
``tests/sweep/reference.py``.
"""

import json
import os
import subprocess
import sys
import textwrap

import chex
import jax
import numpy as np
import pytest
from script_runner import run_python

from relujax import data, schedules, sweep

ref = pytest.importorskip("reference")  # tests/sweep/reference.py (pytest puts its dir on sys.path)

DS = data.gaussian_mixture(n_train=256, n_test=64, dim=8, num_classes=3)
WARMUP_COSINE = schedules.Schedule("warmup_cosine", warmup_fraction=0.25)
CONFIGS = [
    sweep.Config("constant", 1e-2, seed=0),
    sweep.Config("constant", 1e35, seed=1),  # Adam's first step overflows the logits
    sweep.Config(WARMUP_COSINE, 3e-2, init="xavier_normal", seed=0),
    sweep.Config(WARMUP_COSINE, 1e-2, activation="leaky_relu", seed=1),
]
DIVERGING = 1
KW = dict(steps=40, model=sweep.MLPSpec((16,)), batch_size=32, eval_every=10, probe_size=128)


@pytest.fixture(scope="module")
def reference():
    """The independent loop's metrics, divergence steps and final parameters."""
    kw = dict(KW, hidden=KW["model"].hidden)
    del kw["model"]
    return ref.run(CONFIGS, DS, **kw)


@pytest.fixture(scope="module")
def singles():
    """Each configuration swept alone (the same engine, K = 1)."""
    return [sweep.run([c], DS, chunk_steps=10, strategy="map", **KW) for c in CONFIGS]


@pytest.fixture(scope="module")
def swept_map():
    return sweep.run(CONFIGS, DS, chunk_steps=10, strategy="map", **KW)


@pytest.fixture(scope="module")
def swept_vmap():
    # One activation group (the relu configs) keeps this second program small.
    return sweep.run(CONFIGS[:3], DS, chunk_steps=20, strategy="vmap", **KW)


def _rows(result, n):
    """The first n configurations of a result."""
    return sweep.SweepResult(
        configs=result.configs[:n],
        steps=result.steps,
        metrics={k: v[:n] for k, v in result.metrics.items()},
        diverged_step=result.diverged_step[:n],
        layer_sites=result.layer_sites[:n],
        meta=result.meta,
        final_params=result.final_params[:n],
    )


def _assert_metrics_equal(a, b, **tol):
    assert a.metrics.keys() == b.metrics.keys()
    for name in a.metrics:
        x, y = a.metrics[name], b.metrics[name]
        np.testing.assert_array_equal(np.isnan(x), np.isnan(y), err_msg=name)
        if tol:
            np.testing.assert_allclose(x, y, err_msg=name, **tol)
        else:
            np.testing.assert_array_equal(x, y, err_msg=name)


def test_map_sweep_equals_single_runs_bit_for_bit(swept_map, singles):
    """K configurations in one program == K sweeps of one configuration, exactly."""
    assert swept_map.meta["strategy"] == {"relu": "map", "leaky_relu": "map"}
    for k, single in enumerate(singles):
        np.testing.assert_array_equal(swept_map.diverged_step[k], single.diverged_step[0])
        for name, values in swept_map.metrics.items():
            np.testing.assert_array_equal(values[k], single.metrics[name][0], err_msg=name)
        if k != DIVERGING:
            chex.assert_trees_all_equal(swept_map.final_params[k], single.final_params[0])


def _assert_matches_reference(result, reference, rows, *, rtol=2e-4, atol=1e-5):
    metrics, diverged, finals = reference
    np.testing.assert_array_equal(result.diverged_step, diverged[rows])
    assert set(result.metrics) == set(metrics)
    for name in metrics:
        x, y = result.metrics[name], metrics[name][rows]
        np.testing.assert_array_equal(np.isnan(x), np.isnan(y), err_msg=name)
        np.testing.assert_allclose(x, y, rtol=rtol, atol=atol, err_msg=name)
    for j, k in enumerate(rows):
        if k != DIVERGING:
            chex.assert_trees_all_close(result.final_params[j], finals[k], rtol=1e-3, atol=1e-5)


def test_map_sweep_equals_the_independent_reference(swept_map, reference):
    """The engine against a loop written from the documented conventions (own loss/chain)."""
    _assert_matches_reference(swept_map, reference, list(range(len(CONFIGS))))


def test_vmap_sweep_equals_the_independent_reference(swept_vmap, reference):
    """Batched over configurations the matmuls round differently: equal to float tolerance."""
    _assert_matches_reference(swept_vmap, reference, [0, 1, 2])


def test_divergence_is_marked_masked_and_isolated(swept_map, swept_vmap):
    for result in (swept_map, swept_vmap):
        step = result.diverged_step[DIVERGING]
        assert 0 <= step < 40
        assert result.diverged.tolist() == [k == DIVERGING for k in range(len(result))]
        after = result.steps >= step
        for name, values in result.metrics.items():
            if name == "saturated_fraction":  # relu / leaky_relu: not applicable, always NaN
                assert np.isnan(values).all()
                continue
            assert np.isnan(values[DIVERGING][after]).all(), name
            assert np.isfinite(values[DIVERGING][~after]).all(), name
            others = np.delete(values, DIVERGING, axis=0)
            assert np.isfinite(others).all(), name
        # The frozen state of the diverged run stays finite (it stopped before the overflow).
        chex.assert_tree_all_finite(result.final_params[DIVERGING])


def test_metric_shapes_lr_and_ranges(swept_map):
    r = swept_map
    np.testing.assert_array_equal(r.steps, [0, 10, 20, 30, 40])
    K, E = len(CONFIGS), 5
    for name in ("train_loss", "test_loss", "test_accuracy", "lr"):
        chex.assert_shape(r.metrics[name], (K, E))
    for name in ("dead_fraction", "dormant_fraction", "firing_rate", "grad_dormant_fraction"):
        chex.assert_shape(r.metrics[name], (K, E, 1))
        ok = r.metrics[name][np.isfinite(r.metrics[name])]
        assert ((0 <= ok) & (ok <= 1)).all()
    for k, c in enumerate(CONFIGS):
        sched = c.schedule.build(total_steps=40, peak_value=c.peak_lr)
        want = np.asarray([sched(int(s)) for s in r.steps], np.float32)
        valid = np.isfinite(r.metrics["lr"][k])
        np.testing.assert_allclose(r.metrics["lr"][k][valid], want[valid], rtol=1e-6)
    # Training helps: the probe loss of the well-behaved runs falls.
    for k in (0, 2, 3):
        assert r.metrics["train_loss"][k, -1] < 0.8 * r.metrics["train_loss"][k, 0]
    assert r.layer_sites == (("relu_0",), ("relu_0",), ("relu_0",), ("leaky_relu_0",))


def test_unit_statistics_match_a_numpy_forward_pass(swept_map):
    """dead / dormant / firing of the last evaluation, recomputed from the final weights."""
    x = DS.x_train[:128].astype(np.float64)
    for k in (0, 2, 3):
        layer = swept_map.final_params[k]["layers"][0]
        pre = x @ np.asarray(layer["kernel"]) + np.asarray(layer["bias"])
        slope = 0.01 if CONFIGS[k].activation == "leaky_relu" else 0.0
        out = np.where(pre > 0, pre, slope * pre)
        dead = np.mean((pre <= 0).all(axis=0))
        score = np.abs(out).mean(0) / np.abs(out).mean()
        np.testing.assert_allclose(swept_map.metrics["dead_fraction"][k, -1, 0], dead, atol=1e-6)
        np.testing.assert_allclose(
            swept_map.metrics["dormant_fraction"][k, -1, 0], np.mean(score <= 0.025), atol=1e-6
        )
        np.testing.assert_allclose(
            swept_map.metrics["firing_rate"][k, -1, 0], np.mean(pre > 0), rtol=1e-5
        )


def test_result_serialization(swept_map, tmp_path):
    r = swept_map
    path = tmp_path / "result.json"
    text = r.to_json(path)
    json.loads(text)  # strict JSON: NaN became null
    assert "NaN" not in text
    back = sweep.SweepResult.from_json(path)
    assert back.configs == r.configs
    np.testing.assert_array_equal(back.diverged_step, r.diverged_step)
    _assert_metrics_equal(back, r)
    d = r.to_dict()
    assert d["runs"][2]["config"] == CONFIGS[2].to_dict()
    assert d["meta"]["versions"]["optax"] == r.meta["versions"]["optax"]
    assert set(d["meta"]["versions"]) >= {"relujax", "jax", "jaxlib", "flax", "optax", "numpy"}
    records = r.records()
    assert len(records) == len(CONFIGS) * len(r.steps)
    row = records[2 * len(r.steps) + 1]
    assert row["schedule"] == "warmup_cosine" and row["schedule.warmup_fraction"] == 0.25
    assert row["init"] == "xavier_normal" and row["step"] == 10 and not row["diverged"]
    assert row["dead_fraction/0"] == r.metrics["dead_fraction"][2, 1, 0]
    assert row["version.jax"] == r.meta["versions"]["jax"]
    pd = pytest.importorskip("pandas")
    frame = pd.DataFrame(records)
    assert frame.groupby("run").size().tolist() == [5] * len(CONFIGS)


def test_checkpoint_kill_and_resume_equals_uninterrupted(swept_map, tmp_path):
    seen = []

    def die_after_two_chunks(info):
        seen.append(info)
        if info.chunk == 2:
            raise KeyboardInterrupt  # as if the job were killed after its second checkpoint

    kw = dict(KW, chunk_steps=10, strategy="map", checkpoint_dir=str(tmp_path / "ckpt"))
    with pytest.raises(KeyboardInterrupt):
        sweep.run(CONFIGS, DS, callback=die_after_two_chunks, **kw)
    assert [i.chunk for i in seen] == [1, 2] and seen[-1].chunks == 4 and seen[-1].step == 20
    assert sorted(p.name for p in (tmp_path / "ckpt").iterdir() if p.name.isdigit()) == ["1", "2"]
    resumed = sweep.run(CONFIGS, DS, progress=True, callback=seen.append, **kw)
    assert [i.chunk for i in seen[2:]] == [3, 4]
    np.testing.assert_array_equal(resumed.diverged_step, swept_map.diverged_step)
    _assert_metrics_equal(resumed, swept_map)
    chex.assert_trees_all_equal(resumed.final_params, swept_map.final_params)
    # A different sweep refuses the directory instead of silently mixing results.
    with pytest.raises(ValueError, match="different sweep"):
        sweep.run(CONFIGS, DS, **dict(kw, probe_size=64))


SCRIPT = textwrap.dedent(
    """
    import json, os, sys
    os.environ["XLA_FLAGS"] = "--xla_force_host_platform_device_count=8"
    import jax
    assert jax.device_count() == 8, jax.devices()
    from relujax import data, sweep
    configs = [sweep.Config.from_dict(c) for c in json.loads(sys.argv[1])]
    kw = json.loads(sys.argv[2])
    kw["model"] = sweep.MLPSpec(tuple(kw["model"]))
    ds = data.gaussian_mixture(n_train=256, n_test=64, dim=8, num_classes=3)
    result = sweep.run(configs, ds, **kw)
    assert result.meta["devices"] == 8
    result.to_json(sys.argv[3])
    """
)


def test_eight_devices_equal_one(tmp_path, swept_map):
    """The config axis sharded over 8 virtual CPU devices gives the single-device numbers.

    Bit for bit with ``strategy="map"``: each configuration runs the same unbatched program
    wherever it is placed. (Under ``"vmap"`` the per-device batch size changes with the device
    count, and XLA may round batched reductions differently: equal to float32 tolerance.)
    """
    kw = dict(KW, model=list(KW["model"].hidden), chunk_steps=10, strategy="map")
    out = tmp_path / "eight.json"
    env = dict(os.environ, JAX_PLATFORMS="cpu")
    env.pop("XLA_FLAGS", None)
    proc = subprocess.run(
        [
            sys.executable,
            "-c",
            SCRIPT,
            json.dumps([c.to_dict() for c in CONFIGS[:3]]),
            json.dumps(kw),
            str(out),
        ],
        capture_output=True,
        text=True,
        env=env,
        timeout=600,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    eight = sweep.SweepResult.from_json(out)
    one = _rows(swept_map, 3)
    assert eight.configs == one.configs
    np.testing.assert_array_equal(eight.diverged_step, one.diverged_step)
    _assert_metrics_equal(eight, one)


TWO_DEVICES = textwrap.dedent(
    """
    import os, sys
    # XLA's intra-op pool is sized from the CPU affinity: two CPUs, as on the 2-core CI, so that
    # the devices are as many as the pool's threads (what the deadlock needed) on any machine.
    if hasattr(os, "sched_setaffinity") and len(os.sched_getaffinity(0)) > 2:
        os.sched_setaffinity(0, sorted(os.sched_getaffinity(0))[:2])
    os.environ["XLA_FLAGS"] = "--xla_force_host_platform_device_count=2"
    import jax
    assert jax.device_count() == 2, jax.devices()
    from relujax import data, sweep
    ds = data.gaussian_mixture(n_train=256, n_test=32, dim=8, num_classes=3)
    configs = [sweep.Config("constant", 1e-2, seed=s) for s in range(4)]
    kw = dict(steps=4, model=sweep.MLPSpec((16,)), batch_size=8, eval_every=2, chunk_steps=2,
              probe_size=256, feature_rank=True, strategy="vmap", callback=lambda info: None)
    sweep.run(configs, ds, **kw).to_json(sys.argv[1])
    sweep.run(configs, ds, devices=jax.devices()[:1], **kw).to_json(sys.argv[2])
    """
)


def test_rank_under_vmap_is_numpys_effective_rank_of_each_matrix():
    """The sweep's rank helper, vmapped once and twice (its own batching rule), under jit."""
    from relujax.sweep._train import _effective_rank

    x = np.array(jax.random.normal(jax.random.key(0), (2, 3, 32, 5)))
    x[0, 0, :, 1:] = 0.0  # rank one: erank 1
    s = np.linalg.svd(x.astype(np.float64), compute_uv=False)
    p = s / s.sum(-1, keepdims=True)
    want = np.exp(-np.sum(np.where(p > 0, p * np.log(np.where(p > 0, p, 1.0)), 0.0), -1))
    np.testing.assert_allclose(jax.jit(jax.vmap(jax.vmap(_effective_rank)))(x), want, rtol=1e-5)
    np.testing.assert_allclose(jax.vmap(_effective_rank)(x[1]), want[1], rtol=1e-5)
    np.testing.assert_allclose(want[0, 0], 1.0, rtol=1e-12)


def test_feature_rank_under_vmap_on_two_devices_equals_one(tmp_path):
    """``feature_rank`` with vmapped configurations on 2 CPU devices: the 1-device numbers.

    Before the fix this deadlocked (0% CPU, never returned): jaxlib 0.10's batched CPU SVD
    (the rank's ``jnp.linalg.svd`` under the config ``vmap``) splits its batch over XLA's
    intra-op pool and blocks a pool thread waiting for the parts; with one such call per
    device and as many devices as pool threads, every thread waited. Each matrix now gets
    its own LAPACK call on CPU (``rank_metrics``).
    """
    two, one = tmp_path / "two.json", tmp_path / "one.json"
    run_python(TWO_DEVICES, str(two), str(one), what="the 2-device sweep with feature_rank")
    two_r, one_r = sweep.SweepResult.from_json(two), sweep.SweepResult.from_json(one)
    assert (two_r.meta["devices"], one_r.meta["devices"]) == (2, 1)
    rank = two_r.metrics["effective_rank"]
    chex.assert_shape(rank, (4, 3, 1))
    assert np.all((rank >= 1) & (rank <= 16)), rank  # 16 units: erank in [1, 16]
    # Two configurations per device against four on one: batched float32 sums may round
    # differently, so equal to float32 tolerance rather than bit for bit.
    _assert_metrics_equal(two_r, one_r, rtol=1e-5, atol=1e-6)


def test_regression():
    """Float targets train with mean squared error and record no accuracy."""
    from flax import nnx

    ds = data.teacher_student(n_train=64, n_test=16, d_in=8, d_out=2)
    model = sweep.MLPSpec((16,))
    configs = [sweep.Config("constant", 1e-2, seed=s) for s in (0, 1)]
    r = sweep.run(configs, ds, steps=4, model=model, batch_size=8, eval_every=2, probe_size=32)
    assert "test_accuracy" not in r.metrics
    chex.assert_shape(r.metrics["dead_fraction"], (2, 3, 1))
    for k, c in enumerate(configs):
        net = model.build(
            ds.input_shape,
            ds.output_dim,
            activation="relu",
            kernel_init="he_normal",
            rngs=nnx.Rngs(jax.random.fold_in(jax.random.key(c.seed), 0)),
        )
        want = np.mean((np.asarray(net(ds.x_train[:32])) - ds.y_train[:32]) ** 2)
        np.testing.assert_allclose(r.metrics["train_loss"][k, 0], want, rtol=1e-5)
        assert np.isfinite(r.metrics["test_loss"][k]).all()


IMAGES = data.Dataset(
    DS.x_train.reshape(-1, 2, 4, 1), DS.y_train, DS.x_test.reshape(-1, 2, 4, 1), DS.y_test
)
BAD = [
    (dict(configs=[]), ValueError, "empty"),
    (dict(configs=sweep.Grid(["constant"], [1e-3], activations=[])), ValueError, "empty"),
    (dict(configs=["constant"]), TypeError, "Config"),
    (dict(optimizer="rmsprop"), ValueError, "unknown optimizer"),
    (dict(configs=[sweep.Config("constant", 1e-3, data=1)]), ValueError, "data set"),
    (
        dict(configs=[sweep.Config("constant", 1e-3, intervention={"every": 2})]),
        ValueError,
        "accepts nothing",
    ),
    (dict(dataset=[DS, IMAGES]), ValueError, "flat inputs"),
    (
        dict(dataset=[DS, DS._replace(x_test=DS.x_test[:8], y_test=DS.y_test[:8])]),
        ValueError,
        "equal shapes",
    ),
    (dict(chunk_steps=15), ValueError, "chunk_steps=15 must divide steps=40"),
    (dict(chunk_steps=20, eval_every=15), ValueError, "eval_every=15 must divide"),
    (dict(steps=0), ValueError, "steps"),
    (dict(batch_size=0), ValueError, "batch_size"),
    (dict(strategy="pmap"), ValueError, "strategy"),
    (dict(dormant_tau=-1.0), ValueError, "dormant_tau"),
    (dict(dataset=IMAGES), ValueError, "flat inputs"),
    (dict(dataset=DS._replace(x_test=DS.x_test[:, :4])), ValueError, "x_test examples"),
    (dict(dataset=DS._replace(y_train=DS.y_train[:10])), ValueError, "targets"),
    (dict(dataset=DS._replace(y_test=DS.y_test.astype(np.float32))), ValueError, "y_test"),
    (dict(dataset=tuple(DS)), TypeError, "Dataset"),
    (
        dict(configs=[sweep.Config("sgdr", 1e-3)], steps=2, chunk_steps=2, eval_every=2),
        ValueError,
        "cycles",
    ),
]


@pytest.mark.parametrize(("override", "error", "match"), BAD)
def test_bad_input_fails_before_compilation(override, error, match, monkeypatch):
    from relujax.sweep import _plan, _run

    def no_compile(*args, **kwargs):
        raise AssertionError("compiled before validating")

    monkeypatch.setattr(_plan, "_program", no_compile)
    monkeypatch.setattr(_run, "_init_group", no_compile)
    args = dict(KW, configs=CONFIGS[:1], dataset=DS, eval_every=10, chunk_steps=20) | override
    configs, dataset = args.pop("configs"), args.pop("dataset")
    with pytest.raises(error, match=match):
        sweep.run(configs, dataset, **args)
