"""Derivatives of every activation: kinks, transformations, second order, large inputs.

As in the value tests, each fixture compiles ONE function covering every case.
"""

import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from activation_cases import AWAY, BASE, BASE_IDS, CASES, IDS, each, run
from jax.test_util import check_grads

import relujax


def _grad(f):
    return jax.vmap(jax.grad(f))


@pytest.fixture(scope="module")
def at_kinks():
    """Per case: derivatives at its kinks, and both Jacobians on kinks + ordinary points."""

    def fn(c, _):
        kinks = jnp.array(list(c.kinks), jnp.float32)
        xs = jnp.concatenate([kinks, jnp.asarray(AWAY, jnp.float32)])
        return _grad(c.f)(kinks), jax.jacfwd(c.f)(xs), jax.jacrev(c.f)(xs)

    return run(each(fn), jnp.float32(0))


@pytest.mark.parametrize("case", CASES, ids=IDS)
def test_derivative_at_each_kink_is_the_documented_convention_exactly(case, at_kinks):
    grads, _, _ = at_kinks[case.id]
    expected = jnp.array(list(case.kinks.values()), jnp.float32)
    chex.assert_trees_all_equal(grads, expected)


@pytest.mark.parametrize("case", CASES, ids=IDS)
def test_jacfwd_equals_jacrev_at_kinks_and_elsewhere(case, at_kinks):
    _, fwd, rev = at_kinks[case.id]
    k = len(case.kinks)
    chex.assert_trees_all_equal(fwd[:k, :k], rev[:k, :k])  # exactly, at the kinks
    chex.assert_trees_all_close(fwd, rev, rtol=1e-6, atol=1e-7)
    chex.assert_trees_all_close(fwd, jnp.diag(jnp.diag(fwd)))  # element-wise: diagonal


@pytest.fixture(scope="module")
def transformed():
    """Per case, ours and the reference's, under each transformation, away from kinks.

    (jit, vmap, jacfwd and jacrev are exercised by the fixtures above.)
    """

    def all_transforms(f, x):
        ones = jnp.ones_like(x)
        return {
            "grad": _grad(f)(x),
            "jvp": jax.jvp(f, (x,), (ones,))[1],
            "vjp": jax.vjp(f, x)[1](ones)[0],
            "hessian": jax.vmap(jax.hessian(f))(x),
        }

    ours = run(each(lambda c, x: all_transforms(c.f, x), BASE), jnp.asarray(AWAY, jnp.float32))
    with jax.enable_x64(True):  # the references' autodiff, in float64, as the truth
        ref = run(each(lambda c, x: all_transforms(c.ref, x), BASE), jnp.asarray(AWAY))
        ref = jax.tree.map(lambda r: np.asarray(r, np.float32), ref)
    return {c.id: (ours[c.id], ref[c.id]) for c in BASE}


@pytest.mark.parametrize("case", BASE, ids=BASE_IDS)
def test_grad_jvp_vjp_hessian_match_the_reference_away_from_kinks(case, transformed):
    ours, ref = transformed[case.id]
    for name, value in ours.items():
        # ELU-type rules read the derivative off y: absolute error ~ one ulp of alpha.
        chex.assert_trees_all_close(value, ref[name], rtol=1e-5, atol=2e-6, custom_message=name)


# One case per distinct derivative rule with a non-zero second derivative, plus leaky ReLU.
SECOND_ORDER = [
    "leaky_relu",
    "squared_relu",
    "elu",
    "selu",
    "celu_2",
    "hard_swish",
    "gelu",
    "gelu_erf",
    "silu",
    "mish",
    "softplus",
]


def test_second_order_gradients_against_finite_differences_in_float64():
    """``check_grads(order=2)`` in reverse mode, all rules in one function (compiling the
    transformed functions dominates the cost; forward mode is covered by jvp and hessian,
    which is forward-over-reverse, against the references above)."""
    cases = [c for c in CASES if c.id in SECOND_ORDER]
    with jax.enable_x64(True):
        x = jnp.asarray(AWAY, jnp.float64)

        @jax.jit
        def all_cases(x):
            return jnp.stack([c.f(x) for c in cases])

        check_grads(all_cases, (x,), order=2, modes=("rev",))


@pytest.fixture(scope="module")
def huge():
    x = jnp.array([-3e38, -1e4, 1e4, 3e38], jnp.float32)
    return run(each(lambda c, x: _grad(c.f)(x)), x)


@pytest.mark.parametrize("case", CASES, ids=IDS)
def test_finite_gradients_with_the_right_limits_for_huge_inputs(case, huge):
    g = huge[case.id]
    lo, hi = case.limits
    if case.id == "squared_relu":  # f' = 2x: finite while x^2 is
        chex.assert_trees_all_close(g[:3], jnp.array([0.0, 0.0, 2e4]))
        return
    chex.assert_tree_all_finite(g)
    chex.assert_trees_all_close(g, jnp.array([lo, lo, hi, hi], jnp.float32), atol=1e-6)


@pytest.mark.parametrize(
    ("f", "x", "expected"),
    [
        # jax.nn's conventions differ here; these are PyTorch's (and the seeds').
        (relujax.leaky_relu, 0.0, 0.01),
        (relujax.elu, 0.0, 1.0),
        (lambda x: relujax.elu(x, 2.0), 0.0, 2.0),
        (relujax.hard_tanh, 1.0, 0.0),
        (relujax.hard_tanh, -1.0, 0.0),
    ],
)
def test_kink_conventions_where_jax_nn_differs(f, x, expected):
    assert jax.grad(f)(x) == jnp.float32(expected)


def test_gradient_of_nan_input_is_nan_free_elsewhere():
    x = jnp.array([jnp.nan, -1.0, 2.0])
    for f in (relujax.relu, relujax.elu, relujax.gelu, relujax.leaky_relu):
        g = jax.grad(lambda x, f=f: jnp.sum(f(x)))(x)
        chex.assert_tree_all_finite(g[1:])
