"""collect on unmodified models written with Equinox, Flax Linen and Flax NNX.

Every statistic is compared with a float64 NumPy reference computed from the model's own
intermediates, obtained by calling its submodules by hand; the reference never goes through
relujax.analysis.
"""

import functools
import math
import warnings

import equinox as eqx
import flax.linen as linen
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

import relujax
from relujax import analysis


def _reference(pairs, axis=-1):
    """Per-unit statistics of ``[(pre, out), ...]`` in float64, units on ``axis``."""

    def rows(a):
        a = np.moveaxis(np.asarray(a, np.float64), axis, -1)
        return a.reshape(-1, a.shape[-1])

    pre = np.concatenate([rows(p) for p, _ in pairs])
    out = np.concatenate([rows(o) for _, o in pairs])
    return {
        "count": np.full(pre.shape[1], pre.shape[0]),
        "firing": (pre > 0).sum(0),
        "pre_mean": pre.mean(0),
        "pre_std": pre.std(0),
        "pre_min": pre.min(0),
        "pre_max": pre.max(0),
        "mean": out.mean(0),
        "std": out.std(0),
        "abs_mean": np.abs(out).mean(0),
    }


def _assert_matches(stats, expected, *, rtol=1e-5, atol=1e-5):
    """``expected``: site name -> reference; names and order must agree too."""
    assert list(stats) == list(expected)
    for name, ref in expected.items():
        s = stats[name]
        np.testing.assert_array_equal(s.count.to_numpy(), ref["count"], err_msg=name)
        np.testing.assert_array_equal(s.firing.to_numpy(), ref["firing"], err_msg=name)
        for field in ("pre_mean", "pre_std", "pre_min", "pre_max", "mean", "std", "abs_mean"):
            got = np.asarray(getattr(s, field), np.float64)
            np.testing.assert_allclose(got, ref[field], rtol=rtol, atol=atol, err_msg=name + field)


def _leaky(z, slope=0.01):
    return np.where(z > 0, z, slope * z)


def _gelu_tanh(z):
    return 0.5 * z * (1 + np.tanh(np.sqrt(2 / np.pi) * (z + 0.044715 * z**3)))


def _dense(h, kernel, bias):
    return np.asarray(h, np.float64) @ np.asarray(kernel, np.float64) + np.asarray(bias, np.float64)


# --- ensembles: K stacked weights against one input ------------------------------------------


def _eqx_ensemble():
    keys = jax.random.split(jax.random.key(0), 3)
    ens = eqx.filter_jit(eqx.filter_vmap(lambda k: eqx.nn.Linear(5, 4, key=k)))(keys)

    def fn(x):  # (K, B, 4): each model on the same batch
        return eqx.filter_vmap(lambda m: jax.nn.relu(jax.vmap(m)(x)))(ens)

    return fn, ens.weight.transpose(0, 2, 1), ens.bias


def _linen_ensemble():
    class Block(linen.Module):
        @linen.compact
        def __call__(self, x):
            return linen.relu(linen.Dense(4)(x))

    class Ensemble(linen.Module):
        @linen.compact
        def __call__(self, x):
            stacked = linen.vmap(
                Block,
                variable_axes={"params": 0},
                split_rngs={"params": True},
                in_axes=None,
                axis_size=3,
            )
            return stacked(name="ens")(x)

    model = Ensemble()
    variables = model.init(jax.random.key(1), jnp.ones((8, 5)))
    dense = variables["params"]["ens"]["Dense_0"]
    return functools.partial(model.apply, variables), dense["kernel"], dense["bias"]


def _nnx_ensemble():
    class Block(nnx.Module):
        def __init__(self, rngs):
            self.lin = nnx.Linear(5, 4, rngs=rngs)

    class Ensemble(nnx.Module):
        def __init__(self, rngs):
            @nnx.split_rngs(splits=3)
            @nnx.vmap(in_axes=(0,), out_axes=0)
            def make(rngs):
                return Block(rngs)

            self.blocks = make(rngs)

        def __call__(self, x):
            @nnx.vmap(in_axes=(0, None), out_axes=0)
            def each(block, x):
                return jax.nn.relu(block.lin(x))

            return each(self.blocks, x)

    model = Ensemble(nnx.Rngs(2))
    return model, model.blocks.lin.kernel[...], model.blocks.lin.bias[...]


@pytest.mark.parametrize("make", [_eqx_ensemble, _linen_ensemble, _nnx_ensemble])
def test_ensemble_under_vmap_keeps_features_as_units_not_samples(make):
    # (K=3 models, B=8 samples, 4 features). The dense layer's operands are x (B, F) and the
    # stacked weight (K, F, O): by ranks alone the data looks like the weight, and the units
    # were the 8 samples (before: units 8, firing = per-sample counts over models and
    # features). The weight is the operand that does not depend on the batch; with two free
    # axes (models, features) it is ambiguous: a warning, and the last axis.
    fn, kernel, bias = make()
    xs = jax.random.normal(jax.random.key(3), (2, 8, 5))
    with pytest.warns(UserWarning, match="cannot tell which axis"):
        (site,) = analysis.find_sites(fn, xs[0])
    assert site.shape == (3, 8, 4) and site.unit_axis == 2 and site.units == 4
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        stats = analysis.collect(fn, xs)
    pairs = []
    for x in xs:
        pre = np.einsum("nf,kfo->kno", np.asarray(x, np.float64), np.asarray(kernel, np.float64))
        pre += np.asarray(bias, np.float64)[:, None, :]
        pairs.append((pre, np.maximum(pre, 0)))
    _assert_matches(stats, {site.name: _reference(pairs)})


def test_nnx_ensemble_with_stats_reads_the_same_units_as_collect():
    model, kernel, bias = _nnx_ensemble()
    x = jax.random.normal(jax.random.key(4), (8, 5))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        _, stats = jax.jit(analysis.with_stats(model))(x)
    pre = np.einsum("nf,kfo->kno", np.asarray(x, np.float64), np.asarray(kernel, np.float64))
    pre += np.asarray(bias, np.float64)[:, None, :]
    (name,) = stats
    _assert_matches(stats, {name: _reference([(pre, np.maximum(pre, 0))])})


# --- Equinox ---------------------------------------------------------------------------------


class _EqxCNN(eqx.Module):
    conv1: eqx.nn.Conv2d
    conv2: eqx.nn.Conv2d
    head: eqx.nn.Sequential

    def __init__(self, key):
        k1, k2, k3 = jax.random.split(key, 3)
        self.conv1 = eqx.nn.Conv2d(2, 4, 3, padding=1, key=k1)
        self.conv2 = eqx.nn.Conv2d(4, 3, 3, stride=2, key=k2)
        self.head = eqx.nn.Sequential([eqx.nn.Linear(27, 6, key=k3), eqx.nn.Lambda(jax.nn.relu6)])

    def __call__(self, x):  # one (C, H, W) sample, channels first
        h = jax.nn.relu(self.conv1(x))
        h = jax.nn.leaky_relu(self.conv2(h), 0.1)
        return jax.nn.gelu(self.head(h.reshape(-1)))


def test_equinox_cnn_under_vmap_matches_reference():
    cnn = eqx.filter_jit(_EqxCNN)(jax.random.key(5))  # one compile instead of one per op
    xs = jax.random.normal(jax.random.key(6), (2, 3, 2, 8, 8))  # 2 batches of 3 samples
    stats = analysis.collect(jax.vmap(cnn), xs)
    x = xs.reshape(-1, 2, 8, 8)  # submodules called by hand on all 6 samples
    z1 = np.asarray(jax.vmap(cnn.conv1)(x), np.float64)
    h1 = np.maximum(z1, 0)
    z2 = np.asarray(jax.vmap(cnn.conv2)(jnp.asarray(h1, jnp.float32)), np.float64)
    h2 = _leaky(z2, 0.1)
    lin = cnn.head.layers[0]
    z3 = _dense(h2.reshape(len(x), -1), np.asarray(lin.weight).T, lin.bias)
    h3 = np.clip(z3, 0, 6)  # gelu's input is relu6's output
    pairs = [[(z1, h1)], [(z2, h2)], [(z3, h3)], [(h3, _gelu_tanh(h3))]]
    names = [
        "vmap()/relu_0",
        "vmap()/leaky_relu_0",
        "vmap(eqx.nn.Sequential)/relu6_0",
        "vmap()/gelu_0",
    ]
    axes = [1, 1, -1, -1]  # channels first: (N, C, H, W), one unit per channel
    expected = {n: _reference(p, a) for n, p, a in zip(names, pairs, axes, strict=True)}
    _assert_matches(stats, expected, rtol=1e-4, atol=1e-5)


# --- Flax Linen ------------------------------------------------------------------------------


class _LinenBlock(linen.Module):
    @linen.compact
    def __call__(self, x):
        return linen.relu(linen.Dense(6)(x))


class _LinenNet(linen.Module):
    def setup(self):
        self.shared = _LinenBlock()
        self.act = linen.relu  # an activation held in setup
        self.dense = linen.Dense(6)
        self.seq = linen.Sequential([linen.Dense(6), linen.leaky_relu])
        self.rematted = linen.remat(_LinenBlock)()

    def __call__(self, x):
        h = self.shared(self.shared(x))  # one module called twice: two sites
        h = self.act(self.dense(h))
        return self.rematted(self.seq(h))


def test_linen_shared_setup_sequential_remat_matches_reference():
    model = _LinenNet()
    xs = jax.random.normal(jax.random.key(7), (2, 8, 6))
    variables = model.init(jax.random.key(8), xs[0])
    stats = analysis.collect(functools.partial(model.apply, variables), xs)
    p = variables["params"]
    layers = [
        (p["shared"]["Dense_0"], np.maximum),
        (p["shared"]["Dense_0"], np.maximum),
        (p["dense"], np.maximum),
        (p["seq"]["layers_0"], _leaky),
        (p["rematted"]["Dense_0"], np.maximum),
    ]
    pairs: list[list] = [[] for _ in layers]
    for x in xs:
        h = np.asarray(x, np.float64)
        for k, (q, act) in enumerate(layers):
            z = _dense(h, q["kernel"], q["bias"])
            h = act(z) if act is _leaky else act(z, 0)
            pairs[k].append((z, h))
    names = [
        "_LinenNet/shared/relu_0",
        "_LinenNet/shared/relu_1",
        "_LinenNet/relu_0",
        "_LinenNet/seq/leaky_relu_0",
        "_LinenNet/rematted/relu_0",
    ]
    _assert_matches(stats, {n: _reference(q) for n, q in zip(names, pairs, strict=True)})


# --- Flax NNX --------------------------------------------------------------------------------


class _NNXBlock(nnx.Module):
    def __init__(self, rngs):
        self.lin = nnx.Linear(5, 5, rngs=rngs)

    def __call__(self, h):
        return jax.nn.relu(self.lin(h))


class _NNXNet(nnx.Module):
    def __init__(self, rngs):
        self.seq = nnx.Sequential(nnx.Linear(6, 5, rngs=rngs), relujax.leaky_relu)
        self.norm = nnx.BatchNorm(5, rngs=rngs)
        self.drop = nnx.Dropout(0.5, rngs=rngs)

        @nnx.split_rngs(splits=3)
        @nnx.vmap(in_axes=(0,), out_axes=0)
        def make(rngs):
            return _NNXBlock(rngs)

        self.blocks = make(rngs)

    def __call__(self, x):
        h = self.drop(nnx.elu(self.norm(self.seq(x))))

        @nnx.scan(in_axes=(nnx.Carry, 0), out_axes=nnx.Carry)
        def layers(h, block):
            return nnx.remat(lambda b, h: b(h))(block, h)

        return layers(h, self.blocks)


def test_nnx_eval_mode_and_scan_over_layers_match_reference():
    model = _NNXNet(nnx.Rngs(9))
    model.norm.mean[...] = jnp.linspace(-0.2, 0.2, 5)
    model.norm.var[...] = jnp.linspace(0.5, 2.0, 5)
    model.eval()  # BatchNorm uses its running statistics, Dropout is the identity
    xs = jax.random.normal(jax.random.key(10), (2, 8, 6))
    stats = analysis.collect(model, xs)
    lin, norm = model.seq.layers[0], model.norm
    kernels = np.asarray(model.blocks.lin.kernel[...], np.float64)
    biases = np.asarray(model.blocks.lin.bias[...], np.float64)
    pairs: list[list] = [[] for _ in range(5)]
    for x in xs:
        z = _dense(x, lin.kernel[...], lin.bias[...])
        h = _leaky(z)
        pairs[0].append((z, h))
        mean, var = (np.asarray(v[...], np.float64) for v in (norm.mean, norm.var))
        z = (h - mean) / np.sqrt(var + norm.epsilon) * np.asarray(norm.scale[...]) + np.asarray(
            norm.bias[...]
        )
        h = np.where(z > 0, z, np.expm1(z))
        pairs[1].append((z, h))
        for k in range(3):
            z = _dense(h, kernels[k], biases[k])
            h = np.maximum(z, 0)
            pairs[2 + k].append((z, h))
    names = ["leaky_relu_0", "elu_0", "relu_0[0]", "relu_0[1]", "relu_0[2]"]
    _assert_matches(stats, {n: _reference(q) for n, q in zip(names, pairs, strict=True)})


# --- narrow float types ----------------------------------------------------------------------


def test_bfloat16_sites_are_summarized_at_their_own_precision():
    dtype = jnp.bfloat16
    # jaxlib 0.10's XLA:CPU computes the bfloat16 matmul in float32 and dropped the rounding
    # of a bfloat16 -> float32 convert, so the statistics read values the model never holds
    # (before: pre_min -3.2815 where the site's minimum is the bfloat16 number -3.28125).
    w = jax.random.normal(jax.random.key(11), (6, 7)).astype(dtype)
    xs = jax.random.normal(jax.random.key(12), (2, 16, 6)).astype(dtype)

    def fn(x):
        return jax.nn.gelu(jax.nn.relu(x @ w) - 0.3)

    stats = analysis.collect(fn, xs)
    pairs0, pairs1 = [], []
    for x in xs:  # eager: each intermediate is a real array of the narrow dtype
        z = x @ w
        h = jax.nn.relu(z)
        pairs0.append((z, h))
        pairs1.append((h - 0.3, jax.nn.gelu(h - 0.3)))
    for name, pairs in (("relu_0", pairs0), ("gelu_0", pairs1)):
        ref = _reference(pairs)
        s = stats[name]
        np.testing.assert_array_equal(s.pre_min, ref["pre_min"].astype(np.float32))
        np.testing.assert_array_equal(s.pre_max, ref["pre_max"].astype(np.float32))
        np.testing.assert_array_equal(s.firing.to_numpy(), ref["firing"])
        eps = float(jnp.finfo(dtype).eps)
        np.testing.assert_allclose(s.pre_mean, ref["pre_mean"], rtol=0, atol=eps * 8)
        np.testing.assert_allclose(s.abs_mean, ref["abs_mean"], rtol=0, atol=eps * 8)
    assert math.isclose(float(stats["relu_0"].count.to_numpy()[0]), 32)


def test_float16_subnormal_activations_keep_firing():
    # float16's subnormals (below 6.1e-5) are real values of a float16 site: gelu(1e-4) = 5e-5
    # fires. A reduce_precision to float16 flushed them (firing [0 0 0 0] instead of [1 1 1 0]).
    x = jnp.array([[[1e-4, 3e-5, 1e-7, -1e-4]]], jnp.float16)
    stats = analysis.collect(jax.nn.gelu, x)["gelu_0"]
    np.testing.assert_array_equal(stats.firing.to_numpy(), [1, 1, 1, 0])
    np.testing.assert_array_equal(stats.pre_max, np.asarray(x[0, 0], np.float32))
    np.testing.assert_array_equal(stats.mean, np.asarray(jax.nn.gelu(x[0, 0]), np.float32))


@pytest.mark.parametrize("moments", [True, False])
def test_squared_relu_fires_where_its_square_underflows(moments):
    # relu(x)**2 is 0 in float16 for 0 < x < 2.4e-4: firing read off the output said
    # [0 0 0 0]; a unit fires where its pre-activation is > 0.
    x = jnp.array([[[1e-4, 3e-5, 1e-7, -1e-4]]], jnp.float16)
    stats = analysis.collect(relujax.squared_relu, x, moments=moments)["squared_relu_0"]
    np.testing.assert_array_equal(stats.firing.to_numpy(), [1, 1, 1, 0])
    np.testing.assert_array_equal(stats.abs_mean, [0.0, 0.0, 0.0, 0.0])


def test_bfloat16_features_are_the_models_values():
    # features() cast a bfloat16 site to float32 as collect did: up to 0.0069 off the values
    # the model computes (XLA:CPU of jaxlib 0.10 kept the unrounded float32 matmul).
    w = jax.random.normal(jax.random.key(13), (6, 7)).astype(jnp.bfloat16)
    x = jax.random.normal(jax.random.key(14), (16, 6)).astype(jnp.bfloat16)

    def fn(x):
        return jax.nn.gelu(x @ w - 0.3)

    rows = analysis.features(fn, x)["gelu_0"]
    np.testing.assert_array_equal(rows, np.asarray(fn(x), np.float32))


def _scalar_head_plain():
    w = jax.random.normal(jax.random.key(15), (5,))
    return lambda x: jax.nn.softplus(x @ w)


def _scalar_head_eqx():
    lin = eqx.filter_jit(lambda k: eqx.nn.Linear(5, "scalar", key=k))(jax.random.key(16))
    return jax.vmap(lambda x: jax.nn.relu(lin(x)))


@pytest.mark.parametrize("make", [_scalar_head_plain, _scalar_head_eqx])
def test_scalar_output_head_warns_that_its_units_are_sample_positions(make):
    # One value per sample (a dense layer with one output) makes a site of shape (batch,),
    # whose axis is read as 8 units of 3 samples each (over 3 batches of 8) instead of one
    # unit of 24 samples: silently, before; now with a warning saying so.
    xs = jax.random.normal(jax.random.key(17), (3, 8, 5))
    with pytest.warns(UserWarning, match="one value per sample"):
        stats = analysis.collect(make(), xs)
    (s,) = stats.values()
    assert s.units == 8
    np.testing.assert_array_equal(s.count.to_numpy(), np.full(8, 3))


def test_unbatched_equinox_mlp_has_units_without_warnings():
    mlp = eqx.filter_jit(
        lambda k: eqx.nn.MLP(5, 2, width_size=4, depth=1, activation=jax.nn.relu, key=k)
    )(jax.random.key(18))
    xs = jax.random.normal(jax.random.key(19), (6, 5))  # 6 batches of one (5,) sample
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        stats = analysis.collect(mlp, xs)
    (name,) = stats
    layer = mlp.layers[0]
    pre = _dense(xs, np.asarray(layer.weight).T, layer.bias)
    _assert_matches(stats, {name: _reference([(pre, np.maximum(pre, 0))])})


# --- ensembles passed as arguments: parameters by type, or by param_argnums -------------------


def _ensemble_reference(x, kernel, bias):
    pre = np.einsum("nf,kfo->kno", np.asarray(x, np.float64), np.asarray(kernel, np.float64))
    pre += np.asarray(bias, np.float64)[:, None, :]
    return [(pre, np.maximum(pre, 0))]


def test_ensemble_passed_as_an_argument_keeps_features_as_units():
    # An Equinox ensemble given to the loss as an argument, as Equinox users write it: the
    # module is known as parameters by its type. Before: units 8 (the samples), silently.
    keys = jax.random.split(jax.random.key(0), 3)
    ens = eqx.filter_vmap(lambda k: eqx.nn.Linear(5, 4, key=k))(keys)
    x = jax.random.normal(jax.random.key(3), (8, 5))

    def loss(model, x):
        return jnp.sum(eqx.filter_vmap(lambda m: jax.nn.relu(jax.vmap(m)(x)))(model))

    kernel = ens.weight.transpose(0, 2, 1)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # models x features: the last axis
        _, stats = jax.jit(analysis.with_stats(loss))(ens, x)
    (name,) = list(stats)
    assert stats[name].units == 4
    _assert_matches(stats, {name: _reference(_ensemble_reference(x, kernel, ens.bias))})

    # Stacked weights as a plain array: param_argnums says which argument they are.
    def plain(ws, x):
        return jax.vmap(lambda w: jax.nn.relu(x @ w))(ws)

    ws = jnp.asarray(kernel)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        _, stats = analysis.with_stats(plain, param_argnums=0)(ws, x)
    (name,) = list(stats)
    zero = np.zeros_like(np.asarray(ens.bias))
    _assert_matches(stats, {name: _reference(_ensemble_reference(x, kernel, zero))})
    with pytest.raises(ValueError, match=r"param_argnums: 2 is out of range for 2 positional"):
        analysis.with_stats(plain, param_argnums=2)(ws, x)
    with pytest.raises(TypeError, match=r"param_argnums must be an int"):
        analysis.with_stats(plain, param_argnums=0.5)
