"""collect: iterable == stacked == one pass, vmap over models, NNX/Linen, bad input, sharding."""

import functools
import os
import subprocess
import sys
import textwrap

import chex
import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

import relujax
from relujax import analysis


def randn(seed, *shape):
    """Standard normal float32 samples from NumPy (no XLA compile, unlike jax.random)."""
    return jnp.asarray(np.random.default_rng(seed).normal(size=shape), jnp.float32)


W1 = randn(10, 3, 5)
W2 = randn(11, 5, 4)
BATCHES = randn(12, 6, 8, 3)  # 6 batches of 8 samples


def mlp(w1, w2, x):
    h = jax.nn.relu(x @ w1)
    return relujax.leaky_relu(h @ w2 - 0.5, 0.1)


def one_pass(w1, w2, xs):
    """Reference: UnitStats of the concatenated data, computed directly."""
    x = xs.reshape(-1, xs.shape[-1])
    pre1 = x @ w1
    pre2 = jax.nn.relu(pre1) @ w2 - 0.5
    return analysis.ModelStats(
        {
            "relu_0": analysis.UnitStats.from_batch(pre1, jax.nn.relu(pre1)),
            "leaky_relu_0": analysis.UnitStats.from_batch(pre2, relujax.leaky_relu(pre2, 0.1)),
        }
    )


REFERENCE = jax.jit(one_pass)(W1, W2, BATCHES)
F = functools.partial(mlp, W1, W2)


def assert_stats_close(stats, want):
    assert list(stats) == list(want)
    for k in want:
        chex.assert_trees_all_close(stats[k], want[k], rtol=2e-5, atol=2e-5)


@pytest.mark.parametrize(
    "batches",
    [
        pytest.param(BATCHES, id="stacked-array"),
        pytest.param(list(BATCHES), id="list"),
        pytest.param(lambda: (b for b in np.asarray(BATCHES)), id="generator-of-numpy"),
    ],
)
def test_streaming_equals_one_pass(batches):
    batches = batches() if callable(batches) else batches
    stats = analysis.collect(F, batches)
    assert isinstance(stats, analysis.ModelStats)
    assert_stats_close(stats, REFERENCE)


def test_without_moments_matches_counts_firing_and_abs_mean():
    stats = analysis.collect(F, BATCHES, moments=False)
    for name, want in REFERENCE.items():
        got = stats[name]
        chex.assert_trees_all_close(
            (got.count, got.firing, got.nonfinite, got.out_abs_mean),
            (want.count, want.firing, want.nonfinite, want.out_abs_mean),
            rtol=2e-5,
        )
        assert np.isnan(got.pre_mean).all()
    rep = analysis.diagnose(stats)
    np.testing.assert_array_equal(rep["relu_0"].dead, REFERENCE["relu_0"].dead)


def test_pytree_batches_stacked_and_iterable():
    def f(batch):
        return F(batch["x"]) * batch["s"][:, None]

    stacked = {"x": BATCHES, "s": jnp.ones((6, 8))}  # a Mapping is stacked by default
    assert_stats_close(analysis.collect(f, stacked), REFERENCE)
    assert_stats_close(analysis.collect(f, stacked, stacked=True), REFERENCE)
    listed = [{"x": b, "s": jnp.ones(8)} for b in BATCHES]
    assert_stats_close(analysis.collect(f, listed), REFERENCE)


def test_merge_of_two_streams_and_resume_with_init():
    first = analysis.collect(F, BATCHES[:2])
    second = analysis.collect(F, list(BATCHES[2:]))
    assert_stats_close(first.merge(second), REFERENCE)
    resumed = analysis.collect(F, list(BATCHES[2:]), init=first)
    assert_stats_close(resumed, REFERENCE)
    np.testing.assert_array_equal(first["relu_0"].count.to_numpy(), [16] * 5)  # init untouched


def test_compiled_step_is_reused_with_new_parameters():
    # Same program, other weights: the cached step must use the new weights.
    w1 = W1 * -1.0
    stats = analysis.collect(functools.partial(mlp, w1, W2), BATCHES)
    assert_stats_close(stats, jax.jit(one_pass)(w1, W2, BATCHES))


def test_counts_stay_exact_across_two_to_the_32_in_the_carry():
    init = analysis.collect(F, BATCHES[:1])
    # Pretend 2**32 - 4 samples were seen already (same moments, counts near the wrap).
    near = analysis.Count(jnp.zeros(5, jnp.uint32), jnp.full(5, 2**32 - 4, jnp.uint32))
    init = analysis.ModelStats(
        (k, v._replace(count=near) if k == "relu_0" else v) for k, v in init.items()
    )
    stats = analysis.collect(F, BATCHES[1:2], init=init)
    np.testing.assert_array_equal(stats["relu_0"].count.to_numpy(), [2**32 + 4] * 5)


def test_vmap_over_models_equals_loop():
    w1s = randn(13, 3, 3, 5)
    many = jax.vmap(lambda w1: analysis.collect(functools.partial(mlp, w1, W2), BATCHES))
    stacked = jax.jit(many)(w1s)  # collect traces fine under jit and vmap
    for k in range(3):
        one = jax.tree.map(lambda a, k=k: a[k], stacked)
        assert_stats_close(one, jax.jit(one_pass)(w1s[k], W2, BATCHES))


def test_nan_activations_are_nonfinite_never_dead_or_firing():
    batches = BATCHES.at[1, 0, 0].set(jnp.nan)  # one NaN input row: NaN in every unit
    stats = analysis.collect(F, batches)
    s = stats["relu_0"]
    np.testing.assert_array_equal(s.nonfinite.to_numpy(), [1] * 5)
    np.testing.assert_array_equal(s.count.to_numpy(), [47] * 5)
    chex.assert_tree_all_finite((s.pre_mean, s.pre_m2, s.out_abs_mean))
    clean = jnp.concatenate([BATCHES[:1], BATCHES[1:2, 1:].reshape(1, 7, 3)], axis=1)
    want = jax.jit(one_pass)(
        W1, W2, jnp.concatenate([clean.reshape(-1, 3), BATCHES[2:].reshape(-1, 3)])
    )
    chex.assert_trees_all_close(s.firing, want["relu_0"].firing)
    chex.assert_trees_all_close(s.pre_mean, want["relu_0"].pre_mean, rtol=1e-5)


@pytest.mark.parametrize(
    ("batches", "kwargs", "error", "match"),
    [
        ([], {}, ValueError, "batches is empty"),
        (jnp.zeros((0, 8, 3)), {}, ValueError, "batches is empty"),
        ([BATCHES[0], BATCHES[1], BATCHES[2][:5]], {}, ValueError, "batch 2 has"),
        ([BATCHES[0], BATCHES[1].astype(jnp.int32)], {}, ValueError, "batch 1 has"),
        ({"x": BATCHES, "y": jnp.ones((5, 8))}, {}, ValueError, "share the leading"),
        (3, {}, TypeError, "iterable of batches"),
        (BATCHES, {"init": "nope"}, ValueError, "init must be a ModelStats"),
    ],
)
def test_bad_input(batches, kwargs, error, match):
    with pytest.raises(error, match=match):
        analysis.collect(lambda b: F(b["x"]) if isinstance(b, dict) else F(b), batches, **kwargs)


class _BN(nnx.Module):
    def __init__(self, rngs):
        self.conv = nnx.Conv(3, 4, (3, 3), rngs=rngs)
        self.bn = nnx.BatchNorm(4, rngs=rngs)

    def __call__(self, x):
        return nnx.relu(self.bn(self.conv(x)))


def test_nnx_module_collect_leaves_it_alone_and_with_stats_updates_it():
    model, twin = _BN(nnx.Rngs(0)), _BN(nnx.Rngs(0))
    before = jax.tree.map(jnp.copy, nnx.state(model))
    images = randn(11, 2, 4, 5, 5, 3)  # 2 batches of 4 NHWC images
    stats = analysis.collect(model, images)
    chex.assert_trees_all_equal(nnx.state(model), before)  # BatchNorm statistics untouched
    s = stats["relu_0"]
    assert s.units == 4  # conv: one unit per channel, pooled over batch and space
    np.testing.assert_array_equal(s.count.to_numpy(), [2 * 4 * 5 * 5] * 4)
    # with_stats, as a direct call would, updates the running averages (not used in training
    # mode), and batch by batch gives the same statistics as collect.
    step = nnx.jit(lambda m, x: analysis.with_stats(m)(x))
    plain = nnx.jit(lambda m, x: m(x))
    per_batch = []
    for b in images:
        out, st = step(model, b)
        chex.assert_trees_all_close(out, plain(twin, b), rtol=1e-5, atol=1e-6)
        per_batch.append(st)
    chex.assert_trees_all_close(model.bn.mean[...], twin.bn.mean[...], rtol=1e-6)
    assert not np.allclose(model.bn.mean[...], before["bn"]["mean"][...])
    chex.assert_trees_all_close(per_batch[0].merge(per_batch[1]), stats, rtol=2e-5, atol=2e-5)


def test_with_stats_inside_nnx_train_step():
    model = relujax.nn.MLP(3, [5], 2, rngs=nnx.Rngs(1))
    x = BATCHES[0]

    @nnx.jit
    def step(model, x):
        def loss(model):
            out, stats = analysis.with_stats(model)(x)
            return jnp.sum(out**2), stats

        (value, stats), grads = nnx.value_and_grad(loss, has_aux=True)(model)
        return value, stats, grads

    value, stats, grads = step(model, x)
    plain = nnx.jit(nnx.value_and_grad(lambda m: jnp.sum(m(x) ** 2)))
    plain_value, plain_grads = plain(model)
    chex.assert_trees_all_close(value, plain_value, rtol=1e-6)
    chex.assert_trees_all_close(grads, plain_grads, rtol=1e-5)
    assert stats["relu_0"].units == 5


class _LinenConv(nn.Module):
    @nn.compact
    def __call__(self, x):
        x = nn.relu(nn.Conv(4, (3, 3))(x))
        return nn.Dense(2)(jnp.mean(x, axis=(1, 2)))


def test_linen_apply_with_conv_pooling():
    model = _LinenConv()
    images = randn(13, 3, 2, 6, 6, 1)
    params = jax.jit(model.init)(jax.random.key(0), images[0])
    stats = analysis.collect(functools.partial(model.apply, params), images)
    assert list(stats) == ["_LinenConv/relu_0"]
    s = stats["_LinenConv/relu_0"]
    np.testing.assert_array_equal(s.count.to_numpy(), [3 * 2 * 6 * 6] * 4)
    conv = nn.Conv(4, (3, 3))
    pre = jnp.stack([conv.apply({"params": params["params"]["Conv_0"]}, b) for b in images])
    chex.assert_trees_all_close(
        s, analysis.UnitStats.from_batch(pre, jax.nn.relu(pre)), rtol=2e-5, atol=2e-5
    )


def test_features_for_ranks():
    feats = analysis.features(F, BATCHES[0], max_rows=5)
    assert list(feats) == ["relu_0", "leaky_relu_0"]
    chex.assert_shape(feats["relu_0"], (5, 5))
    chex.assert_trees_all_close(feats["relu_0"], jax.nn.relu(BATCHES[0] @ W1)[:5])
    with pytest.raises(ValueError, match="max_rows"):
        analysis.features(F, BATCHES[0], max_rows=0)


def test_sharded_batches_equal_unsharded():
    script = textwrap.dedent(
        """
        import chex, jax, jax.numpy as jnp, numpy as np
        from jax.sharding import NamedSharding, PartitionSpec as P
        from relujax import analysis
        assert jax.device_count() == 4
        rng = np.random.default_rng(0)
        w = jnp.asarray(rng.normal(size=(3, 6)), jnp.float32)
        f = lambda b: jax.nn.relu(b @ w)
        x = jnp.asarray(rng.normal(size=(5, 16, 3)), jnp.float32)
        mesh = jax.make_mesh((4,), ("data",))
        stacked = jax.device_put(x, NamedSharding(mesh, P(None, "data")))
        listed = [jax.device_put(b, NamedSharding(mesh, P("data"))) for b in x]
        want = jax.jit(lambda x: analysis.UnitStats.from_batch(x @ w, f(x)))(x.reshape(-1, 3))
        for got in (analysis.collect(f, stacked), analysis.collect(f, listed)):
            chex.assert_trees_all_close(got["relu_0"], want, rtol=1e-5, atol=1e-6)
        print("SHARDED-OK")
        """
    )
    env = dict(
        os.environ, XLA_FLAGS="--xla_force_host_platform_device_count=4", JAX_PLATFORMS="cpu"
    )
    root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    env["PYTHONPATH"] = root + os.pathsep + env.get("PYTHONPATH", "")
    result = subprocess.run(
        [sys.executable, "-c", script], env=env, capture_output=True, text=True, timeout=300
    )
    assert "SHARDED-OK" in result.stdout, result.stderr[-3000:]


class _Noisy(nnx.Module):
    """Training mode: dropout before a ReLU, then an RReLU; both draw from NNX RNG streams."""

    def __init__(self, rngs):
        self.linear = nnx.Linear(4, 6, rngs=rngs)
        self.drop = nnx.Dropout(0.5, rngs=rngs)
        self.rrelu = relujax.nn.RReLU(rngs=rngs)

    def __call__(self, x):
        return self.rrelu(jax.nn.relu(self.drop(self.linear(x))))


def _direct_calls(model, batches):
    """Reference: successive direct calls, the ReLU site's statistics per call, merged."""
    total = analysis.UnitStats.empty(6)
    for b in batches:
        pre = model.drop(model.linear(b))
        total = total.merge(analysis.UnitStats.from_batch(pre, jax.nn.relu(pre)))
        model.rrelu(jax.nn.relu(pre))  # the rest of the call, so the streams advance alike
    return total


@pytest.mark.parametrize("stacked", [False, True])
def test_nnx_training_mode_sees_fresh_randomness_per_batch(stacked):
    model = _Noisy(nnx.Rngs(0))
    before = jax.tree.map(jnp.copy, nnx.state(model))
    twin = nnx.clone(model)
    batches = randn(5, 3, 8, 4)
    stats = analysis.collect(model, batches if stacked else list(batches), sites="relu_0")
    want = _direct_calls(twin, batches)
    chex.assert_trees_all_close(stats["relu_0"], want, rtol=1e-5, atol=1e-6)
    # fresh masks per batch: one batch seen three times does not fire three times alike
    once = analysis.collect(model, [batches[0]], sites="relu_0")["relu_0"].firing.to_numpy()
    thrice = analysis.collect(model, [batches[0]] * 3, sites="relu_0")["relu_0"].firing
    assert not np.array_equal(thrice.to_numpy(), 3 * once)
    # the user's module is left as it was (its RNG counters did not advance)
    chex.assert_trees_all_equal(nnx.state(model), before)
