"""Variance-scaling initializers: statistics over large draws and equality with jax.nn."""

import math

import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from relujax import init

KEY = jax.random.key(0)
# Few distinct shapes: every (sampler, shape, dtype) costs one XLA compilation.
BIG = (800, 600)


def _var(fan_in, fan_out, slope=0.0):
    return {
        "he": 2.0 / ((1.0 + slope**2) * fan_in),
        "xavier": 2.0 / (fan_in + fan_out),
        "lecun": 1.0 / fan_in,
    }


@pytest.mark.parametrize(
    ("factory", "kind", "slope"),
    [
        (lambda: init.he_normal(), "he", 0.0),
        (lambda: init.he_normal(distribution="normal"), "he", 0.0),
        (lambda: init.he_normal(negative_slope=0.5), "he", 0.5),
        (lambda: init.he_uniform(), "he", 0.0),
        (lambda: init.he_uniform(negative_slope=0.2), "he", 0.2),
        (lambda: init.xavier_normal(), "xavier", 0.0),
        (lambda: init.xavier_normal(distribution="uniform"), "xavier", 0.0),
        (lambda: init.xavier_uniform(), "xavier", 0.0),
        (lambda: init.lecun_normal(), "lecun", 0.0),
    ],
)
def test_variance_over_large_draws(factory, kind, slope):
    _check_variance(factory(), kind, slope, BIG)


@pytest.mark.parametrize(
    ("factory", "kind"), [(init.he_normal, "he"), (init.xavier_uniform, "xavier")]
)
def test_variance_of_conv_kernels(factory, kind):
    # Receptive-field axes count in both fans.
    _check_variance(factory(), kind, 0.0, (3, 3, 64, 256))


def _check_variance(f, kind, slope, shape):
    w = f(KEY, shape)
    chex.assert_shape(w, shape)
    chex.assert_type(w, jnp.float32)
    receptive = math.prod(shape[:-2])
    fan_in, fan_out = receptive * shape[-2], receptive * shape[-1]
    expected = _var(fan_in, fan_out, slope)[kind]
    n = w.size  # ~5e5 samples: relative std of the variance estimate is ~0.3%
    np.testing.assert_allclose(float(jnp.var(w)), expected, rtol=0.02)
    assert abs(float(jnp.mean(w))) < 5 * math.sqrt(expected / n)


@pytest.mark.parametrize(
    ("ours", "theirs", "shape"),
    [
        (init.he_normal(), jax.nn.initializers.he_normal(), BIG),
        (init.he_uniform(), jax.nn.initializers.he_uniform(), BIG),
        (init.xavier_normal(), jax.nn.initializers.glorot_normal(), BIG),
        (init.xavier_uniform(), jax.nn.initializers.glorot_uniform(), BIG),
        (init.lecun_normal(), jax.nn.initializers.lecun_normal(), BIG),
        (init.he_normal(negative_slope=1.0), jax.nn.initializers.lecun_normal(), BIG),
        (init.orthogonal(), jax.nn.initializers.orthogonal(), (64, 32)),
    ],
)
def test_defaults_equal_jax_nn(ours, theirs, shape):
    chex.assert_trees_all_equal(ours(KEY, shape), theirs(KEY, shape))


def test_leaky_gain_formula():
    for a in (0.0, 0.01, 0.25, 1.0, 3.0):
        assert init.leaky_gain(a) == pytest.approx(2.0 / (1.0 + a * a))


def test_uniform_bounds():
    b = math.sqrt(6.0 / ((1 + 0.3**2) * 800))
    w = init.he_uniform(negative_slope=0.3)(KEY, BIG)
    assert b * 0.99 < float(jnp.abs(w).max()) <= b
    w = init.xavier_uniform(gain=2.0)(KEY, BIG)
    assert float(jnp.abs(w).max()) <= 2.0 * math.sqrt(6.0 / 1400)


def test_truncated_normal_is_truncated_at_two_std():
    w = init.he_normal()(KEY, BIG)
    # jax rescales the truncated normal so its std is the target; the cut is at 2 * std / 0.8796.
    assert float(jnp.abs(w).max()) <= 2 * math.sqrt(2 / 800) / 0.87962566103423978 + 1e-6


def test_orthogonal():
    shape = (64, 32)
    w = init.orthogonal(scale=math.sqrt(2.0))(KEY, shape)
    m = w.reshape(-1, shape[-1])
    gram = m.T @ m if m.shape[0] >= m.shape[1] else m @ m.T
    chex.assert_trees_all_close(gram, 2.0 * jnp.eye(gram.shape[0]), atol=1e-5)


@pytest.mark.parametrize("dtype", [jnp.bfloat16])
def test_dtypes(dtype):
    chex.assert_type(init.he_normal()(KEY, (4, 3), dtype), dtype)
    chex.assert_type(init.xavier_uniform(dtype=dtype)(KEY, (4, 3)), dtype)


def test_jit_and_vmap():
    f = init.he_normal(negative_slope=0.1)
    eager = f(KEY, BIG)
    chex.assert_trees_all_close(jax.jit(f, static_argnums=(1,))(KEY, BIG), eager, atol=1e-6)
    keys = jax.random.split(KEY, 3)
    batch = jax.vmap(lambda k: f(k, BIG))(keys)
    chex.assert_shape(batch, (3, *BIG))
    for i in range(3):
        chex.assert_trees_all_close(batch[i], f(keys[i], BIG), atol=1e-6)
    assert not np.allclose(batch[0], batch[1])


def test_bad_arguments():
    with pytest.raises(ValueError, match="distribution"):
        init.he_normal(distribution="cauchy")
    with pytest.raises(TypeError, match="negative_slope"):
        init.he_normal(negative_slope="0.1x")
    with pytest.raises(ValueError, match="negative_slope"):
        init.he_uniform(negative_slope=float("nan"))
    with pytest.raises(ValueError, match="gain"):
        init.xavier_normal(gain=0.0)
    with pytest.raises(TypeError, match="in_axis"):
        init.he_normal(in_axis=0.5)
    with pytest.raises(TypeError, match="column_axis"):
        init.orthogonal(column_axis=(0,))
