"""Randomized asymmetric initialization (Lu, Shin, Su, Karniadakis 2020)."""

import math

import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from relujax import init

KEY = jax.random.key(3)
# Few distinct shapes: each (shape, dtype, Beta parameters) costs one XLA compilation.
WIDE = (7, 40_000)


def _stack(kernel, bias):
    """V: one row per unit, fan_in weights then the bias."""
    return np.asarray(jnp.concatenate([kernel.reshape(-1, kernel.shape[-1]), bias[None]]).T)


@pytest.mark.parametrize(
    ("shape", "dtype"),
    [((18, 5), jnp.float32), ((3, 3, 2, 5), jnp.bfloat16)],
)
def test_shapes_and_dtypes(shape, dtype):
    kernel, bias = init.rai().pair(KEY, shape, dtype)
    chex.assert_shape(kernel, shape)
    chex.assert_shape(bias, (shape[-1],))
    chex.assert_type([kernel, bias], dtype)
    chex.assert_tree_all_finite([kernel, bias])


def test_exactly_one_beta_entry_per_unit():
    fan_in, fan_out = WIDE
    v = _stack(*init.rai(sigma=0.0).pair(KEY, WIDE))
    nonzero = v != 0
    np.testing.assert_array_equal(nonzero.sum(axis=1), np.ones(fan_out))
    # The replaced position is uniform over the fan_in + 1 entries (bias included).
    counts = nonzero.sum(axis=0)
    expected = fan_out / (fan_in + 1)
    chi2 = float(((counts - expected) ** 2 / expected).sum())
    assert chi2 < 24.3  # 99.9% quantile of chi-square with 7 degrees of freedom
    # The replaced entries are Beta(2, 1): CDF x^2, mean 2/3, variance 1/18.
    beta = np.sort(v[nonzero])
    assert beta.min() > 0 and beta.max() <= 1
    np.testing.assert_allclose(beta.mean(), 2 / 3, atol=0.005)
    np.testing.assert_allclose(beta.var(), 1 / 18, rtol=0.03)
    ecdf = np.arange(1, beta.size + 1) / beta.size
    assert np.abs(ecdf - beta**2).max() < 1.95 / math.sqrt(beta.size)  # KS at 0.1%


def test_symmetric_part_has_the_stated_variance():
    (fan_in, fan_out), sigma = WIDE, 0.6007
    v = _stack(*init.rai().pair(KEY, WIDE))
    v0 = _stack(*init.rai(sigma=0.0).pair(KEY, WIDE))
    beta = v0 != 0
    # Same key: the Beta entries sit at the same place with the same values.
    np.testing.assert_array_equal(v[beta], v0[beta])
    rest = v[~beta]
    assert rest.size == fan_out * fan_in
    np.testing.assert_allclose(rest.var(), sigma**2 / fan_in, rtol=0.02)
    assert abs(rest.mean()) < 5 * sigma / math.sqrt(fan_in) / math.sqrt(rest.size)


def test_exact_moments_of_the_preactivation():
    # For any input x~ = (x, 1), with b the Beta entry:
    # E[V.x~] = E[b] mean(x~) and E[(V.x~)^2] = (sigma^2 + E[b^2]) mean(x~^2).
    sigma = 0.6007
    kernel, bias = init.rai(sigma=sigma).pair(KEY, WIDE)
    x = jnp.array([0.3, -1.2, 2.0, 0.0, 0.7, 1.5, -0.4])
    z = np.asarray(x[None] @ kernel + bias[None], np.float64)[0]
    xt = np.append(np.asarray(x), 1.0)
    n = z.size
    assert abs(z.mean() - 2 / 3 * xt.mean()) < 4 * z.std() / math.sqrt(n)
    second = (sigma**2 + 0.5) * (xt**2).mean()
    assert abs((z**2).mean() - second) < 4 * (z**2).std() / math.sqrt(n)


@pytest.mark.parametrize(("beta", "mean"), [((1.0, 3.0), 0.25), ((2.0, 3.0), 0.4)])
def test_other_beta_parameters(beta, mean):
    v = _stack(*init.rai(sigma=0.0, beta=beta).pair(KEY, WIDE))
    b = v[v != 0]
    assert b.size == WIDE[1]
    a_, b_ = beta
    np.testing.assert_allclose(b.mean(), mean, atol=0.005)
    np.testing.assert_allclose(b.var(), a_ * b_ / ((a_ + b_) ** 2 * (a_ + b_ + 1)), rtol=0.05)


def test_conv_kernel_layout():
    # A conv kernel (*window, in, out) is the Dense kernel (prod(window) * in, out), reshaped.
    k4, b4 = init.rai().pair(KEY, (3, 3, 2, 5))
    k2, b2 = init.rai().pair(KEY, (18, 5))
    chex.assert_trees_all_equal((k4.reshape(18, 5), b4), (k2, b2))


def test_kernel_initializer_is_the_kernel_half():
    r = init.rai(sigma=0.4)
    chex.assert_trees_all_equal(r(KEY, (18, 5)), r.pair(KEY, (18, 5))[0])
    assert isinstance(r, init.PairedInitializer)
    assert not isinstance(init.he_normal(), init.PairedInitializer)


def test_reproducible_jit_vmap():
    f = lambda k: init.rai().pair(k, (18, 5))
    chex.assert_trees_all_equal(f(KEY), f(KEY))
    chex.assert_trees_all_close(jax.jit(f)(KEY), f(KEY), atol=1e-6)  # up to fusion rounding
    keys = jax.random.split(KEY, 5)
    kernels, biases = jax.vmap(f)(keys)
    chex.assert_shape([kernels, biases], [(5, 18, 5), (5, 5)])
    chex.assert_trees_all_close((kernels[3], biases[3]), f(keys[3]))
    assert not np.allclose(kernels[0], kernels[1])


def test_bad_arguments():
    with pytest.raises(ValueError, match="sigma"):
        init.rai(sigma=-0.1)
    with pytest.raises(ValueError, match=r"beta\[1\]"):
        init.rai(beta=(2.0, 0.0))
    with pytest.raises(TypeError, match="beta"):
        init.rai(beta=2.0)
    with pytest.raises(ValueError, match="kernel_shape"):
        init.rai().pair(KEY, (5,))
    with pytest.raises(ValueError, match="kernel_shape"):
        init.rai().pair(KEY, (0, 3))
    with pytest.raises(ValueError, match="dtype"):
        init.rai().pair(KEY, (2, 3), jnp.int32)
