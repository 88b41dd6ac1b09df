"""JAX's own activation tests, run against relujax's drop-ins, in default and x64 mode.

Attribution: the cases below follow the activation tests of JAX's ``tests/nn_test.py``
(https://github.com/jax-ml/jax, Copyright 2019 The JAX Authors, Apache License 2.0). They are
re-expressed for pytest against relujax, with the same inputs, orders and tolerances; the code
is written here, not copied.

Allowed differences from jax.nn, each deliberate and documented in the function's docstring
(everything else must match):

* Kink conventions: ``leaky_relu'(0)`` is the slope (PyTorch's; jax.nn gives 1) and
  ``hard_tanh'(+-1)`` is 0 (PyTorch's; jax.nn gives 1). jax.nn's own tests do not pin these.
* Limits at -inf: relujax's gelu, silu and mish give 0 at x = -inf (the limit) where jax.nn's
  ``x * cdf(x)`` forms give NaN (-inf * 0); jax.nn's tests check only gradients there.
* Wider domains: relujax's silu accepts integer inputs (jax.nn raises TypeError); softplus
  takes keyword-only ``beta`` and ``threshold`` (defaults give jax.nn.softplus).
* Narrower domains: ``celu(alpha=0)`` raises ValueError (jax.nn returns NaN); any concrete
  non-finite parameter raises ValueError.
* Orders: jax checks softplus, mish and elu to order 4 and marks those tests slow (skipped
  with ``jax_skip_slow_tests``); here they run to order 2, which keeps CI within its budget
  (order 4 of mish takes minutes in eager mode on 2 cores).
* Not ported: tests of functions relujax does not have (sparse_plus, squareplus, softmax,
  attention, initializers, ...).
"""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import scipy.stats
from jax.test_util import check_grads

import relujax


@pytest.fixture(params=[False, True], ids=["default", "x64"])
def x64(request):
    with jax.enable_x64(request.param):
        yield request.param


FLOAT_DTYPES = [np.float16, jnp.bfloat16, np.float32, np.float64]
INT_DTYPES = [np.int8, np.int16, np.int32, np.int64, np.uint8, np.uint32]


# --- softplus ----------------------------------------------------------------------------------


def test_softplus_grad_order_2(x64):
    check_grads(relujax.softplus, (1e-8,), order=2)


@pytest.mark.parametrize("x", [0.0, -float("inf"), float("nan")])
def test_softplus_grad_order_1_at_zero_neg_inf_and_nan(x, x64):
    check_grads(relujax.softplus, (x,), order=1)


def test_softplus_grad_at_inf_is_one(x64):
    assert float(jax.grad(relujax.softplus)(float("inf"))) == 1.0


@pytest.mark.parametrize("dtype", [int, float, *FLOAT_DTYPES, *INT_DTYPES])
def test_softplus_zero_is_log_2(dtype, x64):
    assert relujax.softplus(dtype(0)) == jnp.log(dtype(2))


def test_softplus_value_at_89(x64):
    np.testing.assert_allclose(relujax.softplus(89.0), 89.0)


# --- mish --------------------------------------------------------------------------------------


def test_mish_grad_order_2(x64):
    check_grads(relujax.mish, (1e-8,), order=2)


@pytest.mark.parametrize("x", [0.0, -float("inf"), float("nan")])
def test_mish_grad_order_1_at_zero_neg_inf_and_nan(x, x64):
    check_grads(relujax.mish, (x,), order=1)


@pytest.mark.parametrize("dtype", [float, *FLOAT_DTYPES])
def test_mish_zero(dtype, x64):
    assert relujax.mish(dtype(0)) == dtype(0)


def test_mish_value_at_1e3(x64):
    np.testing.assert_allclose(relujax.mish(1e3), 1e3, atol=1e-3)


# --- relu, relu6 -------------------------------------------------------------------------------


@pytest.mark.parametrize("f", [relujax.relu, relujax.relu6], ids=["relu", "relu6"])
def test_relu_and_relu6_grad_order_3_at_plus_and_minus_1(f, x64):
    check_grads(f, (jnp.array([1.0, -1.0]),), order=3)


def test_relu_grad_at_zero_is_zero(x64):
    # Bertoin et al. (2021), "Numerical influence of ReLU'(0) on backpropagation".
    assert float(jax.grad(relujax.relu)(0.0)) == 0.0
    assert len(jax.make_jaxpr(jax.grad(relujax.relu))(0.0).jaxpr.eqns) >= 1


def test_relu6_grad_at_both_kinks_is_zero(x64):
    assert float(jax.grad(relujax.relu6)(0.0)) == 0.0
    assert float(jax.grad(relujax.relu6)(6.0)) == 0.0


# --- elu ---------------------------------------------------------------------------------------


def test_elu_grad_order_2_at_1e4(x64):
    check_grads(relujax.elu, (1e4,), order=2, eps=1.0)


def test_elu_value_at_1e4(x64):
    np.testing.assert_allclose(relujax.elu(1e4), 1e4)


# --- gelu --------------------------------------------------------------------------------------


@pytest.mark.parametrize("approximate", [False, True])
def test_gelu_of_an_integer_equals_gelu_of_the_float(approximate, x64):
    np.testing.assert_allclose(
        relujax.gelu(jnp.array(-1), approximate=approximate),
        relujax.gelu(jnp.array(-1.0), approximate=approximate),
    )


@pytest.mark.parametrize("approximate", [False, True])
def test_gelu_against_scipy_normal_cdf(approximate):
    x = np.linspace(-12, 5, 10000, dtype=np.float32)
    expected = x * scipy.stats.norm.cdf(x)
    actual = np.asarray(relujax.gelu(jnp.asarray(x), approximate=approximate))
    np.testing.assert_allclose(actual, expected, rtol=2e-5, atol=1e-3 if approximate else 0)


# --- dtypes, memory ----------------------------------------------------------------------------


@pytest.mark.parametrize("dtype", [jnp.float32, jnp.bfloat16, jnp.float16])
@pytest.mark.parametrize(
    "f",
    [
        lambda x: relujax.gelu(x, approximate=False),
        lambda x: relujax.gelu(x, approximate=True),
        relujax.relu,
        relujax.softplus,
        relujax.mish,
    ],
    ids=["gelu_erf", "gelu_tanh", "relu", "softplus", "mish"],
)
def test_dtype_matches_input(f, dtype):
    assert f(jnp.zeros((), dtype)).dtype == dtype


@pytest.mark.parametrize("f", [relujax.elu, relujax.hard_tanh], ids=["elu", "hard_tanh"])
def test_tracing_a_huge_input_does_not_materialize_it(f):
    # jax PR 1640: tracing must not allocate 10**12 elements.
    with jax.enable_checks(False):
        jax.make_jaxpr(lambda: f(jnp.ones((10**12,))))()
