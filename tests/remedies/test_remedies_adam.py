"""Adam with per-weight step counts: equals optax's Adam, and restarts recycled weights."""

import chex
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from relujax import remedies


def normal(seed, shape, scale=1.0):
    return jnp.asarray(scale * np.random.default_rng(seed).normal(size=shape), jnp.float32)


PARAMS = {
    "l0": {"kernel": normal(0, (3, 5)), "bias": normal(1, (5,), 0.1)},
    "l1": {"kernel": normal(2, (5, 2)), "bias": jnp.zeros(2)},
}
LAYOUT = remedies.sequential(["l0", "l1"])
MASK = jnp.array([False, True, False, False, True])
# Entries a recycling of MASK touches: l0's columns 1 and 4 (kernel and bias), l1's rows 1, 4.
TOUCHED = {
    "l0": {"kernel": np.broadcast_to(np.asarray(MASK), (3, 5)), "bias": np.asarray(MASK)},
    "l1": {"kernel": np.broadcast_to(np.asarray(MASK)[:, None], (5, 2)), "bias": np.zeros(2, bool)},
}


def grads(seed):
    """A gradient-shaped pytree, different for every seed (scale varies by an order)."""
    return jax.tree.map(
        lambda p, i: normal(100 * seed + i, p.shape, 10.0 ** ((seed % 3) - 1)),
        PARAMS,
        {"l0": {"kernel": 0, "bias": 1}, "l1": {"kernel": 2, "bias": 3}},
    )


def run(opt, state, params, seeds):
    """Updates and final state after one update per gradient seed (params move too)."""
    step = jax.jit(opt.update)
    history = []
    for s in seeds:
        updates, state = step(grads(s), state, params)
        params = optax.apply_updates(params, updates)
        history.append(updates)
    return history, state, params


@pytest.mark.parametrize(
    ("ours", "theirs"),
    [
        (remedies.adam(1e-2), optax.adam(1e-2)),
        (
            remedies.adam(3e-2, b1=0.8, b2=0.99, nesterov=True),
            optax.adam(3e-2, 0.8, 0.99, nesterov=True),
        ),
        (remedies.adamw(1e-2, weight_decay=0.1), optax.adamw(1e-2, weight_decay=0.1)),
    ],
    ids=["adam", "nadam", "adamw"],
)
def test_equals_optax_without_reset(ours, theirs):
    got, _, p_got = run(ours, ours.init(PARAMS), PARAMS, range(6))
    want, _, p_want = run(theirs, theirs.init(PARAMS), PARAMS, range(6))
    chex.assert_trees_all_close(got, want, rtol=1e-6, atol=1e-9)
    chex.assert_trees_all_close(p_got, p_want, rtol=1e-6, atol=1e-9)


def test_recycled_weights_restart_adam_others_untouched():
    """After recycling, the next k = 1..5 updates of the recycled weights are a fresh Adam's
    given the same gradients; every other weight's are those of the Adam never recycled."""
    opt = remedies.adam(1e-2)
    _, state, params = run(opt, opt.init(PARAMS), PARAMS, range(10))
    out = remedies.recycle(params, [MASK], jax.random.key(0), layout=LAYOUT, opt_state=state)
    after, _, _ = run(opt, out.opt_state, out.params, range(10, 15))
    fresh = optax.adam(1e-2)
    fresh_updates, _, _ = run(fresh, fresh.init(params), params, range(10, 15))
    kept, _, _ = run(opt, state, params, range(10, 15))
    for k in range(5):
        for name in TOUCHED:
            for leaf, t in TOUCHED[name].items():
                got = np.asarray(after[k][name][leaf])
                np.testing.assert_allclose(
                    got[t], np.asarray(fresh_updates[k][name][leaf])[t], rtol=1e-6, atol=0
                )
                np.testing.assert_array_equal(got[~t], np.asarray(kept[k][name][leaf])[~t])
    # The first step after a reset is a fresh Adam's: -lr * g / (|g| + eps) ~ -lr * sign(g).
    g = grads(10)["l0"]["kernel"]
    chex.assert_trees_all_close(
        after[0]["l0"]["kernel"][:, 1], -1e-2 * jnp.sign(g[:, 1]), rtol=1e-4
    )


@pytest.mark.parametrize("make", [optax.adam, remedies.adam], ids=["global", "per_param"])
def test_moments_reset_keeps_the_count(make):
    """adam_reset="moments" (the old reset): the first update of a recycled weight after t
    steps is (1 - b1) / (1 - b1^t) * sqrt((1 - b2^t) / (1 - b2)) * lr * sign(g), not lr."""
    opt = make(1e-2)
    _, state, params = run(opt, opt.init(PARAMS), PARAMS, range(3))
    # As after 1999 steps (where the factor approaches its limit 0.1 / sqrt(0.001) = 3.16).
    count = jax.tree.map(lambda c: jnp.full_like(c, 1999), state[0].count)
    state = (state[0]._replace(count=count), *state[1:])
    out = remedies.recycle(
        params,
        [MASK],
        jax.random.key(0),
        layout=LAYOUT,
        opt_state=state,
        adam_reset="moments",
    )
    (first,), _, _ = run(opt, out.opt_state, out.params, [30])
    t = 2000
    factor = 0.1 / (1 - 0.9**t) * np.sqrt((1 - 0.999**t) / 0.001)
    g = grads(30)["l0"]["bias"]
    chex.assert_trees_all_close(
        first["l0"]["bias"][MASK], -1e-2 * factor * jnp.sign(g[MASK]), rtol=1e-4
    )
    assert 2.9 < factor < 3.2  # the oversized step of issue 12


def test_plain_optax_adam_needs_an_explicit_reset():
    state = optax.adam(1e-2).init(PARAMS)
    with pytest.raises(ValueError, match="adam_reset='per_param' needs one step count per"):
        remedies.recycle(PARAMS, [MASK], jax.random.key(0), layout=LAYOUT, opt_state=state)
    with pytest.raises(ValueError, match="recycle: adam_reset must be one of"):
        remedies.recycle(
            PARAMS, [MASK], jax.random.key(0), layout=LAYOUT, opt_state=state, adam_reset="all"
        )
    # Other optimizers' states (no bias-corrected count) need no choice.
    sgd = optax.sgd(1e-2, momentum=0.9)
    out = remedies.recycle(
        PARAMS, [MASK], jax.random.key(0), layout=LAYOUT, opt_state=sgd.init(PARAMS)
    )
    chex.assert_trees_all_equal(out.opt_state, sgd.init(PARAMS))


def test_traced_hyperparameters_vmap_equals_loop():
    """K configurations with different b1 train in one vmapped program."""
    b1s = jnp.array([0.5, 0.9])
    g = grads(0)

    def one(b1):
        opt = remedies.scale_by_adam_per_param(b1, 0.99)
        state = opt.init(PARAMS)
        u, state = opt.update(g, state)
        return opt.update(u, state)[0]

    batched = jax.jit(jax.vmap(one))(b1s)
    for i, b1 in enumerate([0.5, 0.9]):
        ref = optax.scale_by_adam(b1, 0.99)
        s = ref.init(PARAMS)
        u, s = ref.update(g, s)
        chex.assert_trees_all_close(
            jax.tree.map(lambda a, i=i: a[i], batched), ref.update(u, s)[0], rtol=1e-6
        )


def test_bad_hyperparameters():
    with pytest.raises(ValueError, match="scale_by_adam_per_param: b1 must be in"):
        remedies.adam(1e-2, b1=1.5)
    with pytest.raises(TypeError, match="scale_by_adam_per_param: nesterov must be a bool"):
        remedies.scale_by_adam_per_param(nesterov="yes")
