"""Values of every activation: references, dtypes, special inputs, shapes.

Compilation dominates the cost of these tests, so each module-scoped fixture jits ONE function
that evaluates every case, and the parametrized tests read their case's slice of the result.
"""

import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from activation_cases import AWAY, BASE, BASE_IDS, CASES, IDS, each, run

import relujax

GRID = np.concatenate([AWAY, [-6.0, -3.0, -1.0, -0.5, 0.0, 0.5, 1.0, 2.0, 3.0, 6.0, 25.0]])
SPECIAL = np.array([np.nan, -np.inf, np.inf, 1.0], np.float32)


@pytest.fixture(scope="module")
def values():
    """Ours under jit and under vmap, and the reference, on GRID followed by SPECIAL."""
    x = jnp.asarray(np.concatenate([GRID, SPECIAL]), jnp.float32)
    return run(each(lambda c, x: (c.f(x), jax.vmap(c.f)(x), c.ref(x))), x)


@pytest.mark.parametrize("case", CASES, ids=IDS)
def test_values_match_reference_eagerly_under_jit_and_vmap(case, values):
    n = len(GRID)
    jitted, vmapped, expected = (v[:n] for v in values[case.id])
    x = jnp.asarray(GRID, jnp.float32)
    chex.assert_trees_all_close(case.f(x), expected, rtol=1e-6, atol=1e-6)
    chex.assert_trees_all_close(jitted, expected, rtol=1e-6, atol=1e-6)
    chex.assert_trees_all_close(vmapped, expected, rtol=1e-6, atol=1e-6)
    if case.nonnegative:
        assert bool(jnp.all(jitted >= 0))


@pytest.mark.parametrize("case", CASES, ids=IDS)
def test_nan_in_gives_nan_out_and_infinities_give_limits(case, values):
    y, _, ref = (v[len(GRID) :] for v in values[case.id])
    assert bool(jnp.isnan(y[0])), "NaN must propagate"
    assert not bool(jnp.any(jnp.isnan(y[1:]))), "infinite inputs must not give NaN"
    # jax.nn gives NaN (-inf * 0) at -inf for the x * cdf(x) family; the limit there is 0.
    expected = jnp.nan_to_num(ref[1:], nan=0.0, posinf=jnp.inf, neginf=-jnp.inf)
    chex.assert_trees_all_close(y[1:], expected)


@pytest.fixture(scope="module", params=["float16", "bfloat16", "float32", "float64"])
def typed(request):
    dtype = request.param
    with jax.enable_x64(dtype == "float64"):
        x = jnp.asarray(AWAY, dtype)

        def both(c, x):
            return c.f(x), jax.grad(lambda x: jnp.sum(c.f(x)))(x)

        ref_dtype = jnp.float64 if dtype == "float64" else jnp.float32
        out = run(each(lambda c, x: (*both(c, x), c.ref(x.astype(ref_dtype))), BASE), x)
    return dtype, out


@pytest.mark.parametrize("case", BASE, ids=BASE_IDS)
def test_dtype_is_kept_for_values_and_gradients(case, typed):
    dtype, out = typed
    y, g, expected = out[case.id]
    with jax.enable_x64(dtype == "float64"):  # outside it, chex reads float64 as float32
        chex.assert_type([y, g], jnp.dtype(dtype))
    chex.assert_shape([y, g], AWAY.shape)
    tol = {"float16": 1e-2, "bfloat16": 5e-2, "float32": 1e-6, "float64": 1e-12}[dtype]
    expected = np.asarray(expected)
    np.testing.assert_allclose(np.asarray(y).astype(expected.dtype), expected, rtol=tol, atol=tol)


@pytest.fixture(scope="module")
def shaped():
    def both(c, x):
        return c.f(x), jax.grad(lambda x: jnp.sum(c.f(x)))(x), c.ref(x)

    return {shape: run(each(both, BASE), jnp.full(shape, 0.5)) for shape in [(), (2, 0, 4)]}


@pytest.mark.parametrize("case", BASE, ids=BASE_IDS)
def test_scalars_and_empty_arrays(case, shaped):
    for shape, out in shaped.items():
        chex.assert_shape(list(out[case.id]), shape)
    y, _, expected = shaped[()][case.id]
    chex.assert_trees_all_close(y, expected, rtol=1e-6)


@pytest.mark.parametrize("f", [relujax.relu, relujax.leaky_relu, relujax.elu, relujax.gelu])
def test_python_scalars_eagerly(f):
    chex.assert_shape(f(0.5), ())
    chex.assert_shape(jax.grad(f)(-0.5), ())


@pytest.mark.parametrize(
    ("f", "x", "expected"),
    [
        (relujax.elu, -1e4, -1.0),
        (lambda x: relujax.elu(x, 0.5), -1e4, -0.5),
        (relujax.selu, -1e4, -1.7580993408473766),
        (lambda x: relujax.celu(x, 2.0), -1e4, -2.0),
        (relujax.softplus, -1e4, 0.0),
        (relujax.softplus, 1e4, 1e4),
        (relujax.mish, -1e4, 0.0),
        (relujax.mish, 1e4, 1e4),
        (relujax.gelu, -1e4, 0.0),
        (relujax.gelu, 1e4, 1e4),
        (lambda x: relujax.gelu(x, approximate=False), -1e4, 0.0),
        (relujax.silu, -1e4, 0.0),
        (relujax.hard_swish, 1e4, 1e4),
        (relujax.relu, 3e38, 3e38),
        (relujax.elu, -3e38, -1.0),
        (relujax.gelu, -3e38, 0.0),
    ],
)
def test_large_inputs_give_correct_limits(f, x, expected):
    chex.assert_trees_all_close(f(jnp.float32(x)), jnp.float32(expected), rtol=1e-6, atol=0)


def test_crelu_concatenates_both_halves():
    x = jnp.array([[-1.0, 0.0, 2.0], [3.0, -4.0, 0.5]])
    expected = jnp.array([[0.0, 0.0, 2.0, 1.0, 0.0, 0.0], [3.0, 0.0, 0.5, 0.0, 4.0, 0.0]])
    chex.assert_trees_all_close(relujax.crelu(x), expected)
    chex.assert_trees_all_close(relujax.crelu(x, axis=0), jnp.concatenate([x, -x]).clip(0))
    chex.assert_trees_all_close(jax.vmap(relujax.crelu)(x), expected)
    chex.assert_shape(relujax.crelu(jnp.float32(-2.0)), (2,))
    chex.assert_shape(relujax.crelu(jnp.zeros((0, 3))), (0, 6))
    weights = jnp.arange(6.0)
    g = jax.grad(lambda x: jnp.sum(relujax.crelu(x) * weights))(jnp.array([-1.0, 0.0, 2.0]))
    # d/dx of relu(x) * [0, 1, 2] + relu(-x) * [3, 4, 5]; both halves have derivative 0 at 0.
    chex.assert_trees_all_close(g, jnp.array([-3.0, 0.0, 2.0]))


def test_crelu_under_forward_and_reverse_mode():
    x = jnp.array([-1.0, 0.0, 2.0])
    jf, jr = jax.jacfwd(relujax.crelu)(x), jax.jacrev(relujax.crelu)(x)
    chex.assert_trees_all_equal(jf, jr)
    chex.assert_trees_all_close(
        jf,
        jnp.array([[0, 0, 0], [0, 0, 0], [0, 0, 1], [-1, 0, 0], [0, 0, 0], [0, 0, 0]], jnp.float32),
    )
    chex.assert_trees_all_close(
        jax.hessian(lambda x: jnp.sum(relujax.crelu(x)))(x), jnp.zeros((3, 3))
    )


def test_crelu_rejects_bad_axis():
    with pytest.raises(ValueError, match="axis must be in"):
        relujax.crelu(jnp.zeros((2, 3)), axis=2)
    with pytest.raises(TypeError, match="axis must be a Python int"):
        relujax.crelu(jnp.zeros((2, 3)), axis=1.0)


def test_integer_inputs_follow_jax_nn():
    x = jnp.array([-2, 0, 3])
    chex.assert_trees_all_equal(relujax.relu(x), jax.nn.relu(x))
    chex.assert_trees_all_close(relujax.leaky_relu(x), jax.nn.leaky_relu(x))
    chex.assert_trees_all_close(relujax.gelu(x), jax.nn.gelu(x))
