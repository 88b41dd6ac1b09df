"""relujax.nn.MLP: layout, forward pass, inits, transforms, ensembles, training.

Most tests use one width D everywhere: every (operation, shape) pair costs an XLA
compilation, so shared shapes keep the suite fast.
"""

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

D = 8
X = jnp.sin(1.7 * jnp.arange(4 * D, dtype=jnp.float32)).reshape(4, D)  # no compile per shape


def mlp(seed=0, **kwargs):
    return rnn.MLP(D, [D, D], D, rngs=nnx.Rngs(seed), **kwargs)


def manual(model, x, act):
    for layer in list(model.layers)[:-1]:
        x = act(x @ layer.kernel[...] + layer.bias[...][None])
    last = model.layers[-1]
    return x @ last.kernel[...] + last.bias[...][None]


def test_layout_and_activation_order():
    # Zero kernels: distinct shapes, but no random draw to compile per shape.
    model = rnn.MLP(3, [5, 4, 6], 2, activation="leaky_relu", kernel_init="zeros", rngs=nnx.Rngs(0))
    x = X[:, :3]
    shapes = jax.tree.map(jnp.shape, nnx.to_pure_dict(nnx.state(model, nnx.Param)))
    assert shapes == {
        "layers": {
            0: {"kernel": (3, 5), "bias": (5,)},
            1: {"kernel": (5, 4), "bias": (4,)},
            2: {"kernel": (4, 6), "bias": (6,)},
            3: {"kernel": (6, 2), "bias": (2,)},
        }
    }
    assert all(isinstance(layer, nnx.Linear) for layer in model.layers)
    assert len(model.activations) == 3
    # In the jaxpr: one named activation call per hidden layer, in layer order.
    graphdef, state = nnx.split(model)
    jaxpr = jax.make_jaxpr(lambda s, x: nnx.merge(graphdef, s)(x))(state, x).jaxpr
    sites = [e for e in jaxpr.eqns if e.params.get("name") == "leaky_relu"]
    assert [e.invars[0].aval.shape for e in sites] == [(4, 5), (4, 4), (4, 6)]


def test_activation_receives_the_preactivation():
    seen = []

    def recording(x):
        seen.append(x)
        return relujax.relu(x)

    model = mlp(activation=recording)
    model(X)
    h0 = X @ model.layers[0].kernel[...] + model.layers[0].bias[...][None]
    h1 = relujax.relu(h0) @ model.layers[1].kernel[...] + model.layers[1].bias[...][None]
    chex.assert_trees_all_close(seen, [h0, h1], atol=1e-6)
    chex.assert_shape(model(jnp.ones((2, 3, D))), (2, 3, D))  # any leading batch axes
    chex.assert_shape(rnn.MLP(D, [], D, rngs=nnx.Rngs(0))(X), (4, D))  # a linear model


@pytest.mark.parametrize(
    "activation",
    ["relu", "elu", functools.partial(relujax.leaky_relu, negative_slope=0.3), jax.nn.gelu],
)
def test_activation_argument(activation):
    model = mlp(activation=activation)
    act = relujax.get_activation(activation) if isinstance(activation, str) else activation
    chex.assert_trees_all_close(model(X), manual(model, X, act), atol=1e-6)


def test_prelu_and_rrelu_activations():
    model = mlp(activation="prelu")
    slopes = nnx.to_pure_dict(nnx.state(model, nnx.Param))["activations"]
    chex.assert_trees_all_close(
        slopes, {0: {"slope": jnp.full(D, 0.25)}, 1: {"slope": jnp.full(D, 0.25)}}
    )
    chex.assert_trees_all_close(
        model(X), manual(model, X, lambda x: relujax.prelu(x, 0.25)), atol=1e-6
    )
    model = mlp(activation="rrelu")
    assert not np.allclose(model(X), model(X))
    model.eval()
    mid = lambda x: relujax.leaky_relu(x, (1 / 8 + 1 / 3) / 2)
    chex.assert_trees_all_close(model(X), manual(model, X, mid), atol=1e-6)


def test_initializers():
    model = mlp(kernel_init=init.constant(0.5), bias_init=init.constant(-1.0))
    chex.assert_trees_all_equal(model.layers[0].kernel[...], jnp.full((D, D), 0.5))
    chex.assert_trees_all_equal(model.layers[2].bias[...], jnp.full((D,), -1.0))
    model = mlp(kernel_init="xavier_uniform")
    chex.assert_trees_all_equal(model.layers[1].bias[...], jnp.zeros(D))
    assert float(jnp.abs(model.layers[0].kernel[...]).max()) <= (6 / (2 * D)) ** 0.5


def test_rai_draws_kernel_and_bias_jointly():
    model = mlp(kernel_init=init.rai(sigma=0.0))
    for layer in model.layers:
        v = jnp.concatenate([layer.kernel[...], layer.bias[...][None]])
        np.testing.assert_array_equal(np.count_nonzero(v, axis=0), 1)
    # Beta entries land on biases too (probability 1 - (8/9)^24 > 0.94; fixed seed).
    assert any(bool((layer.bias[...] != 0).any()) for layer in model.layers)
    model = mlp(kernel_init="rai")
    assert int(jnp.count_nonzero(model.layers[0].kernel[...])) == D * D
    with pytest.raises(ValueError, match="bias_init"):
        mlp(kernel_init="rai", bias_init="zeros")


def test_bad_arguments():
    with pytest.raises(ValueError, match=r"hidden\[1\]"):
        rnn.MLP(D, [4, 0], 1, rngs=nnx.Rngs(0))
    with pytest.raises(TypeError, match="hidden"):
        rnn.MLP(D, 4, 1, rngs=nnx.Rngs(0))
    with pytest.raises(ValueError, match="in_features"):
        rnn.MLP(0, [4], 1, rngs=nnx.Rngs(0))
    with pytest.raises(ValueError, match="leaky_relu"):
        mlp(activation="leaky_rel")
    with pytest.raises(ValueError, match=r"kernel_init.*he_normal"):
        mlp(kernel_init="he_norml")
    with pytest.raises(ValueError, match=r"\(\.\.\., 8\)"):
        mlp()(jnp.ones((2, 4)))


def test_dtypes():
    model = mlp(dtype=jnp.bfloat16, param_dtype=jnp.float32)
    chex.assert_type(model.layers[0].kernel[...], jnp.float32)
    chex.assert_type(model(X), jnp.bfloat16)
    model = mlp(activation="prelu", param_dtype=jnp.bfloat16)
    chex.assert_type(jax.tree.leaves(nnx.state(model, nnx.Param)), jnp.bfloat16)


def test_jit_grad_vmap_split_merge():
    model = mlp(activation="prelu")
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
    chex.assert_trees_all_close(jax.vmap(model)(X), model(X), atol=1e-6)


def test_vmap_ensemble_equals_separately_built_models():
    keys = jax.random.split(jax.random.key(42), 3)
    build = lambda key: rnn.MLP(D, [D, D], D, rngs=nnx.Rngs(key))
    ensemble = nnx.vmap(build)(keys)
    out = nnx.vmap(lambda m, x: m(x), in_axes=(0, None))(ensemble, X)
    chex.assert_shape(out, (3, 4, D))
    stacked = nnx.to_pure_dict(nnx.state(ensemble, nnx.Param))
    for k in range(3):
        single = build(keys[k])
        member = jax.tree.map(lambda a, k=k: a[k], stacked)
        chex.assert_trees_all_close(member, nnx.to_pure_dict(nnx.state(single, nnx.Param)))
        chex.assert_trees_all_close(out[k], single(X), atol=1e-6)
    k0 = stacked["layers"][0]["kernel"]
    assert not np.allclose(k0[0], k0[1]) and not np.allclose(k0[1], k0[2])


def test_three_optimizer_steps_reduce_the_loss():
    model = mlp(activation="prelu")
    optimizer = nnx.Optimizer(model, optax.adam(1e-2), wrt=nnx.Param)
    y = jnp.sin(X)

    @nnx.jit
    def step(model, optimizer):
        loss, grads = nnx.value_and_grad(lambda m: jnp.mean((m(X) - y) ** 2))(model)
        optimizer.update(model, grads)
        return loss

    losses = [float(step(model, optimizer)) for _ in range(3)]
    final = float(jnp.mean((model(X) - y) ** 2))
    assert losses[0] > losses[1] > losses[2] > final
    assert int(optimizer.step[...]) == 3
