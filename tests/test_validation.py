"""relujax._validation: one rule (wrong type -> TypeError, wrong value -> ValueError)."""

import math

import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from relujax import _validation as v


@pytest.mark.parametrize(
    ("value", "kwargs", "error", "match"),
    [
        (0.0, dict(minimum=0.0, strict=True), ValueError, r"celu: alpha must be > 0\.0"),
        (jnp.array(0.0), dict(minimum=0.0, strict=True), ValueError, "must be > 0"),
        (np.array([1.0, -1.0]), dict(minimum=0.0), ValueError, "must be >= 0"),
        (jnp.array([1.0, jnp.nan]), {}, ValueError, "must be finite"),
        (math.inf, dict(minimum=0.0), ValueError, "must be finite"),
        (2.0, dict(minimum=0.0, maximum=1.0), ValueError, r"in \[0\.0, 1\.0\]"),
        (0.0, dict(nonzero=True), ValueError, "non-zero"),
        ("1.0", {}, TypeError, "number or an array"),
    ],
)
def test_number_array_rejects(value, kwargs, error, match):
    with pytest.raises(error, match=match):
        v.number_array("celu: alpha", value, **kwargs)


@pytest.mark.parametrize("value", [1.0, 3, np.float32(2.0), jnp.array([0.5, 2.0]), None])
def test_number_array_accepts(value):
    v.number_array("p", value, minimum=0.0, strict=True)


def test_number_array_passes_tracers():
    # A traced value cannot be checked; it must not raise (the same call eagerly would).
    out = jax.jit(lambda a: (v.number_array("p", a, minimum=1.0), a)[1])(jnp.array(0.0))
    chex.assert_trees_all_equal(out, jnp.array(0.0))
    jax.grad(lambda a: (v.number_array("p", a, minimum=1.0), a)[1])(0.0)


def test_real_and_integer():
    assert v.real("lr", np.float32(0.5), minimum=0.0) == 0.5
    with pytest.raises(TypeError, match="lr must be a real number"):
        v.real("lr", "0.5")
    with pytest.raises(TypeError):
        v.real("lr", True)
    with pytest.raises(ValueError, match="lr must be finite"):
        v.real("lr", float("nan"), finite=False)  # NaN is never accepted
    assert v.real("t", math.inf, finite=False) == math.inf
    assert v.integer("steps", np.int64(3), minimum=1) == 3
    with pytest.raises(TypeError, match="steps must be an int"):
        v.integer("steps", 3.0)
    with pytest.raises(TypeError):
        v.integer("steps", True)
    with pytest.raises(ValueError, match=r"steps must be an int >= 1, got 0"):
        v.integer("steps", 0, minimum=1)


@pytest.mark.parametrize("seed", [-1, 2**32, 2**40])
def test_seed_range(seed):
    with pytest.raises(ValueError, match=r"seed must be an int in \[0, 4294967295\]"):
        v.seed("seed", seed)


def test_seed_bounds_accepted():
    assert v.seed("seed", 0) == 0
    assert v.seed("seed", 2**32 - 1) == 2**32 - 1


def test_choice():
    assert v.choice("mode", "a", ("a", "b")) == "a"
    with pytest.raises(ValueError, match="mode must be one of 'a', 'b'; got 'c'"):
        v.choice("mode", "c", ("a", "b"))
    with pytest.raises(TypeError):
        v.choice("mode", 3, ("a", "b"))


def test_boolean():
    assert v.boolean("flag", np.bool_(True)) is True
    with pytest.raises(TypeError, match="flag must be a bool"):
        v.boolean("flag", 1)


def test_key_legacy_and_typed_give_equal_draws():
    typed = v.key("key", jax.random.key(3))
    legacy = v.key("key", jax.random.PRNGKey(3))
    chex.assert_trees_all_equal(jax.random.normal(typed, (4,)), jax.random.normal(legacy, (4,)))
    # Inside jit as well (legacy keys arrive as uint32 tracers).
    draw = jax.jit(lambda k: jax.random.normal(v.key("key", k), (4,)))
    chex.assert_trees_all_equal(draw(jax.random.PRNGKey(3)), jax.random.normal(typed, (4,)))


@pytest.mark.parametrize("bad", [0, 1.5, jnp.zeros(2), jnp.zeros((3,), jnp.uint32), "k"])
def test_key_rejects(bad):
    with pytest.raises(TypeError, match=r"key must be a jax\.random key"):
        v.key("key", bad)


def test_finite_rows_names_first_bad_row():
    x = np.zeros((5, 3), np.float32)
    x[3, 1] = np.inf
    x[4, 0] = np.nan
    with pytest.raises(ValueError, match=r"x_train has non-finite values.*row 3 of 5"):
        v.finite_rows("x_train", x)
    v.finite_rows("y", np.arange(5))  # integers are always finite
    v.finite_rows("x", np.ones((2, 2)))


def test_order():
    v.order("lower", 0.1, "upper", 0.2)
    with pytest.raises(ValueError, match="lower must be <= upper"):
        v.order("lower", 0.3, "upper", 0.2)


def test_broadcastable():
    v.same_shape_or_broadcastable("slope", (4,), "x", (2, 4))
    with pytest.raises(ValueError, match=r"slope of shape \(3,\) does not broadcast"):
        v.same_shape_or_broadcastable("slope", (3,), "x", (2, 4))


def test_instance():
    assert v.instance("layout", 3, int, "an int") == 3
    with pytest.raises(TypeError, match=r"redo: layout must be a remedies\.Layout, got str\."):
        v.instance("redo: layout", "x", int, "a remedies.Layout")
