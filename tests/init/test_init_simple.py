"""normal / constant / zeros / ones."""

import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from relujax import init

KEY = jax.random.key(1)


@pytest.mark.parametrize(("std", "mean"), [(0.01, 0.0), (0.5, -1.0), (0.0, 0.3)])
def test_normal_statistics(std, mean):
    w = init.normal(std, mean=mean)(KEY, (800, 600))
    chex.assert_shape(w, (800, 600))
    np.testing.assert_allclose(float(w.mean()), mean, atol=5 * std / 600 + 1e-7)
    np.testing.assert_allclose(float(w.std()), std, rtol=0.01, atol=1e-7)


def test_normal_matches_jax_nn():
    chex.assert_trees_all_close(
        init.normal(0.02)(KEY, (800, 600)), jax.nn.initializers.normal(0.02)(KEY, (800, 600))
    )


def test_constant_zeros_ones():
    chex.assert_trees_all_equal(init.constant(-1.5)(KEY, (2, 3)), jnp.full((2, 3), -1.5))
    chex.assert_trees_all_equal(init.zeros(KEY, (3,)), jnp.zeros(3))
    chex.assert_trees_all_equal(init.ones(KEY, (3,)), jnp.ones(3))


@pytest.mark.parametrize("dtype", [jnp.bfloat16])
def test_dtypes(dtype):
    chex.assert_type(init.normal()(KEY, (2,), dtype), dtype)
    chex.assert_type(init.constant(2.0)(KEY, (2,), dtype), dtype)
    chex.assert_type(init.constant(2.0, dtype=dtype)(KEY, (2,)), dtype)
    chex.assert_type(init.zeros(KEY, (2,), dtype), dtype)
    chex.assert_type(init.ones(KEY, (2,), dtype), dtype)


def test_jit_and_vmap():
    f, shape = init.normal(0.1, mean=0.5), (800, 600)  # the shape of the statistics test
    chex.assert_trees_all_close(
        jax.jit(f, static_argnums=(1,))(KEY, shape), f(KEY, shape), atol=1e-6
    )
    keys = jax.random.split(KEY, 2)
    out = jax.vmap(lambda k: f(k, shape))(keys)
    chex.assert_trees_all_close(out[1], f(keys[1], shape), atol=1e-6)


def test_bad_arguments():
    with pytest.raises(ValueError, match="stddev"):
        init.normal(-0.1)
    with pytest.raises(ValueError, match="value"):
        init.constant(float("nan"))
    with pytest.raises(TypeError, match="value"):
        init.constant("a")
    with pytest.raises(ValueError, match="dtype"):
        init.zeros(KEY, (2,), jnp.int32)
