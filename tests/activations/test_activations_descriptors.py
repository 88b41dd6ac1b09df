"""The descriptors: every table derived from them, and every property they claim, checked."""

import inspect

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import relujax
from relujax import activations
from relujax.activations._catalog import DESCRIPTORS

IDS = [d.name for d in DESCRIPTORS]
REQUIRED = {"prelu": {"slope": 0.25}, "threshold": {"threshold": 0.5, "value": -2.0}}
GRID = np.concatenate([np.linspace(-12.0, 12.0, 97), [-1e3, 1e3]]).astype(np.float32)


def _bound(d):
    return activations.get(d.name, **REQUIRED.get(d.name, {}))


def test_every_descriptor_is_exported_under_its_names():
    for d in DESCRIPTORS:
        for name in (d.name, *d.aliases):
            assert getattr(relujax, name) is d.function
            assert getattr(activations, name) is d.function
            assert name in relujax.__all__ and name in activations.__all__


def test_derived_tables():
    canonical = {d.name for d in DESCRIPTORS}
    aliases = {a for d in DESCRIPTORS for a in d.aliases}
    assert activations.SITE_NAMES == canonical
    assert set(activations.names()) == canonical | aliases == set(relujax.activation_names())
    assert activations.MODULE_ACTIVATIONS == {"prelu", "rrelu"}
    assert set(relujax.nn._resolve.MODULE_ACTIVATIONS) == activations.MODULE_ACTIVATIONS
    from relujax.analysis import _capture

    assert activations.NONNEGATIVE <= _capture.NONNEGATIVE
    assert activations.SIGN_PRESERVING == _capture.SIGN_PRESERVING


@pytest.mark.parametrize("d", DESCRIPTORS, ids=IDS)
def test_claimed_sign_range_and_saturation_properties_hold(d):
    f = _bound(d)
    x = jnp.asarray(GRID)
    y = np.asarray(jax.vmap(f)(x)).reshape(len(GRID), -1)
    xs = GRID[:, None]
    if d.nonnegative:
        assert np.all(y >= 0)
    else:
        assert np.any(y < 0) or d.name == "softplus"
    if d.sign_preserving:
        np.testing.assert_array_equal(y > 0, np.broadcast_to(xs > 0, y.shape))
    lo, hi = d.output_range
    assert np.all(y >= lo - 1e-2) and np.all(y <= hi + 1e-6)
    jac = jax.vmap(jax.jacfwd(f))(jnp.array([-10.0, 10.0]))
    flat = bool(np.any(np.asarray(jac) == 0))
    assert flat == d.saturating


@pytest.mark.parametrize("d", [d for d in DESCRIPTORS if d.jax_nn], ids=lambda d: d.name)
def test_jax_nn_counterparts_agree_away_from_kinks(d):
    x = jnp.asarray(GRID[np.abs(GRID) > 0.05])
    np.testing.assert_allclose(d.function(x), getattr(jax.nn, d.jax_nn)(x), rtol=2e-6, atol=2e-6)


@pytest.mark.parametrize("d", [d for d in DESCRIPTORS if d.params], ids=lambda d: d.name)
def test_params_are_the_functions_keywords_and_their_domains_are_enforced(d):
    signature = inspect.signature(d.function).parameters
    for p in d.params:
        assert p.name in signature
        kwargs = dict(REQUIRED.get(d.name, {}))
        kwargs[p.name] = float("nan")
        with pytest.raises(ValueError, match=f"{d.name}: {p.name} must be"):
            d.function(jnp.ones(3), **kwargs)


def test_get_descriptor_and_get_share_the_registry_convention():
    assert activations.get_descriptor("Hard-SiLU") is activations.get_descriptor("hard_swish")
    with pytest.raises(ValueError, match="unknown activation"):
        activations.get_descriptor("nope")
    with pytest.raises(TypeError):
        activations.get_descriptor(None)
