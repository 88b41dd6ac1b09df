"""relujax.init.get / names."""

import chex
import jax
import pytest

from relujax import init

KEY = jax.random.key(2)
# Shapes shared with the other init tests, so that their compilations are reused.
SHAPE = {"orthogonal": (64, 32), "rai": (18, 5)}


@pytest.mark.parametrize("name", init.names())
def test_every_name_builds_a_working_initializer(name):
    params = {"value": 0.5} if name == "constant" else {}
    shape = SHAPE.get(name, (800, 600))
    w = init.get(name, **params)(KEY, shape)
    chex.assert_shape(w, shape)
    chex.assert_tree_all_finite(w)


@pytest.mark.parametrize(
    ("name", "params", "direct"),
    [
        ("he_normal", {"negative_slope": 0.2}, init.he_normal(negative_slope=0.2)),
        ("He-Normal", {}, init.he_normal()),
        (" KAIMING normal ", {"negative_slope": 0.1}, init.he_normal(negative_slope=0.1)),
        ("Glorot-Uniform", {}, init.xavier_uniform()),
        ("kaiming_uniform", {}, init.he_uniform()),
        ("glorot_normal", {"gain": 2.0}, init.xavier_normal(gain=2.0)),
        ("rai", {"sigma": 0.3}, init.rai(sigma=0.3)),
        ("normal", {"stddev": 0.1}, init.normal(0.1)),
        ("zeros", {}, init.zeros),
    ],
)
def test_get_forwards_params(name, params, direct):
    shape = SHAPE.get(name, (800, 600))
    chex.assert_trees_all_equal(init.get(name, **params)(KEY, shape), direct(KEY, shape))


def test_get_passes_callables_through():
    f = init.he_uniform()
    assert init.get(f) is f
    with pytest.raises(TypeError, match="parameters"):
        init.get(f, negative_slope=0.1)


def test_unknown_name_suggests_closest():
    with pytest.raises(ValueError, match="did you mean 'xavier_normal'"):
        init.get("xavier_norma")
    with pytest.raises(ValueError, match="accepted: constant"):
        init.get("qwertyuiop")
    with pytest.raises(TypeError, match="name"):
        init.get(3)


def test_unknown_parameters_are_type_errors_listing_the_accepted_ones():
    with pytest.raises(
        TypeError, match=r"'zeros' got unknown parameters \['value'\]; accepted: none"
    ):
        init.get("zeros", value=1.0)
    with pytest.raises(TypeError, match="accepted: negative_slope, distribution"):
        init.get("he_normal", bogus=1.0)
    # Values are checked by the factory: a wrong value is a ValueError naming it.
    with pytest.raises(ValueError, match="he_normal: distribution"):
        init.get("he_normal", distribution="cauchy")


def test_registry_convention():
    # The same normalization and entries as every relujax registry.
    from relujax._registry import normalize

    assert all(normalize(n) == n for n in init.names())
    for alias, target in [("kaiming_normal", "he_normal"), ("glorot_normal", "xavier_normal")]:
        assert alias in init.names()
        w = init.get(alias)(KEY, (800, 600))
        chex.assert_trees_all_equal(w, init.get(target)(KEY, (800, 600)))


def test_names_sorted_and_complete():
    names = init.names()
    assert list(names) == sorted(names)
    for required in (
        "he_normal",
        "he_uniform",
        "xavier_normal",
        "xavier_uniform",
        "lecun_normal",
        "orthogonal",
        "rai",
        "normal",
        "constant",
        "zeros",
    ):
        assert required in names
