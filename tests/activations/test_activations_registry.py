"""The registry (get_activation, activation_names) and the named jit sites in jaxprs."""

import chex
import jax
import jax.numpy as jnp
import pytest

import relujax
from relujax.activations import SITE_NAMES

ALIASES = {"swish": "silu", "hard_silu": "hard_swish"}
REQUIRED = {"prelu": {"slope": 0.2}, "threshold": {"threshold": 0.5, "value": 0.0}}
EXPECTED_NAMES = {
    "capped_relu", "celu", "crelu", "elu", "gelu", "hard_sigmoid", "hard_silu", "hard_swish",
    "hard_tanh", "leaky_relu", "mish", "prelu", "relu", "relu6", "rrelu", "selu",
    "shifted_relu", "silu", "softplus", "squared_relu", "swish", "threshold",
}  # fmt: skip


def test_activation_names_lists_every_public_activation_sorted():
    names = relujax.activation_names()
    assert set(names) == EXPECTED_NAMES
    assert list(names) == sorted(names)
    for name in names:
        assert getattr(relujax, name) is getattr(relujax.activations, name)
        assert name in relujax.__all__


def test_site_names_are_the_canonical_names():
    assert set(SITE_NAMES) == EXPECTED_NAMES - set(ALIASES)
    assert isinstance(SITE_NAMES, frozenset)


def test_aliases_are_the_same_functions():
    assert relujax.swish is relujax.silu
    assert relujax.hard_silu is relujax.hard_swish


@pytest.mark.parametrize("name", sorted(EXPECTED_NAMES))
def test_each_activation_is_one_named_jit_equation_from_x_to_y(name):
    f = relujax.get_activation(name, **REQUIRED.get(name, {}))
    jaxpr = jax.make_jaxpr(f)(jnp.ones((2, 3))).jaxpr
    assert len(jaxpr.eqns) == 1
    (eqn,) = jaxpr.eqns
    assert eqn.primitive.name == "jit"
    assert eqn.params["name"] == ALIASES.get(name, name)
    assert eqn.invars[0] is jaxpr.invars[0]
    assert eqn.outvars[0] is jaxpr.outvars[0]


def test_sites_are_found_inside_a_model_with_the_pre_activation_as_input():
    def mlp(ws, x):
        h = relujax.leaky_relu(x @ ws[0], 0.1)
        return relujax.gelu(h @ ws[1])

    jaxpr = jax.make_jaxpr(mlp)(jnp.ones((2, 3, 3)), jnp.ones((4, 3))).jaxpr
    sites = [e for e in jaxpr.eqns if e.primitive.name == "jit" and e.params["name"] in SITE_NAMES]
    assert [e.params["name"] for e in sites] == ["leaky_relu", "gelu"]
    producers = {v: e for e in jaxpr.eqns for v in e.outvars}
    for site in sites:
        assert producers[site.invars[0]].primitive.name == "dot_general"


def test_get_activation_binds_parameters():
    x = jnp.array([-2.0, 0.0, 3.0])
    chex.assert_trees_all_close(
        relujax.get_activation("leaky_relu", negative_slope=0.25)(x), jnp.array([-0.5, 0.0, 3.0])
    )
    assert relujax.get_activation("relu") is relujax.relu
    assert relujax.get_activation("swish") is relujax.silu
    chex.assert_trees_all_close(
        relujax.get_activation("threshold", threshold=1.0, value=-1.0)(x),
        jnp.array([-1.0, -1.0, 3.0]),
    )
    f = relujax.get_activation("elu", alpha=0.5)
    chex.assert_trees_all_close(jax.jit(f)(x), jax.nn.elu(x, 0.5))
    chex.assert_trees_all_close(jax.grad(f)(0.0), jnp.float32(0.5))


@pytest.mark.parametrize(
    ("name", "suggestion"),
    [
        ("leaky_rleu", "'leaky_relu'"),
        ("gelu_new", "'gelu'"),
        ("swsh", "'swish'"),
    ],
)
def test_unknown_names_raise_naming_the_closest_valid_names(name, suggestion):
    with pytest.raises(
        ValueError, match=f"unknown activation '{name}'.*did you mean .*{suggestion}"
    ):
        relujax.get_activation(name)


@pytest.mark.parametrize(
    ("spelling", "name"),
    [("PReLU", "prelu"), ("ReLU", "relu"), (" Leaky-ReLU ", "leaky_relu"), ("Swish", "swish")],
)
def test_names_are_normalized_everywhere(spelling, name):
    assert relujax.activations.get_descriptor(spelling).function is getattr(relujax, name)
    params = REQUIRED.get(name, {})
    x = jnp.array([-1.0, 2.0])
    chex.assert_trees_all_equal(
        relujax.activations.get(spelling, **params)(x), relujax.get_activation(name, **params)(x)
    )


def test_unknown_name_without_close_match_lists_all_names():
    with pytest.raises(ValueError, match="accepted: capped_relu, celu"):
        relujax.get_activation("zzzzzz")
    with pytest.raises(TypeError, match="a str"):
        relujax.activations.get(3)


@pytest.mark.parametrize(
    ("name", "params", "match"),
    [
        ("relu", {"alpha": 1.0}, "relu takes no parameter 'alpha'; it accepts: none"),
        ("leaky_relu", {"slope": 0.1}, "it accepts: negative_slope"),
        ("prelu", {}, "prelu needs parameter"),
        ("leaky_relu", {"negative_slope": float("nan")}, "negative_slope must be finite"),
        ("rrelu", {"lower": 0.5, "upper": 0.1}, "lower must be <= upper"),
        ("celu", {"alpha": 0.0}, "celu: alpha must be non-zero"),
    ],
)
def test_bad_parameters_fail_at_get_activation(name, params, match):
    with pytest.raises(ValueError, match=match):
        relujax.get_activation(name, **params)
