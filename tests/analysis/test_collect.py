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

KEYS = jax.random.split(jax.random.key(0), 4)
W1 = jax.random.normal(KEYS[0], (3, 5))
W2 = jax.random.normal(KEYS[1], (5, 4))
BATCHES = jax.random.normal(KEYS[2], (6, 8, 3))  # 6 batches of 8 samples


def mlp(w1, w2, x):
    h = jax.nn.relu(x @ w1)
    return relujax.leaky_relu(h @ w2 - 0.5, 0.1)


def one_pass(w1, w2, xs):
    """Reference: UnitStats of the concatenated data, computed directly."""
    x = xs.reshape(-1, xs.shape[-1])
    pre1 = x @ w1
    pre2 = jax.nn.relu(pre1) @ w2 - 0.5
    return {
        "relu_0": analysis.UnitStats.from_batch(pre1, jax.nn.relu(pre1)),
        "leaky_relu_0": analysis.UnitStats.from_batch(pre2, relujax.leaky_relu(pre2, 0.1)),
    }


REFERENCE = one_pass(W1, W2, BATCHES)
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
        return F(batch["x"]) * batch["scale"][:, None]

    stacked = {"x": BATCHES, "scale": jnp.ones((6, 8))}
    assert_stats_close(analysis.collect(f, stacked), REFERENCE)
    pairs = [(b, jnp.ones(8)) for b in BATCHES]
    stats = analysis.collect(lambda b: F(b[0]) * b[1][:, None], pairs)
    assert_stats_close(stats, REFERENCE)
    stats = analysis.collect(lambda b: F(b[0]), (BATCHES, jnp.ones((6, 8))), stacked=True)
    assert_stats_close(stats, REFERENCE)


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
    assert_stats_close(stats, one_pass(w1, W2, BATCHES))


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
    w1s = jax.random.normal(KEYS[3], (3, 3, 5))
    stacked = jax.vmap(lambda w1: analysis.collect(functools.partial(mlp, w1, W2), BATCHES))(w1s)
    for k in range(3):
        one = jax.tree.map(lambda a, k=k: a[k], stacked)
        assert_stats_close(one, one_pass(w1s[k], W2, BATCHES))


def test_nan_activations_are_nonfinite_never_dead_or_firing():
    batches = BATCHES.at[1, 0, 0].set(jnp.nan)  # one NaN input row: NaN in every unit
    stats = analysis.collect(F, batches)
    s = stats["relu_0"]
    np.testing.assert_array_equal(s.nonfinite.to_numpy(), [1] * 5)
    np.testing.assert_array_equal(s.count.to_numpy(), [47] * 5)
    chex.assert_tree_all_finite((s.pre_mean, s.pre_m2, s.out_abs_mean))
    clean = jnp.concatenate([BATCHES[:1], BATCHES[1:2, 1:].reshape(1, 7, 3)], axis=1)
    want = one_pass(W1, W2, jnp.concatenate([clean.reshape(-1, 3), BATCHES[2:].reshape(-1, 3)]))
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


def test_nnx_module_is_never_modified_by_collect():
    model = _BN(nnx.Rngs(0))
    before = jax.tree.map(jnp.copy, nnx.state(model))
    images = jax.random.normal(KEYS[1], (2, 4, 5, 5, 3))  # 2 batches of 4 NHWC images
    stats = analysis.collect(model, images)
    chex.assert_trees_all_equal(nnx.state(model), before)
    s = stats["relu_0"]
    assert s.units == 4  # conv: one unit per channel, pooled over batch and space
    np.testing.assert_array_equal(s.count.to_numpy(), [2 * 4 * 5 * 5] * 4)
    # equals the statistics of the channel-last activations of the (training-mode) model
    graphdef, state = nnx.split(model)
    pre = [nnx.merge(graphdef, state).bn(nnx.merge(graphdef, state).conv(b)) for b in images]
    want = analysis.UnitStats.from_batch(jnp.stack(pre), jax.nn.relu(jnp.stack(pre)))
    chex.assert_trees_all_close(s, want, rtol=2e-5, atol=2e-5)


def test_with_stats_on_nnx_module_updates_state_like_a_direct_call():
    model, twin = _BN(nnx.Rngs(0)), _BN(nnx.Rngs(0))
    x = jax.random.normal(KEYS[2], (4, 5, 5, 3))
    out, stats = analysis.with_stats(model)(x)
    chex.assert_trees_all_close(out, twin(x), rtol=1e-6)
    chex.assert_trees_all_close(model.bn.mean[...], twin.bn.mean[...], rtol=1e-6)
    assert list(stats) == ["relu_0"]


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
    plain_value, plain_grads = nnx.value_and_grad(lambda m: jnp.sum(m(x) ** 2))(model)
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
    images = jax.random.normal(KEYS[3], (3, 2, 6, 6, 1))
    params = model.init(jax.random.key(0), images[0])
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
        w = jax.random.normal(jax.random.key(0), (3, 6))
        f = lambda b: jax.nn.relu(b @ w)
        x = jax.random.normal(jax.random.key(1), (5, 16, 3))
        mesh = jax.make_mesh((4,), ("data",))
        stacked = jax.device_put(x, NamedSharding(mesh, P(None, "data")))
        listed = [jax.device_put(b, NamedSharding(mesh, P("data"))) for b in x]
        want = analysis.collect(f, np.asarray(x))
        for got in (analysis.collect(f, stacked), analysis.collect(f, listed)):
            chex.assert_trees_all_close(got, want, rtol=1e-5, atol=1e-6)
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
