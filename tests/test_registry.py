"""relujax._registry: one lookup convention and one name normalization."""

import pytest

from relujax._registry import Registry, normalize


@pytest.mark.parametrize(
    ("given", "expected"),
    [("PReLU", "prelu"), (" Leaky-ReLU ", "leaky_relu"), ("he normal", "he_normal"), ("x", "x")],
)
def test_normalize(given, expected):
    assert normalize(given) == expected


@pytest.fixture
def registry():
    return Registry("activation", {"relu": "R", "leaky_relu": "L"}, {"lrelu": "leaky_relu"})


def test_lookup_any_spelling(registry):
    assert registry.entry("ReLU") == "R"
    assert registry.entry("Leaky-ReLU") == "L"
    assert registry.entry("LRELU") == "L"
    assert registry.resolve("lrelu") == "leaky_relu"
    assert "RELU" in registry and "gelu" not in registry and 3 not in registry


def test_names_and_mapping(registry):
    assert registry.names() == ("leaky_relu", "lrelu", "relu")
    assert registry.canonical() == ("relu", "leaky_relu")
    assert dict(registry) == {"relu": "R", "leaky_relu": "L"}
    assert len(registry) == 2


def test_unknown_name_lists_closest_and_all(registry):
    with pytest.raises(ValueError, match=r"unknown activation 'relux' for name; did you mean"):
        registry.entry("relux")
    with pytest.raises(ValueError, match="accepted: leaky_relu, lrelu, relu"):
        registry.entry("tanh")


def test_non_string_is_a_type_error(registry):
    with pytest.raises(TypeError, match="activation must be the name of an activation"):
        registry.entry(3, param="activation")


def test_bad_definitions_fail_at_import():
    with pytest.raises(ValueError, match="not canonical"):
        Registry("x", {"ReLU": 1})
    with pytest.raises(ValueError, match="points to unknown"):
        Registry("x", {"relu": 1}, {"r": "rel"})
