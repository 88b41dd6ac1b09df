"""Parameters: eager validation, traced values, derivatives with respect to parameters."""

import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest

import relujax


@pytest.mark.parametrize(
    ("call", "match"),
    [
        (
            lambda: relujax.leaky_relu(1.0, float("nan")),
            "leaky_relu: negative_slope must be finite",
        ),
        (lambda: relujax.leaky_relu(1.0, float("inf")), "negative_slope must be finite"),
        (lambda: relujax.prelu(1.0, np.array([0.1, np.nan])), "prelu: slope must be finite"),
        (lambda: relujax.rrelu(1.0, None, 0.5, 0.25), "rrelu: lower must be <= upper"),
        (lambda: relujax.rrelu(1.0, None, 0.1, float("inf")), "rrelu: upper must be finite"),
        (lambda: relujax.elu(1.0, float("nan")), "elu: alpha must be finite"),
        (lambda: relujax.celu(1.0, 0.0), r"celu: alpha must be non-zero"),
        (lambda: relujax.celu(1.0, np.float32("nan")), "celu: alpha must be finite"),
        (lambda: relujax.capped_relu(1.0, 0.0), "capped_relu: cap must be > 0"),
        (lambda: relujax.capped_relu(1.0, jnp.ones(2)), "cap must be a scalar"),
        (lambda: relujax.shifted_relu(1.0, float("-inf")), "shifted_relu: shift must be finite"),
        (lambda: relujax.threshold(1.0, float("nan"), 0.0), "threshold: threshold must be finite"),
        (lambda: relujax.silu(1.0, beta=float("nan")), "silu: beta must be finite"),
        (lambda: relujax.silu(1.0, beta=-1.0), "silu: beta must be >= 0"),
        (lambda: relujax.silu(1.0, beta=jnp.ones(2)), "silu: beta must be a scalar"),
        (lambda: relujax.softplus(1.0, beta=0.0), "softplus: beta must be > 0"),
        (lambda: relujax.softplus(1.0, threshold=float("nan")), "threshold must be finite"),
    ],
)
def test_bad_python_parameters_fail_early_naming_the_parameter(call, match):
    with pytest.raises(ValueError, match=match):
        call()


def test_gelu_approximate_must_be_a_bool():
    with pytest.raises(TypeError, match="gelu: approximate must be a bool"):
        relujax.gelu(1.0, approximate=jnp.array(True))
    with pytest.raises(TypeError, match="gelu: approximate must be a bool"):
        relujax.gelu(1.0, approximate=1)


def test_gelu_accepts_a_numpy_bool_as_jax_nn_does():
    x = jnp.array([-1.0, 0.5])
    for flag in (True, False):
        chex.assert_trees_all_close(
            relujax.gelu(x, approximate=np.bool_(flag)), jax.nn.gelu(x, approximate=flag)
        )


def test_traced_parameters_are_not_validated_and_work_under_jit():
    x = jnp.array([-2.0, 3.0])
    f = jax.jit(lambda s: relujax.leaky_relu(x, s))
    chex.assert_trees_all_close(f(0.5), jnp.array([-1.0, 3.0]))
    chex.assert_trees_all_close(f(-0.5), jnp.array([1.0, 3.0]))  # not checked when traced
    g = jax.jit(lambda a: relujax.elu(x, a))
    chex.assert_trees_all_close(g(2.0), jax.nn.elu(x, 2.0))


def test_leaky_relu_slope_gradient_is_min_x_0():
    x = jnp.array([-2.0, 0.0, 3.0])
    g = jax.vmap(jax.grad(relujax.leaky_relu, argnums=1), in_axes=(0, None))(x, 0.1)
    chex.assert_trees_all_close(g, jnp.array([-2.0, 0.0, 0.0]))


def test_prelu_per_channel_slope_broadcasts_and_gets_summed_gradients():
    x = jnp.array([[-1.0, 2.0, -3.0], [4.0, -5.0, 0.0]])
    slope = jnp.array([0.1, 0.2, 0.3])
    y = relujax.prelu(x, slope)
    s = jnp.broadcast_to(slope, x.shape)
    chex.assert_trees_all_close(y, jnp.where(x > 0, x, s * x))
    gx, gs = jax.grad(lambda x, s: jnp.sum(relujax.prelu(x, s) ** 2), argnums=(0, 1))(x, slope)
    # d/dx = 2y * (1 or slope); d/ds_c = sum_b 2y * min(x, 0).
    chex.assert_trees_all_close(gx, 2 * y * jnp.where(x > 0, 1.0, s))
    chex.assert_trees_all_close(gs, jnp.sum(2 * y * jnp.minimum(x, 0.0), axis=0))
    # prelu'(0) is the slope, for x and under jacfwd == jacrev.
    chex.assert_trees_all_close(gx[1, 2], 2 * y[1, 2] * 0.3)
    jf = jax.jacfwd(relujax.prelu)(jnp.zeros(3), slope)
    chex.assert_trees_all_equal(jf, jax.jacrev(relujax.prelu)(jnp.zeros(3), slope))
    chex.assert_trees_all_close(jnp.diag(jf), slope)


def test_prelu_vmap_over_slopes():
    x = jnp.array([-1.0, 2.0])
    slopes = jnp.array([[0.1, 0.1], [0.5, 0.5]])
    chex.assert_trees_all_close(
        jax.vmap(relujax.prelu, in_axes=(None, 0))(x, slopes), jnp.array([[-0.1, 2.0], [-0.5, 2.0]])
    )


@pytest.mark.parametrize(
    ("ours", "ref"),
    [
        (relujax.elu, lambda x, a: jnp.where(x > 0, x, a * jnp.expm1(jnp.minimum(x, 0)))),
        (relujax.celu, lambda x, a: jnp.where(x > 0, x, a * jnp.expm1(jnp.minimum(x, 0) / a))),
        (
            lambda x, b: relujax.silu(x, beta=b),
            lambda x, b: x * jax.nn.sigmoid(b * x),
        ),
    ],
    ids=["elu_alpha", "celu_alpha", "silu_beta"],
)
def test_parameter_gradients_match_autodiff_of_the_closed_form(ours, ref):
    x = jnp.array([-3.0, -0.5, 0.7, 2.0])
    grad = jax.vmap(jax.grad(lambda x, p, f: f(x, p), argnums=1), in_axes=(0, None, None))
    chex.assert_trees_all_close(grad(x, 1.7, ours), grad(x, 1.7, ref), rtol=1e-5, atol=1e-6)


def test_threshold_value_gradient_and_kink():
    x = jnp.array([-1.0, 0.5, 2.0])
    gv = jax.vmap(jax.grad(relujax.threshold, argnums=2), in_axes=(0, None, None))(x, 0.5, -3.0)
    chex.assert_trees_all_close(gv, jnp.array([1.0, 1.0, 0.0]))
    gx = jax.vmap(jax.grad(relujax.threshold), in_axes=(0, None, None))(x, 0.5, -3.0)
    chex.assert_trees_all_close(gx, jnp.array([0.0, 0.0, 1.0]))


def test_parameters_keep_the_dtype_of_x():
    x = jnp.array([-1.0, 2.0], jnp.bfloat16)
    for y in (
        relujax.leaky_relu(x, 0.2),
        relujax.elu(x, 0.5),
        relujax.celu(x, 2.0),
        relujax.silu(x, beta=2.0),
        relujax.softplus(x, beta=2.0),
        relujax.capped_relu(x, 1.0),
        relujax.threshold(x, 0.0, 0.5),
    ):
        chex.assert_type(y, jnp.bfloat16)


@pytest.mark.parametrize(
    ("call", "match"),
    [
        # Concrete jax.Arrays are validated like Python numbers (they gave NaN / inf).
        (lambda: relujax.celu(jnp.ones(3), jnp.array(0.0)), "celu: alpha must be non-zero"),
        (lambda: relujax.softplus(1.0, beta=jnp.array(0.0)), "softplus: beta must be > 0"),
        (lambda: relujax.elu(1.0, jnp.array([1.0, jnp.nan])), "elu: alpha must be finite"),
        (lambda: relujax.leaky_relu(1.0, jnp.array(jnp.inf)), "negative_slope must be finite"),
        (lambda: relujax.capped_relu(1.0, jnp.array(-1.0)), "capped_relu: cap must be > 0"),
        (lambda: relujax.rrelu(1.0, None, jnp.array(0.5), 0.25), "lower must be <= upper"),
        # Shapes that do not broadcast: our error, naming the parameter.
        (lambda: relujax.prelu(jnp.ones((2, 3)), jnp.ones(4)), "prelu: slope of shape"),
        (
            lambda: relujax.threshold(jnp.ones((2, 3)), jnp.ones(2), 0.0),
            "threshold: threshold of shape",
        ),
        (
            lambda: relujax.threshold(jnp.ones((2, 3)), 0.0, jnp.ones((5,))),
            "threshold: value of shape",
        ),
        (lambda: relujax.elu(jnp.ones((2, 3)), jnp.ones(2)), "elu: alpha of shape"),
    ],
)
def test_concrete_arrays_and_shapes_are_validated(call, match):
    with pytest.raises(ValueError, match=match):
        call()


def test_traced_mismatched_shapes_are_caught_too():
    with pytest.raises(ValueError, match="prelu: slope of shape"):
        jax.jit(relujax.prelu)(jnp.ones((2, 3)), jnp.ones(4))


@pytest.mark.parametrize(
    "call",
    [
        lambda: relujax.leaky_relu(1.0, "0.1"),
        lambda: relujax.elu(1.0, alpha="1"),
        lambda: relujax.gelu(1.0, approximate="yes"),
    ],
)
def test_wrong_types_raise_type_error(call):
    with pytest.raises(TypeError):
        call()
