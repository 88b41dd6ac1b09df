"""Drop-in fidelity with jax.nn: dtypes, weak types, float64 precision (issue 11, item 4).

Also the numerical cases that were wrong: softplus in float64 between 20 and 37, mish's
derivative in float16 and its Hessian in float32, squared_relu's derivative for large x.
"""

import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest

import relujax

JAX_NN = [d for d in relujax.activations._catalog.DESCRIPTORS if d.jax_nn]

INPUTS = {
    "python_int": lambda: 2,
    "python_float": lambda: 2.0,
    "python_bool": lambda: True,
    "int8": lambda: np.int8(2),
    "int32": lambda: jnp.int32(2),
    "uint8": lambda: jnp.uint8(2),
    "bool": lambda: jnp.bool_(True),
    "float16": lambda: jnp.float16(2),
    "bfloat16": lambda: jnp.bfloat16(2),
    "float32": lambda: jnp.float32(2),
    "weak_float": lambda: jnp.asarray(2.0),
}


def _aval(y):
    return y.dtype, y.weak_type


@pytest.mark.parametrize("x64", [False, True], ids=["default", "x64"])
@pytest.mark.parametrize("d", JAX_NN, ids=[d.name for d in JAX_NN])
def test_dtype_and_weak_type_are_jax_nns_for_every_input_kind(d, x64):
    ref = getattr(jax.nn, d.jax_nn)
    with jax.enable_x64(x64):
        for kind, make in INPUTS.items():
            try:
                expected = _aval(ref(make()))
            except TypeError:  # jax.nn.silu rejects integers; relujax accepts them
                assert d.name == "silu"
                y = d.function(make())
                assert jnp.issubdtype(y.dtype, jnp.floating), kind
                continue
            assert _aval(d.function(make())) == expected, kind


@pytest.mark.parametrize(
    ("f", "x", "x64", "dtype", "weak"),
    [
        # The reported cases, written out (jax.nn's promotion rules, not read from jax.nn).
        (relujax.relu6, jnp.int32(3), False, jnp.float32, True),
        (relujax.relu, jnp.int32(3), False, jnp.int32, False),
        (relujax.softplus, jnp.int32(3), True, jnp.float32, False),
        (relujax.leaky_relu, 2.0, False, jnp.float32, True),
        (relujax.elu, jnp.int32(3), True, jnp.float64, True),
        (relujax.gelu, jnp.int32(3), True, jnp.float32, False),
    ],
)
def test_reported_dtype_cases(f, x, x64, dtype, weak):
    with jax.enable_x64(x64):
        y = f(x)
        assert (y.dtype, y.weak_type) == (jnp.dtype(dtype), weak)


X64 = np.array([-30.0, -7.3, -1.1, -1e-3, 0.0, 1e-3, 0.7, 2.6, 9.1, 21.0, 30.0, 36.5, 45.0])


@pytest.mark.parametrize("d", JAX_NN, ids=[d.name for d in JAX_NN])
def test_float64_values_have_float64_precision(d):
    with jax.enable_x64(True):
        x = jnp.asarray(X64)
        ours, ref = d.function(x), getattr(jax.nn, d.jax_nn)(x)
        assert ours.dtype == jnp.float64
        np.testing.assert_allclose(np.asarray(ours), np.asarray(ref), rtol=4e-15, atol=1e-300)


def test_softplus_float64_is_exact_between_20_and_37():
    x = np.linspace(20.0, 37.0, 35)
    with jax.enable_x64(True):
        y = np.asarray(relujax.softplus(jnp.asarray(x)))
    # log(1 + e^x) = x + log1p(e^-x), in NumPy float64.
    np.testing.assert_allclose(y, x + np.log1p(np.exp(-x)), rtol=2e-16, atol=0)
    below = x < 33  # there log1p(e^-x) > half an ulp of x: the old threshold returned x
    assert np.all(y[below] > x[below])


def test_softplus_pytorch_threshold_is_still_available():
    x = jnp.array([1.0, 25.0])
    chex.assert_trees_all_close(relujax.softplus(x, threshold=20.0), jnp.array([1.3132616, 25.0]))


def _mish64(x):
    return x * jnp.tanh(jnp.logaddexp(x, 0.0))


def test_mish_derivative_is_finite_in_float16_and_bfloat16():
    x = np.linspace(-12.0, 20.0, 65)
    with jax.enable_x64(True):
        ref = np.asarray(jax.vmap(jax.grad(_mish64))(jnp.asarray(x)))
    for dtype, tol in ((jnp.float16, 4e-3), (jnp.bfloat16, 3e-2)):
        g = jax.vmap(jax.grad(relujax.mish))(jnp.asarray(x, dtype))
        chex.assert_type(g, dtype)
        chex.assert_tree_all_finite(g)
        np.testing.assert_allclose(np.asarray(g, np.float64), ref, rtol=tol, atol=tol)


def test_mish_second_derivative_is_finite_and_right_in_float32():
    x = np.array([-20.0, -3.0, 0.0, 2.0, 14.0, 15.0, 16.0, 30.0, 90.0])
    h = jax.vmap(jax.grad(jax.grad(relujax.mish)))(jnp.asarray(x, jnp.float32))
    chex.assert_tree_all_finite(h)
    with jax.enable_x64(True):
        ref = np.asarray(jax.vmap(jax.grad(jax.grad(_mish64)))(jnp.asarray(x)))
    np.testing.assert_allclose(np.asarray(h, np.float64), ref, rtol=1e-4, atol=1e-6)


@pytest.mark.parametrize(
    ("dtype", "x"), [(jnp.float32, 1e20), (jnp.float32, 3e38), (jnp.float16, 300.0)]
)
def test_squared_relu_derivative_does_not_overflow(dtype, x):
    g = jax.grad(relujax.squared_relu)(jnp.asarray(x, dtype))
    chex.assert_type(g, dtype)
    expected = 2 * np.asarray(x, dtype).astype(np.float64)
    if expected <= float(jnp.finfo(dtype).max):
        np.testing.assert_allclose(float(g), expected, rtol=1e-3)
    else:  # 2x itself overflows: inf is the true value in this dtype
        assert float(g) == np.inf


def test_squared_relu_second_derivative_survives_underflow_of_x_squared():
    x = jnp.float32(1e-25)  # x^2 underflows to 0 in float32
    assert float(jax.grad(jax.grad(relujax.squared_relu))(x)) == 2.0
