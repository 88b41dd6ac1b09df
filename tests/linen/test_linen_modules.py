"""relujax.linen: the same arguments and, given the same parameters, the same outputs as NNX."""

import functools

import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

import relujax
from relujax import init
from relujax import linen as rl
from relujax import nn as rnn

# The shapes of tests/nn, so that XLA compilations are shared; deterministic inputs.
D = 8
X = jnp.sin(1.7 * jnp.arange(4 * D, dtype=jnp.float32)).reshape(4, D)
IMAGES = jnp.sin(1.7 * jnp.arange(2 * 9 * 8 * D, dtype=jnp.float32)).reshape(2, 9, 8, D)
SIGNALS = jnp.cos(2.3 * jnp.arange(2 * 11 * D, dtype=jnp.float32)).reshape(2, 11, D)


def _shapes(tree):
    return jax.tree.map(jnp.shape, tree)


@pytest.mark.parametrize(
    ("kwargs", "x"),
    [
        ({"activation": "relu"}, X),
        ({"activation": "prelu", "kernel_init": "rai"}, X),
        ({"activation": functools.partial(relujax.leaky_relu, negative_slope=0.3)}, X),
    ],
)
def test_mlp_equals_nnx_given_the_same_params(kwargs, x):
    nnx_model = rnn.MLP(D, [D, D], D, rngs=nnx.Rngs(0), **kwargs)
    linen_model = rl.MLP(D, (D, D), D, **kwargs)
    linen_vars = linen_model.init(jax.random.key(1), x)
    params = rl.params_from_nnx(nnx_model)
    assert _shapes(params) == _shapes(linen_vars)
    chex.assert_trees_all_close(linen_model.apply(params, x), nnx_model(x), atol=1e-6)
    chex.assert_trees_all_close(jax.jit(linen_model.apply)(params, x), nnx_model(x), atol=1e-6)
    # And back: Linen's own initial parameters loaded into the NNX model.
    rl.update_nnx(nnx_model, linen_vars)
    chex.assert_trees_all_close(nnx_model(x), linen_model.apply(linen_vars, x), atol=1e-6)


@pytest.mark.parametrize(
    ("x", "kwargs"),
    [
        (IMAGES, {"hidden": (D,)}),
        (SIGNALS, {"spatial_dims": 1, "pool": "avg", "activation": "prelu"}),
    ],
)
def test_cnn_equals_nnx_given_the_same_params(x, kwargs):
    nnx_model = rnn.CNN(D, [D, D], D, rngs=nnx.Rngs(0), **kwargs)
    linen_model = rl.CNN(D, (D, D), D, **kwargs)
    params = rl.params_from_nnx(nnx_model)
    assert _shapes(params) == _shapes(linen_model.init(jax.random.key(1), x))
    chex.assert_trees_all_close(linen_model.apply(params, x), nnx_model(x), atol=1e-5)


def test_rai_pairs_in_linen():
    model = rl.MLP(D, (D, D), D, kernel_init=init.rai(sigma=0.0))
    params = model.init(jax.random.key(0), X)["params"]
    for i in range(3):
        layer = params[f"layers_{i}"]
        v = jnp.concatenate([layer["kernel"], layer["bias"][None]])
        np.testing.assert_array_equal(np.count_nonzero(v, axis=0), 1)
    with pytest.raises(ValueError, match="bias_init"):
        rl.MLP(D, (D,), D, kernel_init="rai", bias_init="zeros").init(jax.random.key(0), X)


def test_prelu_slope_gradient_and_jit():
    layer = rl.PReLU(D, slope_init=0.25)
    variables = layer.init(jax.random.key(0), X)
    grads = jax.grad(lambda v: layer.apply(v, X).sum())(variables)
    chex.assert_trees_all_close(grads["params"]["slope"], jnp.minimum(X, 0.0).sum(axis=0))
    chex.assert_trees_all_close(
        jax.jit(layer.apply)(variables, X), rnn.PReLU(D, init=0.25)(X), atol=1e-7
    )
    chex.assert_trees_all_close(
        jax.vmap(functools.partial(layer.apply, variables))(X), layer.apply(variables, X)
    )


def test_rrelu_training_randomness_and_evaluation_constancy():
    layer = rl.RReLU(0.1, 0.3)
    neg = -jnp.ones((16, 16))
    a = layer.apply({}, neg, rngs={"rrelu": jax.random.key(0)})
    b = layer.apply({}, neg, rngs={"rrelu": jax.random.key(1)})
    assert not np.allclose(a, b)
    chex.assert_trees_all_equal(a, layer.apply({}, neg, rngs={"rrelu": jax.random.key(0)}))
    assert float(-a.max()) >= 0.1 and float(-a.min()) <= 0.3
    chex.assert_trees_all_close(layer.apply({}, neg, deterministic=True), jnp.full_like(neg, -0.2))
    # An rrelu MLP in evaluation mode equals the NNX one after model.eval().
    nnx_model = rnn.MLP(D, [D, D], D, activation="rrelu", rngs=nnx.Rngs(0))
    nnx_model.eval()
    linen_model = rl.MLP(D, (D, D), D, activation="rrelu", deterministic=True)
    chex.assert_trees_all_close(
        linen_model.apply(rl.params_from_nnx(nnx_model), X), nnx_model(X), atol=1e-6
    )
    with pytest.raises(Exception, match="rrelu"):
        rl.MLP(D, (D, D), D, activation="rrelu").apply(rl.params_from_nnx(nnx_model), X)


def test_update_nnx_rejects_mismatches():
    model = rnn.MLP(D, [D, D], D, rngs=nnx.Rngs(0))
    params = rl.params_from_nnx(model)
    del params["params"]["layers_2"]["bias"]
    with pytest.raises(KeyError, match="layers_2/bias"):
        rl.update_nnx(model, params)
    params = rl.params_from_nnx(model)
    params["params"]["layers_0"]["kernel"] = jnp.zeros((D, 5))
    with pytest.raises(ValueError, match="layers_0/kernel"):
        rl.update_nnx(model, params)


def test_linen_argument_errors():
    with pytest.raises(ValueError, match="hidden"):
        rl.MLP(D, (0,), D).init(jax.random.key(0), X)
    with pytest.raises(ValueError, match=r"\(\.\.\., 4\)"):
        rl.MLP(4, (D,), D).init(jax.random.key(0), X)
    with pytest.raises(ValueError, match="pool"):
        rl.CNN(D, (D,), D, pool="min").init(jax.random.key(0), IMAGES)
    with pytest.raises(ValueError, match="slope_init"):
        rl.PReLU(slope_init=-1.0).init(jax.random.key(0), X)


@pytest.mark.parametrize(
    ("nnx_model", "linen_model", "x"),
    [
        (
            lambda: rnn.MLP(D, [D, D], D, activation="prelu", rngs=nnx.Rngs(0)),
            rl.MLP(D, (D, D), D, activation="prelu"),
            X,
        ),
        (
            lambda: rnn.CNN(D, [D], D, hidden=[D], kernel_init="rai", rngs=nnx.Rngs(0)),
            rl.CNN(D, (D,), D, hidden=(D,), kernel_init="rai"),
            IMAGES,
        ),
    ],
    ids=["mlp", "cnn"],
)
def test_linen_equals_nnx_under_grad_and_vmap(nnx_model, linen_model, x):
    # The documented mapping (params_from_nnx) carries parameters AND gradients across.
    model = nnx_model()
    params = rl.params_from_nnx(model)

    def linen_loss(p):
        return jnp.sum(linen_model.apply(p, x) ** 2)

    nnx_grads = nnx.grad(lambda m: jnp.sum(m(x) ** 2))(model)
    chex.assert_trees_all_close(
        jax.grad(linen_loss)(params), rl.params_from_nnx(nnx_grads), rtol=1e-5, atol=1e-5
    )
    # vmap over examples (one at a time, a leading axis of 1) equals the batched call.
    one = functools.partial(linen_model.apply, params)
    chex.assert_trees_all_close(
        jax.vmap(lambda xi: one(xi[None])[0])(x), model(x), rtol=1e-5, atol=1e-5
    )
    chex.assert_trees_all_close(jax.jit(one)(x), model(x), rtol=1e-5, atol=1e-5)


def test_linen_shares_nnx_logic_through_one_interface():
    # Linen builds on relujax.nn._common (plans, argument checks, PReLU / RReLU maths):
    # no copy of the NNX logic and no import of any other private NNX module.
    import pathlib
    import re

    imports = set()
    for path in pathlib.Path(rl.__file__).parent.glob("*.py"):
        text = path.read_text()
        imports |= set(re.findall(r"relujax\.nn\.(_\w+)", text))
        imports |= set(re.findall(r"from relujax\.nn import (\w+)", text))
    assert imports == {"_common"}, imports
    assert "from relujax.nn._common import" in pathlib.Path(rl._mlp.__file__).read_text()


@pytest.mark.parametrize(
    ("module", "public"),
    [
        (
            init,
            "PairedInitializer constant get he_normal he_uniform leaky_gain lecun_normal names "
            "normal ones orthogonal rai xavier_normal xavier_uniform zeros",
        ),
        (rnn, "Activation CNN MLP PReLU RReLU"),
        (rl, "CNN MLP PReLU RReLU params_from_nnx update_nnx"),
    ],
)
def test_public_surface(module, public):
    # One spelling of RAI (rai, with .pair), and every public name re-exported in __all__.
    assert sorted(module.__all__) == sorted(public.split())
    assert {n for n in dir(module) if not n.startswith("_")} == set(public.split())


def test_conversion_accepts_frozen_variables_and_rejects_non_models():
    import flax

    model = rnn.MLP(D, [D], D, rngs=nnx.Rngs(0))
    linen_vars = rl.MLP(D, (D,), D).init(jax.random.key(4), X)
    rl.update_nnx(model, flax.core.freeze(linen_vars))  # Linen variables may be FrozenDicts
    chex.assert_trees_all_equal(rl.params_from_nnx(model), flax.core.unfreeze(linen_vars))
    with pytest.raises(TypeError, match=r"params_from_nnx: model must be an nnx\.Module"):
        rl.params_from_nnx({"layers": 1})
    with pytest.raises(TypeError, match=r"update_nnx: model must be an nnx\.Module"):
        rl.update_nnx(linen_vars, linen_vars)
    with pytest.raises(KeyError, match=r"update_nnx: variables has no 'params' entry"):
        rl.update_nnx(model, {"layers_0": {}})
