"""Plasticity remedies against their definitions on hand-sized cases: shrink and perturb, L2
toward the initial parameters, layer reset, continual backprop, and the intervention form."""

import itertools

import chex
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

import relujax
from relujax import remedies
from relujax.remedies import interventions


def mlp(seed, sizes=(2, 4, 1)):
    rng = np.random.default_rng(seed)
    return {
        f"l{i}": {
            "kernel": jnp.asarray(rng.normal(size=(a, b)), jnp.float32),
            "bias": jnp.asarray(0.1 * rng.normal(size=b), jnp.float32),
        }
        for i, (a, b) in enumerate(itertools.pairwise(sizes))
    }


def forward(params, x):
    h = jax.nn.relu(x @ params["l0"]["kernel"] + params["l0"]["bias"][None])
    return h @ params["l1"]["kernel"] + params["l1"]["bias"][None], h


PARAMS = mlp(0)
LAYOUT = remedies.sequential(["l0", "l1"])
X = jnp.asarray(np.random.default_rng(1).normal(size=(8, 2)), jnp.float32)


def with_counts(state, value):
    """An Adam state (first in a chain) with every per-weight count set to ``value``."""
    inner = state[0]
    count = jax.tree.map(lambda c: jnp.full_like(c, value), inner.count)
    return (inner._replace(count=count), *state[1:])


# --------------------------------------------------------------------------------------------
# due


def test_due_table():
    steps = jnp.arange(8)
    chex.assert_trees_all_equal(remedies.due(steps, 3), jnp.array([0, 0, 0, 1, 0, 0, 1, 0], bool))
    chex.assert_trees_all_equal(remedies.due(steps, 0), jnp.zeros(8, bool))
    chex.assert_trees_all_equal(remedies.due(4, jnp.array([1, 2, 3])), jnp.array([1, 1, 0], bool))
    # A float period (a sweep's per-configuration hyperparameter), traced.
    chex.assert_trees_all_equal(
        jax.jit(remedies.due)(steps, jnp.float32(3.0)), remedies.due(steps, 3)
    )


# --------------------------------------------------------------------------------------------
# shrink and perturb


def test_shrink_perturb_definition():
    key = jax.random.key(3)
    new = remedies.shrink_perturb(PARAMS, key, shrink=0.8, sigma=0.01)
    # Reference: leaf i takes sigma * normal(split(key, n)[i]) after shrinking.
    leaves, treedef = jax.tree.flatten(PARAMS)
    keys = jax.random.split(key, len(leaves))
    expected = jax.tree.unflatten(
        treedef,
        [
            0.8 * x + 0.01 * jax.random.normal(k, x.shape, x.dtype)
            for k, x in zip(keys, leaves, strict=True)
        ],
    )
    chex.assert_trees_all_close(new, expected, rtol=1e-6, atol=1e-7)
    # sigma = 0: exactly a shrink; a noise function: theta * lambda + sigma * noise(key).
    shrunk = remedies.shrink_perturb(PARAMS, key, shrink=0.5, sigma=0.0)
    chex.assert_trees_all_close(shrunk, jax.tree.map(lambda x: 0.5 * x, PARAMS))
    fresh = remedies.shrink_perturb(
        PARAMS, key, shrink=0.5, sigma=0.5, noise=lambda k: jax.tree.map(jnp.ones_like, PARAMS)
    )
    chex.assert_trees_all_close(fresh, jax.tree.map(lambda x: 0.5 * x + 0.5, PARAMS))
    same = remedies.shrink_perturb(PARAMS, key, shrink=0.5, sigma=1.0, when=False)
    chex.assert_trees_all_equal(same, PARAMS)


def test_shrink_perturb_grad_is_the_shrink():
    g = jax.grad(
        lambda p: sum(
            jnp.sum(x)
            for x in jax.tree.leaves(
                remedies.shrink_perturb(p, jax.random.key(0), shrink=0.7, sigma=0.1)
            )
        )
    )(PARAMS)
    chex.assert_trees_all_close(g, jax.tree.map(lambda x: jnp.full_like(x, 0.7), PARAMS))


def test_shrink_perturb_intervention_in_scan_vmapped_configs():
    """Two configurations (different lambda and period) in one vmapped scan of 7 steps:
    lambda^(number of firings) * theta, with sigma = 0."""

    def run(shrink, every):
        sp = interventions.get("shrink_perturb", shrink=shrink, sigma=0.0, every=every)

        def body(params, step):
            params, _, _ = sp.update((), params, None, jax.random.key(0), step)
            return params, None

        return jax.lax.scan(body, PARAMS, jnp.arange(1, 8))[0]

    out = jax.jit(jax.vmap(run))(jnp.array([0.5, 0.9]), jnp.array([3, 2]))
    for i, factor in enumerate([0.5**2, 0.9**3]):  # steps 3, 6 / steps 2, 4, 6
        chex.assert_trees_all_close(
            jax.tree.map(lambda a, i=i: a[i], out),
            jax.tree.map(lambda x, f=factor: f * x, PARAMS),
            rtol=1e-6,
        )


# --------------------------------------------------------------------------------------------
# L2 toward the initial parameters


def test_l2_init_definition_and_sgd_chain():
    lam, lr = 0.3, 0.1
    opt = optax.chain(remedies.add_decayed_weights_to_init(lam), optax.sgd(lr))
    state = opt.init(PARAMS)
    grads = jax.tree.map(jnp.ones_like, PARAMS)
    p1 = optax.apply_updates(PARAMS, opt.update(grads, state, PARAMS)[0])
    # theta_1 = theta_0 - lr * g (no pull at the anchor); theta_2 adds lam * (theta_1 - theta_0).
    chex.assert_trees_all_close(p1, jax.tree.map(lambda x: x - lr, PARAMS), rtol=1e-6)
    _, state = opt.update(grads, state, PARAMS)
    u2, _ = opt.update(grads, state, p1)
    chex.assert_trees_all_close(
        u2, jax.tree.map(lambda a, b: -lr * (1.0 + lam * (a - b)), p1, PARAMS), rtol=1e-6
    )
    with pytest.raises(ValueError, match="update needs params"):
        opt.update(grads, state)
    with pytest.raises(ValueError, match="weight_decay must be >= 0"):
        remedies.add_decayed_weights_to_init(-1.0)


def test_l2_init_traced_strength_vmaps():
    lams = jnp.array([0.0, 0.5])
    moved = jax.tree.map(lambda x: x + 2.0, PARAMS)

    def pull(lam):
        reg = remedies.add_decayed_weights_to_init(lam)
        return reg.update(jax.tree.map(jnp.zeros_like, PARAMS), reg.init(PARAMS), moved)[0]

    out = jax.jit(jax.vmap(pull))(lams)
    chex.assert_trees_all_close(
        jax.tree.map(lambda a: a[1], out), jax.tree.map(lambda x: jnp.full_like(x, 1.0), PARAMS)
    )
    chex.assert_trees_all_close(
        jax.tree.map(lambda a: a[0], out), jax.tree.map(jnp.zeros_like, PARAMS)
    )


def test_recycling_moves_the_l2_anchor():
    opt = optax.chain(remedies.add_decayed_weights_to_init(0.1), remedies.adam(1e-2))
    state = opt.init(PARAMS)
    mask = jnp.array([True, False, False, True])
    out = remedies.recycle(PARAMS, [mask], jax.random.key(0), layout=LAYOUT, opt_state=state)
    anchor = out.opt_state[0].init_params
    m = np.asarray(mask)
    np.testing.assert_array_equal(anchor["l0"]["kernel"][:, m], out.params["l0"]["kernel"][:, m])
    np.testing.assert_array_equal(anchor["l0"]["kernel"][:, ~m], PARAMS["l0"]["kernel"][:, ~m])
    np.testing.assert_array_equal(anchor["l1"]["kernel"][m], np.zeros((2, 1)))
    chex.assert_trees_all_equal(anchor["l1"]["bias"], PARAMS["l1"]["bias"])


# --------------------------------------------------------------------------------------------
# layer reset


def fresh_params(key):
    del key
    return jax.tree.map(lambda x: jnp.full_like(x, 7.0), PARAMS)


@pytest.mark.parametrize("when", [True, False])
def test_reset_layers_definition(when):
    opt = optax.chain(remedies.add_decayed_weights_to_init(0.1), remedies.adam(1e-2))
    l2, (adam, *rest) = opt.init(PARAMS)
    adam = adam._replace(count=jax.tree.map(lambda c: jnp.full_like(c, 5), adam.count))
    state = (l2, (adam, *rest))
    new, new_state = remedies.reset_layers(
        PARAMS, jax.random.key(0), init=fresh_params, layers=["l1"], opt_state=state, when=when
    )
    chex.assert_trees_all_equal(new["l0"], PARAMS["l0"])
    expected_l1 = fresh_params(None)["l1"] if when else PARAMS["l1"]
    chex.assert_trees_all_equal(new["l1"], expected_l1)
    adam, anchor = new_state[1][0], new_state[0].init_params
    chex.assert_trees_all_equal(
        adam.count["l0"], jax.tree.map(lambda x: jnp.full(x.shape, 5), PARAMS["l0"])
    )
    chex.assert_trees_all_equal(
        adam.count["l1"], jax.tree.map(lambda x: jnp.full(x.shape, 0 if when else 5), PARAMS["l1"])
    )
    chex.assert_trees_all_equal(anchor["l1"], expected_l1)
    chex.assert_trees_all_equal(anchor["l0"], PARAMS["l0"])


def test_reset_layers_plain_adam_and_errors():
    state = optax.adam(1e-2).init(PARAMS)
    key = jax.random.key(0)
    with pytest.raises(ValueError, match="reset_layers: adam_reset='per_param' needs"):
        remedies.reset_layers(PARAMS, key, init=fresh_params, layers=["l1"], opt_state=state)
    _, kept = remedies.reset_layers(
        PARAMS, key, init=fresh_params, layers=[("l1",)], opt_state=state, adam_reset="moments"
    )
    chex.assert_trees_all_equal(kept[0].count, state[0].count)
    with pytest.raises(ValueError, match="'l5', which holds no parameter"):
        remedies.reset_layers(PARAMS, key, init=fresh_params, layers=["l5"])
    with pytest.raises(TypeError, match="layers must be a non-empty sequence"):
        remedies.reset_layers(PARAMS, key, init=fresh_params, layers="l1")


# --------------------------------------------------------------------------------------------
# continual backprop


def cbp_reference(params, acts, *, rate, decay, maturity, utility):
    """Dohare et al.'s generate-and-test for a 1-hidden-layer MLP, in float64 NumPy.

    Returns per step the replaced units, and the final utility, mean, age, pending and the
    next layer's parameters (outgoing weights zeroed, bias compensated)."""
    w1 = np.array(params["l1"]["kernel"], np.float64)
    b1 = np.array(params["l1"]["bias"], np.float64)
    units = w1.shape[0]
    util, mean, age, pending = np.zeros(units), np.zeros(units), np.zeros(units, int), 0.0
    replaced = []
    for h in acts:
        h = np.asarray(h, np.float64)
        age += 1
        bc = 1 - decay**age
        mean = decay * mean + (1 - decay) * h.mean(0)
        mean_hat = mean / bc
        act = np.abs(h).mean(0) if utility == "contribution" else np.abs(h - mean_hat).mean(0)
        util = decay * util + (1 - decay) * act * np.abs(w1).sum(1)
        eligible = np.flatnonzero(age > maturity)
        pending += rate * len(eligible)
        n = int(np.floor(pending))
        pending -= n
        order = sorted(eligible, key=lambda i: (util[i] / bc[i], i))[:n]
        for r in order:
            b1 = b1 + mean_hat[r] * w1[r]
            w1[r] = 0.0
            util[r], mean[r], age[r] = 0.0, 0.0, 0
        replaced.append(sorted(order))
    return replaced, util, mean, age, pending, w1, b1


@pytest.mark.parametrize("utility", ["contribution", "mean_corrected"])
def test_continual_backprop_against_reference(utility):
    rng = np.random.default_rng(5)
    acts = [
        jnp.asarray(np.abs(rng.normal(size=(3, 4))) * [1, 2, 0.5, 3], jnp.float32) for _ in range(5)
    ]
    hp = {"rate": 0.35, "decay": 0.9, "maturity": 1, "utility": utility}
    opt = remedies.adam(1e-2)
    state = with_counts(opt.init(PARAMS), 5)
    cbp = remedies.continual_backprop_init(PARAMS, layout=LAYOUT)
    params, masks = PARAMS, []
    step = jax.jit(
        lambda p, a, k, c, s: remedies.continual_backprop(
            p,
            a,
            k,
            c,
            layout=LAYOUT,
            opt_state=s,
            replacement_rate=hp["rate"],
            decay=hp["decay"],
            maturity=hp["maturity"],
            utility=utility,
        )
    )
    for t, h in enumerate(acts):
        out = step(params, [h], jax.random.key(t), cbp, state)
        params, state, cbp = out.params, out.opt_state, out.state
        masks.append(np.flatnonzero(np.asarray(out.masks[0])).tolist())
    replaced, util, mean, age, pending, w1, b1 = cbp_reference(PARAMS, acts, **hp)
    assert masks == replaced and sum(map(len, replaced)) >= 3
    np.testing.assert_allclose(cbp.utility[0], util, rtol=1e-5, atol=1e-7)
    np.testing.assert_allclose(cbp.mean[0], mean, rtol=1e-5, atol=1e-7)
    np.testing.assert_array_equal(cbp.age[0], age)
    np.testing.assert_allclose(cbp.pending, [pending], rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(params["l1"]["kernel"], w1, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(params["l1"]["bias"], b1, rtol=1e-5, atol=1e-6)
    # Replaced units: fresh incoming weights, bias 0, Adam restarted (counts 0); others kept.
    ever = np.zeros(4, bool)
    ever[[u for step_units in replaced for u in step_units]] = True
    k0, k0_old = np.asarray(params["l0"]["kernel"]), np.asarray(PARAMS["l0"]["kernel"])
    assert np.all(k0[:, ever] != k0_old[:, ever])
    np.testing.assert_array_equal(k0[:, ~ever], k0_old[:, ~ever])
    np.testing.assert_array_equal(np.asarray(params["l0"]["bias"])[ever], 0.0)
    count = state[0].count
    np.testing.assert_array_equal(np.asarray(count["l0"]["kernel"])[:, ever], 0)
    np.testing.assert_array_equal(np.asarray(count["l0"]["kernel"])[:, ~ever], 5)
    np.testing.assert_array_equal(np.asarray(count["l1"]["kernel"])[ever], 0)
    np.testing.assert_array_equal(np.asarray(count["l1"]["bias"]), 5)


def test_continual_backprop_compensation_keeps_the_output():
    """A unit of constant activation c has mean-corrected utility 0; replacing it moves
    c * w_out into the next bias, so the network's output does not change."""
    params = jax.tree.map(jnp.asarray, PARAMS)
    params["l0"]["kernel"] = params["l0"]["kernel"].at[:, 2].set(0.0)
    params["l0"]["bias"] = params["l0"]["bias"].at[2].set(0.5)
    y, h = forward(params, X)
    cbp = remedies.continual_backprop_init(params, layout=LAYOUT)
    out = remedies.continual_backprop(
        params,
        [h],
        jax.random.key(0),
        cbp,
        layout=LAYOUT,
        replacement_rate=0.25,
        maturity=0,
        utility="mean_corrected",
    )
    chex.assert_trees_all_equal(out.masks[0], jnp.array([False, False, True, False]))
    chex.assert_trees_all_close(forward(out.params, X)[0], y, rtol=1e-5, atol=1e-6)


def test_continual_backprop_vmapped_rates_equal_loop_and_errors():
    h = jnp.abs(X[:, :1] * jnp.array([[1.0, 2.0, 0.5, 3.0]]))
    cbp = remedies.continual_backprop_init(PARAMS, layout=LAYOUT)

    def one(rate):
        return remedies.continual_backprop(
            PARAMS,
            [h],
            jax.random.key(0),
            cbp,
            layout=LAYOUT,
            replacement_rate=rate,
            maturity=0,
        )

    rates = jnp.array([0.0, 0.5])
    batched = jax.jit(jax.vmap(one))(rates)
    chex.assert_trees_all_equal(batched.masks[0].sum(axis=1), jnp.array([0, 2]))
    for i, rate in enumerate([0.0, 0.5]):
        chex.assert_trees_all_close(jax.tree.map(lambda a, i=i: a[i], batched), one(rate))
    stats = relujax.analysis.UnitStats.from_batch(h, h)
    with pytest.raises(TypeError, match="mean-corrected utility needs the activations"):
        remedies.continual_backprop(
            PARAMS, [stats], jax.random.key(0), cbp, layout=LAYOUT, utility="mean_corrected"
        )
    with pytest.raises(ValueError, match="decay must be in \\[0, 1\\)"):
        remedies.continual_backprop(PARAMS, [h], jax.random.key(0), cbp, layout=LAYOUT, decay=1.0)
    with pytest.raises(ValueError, match="utility must be one of"):
        remedies.continual_backprop(PARAMS, [h], jax.random.key(0), cbp, layout=LAYOUT, utility="u")
    with pytest.raises(ValueError, match="activations has 2 entries"):
        remedies.continual_backprop(PARAMS, [h, h], jax.random.key(0), cbp, layout=LAYOUT)


# --------------------------------------------------------------------------------------------
# the intervention form inside a compiled training loop


def train(intervention, steps=6):
    """A scanned Adam training loop of the MLP on a regression target, with the remedy after
    each update; returns the final parameters, optimizer state and remedy state."""
    opt = remedies.adam(3e-2)
    target = jnp.sin(X[:, :1])

    def loss(p):
        y, h = forward(p, X)
        return jnp.mean((y - target) ** 2), h

    def body(carry, step):
        params, opt_state, state = carry
        (_, h), g = jax.value_and_grad(loss, has_aux=True)(params)
        updates, opt_state = opt.update(g, opt_state, params)
        params = optax.apply_updates(params, updates)
        key = jax.random.fold_in(jax.random.key(1), step)
        params, opt_state, state = intervention.update(state, params, opt_state, key, step, [h])
        return (params, opt_state, state), None

    carry = (PARAMS, opt.init(PARAMS), intervention.init(PARAMS))
    return jax.jit(lambda c: jax.lax.scan(body, c, jnp.arange(1, steps + 1))[0])(carry)


def test_interventions_registry():
    assert interventions.names() == (
        "cbp",
        "continual_backprop",
        "layer_reset",
        "redo",
        "shrink_and_perturb",
        "shrink_perturb",
    )
    with pytest.raises(ValueError, match="unknown intervention 'redoo'"):
        interventions.get("redoo", layout=LAYOUT, every=2)
    assert interventions.get("CBP", layout=LAYOUT).name == "continual_backprop"


def test_interventions_train_in_a_scan():
    # ReDo with tau = 1 every 3 steps recycles at steps 3 and 6: the units at or below the mean.
    redo = interventions.get("redo", layout=LAYOUT, tau=1.0, every=3)
    params, opt_state, _ = train(redo)
    assert np.any(np.asarray(opt_state[0].count["l0"]["bias"]) < 6)  # some restarted Adam
    # Layer reset every 6 steps: the last layer is the fresh draw after the last step.
    reset = interventions.get("layer_reset", init=fresh_params, layers=["l1"], every=6)
    params, opt_state, _ = train(reset)
    chex.assert_trees_all_equal(params["l1"], fresh_params(None)["l1"])
    chex.assert_trees_all_equal(opt_state[0].count["l1"]["kernel"], jnp.zeros((4, 1), jnp.int32))
    # Continual backprop: ages count the steps of units never replaced.
    cbp = interventions.get("cbp", layout=LAYOUT, replacement_rate=0.2, maturity=2)
    _, _, state = train(cbp)
    assert int(state.age[0].max()) == 6 and int(state.age[0].min()) < 6


@pytest.mark.parametrize("flatten", ["channels_last", "channels_first"])
def test_continual_backprop_flattened_channels(flatten):
    """A layer of 3 channels at 2 positions, flattened into 6 rows of the next kernel: a
    channel's outgoing magnitude and bias compensation sum over its 2 rows."""
    rng = np.random.default_rng(2)
    params = {
        "a": {"kernel": jnp.asarray(rng.normal(size=(4, 3)), jnp.float32), "bias": jnp.zeros(3)},
        "b": {"kernel": jnp.asarray(rng.normal(size=(6, 2)), jnp.float32), "bias": jnp.zeros(2)},
    }
    layout = remedies.sequential(["a", "b"], flatten=flatten)
    h = jnp.asarray(np.abs(rng.normal(size=(5, 2, 3))) * [1.0, 0.1, 2.0], jnp.float32)
    state = remedies.continual_backprop_init(params, layout=layout)
    out = remedies.continual_backprop(
        params, [h], jax.random.key(0), state, layout=layout, replacement_rate=1 / 3, maturity=0
    )
    w = np.asarray(params["b"]["kernel"], np.float64)
    rows = [
        [f for f in range(6) if (f % 3 if flatten == "channels_last" else f // 2) == i]
        for i in range(3)
    ]
    magnitude = np.array([np.abs(w[r]).sum() for r in rows])
    hh = np.asarray(h, np.float64).reshape(-1, 3)
    utility = 0.01 * np.abs(hh).mean(0) * magnitude  # (1 - decay) * y after one step
    replaced = int(np.argmin(utility))
    chex.assert_trees_all_equal(out.masks[0], jnp.arange(3) == replaced)
    utility[replaced] = 0.0  # a replaced unit starts over
    np.testing.assert_allclose(out.state.utility[0], utility, rtol=1e-5)
    mean_hat = hh.mean(0)[replaced]  # bias-corrected after one step: the batch mean itself
    np.testing.assert_allclose(
        out.params["b"]["bias"], mean_hat * w[rows[replaced]].sum(0), rtol=1e-5, atol=1e-6
    )
    assert np.all(np.asarray(out.params["b"]["kernel"])[rows[replaced]] == 0.0)
