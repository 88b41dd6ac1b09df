"""Tests of relujax.remedies: ReDo recycling for parameter pytrees and NNX models."""

import itertools

import chex
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from flax import nnx

import relujax
from relujax import remedies

# --------------------------------------------------------------------------------------------
# helpers: a plain-pytree MLP and CNN with their forward passes


# Test data come from NumPy: every eager jax.random draw of a new shape is a compilation,
# and compilations dominate the run time of these tests.


def normal(seed, shape):
    return jnp.asarray(np.random.default_rng(seed).normal(size=shape), jnp.float32)


def mlp_params(seed, sizes=(3, 5, 4, 2), dead=None):
    """A plain-pytree MLP; ``dead`` maps a layer index to units given bias -50 (dead)."""
    rng = np.random.default_rng(seed)
    params = {}
    for i, (a, b) in enumerate(itertools.pairwise(sizes)):
        bias = 0.1 * rng.normal(size=b)
        bias[list((dead or {}).get(i, []))] = -50.0
        params[f"l{i}"] = {
            "kernel": jnp.asarray(rng.normal(size=(a, b)), jnp.float32),
            "bias": jnp.asarray(bias, jnp.float32),
        }
    return params


def mlp_apply(params, x):
    n = len(params)
    for i in range(n - 1):
        x = jax.nn.relu(x @ params[f"l{i}"]["kernel"] + params[f"l{i}"]["bias"][None])
    return x @ params[f"l{n - 1}"]["kernel"] + params[f"l{n - 1}"]["bias"][None]


MLP_LAYOUT = remedies.sequential(["l0", "l1", "l2"])


def rkey(seed):
    """A PRNG key of the "rbg" implementation: recycling programs (which draw fresh weights)
    compile about 3x faster on CPU with it than with threefry (the default key type is tested
    by the doctests)."""
    return jax.random.key(seed, impl="rbg")


# Jitted once for the whole module: compilations dominate the run time of these tests.
mlp_fwd = jax.jit(mlp_apply)
mlp_stats = jax.jit(relujax.analysis.with_stats(mlp_apply))
X_MLP = normal(4, (16, 3))


def cnn_params(seed, c_in=2, c1=3, c2=4, spatial=(4, 4), n_out=5, conv1_bias=None):
    h, w = spatial
    b1 = jnp.zeros(c2) if conv1_bias is None else jnp.asarray(conv1_bias, jnp.float32)
    return {
        "conv0": {"kernel": normal(seed, (3, 3, c_in, c1)), "bias": jnp.zeros(c1)},
        "conv1": {"kernel": normal(seed + 1, (3, 3, c1, c2)), "bias": b1},
        "dense": {"kernel": normal(seed + 2, (h * w * c2, n_out)), "bias": jnp.zeros(n_out)},
    }


def conv(x, p):
    y = jax.lax.conv_general_dilated(
        x, p["kernel"], (1, 1), "SAME", dimension_numbers=("NHWC", "HWIO", "NHWC")
    )
    return y + p["bias"][None, None, None]


def cnn_apply(params, x, *, channels_first=False):
    h = jax.nn.relu(conv(x, params["conv0"]))
    h = jax.nn.relu(conv(h, params["conv1"]))
    if channels_first:
        h = jnp.transpose(h, (0, 3, 1, 2))
    h = h.reshape(h.shape[0], -1)
    return h @ params["dense"]["kernel"] + params["dense"]["bias"][None]


cnn_fwd = jax.jit(cnn_apply, static_argnames="channels_first")
X_CNN = normal(2, (3, 4, 4, 2))
CNN_LAYOUTS = {
    f: remedies.sequential(["conv0", "conv1", "dense"], flatten=f) for f in remedies.FLATTEN_ORDERS
}


def zero_outgoing(params, layout, masks):
    """Reference: the network with the masked units' outgoing rows zeroed, nothing else."""
    leaves, treedef = jax.tree.flatten(params)
    paths = [
        tuple(str(getattr(k, "key", getattr(k, "idx", k))) for k in p)
        for p, _ in jax.tree_util.tree_flatten_with_path(params)[0]
    ]
    index = {p: i for i, p in enumerate(paths)}
    leaves = [np.array(x) for x in leaves]
    for layer, mask in zip(layout.layers, masks, strict=True):
        for path in layer.outgoing:
            w = leaves[index[path]]
            units = mask.shape[0]
            for row in range(w.shape[-2]):
                unit = (
                    row % units
                    if layer.flatten == "channels_last"
                    else row // (w.shape[-2] // units)
                )
                if mask[unit]:
                    w[..., row, :] = 0.0
    return jax.tree.unflatten(treedef, [jnp.asarray(x) for x in leaves])


MASKS = (jnp.array([True, False, True, False, False]), jnp.array([False, False, False, True]))


# --------------------------------------------------------------------------------------------
# recycle on a plain MLP pytree with an Adam state


def _adam_state(params, opt):
    """``opt``'s state with moments non-zero everywhere and every count 7."""
    state = opt.init(params)
    leaves = jax.tree.leaves(params)
    seeds = iter(range(100, 100 + 2 * len(leaves)))
    mu, nu = (
        jax.tree.map(lambda a: 1.0 + jnp.abs(normal(next(seeds), a.shape)), params)
        for _ in range(2)
    )
    count = jax.tree.map(lambda c: jnp.full_like(c, 7), state[0].count)
    return (state[0]._replace(count=count, mu=mu, nu=nu), *state[1:])


@pytest.fixture(scope="module")
def trained_mlp():
    """MLP parameters and a per-weight-count Adam state, moments non-zero everywhere."""
    params = mlp_params(0)
    return params, _adam_state(params, remedies.adam(1e-2)), X_MLP


@pytest.mark.parametrize("adam_reset", ["per_param", "moments", "moments_global"])
def test_recycle_incoming_outgoing_and_moments(trained_mlp, adam_reset):
    params, state, _ = trained_mlp
    if adam_reset == "moments_global":  # plain optax.adam: one global count, kept
        state, adam_reset = _adam_state(params, optax.adam(1e-2)), "moments"
    key = rkey(7)
    out = remedies.recycle(
        params, MASKS, key, layout=MLP_LAYOUT, opt_state=state, adam_reset=adam_reset
    )
    new, new_state = out.params, out.opt_state
    # Fresh incoming weights: the He-normal draw of the layer's key, in the recycled columns.
    keys = jax.random.split(key, 2)
    # Rows of l1's kernel that are outgoing weights of recycled l0 units are zero (below).
    live_rows = (np.arange(3), np.flatnonzero(~np.asarray(MASKS[0])))
    for layer_idx, (name, mask) in enumerate(zip(["l0", "l1"], MASKS, strict=True)):
        w = params[name]["kernel"]
        fresh = MLP_LAYOUT.layers[layer_idx].initializer(keys[layer_idx], w.shape, w.dtype)
        rows = live_rows[layer_idx]
        cols = np.flatnonzero(mask)
        keep = np.flatnonzero(~np.asarray(mask))
        chex.assert_trees_all_equal(new[name]["kernel"][rows][:, cols], fresh[rows][:, cols])
        assert not np.any(new[name]["kernel"][rows][:, cols] == w[rows][:, cols])
        chex.assert_trees_all_equal(new[name]["kernel"][rows][:, keep], w[rows][:, keep])
        chex.assert_trees_all_equal(new[name]["bias"][cols], jnp.zeros(len(cols)))
        chex.assert_trees_all_equal(new[name]["bias"][keep], params[name]["bias"][keep])
    # Zero outgoing weights (rows of the next kernel); the other rows of l1 are l1's own
    # (incoming) business: recycled columns fresh, the rest untouched.
    chex.assert_trees_all_equal(new["l1"]["kernel"][np.array([0, 2])], jnp.zeros((2, 4)))
    chex.assert_trees_all_equal(new["l2"]["kernel"][3], jnp.zeros(2))
    untouched_rows = np.array([0, 1, 2])
    chex.assert_trees_all_equal(
        new["l2"]["kernel"][untouched_rows], params["l2"]["kernel"][untouched_rows]
    )
    chex.assert_trees_all_equal(new["l2"]["bias"], params["l2"]["bias"])
    # Adam moments: zero exactly on the touched entries, bit-identical elsewhere.
    adam = new_state[0]
    touched = {
        "l0": {"kernel": np.broadcast_to(np.asarray(MASKS[0]), (3, 5)), "bias": MASKS[0]},
        "l1": {
            "kernel": np.asarray(MASKS[1])[None, :] | np.asarray(MASKS[0])[:, None],
            "bias": MASKS[1],
        },
        "l2": {
            "kernel": np.broadcast_to(np.asarray(MASKS[1])[:, None], (4, 2)),
            "bias": np.zeros(2, bool),
        },
    }
    reset = [(adam.mu, state[0].mu), (adam.nu, state[0].nu)]
    if adam_reset == "per_param":  # the per-weight step counts restart too
        reset.append((adam.count, state[0].count))
    else:
        chex.assert_trees_all_equal(adam.count, state[0].count)
    for moment_new, moment_old in reset:
        for name in touched:
            for leaf in ("kernel", "bias"):
                t = np.asarray(touched[name][leaf])
                got, old = np.asarray(moment_new[name][leaf]), np.asarray(moment_old[name][leaf])
                assert np.all(got[t] == 0)
                np.testing.assert_array_equal(got[~t], old[~t])
    chex.assert_trees_all_equal(out.masks, MASKS)


def test_recycle_no_mask_is_identity(trained_mlp):
    params, state, _ = trained_mlp
    masks = (jnp.zeros(5, bool), jnp.zeros(4, bool))
    out = remedies.recycle(params, masks, rkey(0), layout=MLP_LAYOUT, opt_state=state)
    chex.assert_trees_all_equal(out.params, params)
    chex.assert_trees_all_equal(out.opt_state, state)


def test_output_unchanged_when_dead_units_recycled(trained_mlp):
    _, state, _ = trained_mlp
    params = mlp_params(3, dead={0: [1, 4], 1: [2]})
    x = X_MLP
    _, stats = mlp_stats(params, x)
    out = remedies.redo(params, stats, rkey(5), layout=MLP_LAYOUT, tau=0.0, opt_state=state)
    chex.assert_trees_all_equal(out.masks[0], jnp.array([False, True, False, False, True]))
    chex.assert_trees_all_equal(out.masks[1], jnp.array([False, False, True, False]))
    chex.assert_trees_all_equal(mlp_fwd(out.params, x), mlp_fwd(params, x))
    # The recycled units live again: fresh incoming weights, bias 0, so they fire.
    _, after = mlp_stats(out.params, x)
    assert not bool(after["relu_0"].dead[1]) or not bool(after["relu_0"].dead[4])


def test_output_equals_outgoing_zeroed_network(trained_mlp):
    """For any masks, new incoming weights never reach the output."""
    params, state, x = trained_mlp
    out = remedies.recycle(params, MASKS, rkey(9), layout=MLP_LAYOUT, opt_state=state)
    expected = mlp_fwd(zero_outgoing(params, MLP_LAYOUT, MASKS), x)
    chex.assert_trees_all_close(mlp_fwd(out.params, x), expected, rtol=1e-6, atol=1e-6)


def test_when_false_and_tau(trained_mlp):
    _, state, _ = trained_mlp
    params = mlp_params(3, dead={0: [0]})
    _, stats = mlp_stats(params, X_MLP)
    out = remedies.redo(params, stats, rkey(0), layout=MLP_LAYOUT, when=False, opt_state=state)
    chex.assert_trees_all_equal(out.params, params)
    assert not any(bool(m.any()) for m in out.masks)
    # tau = 1 recycles every unit at or below the layer mean: at least one, never all.
    out = remedies.redo(params, stats, rkey(0), layout=MLP_LAYOUT, tau=1.0, opt_state=state)
    for m in out.masks:
        assert 0 < int(m.sum()) < m.shape[0]


# --------------------------------------------------------------------------------------------
# conv -> flatten -> dense


@pytest.mark.parametrize("flatten", ["channels_last", "channels_first"])
def test_cnn_flatten_rows(flatten):
    params = cnn_params(0)
    layout = CNN_LAYOUTS[flatten]
    masks = (jnp.array([False, True, False]), jnp.array([True, False, False, True]))
    out = remedies.recycle(params, masks, rkey(1), layout=layout)
    dense = np.asarray(out.params["dense"]["kernel"])  # rows = 16 positions x 4 channels
    rows = np.arange(64)
    unit = rows % 4 if flatten == "channels_last" else rows // 16
    dead_rows = np.isin(unit, [0, 3])
    assert np.all(dense[dead_rows] == 0.0)
    np.testing.assert_array_equal(
        dense[~dead_rows], np.asarray(params["dense"]["kernel"])[~dead_rows]
    )
    # conv1's kernel: input channel 1 (outgoing of conv0 unit 1) zeroed, output channels
    # 0 and 3 (incoming) fresh, the rest untouched.
    k1, k1_old = np.asarray(out.params["conv1"]["kernel"]), np.asarray(params["conv1"]["kernel"])
    assert np.all(k1[:, :, 1, :] == 0.0)
    np.testing.assert_array_equal(k1[:, :, [0, 2]][..., [1, 2]], k1_old[:, :, [0, 2]][..., [1, 2]])
    assert not np.any(k1[:, :, [0, 2]][..., [0, 3]] == k1_old[:, :, [0, 2]][..., [0, 3]])
    # The network output equals that of the network with the outgoing rows zeroed.
    cf = flatten == "channels_first"
    expected = cnn_fwd(zero_outgoing(params, layout, masks), X_CNN, channels_first=cf)
    chex.assert_trees_all_close(
        cnn_fwd(out.params, X_CNN, channels_first=cf), expected, rtol=1e-5, atol=1e-5
    )


def test_cnn_dead_channels_output_unchanged():
    params = cnn_params(0, conv1_bias=[0.0, -1e3, 0.0, -1e3])  # channels 1 and 3 dead
    x = X_CNN
    layout = CNN_LAYOUTS["channels_last"]
    _, stats = jax.jit(relujax.analysis.with_stats(cnn_apply))(params, x)
    masks = remedies.dormant_masks(stats, layout, tau=0.0)
    chex.assert_trees_all_equal(masks[1], jnp.array([False, True, False, True]))
    out = remedies.recycle(params, masks, rkey(3), layout=layout)
    chex.assert_trees_all_equal(cnn_fwd(out.params, x), cnn_fwd(params, x))


# --------------------------------------------------------------------------------------------
# jit, vmap, grad


def test_jit_one_compilation_for_any_masks(trained_mlp):
    params, state, _ = trained_mlp
    recycle_jit = remedies._recycle._recycle_jit
    remedies.recycle(params, MASKS, rkey(1), layout=MLP_LAYOUT, opt_state=state)
    size = recycle_jit._cache_size()
    eager = remedies.recycle(params, MASKS, rkey(1), layout=MLP_LAYOUT, opt_state=state)
    other = (jnp.ones(5, bool), jnp.zeros(4, bool))
    remedies.recycle(params, other, rkey(2), layout=MLP_LAYOUT, opt_state=state)
    # Layouts are static values: equal (and equally hashed) when built from the same names,
    # so the program compiled for one serves the other.
    again = remedies.sequential(["l0", "l1", "l2"])
    assert again == MLP_LAYOUT and hash(again) == hash(MLP_LAYOUT)
    remedies.recycle(params, other, rkey(3), layout=again, opt_state=state)
    assert recycle_jit._cache_size() == size  # new masks, keys and layout object: no compile
    # Inside a user's jit it inlines and gives the same numbers.
    jitted = jax.jit(lambda p, s, m, k: remedies.recycle(p, m, k, layout=MLP_LAYOUT, opt_state=s))(
        params, state, MASKS, rkey(1)
    )
    chex.assert_trees_all_close(jitted, eager)


def test_vmap_over_models_equals_loop(trained_mlp):
    _, state, _ = trained_mlp
    models = [mlp_params(i) for i in range(3)]
    stacked = jax.tree.map(lambda *a: jnp.stack(a), *models)
    states = jax.tree.map(lambda *a: jnp.stack(a), *([state] * 3))
    rng = np.random.default_rng(0)
    masks = (jnp.asarray(rng.random((3, 5)) < 0.5), jnp.asarray(rng.random((3, 4)) < 0.5))
    key = rkey(1)  # shared by the models: the same fresh draw for each, as in the loop
    batched = jax.jit(
        jax.vmap(
            lambda p, s, m: remedies.recycle(p, m, key, layout=MLP_LAYOUT, opt_state=s),
        )
    )(stacked, states, masks)
    for i in range(3):
        one = remedies.recycle(
            models[i], (masks[0][i], masks[1][i]), key, layout=MLP_LAYOUT, opt_state=state
        )
        chex.assert_trees_all_close(jax.tree.map(lambda a, i=i: a[i], batched), one)


def test_grad_is_the_keep_mask(trained_mlp):
    params, _, _ = trained_mlp

    def total(p):
        new = remedies.recycle(p, MASKS, rkey(0), layout=MLP_LAYOUT).params
        return sum(jnp.sum(leaf) for leaf in jax.tree.leaves(new))

    g = jax.grad(total)(params)
    keep0 = (~np.asarray(MASKS[0])).astype(np.float32)
    chex.assert_trees_all_equal(g["l0"]["kernel"], jnp.broadcast_to(keep0, (3, 5)))
    chex.assert_trees_all_equal(g["l0"]["bias"], jnp.asarray(keep0))
    chex.assert_trees_all_equal(g["l2"]["bias"], jnp.ones(2))


# --------------------------------------------------------------------------------------------
# dormant scores


def test_dormant_units_hand_computed():
    abs_mean = jnp.array([0.0, 0.1, 0.9, 3.0])  # mean 1.0
    chex.assert_trees_all_equal(
        remedies.dormant_units(abs_mean, tau=0.0), jnp.array([True, False, False, False])
    )
    chex.assert_trees_all_equal(
        remedies.dormant_units(abs_mean, tau=0.1), jnp.array([True, True, False, False])
    )
    chex.assert_trees_all_equal(remedies.dormant_units(jnp.zeros(3), tau=0.0), jnp.ones(3, bool))
    # NaN (no samples) is never dormant and stays out of the mean (of [1, 3] = 2).
    chex.assert_trees_all_equal(
        remedies.dormant_units(jnp.array([jnp.nan, 1.0, 3.0]), tau=0.5),
        jnp.array([False, True, False]),
    )
    # Leading axes: K models at once, under jit and vmap.
    batch = jnp.stack([abs_mean, abs_mean[::-1]])
    expected = jnp.array([[True, True, False, False], [False, False, True, True]])
    chex.assert_trees_all_equal(
        jax.jit(lambda a: remedies.dormant_units(a, tau=0.1))(batch), expected
    )
    chex.assert_trees_all_equal(
        jax.vmap(lambda a: remedies.dormant_units(a, tau=0.1))(batch), expected
    )
    # tau traced: K configurations with their own threshold (a sweep's hyperparameter).
    per_config = jax.jit(jax.vmap(lambda a, t: remedies.dormant_units(a, tau=t)))(
        batch, jnp.array([0.0, 0.1])
    )
    chex.assert_trees_all_equal(
        per_config, jnp.array([[True, False, False, False], [False, False, True, True]])
    )


def test_dormant_units_from_unit_stats():
    h = jnp.array([[0.0, 2.8, 0.1], [0.0, 3.0, 0.1]])  # E|h| = [0, 2.9, 0.1], mean 1
    stats = relujax.analysis.UnitStats.from_batch(h, h)
    chex.assert_trees_all_equal(
        remedies.dormant_units(stats, tau=0.2), jnp.array([True, False, True])
    )
    chex.assert_trees_all_equal(
        remedies.dormant_units(stats, tau=0.05), jnp.array([True, False, False])
    )


def test_dormant_units_match_diagnose():
    """The jittable scores agree with relujax.analysis.diagnose's (host-side) ones."""
    params = mlp_params(5, dead={0: [2]})
    _, stats = mlp_stats(params, X_MLP)
    report = relujax.analysis.diagnose(stats, taus=(0.0, 0.1, 0.5))
    for tau in (0.0, 0.1, 0.5):
        for name, site in stats.items():
            np.testing.assert_array_equal(
                remedies.dormant_units(site, tau=tau), report.sites[name].dormant[tau]
            )
    assert bool(remedies.dormant_units(stats["relu_0"], tau=0.0)[2])


# --------------------------------------------------------------------------------------------
# NNX models and nnx.Optimizer


def _nnx_setup(model):
    """A per-weight-count Adam nnx.Optimizer whose moments are non-zero everywhere."""
    opt = nnx.Optimizer(model, remedies.adam(1e-2), wrt=nnx.Param)
    state = nnx.as_pure(opt.opt_state)
    adam = state[0]
    ones = jax.tree.map(lambda a: jnp.full(a.shape, 0.5, a.dtype), adam.mu)
    nnx.update(opt.opt_state, nnx.state((adam._replace(mu=ones, nu=ones), *state[1:])))
    return opt


@pytest.mark.parametrize("kind", ["mlp", "cnn"])
def test_recycle_module_nnx(kind):
    rngs = nnx.Rngs(0)
    if kind == "mlp":
        model = relujax.nn.MLP(3, [5, 4], 2, rngs=rngs)
        x = X_MLP
    else:
        model = relujax.nn.CNN(2, [5], 2, hidden=[4], rngs=rngs)
        x = X_CNN
    opt = _nnx_setup(model)
    forward = nnx.jit(lambda m, x: m(x))
    layout = remedies.layout_of(model)
    before = nnx.clone(nnx.as_pure(nnx.state(model, nnx.Param)))
    opt_before = nnx.clone(nnx.as_pure(opt.opt_state))
    out_before = forward(model, x)
    pure = remedies.recycle(before, MASKS, rkey(3), layout=layout, opt_state=opt_before)
    if kind == "mlp":
        jitted = nnx.jit(lambda m, o, ms, k: remedies.recycle_module(m, ms, k, optimizer=o))
        got = jitted(model, opt, MASKS, rkey(3))
    else:  # eagerly (the same compiled program as `pure`)
        got = remedies.recycle_module(model, MASKS, rkey(3), optimizer=opt)
    chex.assert_trees_all_equal(got, MASKS)
    chex.assert_trees_all_close(nnx.as_pure(nnx.state(model, nnx.Param)), pure.params)
    chex.assert_trees_all_close(nnx.as_pure(opt.opt_state), pure.opt_state)
    assert np.all(np.asarray(model.layers[1].kernel[...])[..., [0, 2], :] == 0.0)
    mu = np.asarray(opt.opt_state[0].mu["layers"][1]["kernel"][...])
    assert np.all(mu[..., [0, 2], :] == 0.0) and np.all(
        mu[..., [1, 3, 4], :][..., [0, 1, 2]] == 0.5
    )
    assert np.all(np.asarray(model.layers[0].bias[...])[[0, 2]] == 0.0)
    # The output moved only by the old contribution of the recycled units.
    zeroed = nnx.merge(nnx.graphdef(model), zero_outgoing(before, layout, MASKS))
    chex.assert_trees_all_close(forward(model, x), forward(zeroed, x), rtol=1e-5, atol=1e-5)
    assert not np.allclose(forward(model, x), out_before)


def test_layout_paths_name_nnx_variables_too():
    """A layout works on nnx.state(model) (Variables, flattened with a .value attribute) as
    on its pure form, with the same result."""
    model = relujax.nn.MLP(3, [5, 4], 2, rngs=nnx.Rngs(0))
    layout = remedies.layout_of(model)
    state = nnx.state(model, nnx.Param)
    out = remedies.recycle(state, MASKS, rkey(2), layout=layout)
    pure = remedies.recycle(nnx.as_pure(state), MASKS, rkey(2), layout=layout)
    chex.assert_trees_all_equal(jax.tree.leaves(out.params), jax.tree.leaves(pure.params))


def test_redo_module_revives_dead_units():
    model = relujax.nn.MLP(3, [5, 4], 2, rngs=nnx.Rngs(0))
    model.layers[0].bias.set_value(jnp.array([-100.0, 0, 0, -100.0, 0]))
    opt = _nnx_setup(model)
    forward = nnx.jit(lambda m, x: m(x))
    out = forward(model, X_MLP)
    masks = remedies.redo_module(model, X_MLP[None], rkey(1), tau=0.0, optimizer=opt)
    chex.assert_trees_all_equal(masks[0], jnp.array([1, 0, 0, 1, 0], bool))
    chex.assert_trees_all_equal(forward(model, X_MLP), out)  # dead units: exactly the same
    assert np.all(
        np.asarray(opt.opt_state[0].nu["layers"][0]["bias"][...]) == [0, 0.5, 0.5, 0, 0.5]
    )
    stats = relujax.analysis.collect(model, X_MLP[None])
    assert not bool(stats["relu_0"].dead[0] & stats["relu_0"].dead[3])


def test_paired_initializer_sets_bias_from_the_draw():
    params = mlp_params(0)
    layout = remedies.sequential(["l0", "l1", "l2"], kernel_init="rai")
    masks = (jnp.ones(5, bool), jnp.zeros(4, bool))
    out = remedies.recycle(params, masks, rkey(1), layout=layout)
    k, b = relujax.init.rai().pair(jax.random.split(rkey(1), 2)[0], (3, 5))
    # Equal up to float32 rounding (the draw is fused into the recycling program).
    chex.assert_trees_all_close(out.params["l0"]["kernel"], k, rtol=1e-6)
    chex.assert_trees_all_close(out.params["l0"]["bias"], b, rtol=1e-6)
    chex.assert_trees_all_equal(out.params["l1"]["bias"], params["l1"]["bias"])
    chex.assert_trees_all_equal(out.params["l2"], params["l2"])


def test_linen_params():
    model = relujax.linen.MLP(3, [5, 4], 2)
    variables = model.init(jax.random.key(0), jnp.ones((1, 3)))
    layout = remedies.sequential(["params/layers_0", "params/layers_1", "params/layers_2"])
    out = remedies.recycle(variables, MASKS, rkey(1), layout=layout)
    x = X_MLP
    chex.assert_trees_all_close(
        model.apply(out.params, x),
        model.apply(zero_outgoing(variables, layout, MASKS), x),
        rtol=1e-6,
        atol=1e-6,
    )


# --------------------------------------------------------------------------------------------
# bad input


def test_errors():
    params = mlp_params(0)
    key = rkey(0)
    with pytest.raises(ValueError, match=r"masks\[1\] has shape \(5,\); layer 1 has 4 units"):
        remedies.recycle(params, (MASKS[0], MASKS[0]), key, layout=MLP_LAYOUT)
    with pytest.raises(ValueError, match="masks has 1 entries"):
        remedies.recycle(params, MASKS[:1], key, layout=MLP_LAYOUT)
    with pytest.raises(ValueError, match="'l9/kernel' is not a leaf"):
        remedies.recycle(params, MASKS, key, layout=remedies.sequential(["l0", "l9"]))
    bad = remedies.Layout((remedies.Layer("l0/kernel", "l0/bias", ["l2/kernel"]),))
    with pytest.raises(ValueError, match="4 rows on axis -2, not a multiple of the layer's 5"):
        remedies.recycle(params, MASKS[:1], key, layout=bad)
    with pytest.raises(ValueError, match="flatten must be one of"):
        remedies.sequential(["a", "b"], flatten="nchw")
    with pytest.raises(ValueError, match="at least two layers"):
        remedies.sequential(["a"])
    with pytest.raises(ValueError, match=r"(?i)unknown initializer"):
        remedies.sequential(["a", "b"], kernel_init="he_norml")
    with pytest.raises(ValueError, match="tau must be >= 0"):
        remedies.dormant_units(jnp.ones(2), tau=-0.1)
    _, stats = mlp_stats(params, X_MLP)
    with pytest.raises(ValueError, match=r"2 sites .* but the layout has 1 layers"):
        remedies.dormant_masks(stats, remedies.sequential(["l0", "l1"]), tau=0.1)
    with pytest.raises(TypeError, match=r"layout_of needs a relujax\.nn MLP or CNN"):
        remedies.layout_of(nnx.Linear(2, 2, rngs=nnx.Rngs(0)))
