"""Initializers on bad input: relujax's own errors, never a deep JAX traceback or a NaN.

Also: legacy ``jax.random.PRNGKey`` keys and typed keys give equal results everywhere, and
``orthogonal`` works in float16 / bfloat16 (computed in float32, then cast).
"""

import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from relujax import init

SHAPE = (4, 3)  # one small shape for every initializer: few compilations

# name -> initializer, for every entry of the registry that draws from fans or a key.
FAN_BASED = {
    "he_normal": init.he_normal(),
    "he_uniform": init.he_uniform(),
    "xavier_normal": init.xavier_normal(),
    "xavier_uniform": init.xavier_uniform(),
    "lecun_normal": init.lecun_normal(),
    "orthogonal": init.orthogonal(),
    "rai": init.rai(),
}
EVERY = {
    **FAN_BASED,
    "normal": init.normal(),
    "constant": init.constant(0.5),
    "zeros": init.zeros,
    "ones": init.ones,
}


@pytest.mark.parametrize("name", sorted(FAN_BASED))
@pytest.mark.parametrize("shape", [(0, 3), (3, 0), (2, 0, 3, 4)])
def test_zero_sized_axes_name_the_fans(name, shape):
    with pytest.raises(ValueError, match=rf"{name}: shape .*fan"):
        FAN_BASED[name](jax.random.key(0), shape)


@pytest.mark.parametrize("name", sorted(FAN_BASED))
def test_one_axis_is_not_a_weight_matrix(name):
    with pytest.raises(ValueError, match=rf"{name}: shape .*at least 2 axes"):
        FAN_BASED[name](jax.random.key(0), (4,))


@pytest.mark.parametrize("name", sorted(EVERY))
@pytest.mark.parametrize(
    ("shape", "error"),
    [((-1, 3), ValueError), ((4, -2), ValueError), ((4.0, 3), TypeError), ("43", TypeError)],
)
def test_bad_shapes(name, shape, error):
    with pytest.raises(error, match=rf"{name}: shape"):
        EVERY[name](jax.random.key(0), shape)


@pytest.mark.parametrize("name", sorted(set(EVERY) - set(FAN_BASED)))
def test_initializers_without_fans_allow_empty_arrays(name):
    chex.assert_shape(EVERY[name](jax.random.key(0), (0, 3)), (0, 3))


@pytest.mark.parametrize("name", [*sorted(FAN_BASED), "normal"])
@pytest.mark.parametrize("key", [0, np.float32(0.0), jnp.zeros(3, jnp.uint32)])
def test_keys_that_are_not_keys(name, key):
    with pytest.raises(TypeError, match=rf"{name}: key"):
        EVERY[name](key, SHAPE)


@pytest.mark.parametrize("name", sorted(EVERY))
def test_legacy_and_typed_keys_give_equal_results(name):
    legacy = jax.random.PRNGKey(7)
    typed = jax.random.key(7)
    chex.assert_trees_all_equal(EVERY[name](legacy, SHAPE), EVERY[name](typed, SHAPE))


def test_legacy_key_tracers_under_jit():
    # One program for the three code paths (variance scaling, QR, RAI's own draw); compared
    # with jit on both sides, as fusion may round differently from eager.
    names = ("he_normal", "orthogonal", "rai")
    f = jax.jit(lambda k: {name: EVERY[name](k, SHAPE) for name in names})
    chex.assert_trees_all_equal(f(jax.random.PRNGKey(7)), f(jax.random.key(7)))


def test_legacy_keys_in_rai_pairs():
    chex.assert_trees_all_equal(
        init.rai().pair(jax.random.PRNGKey(3), SHAPE), init.rai().pair(jax.random.key(3), SHAPE)
    )


@pytest.mark.parametrize("name", sorted(EVERY))
@pytest.mark.parametrize("dtype", [jnp.int32, jnp.bool_])
def test_non_float_dtypes(name, dtype):
    with pytest.raises(ValueError, match=rf"{name}: dtype"):
        EVERY[name](jax.random.key(0), SHAPE, dtype)


@pytest.mark.parametrize("dtype", [jnp.float16, jnp.bfloat16])
@pytest.mark.parametrize("shape", [(4, 3), (3, 4)])
def test_orthogonal_in_half_precision(dtype, shape):
    # jax.nn.initializers.orthogonal raises here (QR has no float16 kernel); relujax
    # computes in float32 and casts, so the matrix is orthogonal to half precision.
    w = init.orthogonal(scale=2.0)(jax.random.key(0), shape, dtype)
    chex.assert_type(w, dtype)
    chex.assert_shape(w, shape)
    w32 = w.astype(jnp.float32) / 2.0
    gram = w32.T @ w32 if shape[0] >= shape[1] else w32 @ w32.T
    chex.assert_trees_all_close(gram, jnp.eye(min(shape)), atol=2e-2)
    # The same draw as in float32, rounded once.
    f32 = init.orthogonal(scale=2.0)(jax.random.key(0), shape)
    chex.assert_trees_all_equal(w, f32.astype(dtype))


def test_orthogonal_float32_equals_jax_nn():
    ours = init.orthogonal(scale=1.5, column_axis=0)(jax.random.key(1), (3, 5))
    ref = jax.nn.initializers.orthogonal(scale=1.5, column_axis=0)(jax.random.key(1), (3, 5))
    chex.assert_trees_all_equal(ours, ref)
