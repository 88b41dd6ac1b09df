"""relujax.nn.MLP: layout, forward pass, inits, transforms, ensembles, training."""

import functools

import chex
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from flax import nnx

import relujax
from relujax import init
from relujax import nn as rnn

X = jax.random.normal(jax.random.key(0), (8, 3))


def activation_sites(fn, *args, name):
    """Top-level equations of ``fn``'s jaxpr that are the named jit of activation ``name``."""
    jaxpr = jax.make_jaxpr(fn)(*args).jaxpr
    return [e for e in jaxpr.eqns if e.params.get("name") == name]


def _manual(model, x, act):
    for layer in list(model.layers)[:-1]:
        x = act(x @ layer.kernel[...] + layer.bias[...][None])
    last = model.layers[-1]
    return x @ last.kernel[...] + last.bias[...][None]


def test_layout_and_forward():
    model = rnn.MLP(3, [5, 4], 2, rngs=nnx.Rngs(0))
    shapes = jax.tree.map(jnp.shape, nnx.to_pure_dict(nnx.state(model, nnx.Param)))
    assert shapes == {
        "layers": {
            0: {"kernel": (3, 5), "bias": (5,)},
            1: {"kernel": (5, 4), "bias": (4,)},
            2: {"kernel": (4, 2), "bias": (2,)},
        }
    }
    assert all(isinstance(layer, nnx.Linear) for layer in model.layers)
    assert len(model.activations) == 2
    chex.assert_trees_all_close(model(X), _manual(model, X, relujax.relu), atol=1e-6)
    chex.assert_shape(model(jnp.ones((2, 7, 3))), (2, 7, 2))  # any leading batch axes
    chex.assert_shape(rnn.MLP(3, [], 2, rngs=nnx.Rngs(0))(X), (8, 2))  # linear model


def test_one_named_activation_call_per_hidden_layer_in_order():
    model = rnn.MLP(3, [5, 4, 6], 2, activation="leaky_relu", rngs=nnx.Rngs(0))
    graphdef, state = nnx.split(model)
    sites = activation_sites(lambda s, x: nnx.merge(graphdef, s)(x), state, X, name="leaky_relu")
    assert [e.invars[0].aval.shape for e in sites] == [(8, 5), (8, 4), (8, 6)]
    # The activation is called on the pre-activation itself, once per layer, in order.
    seen = []

    def recording(x):
        seen.append(x)
        return relujax.relu(x)

    model = rnn.MLP(3, [5, 4], 2, activation=recording, rngs=nnx.Rngs(1))
    model(X)
    h0 = X @ model.layers[0].kernel[...] + model.layers[0].bias[...][None]
    h1 = relujax.relu(h0) @ model.layers[1].kernel[...] + model.layers[1].bias[...][None]
    chex.assert_trees_all_close(seen, [h0, h1], atol=1e-6)


@pytest.mark.parametrize(
    "activation",
    ["elu", functools.partial(relujax.leaky_relu, negative_slope=0.3), jax.nn.gelu],
)
def test_activation_argument(activation):
    model = rnn.MLP(3, [4], 1, activation=activation, rngs=nnx.Rngs(0))
    act = relujax.get_activation(activation) if isinstance(activation, str) else activation
    chex.assert_trees_all_close(model(X), _manual(model, X, act), atol=1e-6)


def test_prelu_and_rrelu_activations():
    model = rnn.MLP(3, [5, 4], 2, activation="prelu", rngs=nnx.Rngs(0))
    slopes = nnx.state(model, nnx.Param)["activations"]
    chex.assert_trees_all_close(
        [slopes[0]["slope"][...], slopes[1]["slope"][...]], [jnp.full(5, 0.25), jnp.full(4, 0.25)]
    )
    chex.assert_trees_all_close(
        model(X), _manual(model, X, lambda x: relujax.prelu(x, 0.25)), atol=1e-6
    )
    model = rnn.MLP(3, [5], 2, activation="rrelu", rngs=nnx.Rngs(0))
    assert not np.allclose(model(X), model(X))
    model.eval()
    mid = lambda x: relujax.leaky_relu(x, (1 / 8 + 1 / 3) / 2)
    chex.assert_trees_all_close(model(X), _manual(model, X, mid), atol=1e-6)


def test_initializers():
    model = rnn.MLP(
        3, [4], 2, kernel_init=init.constant(0.5), bias_init=init.constant(-1.0), rngs=nnx.Rngs(0)
    )
    chex.assert_trees_all_equal(model.layers[0].kernel[...], jnp.full((3, 4), 0.5))
    chex.assert_trees_all_equal(model.layers[1].bias[...], jnp.full((2,), -1.0))
    model = rnn.MLP(3, [4], 2, kernel_init="xavier_uniform", rngs=nnx.Rngs(0))
    chex.assert_trees_all_equal(model.layers[1].bias[...], jnp.zeros(2))
    assert float(jnp.abs(model.layers[0].kernel[...]).max()) <= (6 / 7) ** 0.5


def test_rai_draws_kernel_and_bias_jointly():
    model = rnn.MLP(6, [50, 40], 3, kernel_init=init.rai(sigma=0.0), rngs=nnx.Rngs(0))
    for layer in model.layers:
        v = jnp.concatenate([layer.kernel[...], layer.bias[...][None]])
        np.testing.assert_array_equal(np.count_nonzero(v, axis=0), 1)
    # Some Beta entries land on biases, so biases are not all zero.
    assert any(bool((layer.bias[...] != 0).any()) for layer in model.layers)
    model = rnn.MLP(6, [8], 3, kernel_init="rai", rngs=nnx.Rngs(0))
    assert not np.allclose(model.layers[0].kernel[...], 0)
    with pytest.raises(ValueError, match="bias_init"):
        rnn.MLP(3, [4], 1, kernel_init="rai", bias_init="zeros", rngs=nnx.Rngs(0))


def test_bad_arguments():
    with pytest.raises(ValueError, match=r"hidden\[1\]"):
        rnn.MLP(3, [4, 0], 1, rngs=nnx.Rngs(0))
    with pytest.raises(TypeError, match="hidden"):
        rnn.MLP(3, 4, 1, rngs=nnx.Rngs(0))
    with pytest.raises(ValueError, match="in_features"):
        rnn.MLP(0, [4], 1, rngs=nnx.Rngs(0))
    with pytest.raises(ValueError, match="leaky_relu"):
        rnn.MLP(3, [4], 1, activation="leaky_rel", rngs=nnx.Rngs(0))
    with pytest.raises(ValueError, match=r"kernel_init.*he_normal"):
        rnn.MLP(3, [4], 1, kernel_init="he_norml", rngs=nnx.Rngs(0))
    with pytest.raises(ValueError, match=r"\(\.\.\., 3\)"):
        rnn.MLP(3, [4], 1, rngs=nnx.Rngs(0))(jnp.ones((2, 4)))


def test_dtypes():
    model = rnn.MLP(3, [4], 2, dtype=jnp.bfloat16, param_dtype=jnp.float32, rngs=nnx.Rngs(0))
    chex.assert_type(model.layers[0].kernel[...], jnp.float32)
    chex.assert_type(model(X), jnp.bfloat16)
    model = rnn.MLP(3, [4], 2, activation="prelu", param_dtype=jnp.bfloat16, rngs=nnx.Rngs(0))
    chex.assert_type(jax.tree.leaves(nnx.state(model, nnx.Param)), jnp.bfloat16)


def test_jit_grad_split_merge():
    model = rnn.MLP(3, [5], 2, activation="prelu", rngs=nnx.Rngs(0))
    loss = lambda m, x: jnp.mean(m(x) ** 2)
    chex.assert_trees_all_close(nnx.jit(loss)(model, X), loss(model, X))
    grads = nnx.grad(loss)(model, X)
    graphdef, params = nnx.split(model, nnx.Param)
    pure = lambda p: loss(nnx.merge(graphdef, p), X)
    chex.assert_trees_all_close(
        nnx.to_pure_dict(grads), nnx.to_pure_dict(jax.grad(pure)(params)), atol=1e-6
    )
    clone = nnx.merge(*nnx.split(model))
    chex.assert_trees_all_equal(clone(X), model(X))
    chex.assert_trees_all_close(jax.vmap(model)(X[:, None]), model(X)[:, None], atol=1e-6)


def test_vmap_ensemble_equals_separately_built_models():
    keys = jax.random.split(jax.random.key(42), 3)
    build = lambda key: rnn.MLP(3, [6], 2, kernel_init="rai", rngs=nnx.Rngs(key))
    ensemble = nnx.vmap(build)(keys)
    out = nnx.vmap(lambda m, x: m(x), in_axes=(0, None))(ensemble, X)
    chex.assert_shape(out, (3, 8, 2))
    stacked = nnx.to_pure_dict(nnx.state(ensemble, nnx.Param))
    for k in range(3):
        single = build(keys[k])
        member = jax.tree.map(lambda a, k=k: a[k], stacked)
        chex.assert_trees_all_close(member, nnx.to_pure_dict(nnx.state(single, nnx.Param)))
        chex.assert_trees_all_close(out[k], single(X), atol=1e-6)
    k0 = stacked["layers"][0]["kernel"]
    assert not np.allclose(k0[0], k0[1]) and not np.allclose(k0[1], k0[2])


def test_three_optimizer_steps_reduce_the_loss():
    model = rnn.MLP(3, [16], 1, activation="prelu", rngs=nnx.Rngs(0))
    optimizer = nnx.Optimizer(model, optax.adam(1e-2), wrt=nnx.Param)
    y = jnp.sin(X.sum(axis=1, keepdims=True))

    @nnx.jit
    def step(model, optimizer):
        loss, grads = nnx.value_and_grad(lambda m: jnp.mean((m(X) - y) ** 2))(model)
        optimizer.update(model, grads)
        return loss

    losses = [float(step(model, optimizer)) for _ in range(3)]
    final = float(jnp.mean((model(X) - y) ** 2))
    assert losses[0] > losses[1] > losses[2] > final
    assert int(optimizer.step[...]) == 3
