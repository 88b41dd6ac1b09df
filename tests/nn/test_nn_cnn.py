"""relujax.nn.CNN: images and signals, layout, forward pass, transforms, training.

Channels are D everywhere but in the layout test: shared shapes share XLA compilations.
"""

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
# Deterministic inputs (jax.random.normal would cost one compilation per shape).
IMAGES = jnp.sin(1.7 * jnp.arange(2 * 9 * 8 * D, dtype=jnp.float32)).reshape(2, 9, 8, D)
SIGNALS = jnp.cos(2.3 * jnp.arange(2 * 11 * D, dtype=jnp.float32)).reshape(2, 11, D)


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


def test_layout():
    model = rnn.CNN(3, [4, 5], 2, hidden=[6], kernel_init="zeros", rngs=nnx.Rngs(0))
    shapes = jax.tree.map(jnp.shape, nnx.to_pure_dict(nnx.state(model, nnx.Param)))
    assert shapes == {
        "layers": {
            0: {"kernel": (3, 3, 3, 4), "bias": (4,)},
            1: {"kernel": (3, 3, 4, 5), "bias": (5,)},
            2: {"kernel": (5, 6), "bias": (6,)},
            3: {"kernel": (6, 2), "bias": (2,)},
        }
    }
    assert len(model.activations) == 3
    assert isinstance(model.layers[1], nnx.Conv) and isinstance(model.layers[2], nnx.Linear)


@pytest.mark.parametrize(("x", "spatial_dims"), [(IMAGES, 2), (SIGNALS, 1)])
def test_forward_matches_manual_computation(x, spatial_dims):
    model = rnn.CNN(D, [D, D], D, hidden=[D], spatial_dims=spatial_dims, rngs=nnx.Rngs(0))
    chex.assert_shape(model(x), (2, D))
    chex.assert_trees_all_close(model(x), _manual(model, x, relujax.relu), atol=1e-5)
    if spatial_dims == 1:
        chex.assert_shape(model.layers[0].kernel[...], (3, D, D))


def test_any_spatial_size_and_pool_options():
    model = rnn.CNN(D, [D], D, pool="avg", rngs=nnx.Rngs(0))
    chex.assert_shape(model(IMAGES), (2, D))
    chex.assert_shape(model(IMAGES[:, :5, :3]), (2, D))
    flat = rnn.CNN(D, [D], D, pool=None, rngs=nnx.Rngs(0))
    # Without pooling, the net is conv -> relu -> global mean -> dense.
    h = relujax.relu(_conv(IMAGES, flat.layers[0])).mean(axis=(1, 2))
    expected = h @ flat.layers[1].kernel[...] + flat.layers[1].bias[...][None]
    chex.assert_trees_all_close(flat(IMAGES), expected, atol=1e-5)


def test_one_named_activation_call_per_layer_in_order():
    model = rnn.CNN(
        3, [4, 5], 2, hidden=[6], activation="leaky_relu", kernel_init="zeros", rngs=nnx.Rngs(0)
    )
    graphdef, state = nnx.split(model)
    x = IMAGES[..., :3]
    jaxpr = jax.make_jaxpr(lambda s, x: nnx.merge(graphdef, s)(x))(state, x).jaxpr
    sites = [e for e in jaxpr.eqns if e.params.get("name") == "leaky_relu"]
    assert [e.invars[0].aval.shape for e in sites] == [(2, 9, 8, 4), (2, 5, 4, 5), (2, 6)]


def test_prelu_per_channel_and_rai():
    model = rnn.CNN(
        D, [D], D, activation="prelu", kernel_init=init.rai(sigma=0.0), rngs=nnx.Rngs(0)
    )
    chex.assert_shape(model.activations[0].slope[...], (D,))
    chex.assert_shape(model(IMAGES), (2, D))
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
    with pytest.raises(ValueError, match=r"\(N, H, W, 8\)"):
        rnn.CNN(D, [D], D, rngs=nnx.Rngs(0))(SIGNALS)


def test_grad_vmap_ensemble_and_training():
    # An ensemble of two separately seeded CNNs, stacked, run with nnx.vmap (MLP tests build
    # one with nnx.vmap; the same code path serves CNN).
    members = [rnn.CNN(D, [D], D, spatial_dims=1, rngs=nnx.Rngs(s)) for s in (1, 2)]
    graphdef, _ = nnx.split(members[0])
    stacked = jax.tree.map(lambda *a: jnp.stack(a), *[nnx.split(m)[1] for m in members])
    ensemble = nnx.merge(graphdef, stacked)
    out = nnx.vmap(lambda m, x: m(x), in_axes=(0, None))(ensemble, SIGNALS)
    for k in range(2):
        chex.assert_trees_all_close(out[k], members[k](SIGNALS), atol=1e-5)
    assert not np.allclose(out[0], out[1])

    model = members[0]
    y = jnp.stack([jnp.ones(D), -jnp.ones(D)])
    optimizer = nnx.Optimizer(model, optax.adam(3e-2), wrt=nnx.Param)

    @nnx.jit
    def step(model, optimizer):
        loss, grads = nnx.value_and_grad(lambda m: jnp.mean((m(SIGNALS) - y) ** 2))(model)
        optimizer.update(model, grads)
        return loss

    losses = [float(step(model, optimizer)) for _ in range(3)]
    assert losses[0] > losses[1] > losses[2]
