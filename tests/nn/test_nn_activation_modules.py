"""relujax.nn.Activation, PReLU and RReLU."""

import functools

import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

import relujax
from relujax import nn as rnn

X = jnp.array([[-2.0, -0.5, 0.0, 1.5], [3.0, -1.0, 2.0, -4.0]])


# ---------------------------------------------------------------- Activation
@pytest.mark.parametrize(
    ("spec", "params", "expected"),
    [
        ("relu", {}, functools.partial(relujax.relu)),
        ("leaky_relu", {"negative_slope": 0.2}, lambda x: relujax.leaky_relu(x, 0.2)),
        (jax.nn.elu, {"alpha": 0.5}, lambda x: jax.nn.elu(x, alpha=0.5)),
    ],
)
def test_activation_calls_the_pure_function(spec, params, expected):
    act = rnn.Activation(spec, **params)
    chex.assert_trees_all_close(act(X), expected(X))
    chex.assert_trees_all_close(nnx.jit(lambda m, x: m(x))(act, X), expected(X))
    chex.assert_trees_all_close(jax.vmap(act)(X), expected(X))
    g = jax.grad(lambda x: act(x).sum())(X)
    chex.assert_trees_all_close(g, jax.grad(lambda x: expected(x).sum())(X))
    assert nnx.state(act, nnx.Param) == nnx.State({})


def test_activation_errors():
    with pytest.raises(ValueError, match="RReLU"):
        rnn.Activation("rrelu")
    with pytest.raises(ValueError, match="leaky_relu"):
        rnn.Activation("leaky_rleu")
    with pytest.raises(TypeError, match="activation"):
        rnn.Activation(3)


# ---------------------------------------------------------------- PReLU
def test_prelu_shared_and_per_channel():
    shared = rnn.PReLU(init=0.3)
    chex.assert_shape(shared.slope[...], ())
    chex.assert_trees_all_close(shared(X), jnp.where(X > 0, X, 0.3 * X))
    per = rnn.PReLU(4, init=0.1)
    per.slope[...] = jnp.array([0.1, 0.2, 0.3, 0.4])
    chex.assert_trees_all_close(per(X), jnp.where(X > 0, X, per.slope[...][None] * X))


def test_prelu_slope_gradient_is_analytic():
    # d/da sum(prelu(x, a)) = sum over the batch of min(x, 0), per channel.
    layer = rnn.PReLU(4, init=0.25)
    weights = jnp.array([1.0, -2.0, 0.5, 3.0])
    loss = lambda m, x: jnp.sum(m(x) * weights[None])
    grads = nnx.grad(loss)(layer, X)
    expected = jnp.sum(jnp.minimum(X, 0.0), axis=0) * weights
    chex.assert_trees_all_close(grads.slope[...], expected)
    # Shared slope: the sum over every element.
    g_shared = nnx.grad(lambda m, x: m(x).sum())(rnn.PReLU(), X)
    chex.assert_trees_all_close(g_shared.slope[...], jnp.minimum(X, 0.0).sum())
    # Input gradient: 1 for x > 0, a for x <= 0 (including 0).
    gx = jax.grad(lambda x: rnn.PReLU(init=0.25)(x).sum())(X)
    chex.assert_trees_all_close(gx, jnp.where(X > 0, 1.0, 0.25))
    chex.assert_trees_all_close(nnx.jit(lambda m, x: m(x))(layer, X), layer(X))
    chex.assert_trees_all_close(jax.vmap(layer)(X), layer(X))


def test_prelu_modules_with_negative_learned_slopes():
    # Slopes go negative in training (issue 11): the modules' gradients, in NNX and Linen,
    # equal those of an independent jnp.where PReLU for every slope sign.
    from relujax import linen as rl

    slopes = jnp.array([-0.5, 0.25, -1.5, 0.0])

    def reference(x, a):
        return jnp.where(x > 0, x, a[None] * x)

    def loss(y):
        return jnp.sum(jnp.sin(y))

    ref_gx, ref_ga = jax.grad(lambda x, a: loss(reference(x, a)), argnums=(0, 1))(X, slopes)
    layer = rnn.PReLU(4)
    layer.slope[...] = slopes
    chex.assert_trees_all_close(nnx.grad(lambda m: loss(m(X)))(layer).slope[...], ref_ga)
    chex.assert_trees_all_close(jax.grad(lambda x: loss(layer(x)))(X), ref_gx)
    variables = {"params": {"slope": slopes}}
    linen = rl.PReLU(4)
    g = jax.grad(lambda v, x: loss(linen.apply(v, x)), argnums=(0, 1))(variables, X)
    chex.assert_trees_all_close(g, ({"params": {"slope": ref_ga}}, ref_gx))


@pytest.mark.parametrize("dtype", [jnp.bfloat16, jnp.float16])
def test_prelu_dtypes(dtype):
    out = rnn.PReLU(4)(X.astype(dtype))
    chex.assert_type(out, dtype)
    layer = rnn.PReLU(4, dtype=dtype, param_dtype=jnp.float32)
    chex.assert_type(layer.slope[...], jnp.float32)
    chex.assert_type(layer(X), dtype)


def test_prelu_errors():
    with pytest.raises(ValueError, match="last axis"):
        rnn.PReLU(3)(X)
    with pytest.raises(ValueError, match="init"):
        rnn.PReLU(init=-0.1)
    with pytest.raises(ValueError, match="num_features"):
        rnn.PReLU(0)


# ---------------------------------------------------------------- RReLU
NEG = -jnp.ones((64, 32))


def test_rrelu_training_draws_fresh_slopes_in_range():
    layer = rnn.RReLU(0.1, 0.3, rngs=nnx.Rngs(0))
    a, b = layer(NEG), layer(NEG)
    assert not np.allclose(a, b)  # fresh slopes on every call
    for y in (a, b):
        assert float(-y.min()) <= 0.3 and float(-y.max()) >= 0.1
        np.testing.assert_allclose(float(-y.mean()), 0.2, atol=0.01)
        assert np.unique(np.asarray(y)).size > 1000  # one slope per element
    chex.assert_trees_all_equal(layer(jnp.abs(X)), jnp.abs(X))  # x > 0 untouched


def test_rrelu_evaluation_is_constant():
    layer = rnn.RReLU(0.1, 0.3, rngs=nnx.Rngs(0))
    layer.eval()
    chex.assert_trees_all_close(layer(NEG), jnp.full(NEG.shape, -0.2))
    chex.assert_trees_all_equal(layer(NEG), layer(NEG))
    chex.assert_trees_all_close(jax.vmap(layer)(NEG), layer(NEG))
    layer.train()
    assert not np.allclose(layer(NEG), layer(NEG))
    chex.assert_trees_all_close(layer(NEG, deterministic=True), jnp.full(NEG.shape, -0.2))
    eval_only = rnn.RReLU(rngs=None, deterministic=True)
    chex.assert_trees_all_close(eval_only(-jnp.ones(2)), -jnp.full(2, (1 / 8 + 1 / 3) / 2))


def test_rrelu_reproducible_from_seed_and_under_nnx_jit():
    def sequence(seed, jit):
        layer = rnn.RReLU(rngs=nnx.Rngs(seed))
        call = nnx.jit(lambda m, x: m(x)) if jit else (lambda m, x: m(x))
        return [call(layer, NEG) for _ in range(3)]

    eager = sequence(3, jit=False)
    chex.assert_trees_all_equal(eager, sequence(3, jit=False))
    chex.assert_trees_all_close(eager, sequence(3, jit=True))  # the stream advances in jit
    assert not np.allclose(eager[0], sequence(4, jit=False)[0])


def test_rrelu_explicit_key_and_gradient():
    layer = rnn.RReLU(rngs=None)
    key = jax.random.key(5)
    chex.assert_trees_all_equal(layer(NEG, key=key), relujax.rrelu(NEG, key))
    # The x-gradient is the slope that was drawn: y / x for x < 0.
    gx = jax.grad(lambda x: layer(x, key=key).sum())(NEG)
    chex.assert_trees_all_close(gx, layer(NEG, key=key) / NEG)


def test_rrelu_errors():
    with pytest.raises(ValueError, match="lower"):
        rnn.RReLU(0.5, 0.1, rngs=None)
    with pytest.raises(ValueError, match="lower"):
        rnn.RReLU(-0.1, 0.1, rngs=None)
    with pytest.raises(ValueError, match="rngs"):
        rnn.RReLU(rngs=None)(NEG)
    with pytest.raises(TypeError, match="rngs"):
        rnn.RReLU(rngs=0)
