"""relujax.nn.CNN: images and signals, layout, forward pass, transforms, training."""

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

IMAGES = jax.random.normal(jax.random.key(0), (2, 9, 8, 3))
SIGNALS = jax.random.normal(jax.random.key(1), (2, 11, 3))


def _conv(x, layer):
    k = layer.kernel[...]
    dims = ("NHWC", "HWIO", "NHWC") if k.ndim == 4 else ("NWC", "WIO", "NWC")
    y = jax.lax.conv_general_dilated(x, k, (1,) * (k.ndim - 2), "SAME", dimension_numbers=dims)
    return y + layer.bias[...].reshape((1,) * (y.ndim - 1) + (-1,))


def _max_pool(x, spatial_dims):
    window = (1,) + (2,) * spatial_dims + (1,)
    return jax.lax.reduce_window(x, -jnp.inf, jax.lax.max, window, window, "SAME")


def _manual(model, x, act):
    n_conv = len(model.features)
    for i in range(n_conv):
        x = _max_pool(act(_conv(x, model.layers[i])), model.spatial_dims)
    x = x.mean(axis=tuple(range(1, 1 + model.spatial_dims)))
    for i in range(n_conv, len(model.layers)):
        layer = model.layers[i]
        x = x @ layer.kernel[...] + layer.bias[...][None]
        if i < len(model.layers) - 1:
            x = act(x)
    return x


@pytest.mark.parametrize(("x", "spatial_dims"), [(IMAGES, 2), (SIGNALS, 1)])
def test_forward_matches_manual_computation(x, spatial_dims):
    model = rnn.CNN(3, [4, 5], 2, hidden=[6], spatial_dims=spatial_dims, rngs=nnx.Rngs(0))
    chex.assert_shape(model(x), (2, 2))
    chex.assert_trees_all_close(model(x), _manual(model, x, relujax.relu), atol=1e-5)
    window = (3,) * spatial_dims
    shapes = jax.tree.map(jnp.shape, nnx.to_pure_dict(nnx.state(model, nnx.Param)))
    assert shapes == {
        "layers": {
            0: {"kernel": (*window, 3, 4), "bias": (4,)},
            1: {"kernel": (*window, 4, 5), "bias": (5,)},
            2: {"kernel": (5, 6), "bias": (6,)},
            3: {"kernel": (6, 2), "bias": (2,)},
        }
    }
    assert len(model.activations) == 3


def test_any_spatial_size_and_pool_options():
    model = rnn.CNN(3, [4], 2, pool="avg", rngs=nnx.Rngs(0))
    chex.assert_shape(model(IMAGES), (2, 2))
    chex.assert_shape(model(IMAGES[:, :5, :3]), (2, 2))
    flat = rnn.CNN(3, [4], 2, pool=None, rngs=nnx.Rngs(0))
    # Without pooling, the net is conv -> relu -> global mean -> dense.
    h = relujax.relu(_conv(IMAGES, flat.layers[0])).mean(axis=(1, 2))
    expected = h @ flat.layers[1].kernel[...] + flat.layers[1].bias[...][None]
    chex.assert_trees_all_close(flat(IMAGES), expected, atol=1e-5)


def test_one_named_activation_call_per_layer_in_order():
    model = rnn.CNN(3, [4, 5], 2, hidden=[6], activation="leaky_relu", rngs=nnx.Rngs(0))
    graphdef, state = nnx.split(model)
    jaxpr = jax.make_jaxpr(lambda s, x: nnx.merge(graphdef, s)(x))(state, IMAGES).jaxpr
    sites = [e for e in jaxpr.eqns if e.params.get("name") == "leaky_relu"]
    assert [e.invars[0].aval.shape for e in sites] == [(2, 9, 8, 4), (2, 5, 4, 5), (2, 6)]


def test_prelu_per_channel_and_rai():
    model = rnn.CNN(
        3, [4], 2, activation="prelu", kernel_init=init.rai(sigma=0.0), rngs=nnx.Rngs(0)
    )
    chex.assert_shape(model.activations[0].slope[...], (4,))
    for layer in model.layers:
        k = layer.kernel[...]
        v = jnp.concatenate([k.reshape(-1, k.shape[-1]), layer.bias[...][None]])
        np.testing.assert_array_equal(np.count_nonzero(v, axis=0), 1)


def test_bad_arguments():
    with pytest.raises(ValueError, match="features"):
        rnn.CNN(3, [], 2, rngs=nnx.Rngs(0))
    with pytest.raises(ValueError, match="spatial_dims"):
        rnn.CNN(3, [4], 2, spatial_dims=4, rngs=nnx.Rngs(0))
    with pytest.raises(ValueError, match="kernel_size"):
        rnn.CNN(3, [4], 2, kernel_size=(3, 3), spatial_dims=1, rngs=nnx.Rngs(0))
    with pytest.raises(ValueError, match="pool"):
        rnn.CNN(3, [4], 2, pool="min", rngs=nnx.Rngs(0))
    with pytest.raises(ValueError, match=r"\(N, H, W, 3\)"):
        rnn.CNN(3, [4], 2, rngs=nnx.Rngs(0))(SIGNALS)


def test_grad_vmap_ensemble_and_training():
    keys = jax.random.split(jax.random.key(7), 2)
    build = lambda key: rnn.CNN(3, [4], 1, spatial_dims=1, rngs=nnx.Rngs(key))
    ensemble = nnx.vmap(build)(keys)
    out = nnx.vmap(lambda m, x: m(x), in_axes=(0, None))(ensemble, SIGNALS)
    for k in range(2):
        chex.assert_trees_all_close(out[k], build(keys[k])(SIGNALS), atol=1e-5)
    assert not np.allclose(out[0], out[1])

    model = build(keys[0])
    y = jnp.array([[1.0], [-1.0]])
    optimizer = nnx.Optimizer(model, optax.adam(3e-2), wrt=nnx.Param)

    @nnx.jit
    def step(model, optimizer):
        loss, grads = nnx.value_and_grad(lambda m: jnp.mean((m(SIGNALS) - y) ** 2))(model)
        optimizer.update(model, grads)
        return loss

    losses = [float(step(model, optimizer)) for _ in range(3)]
    assert losses[0] > losses[1] > losses[2]
