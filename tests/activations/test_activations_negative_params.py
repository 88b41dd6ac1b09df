"""Derivatives for parameters of every sign (issue 11, item 1).

The old rules read the branch off the sign of the output, valid only for slopes and alphas
>= 0: ``jax.grad(relujax.prelu)(-2.0, jnp.array(-0.5))`` was 1.0 (true: -0.5). Every
parametrized activation is checked here for negative, zero and positive parameters, given as
Python numbers, concrete arrays and traced values, against ``jnp.where`` references written
below (not relujax code), in forward and reverse mode.
"""

import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax.test_util import check_grads

import relujax

X = jnp.array([-2.0, -0.5, 0.0, 0.5, 2.0])
AWAY = np.array([-2.0, -0.5, 0.4, 2.0])  # no kink within 0.4


def _leaky_ref(x, a):
    return jnp.where(x > 0, x, a * x), jnp.where(x > 0, 1.0, a)


def _elu_ref(x, a):
    return jnp.where(x > 0, x, a * jnp.expm1(jnp.minimum(x, 0))), jnp.where(
        x > 0, 1.0, a * jnp.exp(jnp.minimum(x, 0))
    )


def _celu_ref(x, a):
    z = jnp.minimum(x, 0) / a
    return jnp.where(x > 0, x, a * jnp.expm1(z)), jnp.where(x > 0, 1.0, jnp.exp(z))


# (id, function of (x, p), reference (value, derivative) of (x, p), parameter values)
CASES = [
    ("leaky_relu", relujax.leaky_relu, _leaky_ref, [-0.7, 0.0, 0.3]),
    ("prelu", relujax.prelu, _leaky_ref, [-0.7, 0.0, 0.3]),
    ("elu", relujax.elu, _elu_ref, [-0.7, 0.0, 1.5]),
    ("celu", relujax.celu, _celu_ref, [-0.7, 0.5, 2.0]),
    (
        "rrelu_eval",
        lambda x, a: relujax.rrelu(x, None, a, a),
        _leaky_ref,
        [-0.7, 0.0, 0.3],
    ),
    (
        "rrelu_eval_wide",
        lambda x, a: relujax.rrelu(x, None, a - 0.2, a + 0.2),
        _leaky_ref,
        [-0.7, 0.0, 0.3],
    ),
]
PARAMS = [
    pytest.param(f, ref, p, kind, id=f"{name}-{p}-{kind}")
    for name, f, ref, ps in CASES
    for p in ps
    for kind in ("python", "array", "traced")
]


@pytest.mark.parametrize(("f", "ref", "p", "kind"), PARAMS)
def test_values_and_derivatives_for_every_sign_of_the_parameter(f, ref, p, kind):
    value, slope = ref(X, p)
    if kind == "traced":
        ys, fwd, rev = jax.jit(lambda x, p: (f(x, p), jax.jacfwd(f)(x, p), jax.jacrev(f)(x, p)))(
            X, jnp.float32(p)
        )
    else:
        q = jnp.float32(p) if kind == "array" else p
        ys, fwd, rev = f(X, q), jax.jacfwd(f)(X, q), jax.jacrev(f)(X, q)
    chex.assert_trees_all_close(ys, value, rtol=1e-6, atol=1e-7)
    chex.assert_trees_all_close(fwd, jnp.diag(slope), rtol=1e-6, atol=1e-7)
    chex.assert_trees_all_equal(fwd, rev)


@pytest.mark.parametrize(("name", "f", "ref", "ps"), CASES[:4], ids=[c[0] for c in CASES[:4]])
def test_check_grads_to_second_order_for_negative_parameters(name, f, ref, ps):
    with jax.enable_x64(True):
        x = jnp.asarray(AWAY, jnp.float64)
        p = jnp.float64(ps[0])
        check_grads(lambda x, p: f(x, p), (x, p), order=2, modes=("fwd", "rev"))


def test_the_reported_case():
    assert float(jax.grad(relujax.prelu)(-2.0, jnp.array(-0.5))) == -0.5
    assert float(jax.jit(jax.grad(relujax.leaky_relu))(-2.0, -0.5)) == -0.5
    chex.assert_trees_all_close(jax.grad(relujax.elu)(-1.0, -2.0), -2.0 * jnp.exp(-1.0))


def test_rrelu_train_derivative_is_the_drawn_slope_for_negative_bounds():
    key = jax.random.key(3)
    x = jnp.tile(jnp.array([-2.0, 0.0, 1.5, -0.25]), 16)
    lower, upper = -0.6, -0.1
    drawn = -relujax.rrelu(-jnp.ones(x.size), key, lower, upper)
    assert float(drawn.max()) <= upper and float(drawn.min()) >= lower
    g = jax.grad(lambda x: jnp.sum(relujax.rrelu(x, key, lower, upper)))(x)
    chex.assert_trees_all_equal(g, jnp.where(x > 0, 1.0, drawn))
    chex.assert_trees_all_equal(
        jax.jacfwd(relujax.rrelu)(x, key, lower, upper),
        jax.jacrev(relujax.rrelu)(x, key, lower, upper),
    )


def test_prelu_mlp_gradients_with_negative_learned_slopes_match_a_where_prelu():
    """The training bug: a PReLU net whose slopes went negative got wrong gradients."""
    k1, k2, k3 = jax.random.split(jax.random.key(0), 3)
    w1 = jax.random.normal(k1, (5, 8)) / 2
    w2 = jax.random.normal(k2, (8, 3)) / 2
    x = jax.random.normal(k3, (16, 5))
    slopes = jnp.linspace(-0.8, 0.4, 8)

    def loss(params, act):
        w1, w2, a = params
        return jnp.mean((act(x @ w1, a) @ w2) ** 2)

    def where_prelu(z, a):
        return jnp.where(z > 0, z, jnp.broadcast_to(a, z.shape) * z)

    ours = jax.jit(jax.grad(lambda p: loss(p, relujax.prelu)))((w1, w2, slopes))
    ref = jax.grad(lambda p: loss(p, where_prelu))((w1, w2, slopes))
    chex.assert_trees_all_close(ours, ref, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize(
    ("f", "p"),
    [(relujax.leaky_relu, -0.5), (relujax.elu, -1.0), (relujax.prelu, jnp.array([-0.5, 0.2]))],
)
def test_negative_parameters_are_accepted_as_in_jax_nn(f, p):
    x = jnp.array([-1.0, 1.0])
    y = f(x, p)
    chex.assert_tree_all_finite(y)
    if f is relujax.leaky_relu:
        chex.assert_trees_all_close(y, jax.nn.leaky_relu(x, p))
    if f is relujax.elu:
        chex.assert_trees_all_close(y, jax.nn.elu(x, p))
