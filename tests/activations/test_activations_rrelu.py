"""RReLU: reproducible draws within [lower, upper], their moments, the evaluation form."""

import chex
import jax
import jax.numpy as jnp
import pytest

import relujax

LOWER, UPPER = 1 / 8, 1 / 3


def slopes(key, n, lower=LOWER, upper=UPPER, dtype=jnp.float32):
    """The slopes rrelu draws for an array of n negative elements."""
    return -relujax.rrelu(-jnp.ones(n, dtype), key, lower, upper)


def test_same_key_same_output_and_different_keys_differ():
    x = jax.random.normal(jax.random.key(0), (64,))  # 64 elements throughout: fewer compiles
    a = relujax.rrelu(x, jax.random.key(1))
    chex.assert_trees_all_equal(a, relujax.rrelu(x, jax.random.key(1)))
    chex.assert_trees_all_equal(a, jax.jit(relujax.rrelu)(x, jax.random.key(1)))
    assert not bool(jnp.all(a == relujax.rrelu(x, jax.random.key(2))))
    # Positive inputs pass through unchanged.
    chex.assert_trees_all_equal(jnp.where(x > 0, a, x), x)


def test_typed_and_legacy_keys_agree():
    chex.assert_trees_all_equal(slopes(jax.random.key(3), 64), slopes(jax.random.PRNGKey(3), 64))


N = 200_000


@pytest.fixture(scope="module")
def many():
    return slopes(jax.random.key(4), N)


def test_slopes_lie_in_range_with_uniform_moments(many):
    n, s = N, many
    assert float(s.min()) >= LOWER and float(s.max()) <= UPPER
    mean, var = (LOWER + UPPER) / 2, (UPPER - LOWER) ** 2 / 12
    # 5 standard errors of the mean and of the variance estimate.
    assert abs(float(s.mean()) - mean) < 5 * (var / n) ** 0.5
    assert abs(float(s.var()) - var) < 5 * var * (0.8 / n) ** 0.5
    # Uniform, not just the right moments: each tenth of the range holds a tenth of the draws.
    counts, _ = jnp.histogram(s, bins=10, range=(LOWER, UPPER))
    chex.assert_trees_all_close(counts / n, jnp.full(10, 0.1), atol=5 * (0.09 / n) ** 0.5)


def test_slopes_are_independent_of_their_neighbours(many):
    u = (many - many.mean()) / many.std()
    for lag in (1, 2, 256):
        assert abs(float(jnp.mean(u[lag:] * u[:-lag]))) < 0.02


def test_derivative_is_the_drawn_slope_at_and_below_zero():
    key = jax.random.key(6)
    x = jnp.tile(jnp.array([-2.0, 0.0, 1.5, -0.25]), 16)
    g = jax.grad(lambda x: jnp.sum(relujax.rrelu(x, key)))(x)
    drawn = slopes(key, x.size)
    chex.assert_trees_all_equal(g, jnp.where(x > 0, 1.0, drawn))
    chex.assert_trees_all_equal(
        jax.jacfwd(relujax.rrelu)(x, key), jax.jacrev(relujax.rrelu)(x, key)
    )


def test_evaluation_form_is_the_mean_slope_everywhere():
    x = -jnp.ones(64)
    chex.assert_trees_all_close(relujax.rrelu(x), jnp.full(64, -(LOWER + UPPER) / 2))
    chex.assert_trees_all_close(relujax.rrelu(x, None, 0.2, 0.4), jnp.full(64, -0.3))
    chex.assert_trees_all_close(jax.grad(relujax.rrelu)(0.0), jnp.float32((LOWER + UPPER) / 2))


def test_lower_equal_upper_gives_a_constant_slope():
    chex.assert_trees_all_close(slopes(jax.random.key(7), 64, 0.3, 0.3), jnp.full(64, 0.3))


def test_vmap_over_keys_gives_independent_rows():
    keys = jax.random.split(jax.random.key(8), 3)
    out = jax.vmap(lambda k: relujax.rrelu(-jnp.ones(64), k))(keys)
    chex.assert_shape(out, (3, 64))
    chex.assert_trees_all_equal(out[1], relujax.rrelu(-jnp.ones(64), keys[1]))
    assert not bool(jnp.all(out[0] == out[1]))


@pytest.mark.parametrize("dtype", [jnp.float16, jnp.bfloat16])
def test_low_precision_slopes_stay_in_range(dtype):
    s = slopes(jax.random.key(9), 64, dtype=dtype)
    chex.assert_type(s, dtype)
    assert float(s.min()) >= LOWER - 1e-3 and float(s.max()) <= UPPER + 1e-3
