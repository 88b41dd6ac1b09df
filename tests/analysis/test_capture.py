"""Finding activation sites: jax.nn, relujax, Flax, tags, names, selection, control flow."""

import functools
import re
import warnings

import chex
import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

import relujax
from relujax import analysis


def randn(seed, *shape):
    """Standard normal float32 samples from NumPy (no XLA compile, unlike jax.random)."""
    return jnp.asarray(np.random.default_rng(seed).normal(size=shape), jnp.float32)


X = randn(0, 6, 4)


def names(fn, *args):
    return [s.name for s in analysis.find_sites(fn, *args)]


@pytest.mark.parametrize(
    ("fn", "site"),
    [
        (jax.nn.relu, "relu"),
        (jax.nn.relu6, "relu6"),
        (jax.nn.leaky_relu, "leaky_relu"),
        (jax.nn.elu, "elu"),
        (jax.nn.selu, "selu"),
        (jax.nn.celu, "celu"),
        (jax.nn.gelu, "gelu"),
        (functools.partial(jax.nn.gelu, approximate=False), "gelu"),
        (jax.nn.silu, "silu"),
        (jax.nn.swish, "silu"),
        (jax.nn.hard_silu, "hard_silu"),
        (jax.nn.hard_swish, "hard_silu"),
        (jax.nn.hard_tanh, "hard_tanh"),
        (jax.nn.mish, "mish"),
        (jax.nn.softplus, "softplus"),
        (jax.nn.squareplus, "squareplus"),
        (jax.nn.sparse_plus, "sparse_plus"),
        (nnx.relu, "relu"),
        (nn.relu, "relu"),
        (nn.gelu, "gelu"),
        (nnx.leaky_relu, "leaky_relu"),
    ],
)
def test_jax_nn_family_and_flax_reexports_are_found(fn, site):
    sites = analysis.find_sites(lambda x: fn(x) * 2.0, X)
    assert [(s.name, s.function, s.shape) for s in sites] == [(f"{site}_0", site, (6, 4))]


@pytest.mark.parametrize(
    ("fn", "site", "units"),
    [
        (relujax.relu, "relu", 4),
        (relujax.relu6, "relu6", 4),
        (relujax.leaky_relu, "leaky_relu", 4),
        (functools.partial(relujax.prelu, slope=0.2), "prelu", 4),
        (relujax.rrelu, "rrelu", 4),
        (relujax.elu, "elu", 4),
        (relujax.selu, "selu", 4),
        (relujax.celu, "celu", 4),
        (relujax.gelu, "gelu", 4),
        (relujax.silu, "silu", 4),
        (relujax.swish, "silu", 4),
        (relujax.mish, "mish", 4),
        (relujax.softplus, "softplus", 4),
        (relujax.hard_tanh, "hard_tanh", 4),
        (relujax.hard_swish, "hard_swish", 4),
        (relujax.capped_relu, "capped_relu", 4),
        (relujax.shifted_relu, "shifted_relu", 4),
        (relujax.squared_relu, "squared_relu", 4),
        (functools.partial(relujax.threshold, threshold=0.5, value=0.0), "threshold", 4),
        (relujax.crelu, "crelu", 8),  # concatenated: observed on its 2x wider output
    ],
)
def test_relujax_activations_are_found(fn, site, units):
    (s,) = analysis.find_sites(fn, X)
    assert (s.name, s.function, s.units) == (f"{site}_0", site, units)


def test_every_relujax_site_name_is_recognised_by_default():
    assert relujax.activations.SITE_NAMES <= analysis.default_activations()


def test_names_count_calls_per_function_in_call_order():
    def f(x):
        x = relujax.relu(x)
        x = jax.nn.gelu(jax.nn.gelu(x))  # two inlined gelus back to back
        x = jax.nn.relu(x)
        return analysis.tag(x, "out")

    assert names(f, X) == ["relu_0", "gelu_0", "gelu_1", "relu_1", "out"]


def test_tags_repeat_with_suffix_and_never_collide():
    def f(x):
        for _ in range(3):
            x = analysis.tag(x, "h")
        return analysis.tag(jax.nn.relu(x), "relu_0")

    assert names(f, X) == ["h", "h_1", "h_2", "relu_0", "relu_0_1"]


def test_tag_is_an_identity_under_jit_vmap_and_grad():
    f = lambda x: analysis.tag(x * 2.0, "t")
    chex.assert_trees_all_close(jax.jit(jax.vmap(f))(X), 2.0 * X)
    chex.assert_trees_all_close(jax.grad(lambda x: jnp.sum(f(x) ** 2))(X), 8.0 * X)


def test_tag_rejects_bad_names():
    with pytest.raises(TypeError, match="non-empty string"):
        analysis.tag(X, "")


class _LinenBlock(nn.Module):
    @nn.compact
    def __call__(self, x):
        return nn.relu(nn.Dense(3)(x))


class _LinenNet(nn.Module):
    @nn.compact
    def __call__(self, x):
        x = _LinenBlock()(x)
        x = _LinenBlock(name="second")(x)
        return nn.gelu(nn.Dense(2)(x))


def test_linen_sites_are_named_by_module_path():
    model = _LinenNet()
    params = jax.jit(model.init)(jax.random.key(0), X)
    assert names(functools.partial(model.apply, params), X) == [
        "_LinenNet/_LinenBlock_0/relu_0",
        "_LinenNet/second/relu_0",
        "_LinenNet/gelu_0",
    ]


def test_nnx_module_sites():
    model = relujax.nn.MLP(4, [5, 3], 2, rngs=nnx.Rngs(0))
    assert [(s.name, s.units) for s in analysis.find_sites(model, X)] == [
        ("relu_0", 5),
        ("relu_1", 3),
    ]


def test_activations_argument_restricts_recognition():
    f = lambda x: jax.nn.elu(jax.nn.relu(x))
    assert names(f, X) == ["relu_0", "elu_0"]
    assert [s.name for s in analysis.find_sites(f, X, activations={"elu"})] == ["elu_0"]
    with pytest.raises(TypeError, match="collection of names"):
        analysis.find_sites(f, X, activations="elu")


def test_no_site_error_suggests_tag():
    with pytest.raises(ValueError, match=r"no activation site.*tag"):
        analysis.collect(lambda x: jnp.maximum(x, 0.0), X[None])


SELECT_FN = lambda x: jax.nn.elu(jax.nn.relu(jax.nn.relu(x)))


@pytest.mark.parametrize(
    ("sites", "exclude", "want"),
    [
        (None, None, ["relu_0", "relu_1", "elu_0"]),
        ("relu_1", None, ["relu_1"]),
        ("relu_*", None, ["relu_0", "relu_1"]),
        (re.compile("elu"), None, ["relu_0", "relu_1", "elu_0"]),  # search semantics
        (re.compile("^elu"), None, ["elu_0"]),
        (["elu_0", "relu_0"], None, ["relu_0", "elu_0"]),  # call order kept
        (None, "relu_0", ["relu_1", "elu_0"]),
        ("relu_*", ["relu_1"], ["relu_0"]),
    ],
)
def test_site_selection(sites, exclude, want):
    _, stats = analysis.with_stats(SELECT_FN, sites=sites, exclude=exclude)(X)
    assert list(stats) == want


@pytest.mark.parametrize(
    ("sites", "exclude", "error", "match"),
    [
        ("relu_7", None, ValueError, "no site named 'relu_7'"),
        (None, ["elu"], ValueError, "no site named 'elu'"),
        ("nothing*", None, ValueError, "no site left"),
        (3, None, TypeError, "sites must be"),
    ],
)
def test_bad_selection(sites, exclude, error, match):
    with pytest.raises(error, match=match):
        analysis.with_stats(SELECT_FN, sites=sites, exclude=exclude)(X)


def _manual(pre, fn, **kw):
    return analysis.UnitStats.from_batch(pre, fn(pre), **kw)


def test_captured_pre_and_output_are_the_activation_input_and_output():
    w = randn(1, 4, 4)

    def f(x):
        a = jax.nn.relu(x @ w)
        b = jax.nn.gelu(a - 0.5, approximate=False)
        c = relujax.leaky_relu(b @ w, 0.1)
        return jax.nn.silu(c)

    _, stats = jax.jit(analysis.with_stats(f))(X)
    a_pre = X @ w
    a = jax.nn.relu(a_pre)
    b_pre = a - 0.5
    b = jax.nn.gelu(b_pre, approximate=False)
    c_pre = b @ w
    c = relujax.leaky_relu(c_pre, 0.1)
    want = {
        "relu_0": _manual(a_pre, jax.nn.relu),
        "gelu_0": _manual(b_pre, functools.partial(jax.nn.gelu, approximate=False)),
        "leaky_relu_0": _manual(c_pre, functools.partial(relujax.leaky_relu, negative_slope=0.1)),
        "silu_0": _manual(c, jax.nn.silu),
    }
    assert list(stats) == list(want)
    for k, v in want.items():
        chex.assert_trees_all_close(stats[k], v, rtol=1e-5, atol=1e-6)


def _control_flow(x):
    def body(c, xi):
        return c + jax.nn.relu(xi), jax.nn.elu(xi)

    c, ys = jax.lax.scan(body, jnp.zeros(x.shape[1:]), x)
    w = jax.lax.fori_loop(0, 3, lambda i, h: jax.nn.relu6(h) - 1.0, x)
    d = jax.lax.cond(x[0, 0] > 100.0, jax.nn.relu, jax.nn.silu, x)
    e = jax.checkpoint(lambda y: relujax.relu(y) * 2.0)(x)
    f = jax.jit(lambda y: jax.nn.softplus(y))(x)
    return c.sum() + ys.sum() + w.sum() + d.sum() + e.sum() + f.sum()


def test_sites_inside_control_flow():
    sites = analysis.find_sites(_control_flow, X)
    assert [(s.name, s.in_loop, s.iteration) for s in sites] == [
        ("relu_0", True, ()),  # scan over rows: fed by xs only, pooled
        ("elu_0", True, ()),
        ("relu6_0[0]", True, (0,)),  # fori_loop: the carry feeds it, one per iteration
        ("relu6_0[1]", True, (1,)),
        ("relu6_0[2]", True, (2,)),
        ("silu_0", False, ()),  # cond branch 0 (the false branch, taken)
        ("relu_1", False, ()),  # cond branch 1 (not taken)
        ("relu_2", False, ()),  # checkpoint
        ("softplus_0", False, ()),  # nested jit
    ]
    out, stats = jax.jit(analysis.with_stats(_control_flow))(X)
    chex.assert_trees_all_close(out, _control_flow(X), rtol=1e-6)
    # scan: pooled over the 6 iterations == one pass over the rows
    chex.assert_trees_all_close(stats["relu_0"], _manual(X, jax.nn.relu), rtol=1e-5, atol=1e-6)
    chex.assert_trees_all_close(stats["elu_0"], _manual(X, jax.nn.elu), rtol=1e-5, atol=1e-6)
    # fori_loop: one statistic per iteration
    h1 = jax.nn.relu6(X) - 1.0
    h2 = jax.nn.relu6(h1) - 1.0
    for k, h in enumerate([X, h1, h2]):
        chex.assert_trees_all_close(
            stats[f"relu6_0[{k}]"], _manual(h, jax.nn.relu6), rtol=1e-5, atol=1e-5
        )
    # ... or pooled over its 3 iterations on request
    _, pooled = jax.jit(analysis.with_stats(_control_flow, loops="pooled", sites="relu6*"))(X)
    want = _manual(jnp.concatenate([X, h1, h2]), jax.nn.relu6)
    chex.assert_trees_all_close(pooled["relu6_0"], want, rtol=1e-5, atol=1e-5)
    # cond: only the branch taken sees samples
    np.testing.assert_array_equal(stats["relu_1"].count.to_numpy(), [0] * 4)
    np.testing.assert_array_equal(stats["silu_0"].count.to_numpy(), [6] * 4)
    chex.assert_trees_all_close(stats["relu_2"], _manual(X, relujax.relu), rtol=1e-5)
    chex.assert_trees_all_close(stats["softplus_0"], _manual(X, jax.nn.softplus), rtol=1e-5)


@jax.custom_vjp
def _clipped_grad_block(x):
    return jax.nn.relu(x) + jax.nn.elu(x)


_clipped_grad_block.defvjp(lambda x: (_clipped_grad_block(x), None), lambda _, g: (3.0 * g,))


def _grad_model(x):
    return jnp.sum(_clipped_grad_block(x)) + jnp.sum(relujax.relu(x) * x) + jnp.sum(jax.nn.relu(x))


def test_custom_vjp_body_is_observed_and_its_rule_kept():
    assert names(_grad_model, X) == ["relu_0", "elu_0", "relu_1", "relu_2"]
    g_plain = jax.grad(_grad_model)(X)
    g_wrapped, stats = jax.jit(jax.grad(analysis.with_stats(_grad_model), has_aux=True))(X)
    chex.assert_trees_all_close(g_wrapped, g_plain)
    chex.assert_trees_all_close(stats["elu_0"], _manual(X, jax.nn.elu), rtol=1e-6)


def test_gradients_unchanged_at_the_kink_and_in_forward_mode():
    z = jnp.array([[0.0, -1.0, 1.0, 0.0]])
    f = lambda x: jnp.sum(relujax.relu(x)) + jnp.sum(jax.nn.relu(x) ** 2)
    wrapped = lambda x: analysis.with_stats(f)(x)[0]
    chex.assert_trees_all_close(jax.grad(wrapped)(z), jax.grad(f)(z))
    chex.assert_trees_all_close(jax.grad(wrapped)(z), jnp.array([[0.0, 0.0, 3.0, 0.0]]))
    chex.assert_trees_all_close(jax.jacfwd(wrapped)(z), jax.jacfwd(f)(z))


def test_with_stats_static_arguments_and_pytree_outputs():
    def f(x, *, scale, train):
        h = jax.nn.relu(x * scale)
        return {"h": h, "extra": None if train else h.sum()}

    out, stats = jax.jit(analysis.with_stats(functools.partial(f, scale=2.0, train=False)))(X)
    chex.assert_trees_all_close(out["h"], jax.nn.relu(2.0 * X))
    assert out["extra"] is not None and list(stats) == ["relu_0"]


def test_with_stats_under_vmap_over_parameters():
    ws = randn(2, 3, 4, 5)

    def f(w, x):
        return jax.nn.relu(x @ w)

    _, stacked = jax.vmap(analysis.with_stats(f), in_axes=(0, None))(ws, X)
    for k in range(3):
        chex.assert_trees_all_close(
            jax.tree.map(lambda a, k=k: a[k], stacked["relu_0"]),
            _manual(X @ ws[k], jax.nn.relu),
            rtol=1e-5,
            atol=1e-6,
        )


def test_sites_hidden_in_shard_map_warn():
    mesh = jax.make_mesh((1,), ("d",))
    spec = jax.sharding.PartitionSpec()
    f = jax.shard_map(lambda x: jax.nn.relu(x), mesh=mesh, in_specs=spec, out_specs=spec)
    with pytest.warns(UserWarning, match="not captured"):
        sites = analysis.find_sites(lambda x: jax.nn.elu(f(x)), X)
    assert [s.name for s in sites] == ["elu_0"]


def test_no_warning_for_plain_models():
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        analysis.find_sites(_control_flow, X)
