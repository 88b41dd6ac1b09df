"""with_stats reads a biased pre-activation ``c + b`` off ``c`` and ``b`` (never forming it for
the statistics): the same statistics as the plain path and a float64 reference, exact counts,
non-finite sums caught, gradients unchanged, and the sites that do not qualify left alone."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from relujax import analysis
from relujax.analysis import _collect, _stats


def randn(seed, *shape, scale=1.0):
    return jnp.asarray(scale * np.random.default_rng(seed).normal(size=shape), jnp.float32)


W1, B1 = randn(1, 3, 3, 2, 4), randn(2, 4, scale=2.0)  # bias of the order of the activations
W2, B2 = randn(3, 4, 5), randn(4, 5, scale=2.0)
X = randn(5, 6, 8, 8, 2)


def net(params, x):
    """conv + bias -> relu -> mean pool -> dense + bias -> leaky_relu; also a softplus."""
    w1, b1, w2, b2 = params
    c = jax.lax.conv_general_dilated(
        x, w1, (1, 1), "SAME", dimension_numbers=("NHWC", "HWIO", "NHWC")
    )
    h = jax.nn.relu(c + b1.reshape(1, 1, 1, -1))
    d = h.mean(axis=(1, 2)) @ w2
    z = jax.nn.leaky_relu(d + b2.reshape(1, -1))
    return jnp.sum(z) + jnp.sum(jax.nn.softplus(d))


PARAMS = (W1, B1, W2, B2)


def pre_activations(params, x):
    w1, b1, w2, b2 = params
    c = jax.lax.conv_general_dilated(
        x, w1, (1, 1), "SAME", dimension_numbers=("NHWC", "HWIO", "NHWC")
    )
    pre1 = c + b1.reshape(1, 1, 1, -1)
    d = jax.nn.relu(pre1).mean(axis=(1, 2)) @ w2
    return pre1, d + b2.reshape(1, -1), d


def reference(pre, out):
    """float64 statistics of all samples, pooling every axis but the last."""
    x = np.asarray(pre, np.float64).reshape(-1, pre.shape[-1])
    y = np.asarray(out, np.float64).reshape(-1, pre.shape[-1])
    return dict(
        firing=(x > 0).sum(0),
        pre_mean=x.mean(0),
        pre_m2=((x - x.mean(0)) ** 2).sum(0),
        pre_min=x.min(0),
        pre_max=x.max(0),
        out_mean=y.mean(0),
        out_m2=((y - y.mean(0)) ** 2).sum(0),
        out_abs_mean=np.abs(y).mean(0),
    )


def test_biased_sites_are_detected_and_others_are_not():
    traced = _collect._trace(net, (PARAMS, X), {}, None)
    names = {s.name for s in traced.plan.sites}
    found = _collect._shifted_sites(traced.plan, names)
    # relu and leaky_relu (sign-preserving) after a bias add; softplus is not sign-preserving
    assert sorted(found) == ["leaky_relu_0", "relu_0"]
    assert "softplus_0" in names


def test_shifted_statistics_equal_plain_path_and_float64_reference(monkeypatch):
    step = jax.jit(analysis.with_stats(net))
    out, stats = step(PARAMS, X)
    monkeypatch.setattr(_collect, "_shifted_sites", lambda plan, keys: {})
    out_plain, plain = jax.jit(analysis.with_stats(net))(PARAMS, X)
    np.testing.assert_array_equal(out, out_plain)
    pre1, pre2, d = pre_activations(PARAMS, X)
    cases = {
        "relu_0": (pre1, jax.nn.relu(pre1)),
        "leaky_relu_0": (pre2, jax.nn.leaky_relu(pre2)),
        "softplus_0": (d, jax.nn.softplus(d)),
    }
    for name, (pre, act) in cases.items():
        s, p, ref = stats[name], plain[name], reference(pre, act)
        rows = pre.size // pre.shape[-1]
        for field in ("count", "firing", "nonfinite"):  # exact, and equal to the plain path
            np.testing.assert_array_equal(
                getattr(s, field).to_numpy(), getattr(p, field).to_numpy()
            )
        np.testing.assert_array_equal(s.count.to_numpy(), rows)
        np.testing.assert_array_equal(s.firing.to_numpy(), ref["firing"])
        # min and max of c + b are fl(min(c) + b): bit-equal to the plain path
        np.testing.assert_array_equal(s.pre_min, p.pre_min)
        np.testing.assert_array_equal(s.pre_max, p.pre_max)
        for field in ("pre_mean", "pre_m2", "out_mean", "out_m2", "out_abs_mean", "pre_min"):
            scale = np.abs(ref[field]).max() + 1e-6
            np.testing.assert_allclose(getattr(s, field), ref[field], rtol=2e-5, atol=2e-5 * scale)


def test_non_finite_sum_is_caught():
    """``c + b`` overflows to -inf where neither ``c`` nor ``b`` is infinite."""
    c = jnp.array([[1.0, -3e38], [2.0, -1.0], [-4.0, 5.0]], jnp.float32)
    b = jnp.array([[0.5, -3e38]], jnp.float32)
    x = c + b
    y = jax.nn.relu(x)
    assert not np.isfinite(np.asarray(x)).all()
    got = _stats._from_shifted(c, b, y, nonnegative=True)
    want = analysis.UnitStats.from_batch(x, y, nonnegative=True, sign_preserving=True)
    np.testing.assert_array_equal(got.nonfinite.to_numpy(), [0, 1])
    np.testing.assert_array_equal(got.count.to_numpy(), want.count.to_numpy())
    np.testing.assert_array_equal(got.firing.to_numpy(), want.firing.to_numpy())
    for field in ("pre_mean", "pre_m2", "pre_min", "pre_max", "out_mean", "out_m2"):
        np.testing.assert_allclose(getattr(got, field), getattr(want, field), rtol=1e-6)
    # the finite unit: x = [1.5, 2.5, -3.5]
    np.testing.assert_allclose(got.pre_mean[0], 0.5 / 3, rtol=1e-6)
    np.testing.assert_allclose(got.pre_min[0], -3.5)


@pytest.mark.parametrize(("shape", "shift"), [((2, 3), False), ((1, 3), True)])
def test_only_a_bias_constant_over_samples_is_a_shift(shape, shift):
    def f(x, b):
        return jax.nn.relu(x + b)

    traced = _collect._trace(f, (randn(7, 2, 3), randn(8, *shape)), {}, None)
    assert ("relu_0" in _collect._shifted_sites(traced.plan, {"relu_0"})) == shift


def test_gradients_unchanged():
    g, (_, stats) = jax.jit(
        jax.grad(lambda p, x: (lambda o: (o[0], o))(analysis.with_stats(net)(p, x)), has_aux=True)
    )(PARAMS, X)
    want = jax.jit(jax.grad(net))(PARAMS, X)
    for a, b in zip(g, want, strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-6, atol=1e-6)
    assert stats["relu_0"].units == 4
