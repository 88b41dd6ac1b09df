"""Which axis holds a site's units: read from the producing operation, or set by the user."""

import warnings

import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from relujax import analysis


def randn(seed, *shape):
    return jnp.asarray(np.random.default_rng(seed).normal(size=shape), jnp.float32)


N, C_IN, C_OUT, H, W = 2, 3, 5, 6, 7
X = randn(0, N, C_IN, H, W)
KERNEL = randn(1, C_OUT, C_IN, 3, 3)
BIAS = randn(2, C_OUT)
NCHW = ("NCHW", "OIHW", "NCHW")


def _conv_nchw(x):
    y = jax.lax.conv_general_dilated(x, KERNEL, (1, 1), "SAME", dimension_numbers=NCHW)
    return y + BIAS[None, :, None, None]  # PyTorch style


def _conv_vmapped(x):
    # Equinox's Conv2d: one (C, H, W) sample at a time, under vmap
    def one(xi):
        y = jax.lax.conv_general_dilated(xi[None], KERNEL, (1, 1), "SAME", dimension_numbers=NCHW)
        return y[0] + BIAS[:, None, None]

    return jax.vmap(one)(x)


def _per_channel(pre, axis):
    """Hand computation: units on ``axis``, every other axis pooled."""
    moved = jnp.moveaxis(pre, axis, -1).reshape(-1, pre.shape[axis])
    return analysis.UnitStats.from_batch(moved, jax.nn.relu(moved))


@pytest.mark.parametrize(
    "model",
    [
        lambda x: jax.nn.relu(_conv_nchw(x)),
        lambda x: jax.nn.relu(_conv_vmapped(x)),
        lambda x: jax.nn.relu(_conv_nchw(x).reshape(N, C_OUT, H * W)),  # through a reshape
        lambda x: jax.nn.relu(jax.nn.relu(_conv_nchw(x)) * 2.0)[:, :, 0],  # through a site
    ],
    ids=["conv", "vmap", "reshape", "chained"],
)
def test_channels_first_convolution_is_reported_per_channel(model):
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        sites = analysis.find_sites(model, X)
        stats = analysis.collect(model, X[None])
    assert all(s.unit_axis == 1 and s.units == C_OUT for s in sites)
    pre = _conv_nchw(X)
    name = sites[0].name
    chex.assert_trees_all_close(stats[name], _per_channel(pre, 1), rtol=1e-4, atol=1e-5)


def test_channels_last_and_dense_sites_keep_the_last_axis():
    nhwc = ("NHWC", "HWIO", "NHWC")
    k = jnp.transpose(KERNEL, (2, 3, 1, 0))
    x = jnp.transpose(X, (0, 2, 3, 1))

    def f(x):
        y = jax.lax.conv_general_dilated(x, k, (1, 1), "SAME", dimension_numbers=nhwc)
        z = jax.nn.relu(y)
        return jax.nn.gelu(jnp.einsum("nhwc,cd->nhwd", z, jnp.ones((C_OUT, 4))))

    sites = analysis.find_sites(f, x)
    assert [(s.unit_axis, s.units) for s in sites] == [(3, C_OUT), (3, 4)]


def test_user_sets_the_unit_axis_per_site():
    model = lambda x: jax.nn.relu(_conv_nchw(x))
    pre = _conv_nchw(X)
    by_name = analysis.collect(model, X[None], unit_axis={"relu_0": 2})  # one unit per row
    chex.assert_trees_all_close(by_name["relu_0"], _per_channel(pre, 2), rtol=1e-4, atol=1e-5)
    by_fn = analysis.collect(model, X[None], unit_axis=lambda site: -1)
    chex.assert_trees_all_close(by_fn["relu_0"], _per_channel(pre, 3), rtol=1e-4, atol=1e-5)
    _, one = jax.jit(analysis.with_stats(model, unit_axis={"relu_0": 2}))(X)
    assert one["relu_0"].units == H


@pytest.mark.parametrize(
    ("unit_axis", "error", "match"),
    [
        ({"relu_9": 1}, ValueError, "no site named"),
        ({"relu_0": 4}, ValueError, r"unit_axis\['relu_0'\] must be an int in \[-4, 3\]"),
        ({"relu_0": 1.0}, TypeError, "must be an int"),
        (1, TypeError, "unit_axis must be None, a mapping"),
    ],
)
def test_bad_unit_axis(unit_axis, error, match):
    with pytest.raises(error, match=match):
        analysis.find_sites(lambda x: jax.nn.relu(_conv_nchw(x)), X, unit_axis=unit_axis)


def test_unknown_axis_of_a_rank_3_site_warns_and_an_override_silences_it():
    f = lambda x: jax.nn.relu(x)  # an input: nothing tells where its units are
    with pytest.warns(UserWarning, match=r"relu_0.*cannot tell which axis.*unit_axis="):
        (site,) = analysis.find_sites(f, X)
    assert site.unit_axis == 3
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        (site,) = analysis.find_sites(f, X, unit_axis={"relu_0": 1})
        analysis.find_sites(f, X[:, 0, 0])  # rank 2: the last axis by convention
    assert site.unit_axis == 1


def test_equinox_conv2d_under_vmap():
    eqx = pytest.importorskip("equinox")
    conv = eqx.nn.Conv2d(C_IN, C_OUT, 3, padding=1, key=jax.random.key(0))
    model = lambda x: jax.nn.relu(jax.vmap(conv)(x))
    (site,) = analysis.find_sites(model, X)
    assert (site.unit_axis, site.units) == (1, C_OUT)
    stats = analysis.collect(model, X[None])
    pre = jax.vmap(conv)(X)
    chex.assert_trees_all_close(stats["relu_0"], _per_channel(pre, 1), rtol=1e-4, atol=1e-5)


def test_equinox_linear_under_vmap_on_rank_3_inputs():
    eqx = pytest.importorskip("equinox")
    mlp = eqx.nn.MLP(C_IN, 2, 6, 2, activation=jax.nn.relu, key=jax.random.key(1))
    model = jax.vmap(jax.vmap(mlp))  # W @ x per position: a (N, T, features) site
    x = randn(3, N, 4, C_IN)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        sites = analysis.find_sites(model, x)
    assert [(s.unit_axis, s.units) for s in sites] == [(2, 6), (2, 6)]
