"""Arguments of the NNX and Linen modules: one rule, names in any spelling, clear errors.

Wrong type -> TypeError, wrong value -> ValueError, the message names the module and the
parameter; NNX and Linen accept and refuse exactly the same arguments. Names are normalized
as in every relujax registry (``"ReLU"``, ``" Leaky-ReLU "``, ``"He-Normal"``).
"""

import chex
import jax
import jax.numpy as jnp
import pytest
from flax import nnx

from relujax import linen as rl
from relujax import nn as rnn

D = 8
X = jnp.sin(1.7 * jnp.arange(4 * D, dtype=jnp.float32)).reshape(4, D)
IMAGES = jnp.sin(1.7 * jnp.arange(2 * 9 * 8 * D, dtype=jnp.float32)).reshape(2, 9, 8, D)

MLP_ERRORS = [
    ({"in_features": True}, TypeError, r"MLP: in_features"),
    ({"in_features": 0}, ValueError, r"MLP: in_features must be an int >= 1"),
    ({"hidden": (1.5,)}, TypeError, r"MLP: hidden\[0\]"),
    ({"hidden": (D, 0)}, ValueError, r"MLP: hidden\[1\] must be an int >= 1"),
    ({"hidden": "8"}, TypeError, r"MLP: hidden must be a sequence"),
    ({"out_features": -1}, ValueError, r"MLP: out_features"),
    ({"activation": "relux"}, ValueError, r"MLP: unknown activation 'relux'.*'relu'"),
    ({"activation": 3}, TypeError, r"MLP: activation"),
    ({"kernel_init": "he_norml"}, ValueError, r"MLP: .*for kernel_init; did you mean 'he_normal"),
    ({"kernel_init": 3}, TypeError, r"MLP: kernel_init"),
    ({"bias_init": "bogus"}, ValueError, r"MLP: unknown initializer .bogus. for bias_init"),
    ({"kernel_init": "rai", "bias_init": "zeros"}, ValueError, r"MLP: .*bias_init must be None"),
]
CNN_ERRORS = [
    ({"features": ()}, ValueError, r"CNN: features must name at least one"),
    ({"spatial_dims": 4}, ValueError, r"CNN: spatial_dims must be an int in \[1, 3\]"),
    ({"spatial_dims": 2.0}, TypeError, r"CNN: spatial_dims"),
    ({"kernel_size": (3,)}, ValueError, r"CNN: kernel_size must have spatial_dims=2 entries"),
    ({"kernel_size": 0}, ValueError, r"CNN: kernel_size must be an int >= 1"),
    ({"pool": "min"}, ValueError, r"CNN: pool must be one of 'max', 'avg', None"),
    ({"pool": 3}, TypeError, r"CNN: pool"),
    ({"pool_size": 0}, ValueError, r"CNN: pool_size"),
    ({"activation": "Prelux"}, ValueError, r"CNN: unknown activation"),
]


def _nnx_mlp(**kw):
    args = {"in_features": D, "hidden": (D,), "out_features": D, "rngs": nnx.Rngs(0), **kw}
    return rnn.MLP(args.pop("in_features"), args.pop("hidden"), args.pop("out_features"), **args)


def _linen_mlp(**kw):
    args = {"in_features": D, "hidden": (D,), "out_features": D, **kw}
    model = rl.MLP(args.pop("in_features"), args.pop("hidden"), args.pop("out_features"), **args)
    return model.init(jax.random.key(0), X)


def _nnx_cnn(**kw):
    return rnn.CNN(D, kw.pop("features", (D,)), D, rngs=nnx.Rngs(0), **kw)


def _linen_cnn(**kw):
    return rl.CNN(D, kw.pop("features", (D,)), D, **kw).init(jax.random.key(0), IMAGES)


@pytest.mark.parametrize("build", [_nnx_mlp, _linen_mlp], ids=["nnx", "linen"])
@pytest.mark.parametrize(("kwargs", "error", "match"), MLP_ERRORS)
def test_mlp_argument_errors(build, kwargs, error, match):
    with pytest.raises(error, match=match):
        build(**kwargs)


@pytest.mark.parametrize("build", [_nnx_cnn, _linen_cnn], ids=["nnx", "linen"])
@pytest.mark.parametrize(("kwargs", "error", "match"), CNN_ERRORS)
def test_cnn_argument_errors(build, kwargs, error, match):
    with pytest.raises(error, match=match):
        build(**kwargs)


@pytest.mark.parametrize("rngs", [None, 0, jax.random.key(0)])
@pytest.mark.parametrize("cls", [rnn.MLP, rnn.CNN])
def test_rngs_must_be_nnx_rngs(cls, rngs):
    with pytest.raises(TypeError, match=rf"{cls.__name__}: rngs must be an nnx.Rngs"):
        cls(D, (D,), D, rngs=rngs)


@pytest.mark.parametrize(
    ("spelling", "canonical"),
    [("ReLU", "relu"), (" Leaky-ReLU ", "leaky_relu"), ("PReLU", "prelu"), ("RReLU", "rrelu")],
)
def test_activation_names_in_any_spelling(spelling, canonical):
    a, b = _nnx_mlp(activation=spelling), _nnx_mlp(activation=canonical)
    a.eval(), b.eval()  # rrelu: the evaluation slope
    chex.assert_trees_all_equal(a(X), b(X))
    v = _linen_mlp(activation=spelling)
    chex.assert_trees_all_equal(v, _linen_mlp(activation=canonical))


@pytest.mark.parametrize("spelling", ["He-Normal", "KAIMING_NORMAL", " RAI "])
def test_initializer_names_in_any_spelling(spelling):
    canonical = {"He-Normal": "he_normal", "KAIMING_NORMAL": "he_normal", " RAI ": "rai"}
    a = nnx.state(_nnx_mlp(kernel_init=spelling), nnx.Param)
    b = nnx.state(_nnx_mlp(kernel_init=canonical[spelling]), nnx.Param)
    chex.assert_trees_all_equal(a, b)


def test_legacy_and_typed_keys_build_equal_models():
    legacy = nnx.state(_nnx_mlp(rngs=nnx.Rngs(jax.random.PRNGKey(3))), nnx.Param)
    typed = nnx.state(_nnx_mlp(rngs=nnx.Rngs(jax.random.key(3))), nnx.Param)
    chex.assert_trees_all_equal(legacy, typed)
    model = rl.MLP(D, (D,), D, kernel_init="rai")
    chex.assert_trees_all_equal(
        model.init(jax.random.PRNGKey(3), X), model.init(jax.random.key(3), X)
    )


@pytest.mark.parametrize(
    ("build", "error", "match"),
    [
        (lambda: rnn.PReLU(0), ValueError, r"PReLU: num_features"),
        (lambda: rnn.PReLU(2.0), TypeError, r"PReLU: num_features"),
        (lambda: rnn.PReLU(init=float("nan")), ValueError, r"PReLU: init must be finite"),
        (lambda: rnn.PReLU(init="a"), TypeError, r"PReLU: init"),
        (lambda: rnn.RReLU(0.5, 0.1, rngs=None), ValueError, r"RReLU: lower must be <= "),
        (lambda: rnn.RReLU("a", rngs=None), TypeError, r"RReLU: lower"),
        (lambda: rnn.RReLU(rngs=None, deterministic="yes"), TypeError, r"RReLU: determin"),
        (lambda: rnn.RReLU(rngs=3), TypeError, r"RReLU: rngs"),
        (lambda: rl.PReLU(0).init(jax.random.key(0), X), ValueError, r"PReLU: num_features"),
        (
            lambda: rl.PReLU(slope_init=-1.0).init(jax.random.key(0), X),
            ValueError,
            r"PReLU: slope_init",
        ),
        (lambda: rl.RReLU(0.5, 0.1).apply({}, X), ValueError, r"RReLU: lower must be <= "),
    ],
)
def test_activation_module_errors(build, error, match):
    with pytest.raises(error, match=match):
        build()


def test_rrelu_keys_legacy_typed_and_wrong():
    layer = rnn.RReLU(rngs=None)
    neg = -jnp.ones((4, D))
    chex.assert_trees_all_equal(
        layer(neg, key=jax.random.PRNGKey(5)), layer(neg, key=jax.random.key(5))
    )
    with pytest.raises(TypeError, match="RReLU: key"):
        layer(neg, key=5)


@pytest.mark.parametrize("dtype", [jnp.float16, jnp.bfloat16])
def test_orthogonal_half_precision_parameters(dtype):
    # jax.nn's orthogonal initializer raises in half precision; relujax's draws in float32.
    model = _nnx_mlp(kernel_init="orthogonal", param_dtype=dtype)
    kernel = model.layers[0].kernel[...]
    chex.assert_type(kernel, dtype)
    k32 = kernel.astype(jnp.float32)
    chex.assert_trees_all_close(k32.T @ k32, jnp.eye(D), atol=2e-2)
    variables = _linen_mlp(kernel_init="orthogonal", param_dtype=dtype)
    chex.assert_type(variables["params"]["layers_0"]["kernel"], dtype)
