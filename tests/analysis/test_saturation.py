"""with_saturation: saturated samples of bounded activations, hand-counted; bounds in one place."""

import inspect
import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

import relujax
from relujax import analysis
from relujax.activations import Saturation
from relujax.activations._catalog import DESCRIPTORS

# Columns are units; rows are samples. Kinks sit exactly on the thresholds.
Z = jnp.array(
    [
        [-1.0, -3.0, 0.0, -2.0],
        [1.0, 3.0, 6.0, 2.0],
        [0.5, 2.9, 5.9, -5.0],
        [-1.5, -4.0, 7.0, 9.0],
        [0.0, jnp.nan, -1.0, jnp.inf],
    ]
)


def test_descriptors_hold_the_bounds_and_agree_with_the_functions():
    bounded = {d.name: d.saturation for d in DESCRIPTORS if d.saturation is not None}
    assert bounded == {
        "hard_tanh": Saturation(-1.0, 1.0),
        "hard_sigmoid": Saturation(-3.0, 3.0),
        "relu6": Saturation(None, 6.0),
        "capped_relu": Saturation(None, "cap"),  # the bound is the call's parameter
    }
    assert analysis.SATURATION == bounded
    for d in DESCRIPTORS:
        if d.saturation is None:
            continue
        f, grad = d.function, jax.vmap(jax.grad(d.function))
        low, high = d.output_range  # for the default parameters
        defaults = {
            k: v.default for k, v in inspect.signature(d.function).parameters.items() if k != "x"
        }
        lower, upper = d.saturation.resolve(defaults)
        for z, bound, inward in ((lower, low, 1.0), (upper, high, -1.0)):
            if z is None:
                continue
            outward = jnp.array([z, z - inward * 0.5, z - inward * 100.0])
            # Flat at the bound from the threshold (kink included) outwards ...
            np.testing.assert_array_equal(f(outward), [bound] * 3)
            np.testing.assert_array_equal(grad(outward), [0.0] * 3)
            # ... and not flat just inside.
            assert float(grad(jnp.array([z + inward * 0.01]))[0]) > 0.0
    # relu6's lower flat region (the silent side) is deliberately left out.
    assert relujax.relu6(jnp.array(-1.0)) == 0.0 and bounded["relu6"].lower is None


def test_hand_counts_with_kinks_nan_and_inf():
    def f(z):  # one unit per site: columns k:k+1 of shape (5, 1)
        return (
            relujax.hard_tanh(z[:, 0:1]),
            relujax.hard_sigmoid(z[:, 1:2]),
            relujax.relu6(z[:, 2:3]),
            relujax.hard_tanh(z[:, 3:4]),
        )

    _, sat = jax.jit(analysis.with_saturation(f))(Z)
    assert list(sat) == ["hard_tanh_0", "hard_sigmoid_0", "relu6_0", "hard_tanh_1"]
    counts = {k: (v.samples, v.lower, v.upper) for k, v in sat.items()}
    got = {k: [int(c.to_numpy()[0]) for c in v] for k, v in counts.items()}
    assert got == {
        # -1 (kink), -1.5 lower; 1 (kink) upper; 0.5, 0 inside.
        "hard_tanh_0": [5, 2, 1],
        # -3 (kink), -4 lower; 3 (kink) upper; 2.9 inside; NaN not counted.
        "hard_sigmoid_0": [4, 2, 1],
        # 6 (kink), 7 upper; 0 and -1 are on the silent side, not saturated.
        "relu6_0": [5, 0, 2],
        # -2, -5 lower; 2, 9, inf upper: saturated on every sample, on both sides.
        "hard_tanh_1": [5, 2, 3],
    }
    np.testing.assert_allclose(sat["hard_sigmoid_0"].fraction, [0.75])
    assert [bool(v.always[0]) for v in sat.values()] == [False, False, False, True]


def test_layer_level_fractions_units_and_monoid():
    x = jnp.array([[-2.0, 0.5, 3.0], [2.0, 0.0, 0.99], [1.0, -0.2, -1.0], [-1.0, 0.9, 0.2]])
    f = jax.jit(analysis.with_saturation(relujax.hard_tanh))
    s = f(x)[1]["hard_tanh_0"]
    # Per unit: [4/4, 0/4, 2/4] saturated (3 and the kink -1); unit 0 on every sample.
    np.testing.assert_allclose(s.fraction, [1.0, 0.0, 0.5])
    np.testing.assert_allclose(analysis.saturated_fraction(s), 0.5)
    np.testing.assert_allclose(analysis.always_saturated_fraction(s), 1.0 / 3.0)
    merged = f(x[:1])[1].merge(f(x[1:])[1])["hard_tanh_0"]
    for a, b in zip(jax.tree.leaves(merged), jax.tree.leaves(s), strict=True):
        np.testing.assert_array_equal(a, b)
    # No samples: NaN, never 'always saturated'.
    empty = analysis.SaturationStats.empty(2)
    assert np.isnan(empty.fraction).all() and not empty.always.any()
    assert math.isnan(float(analysis.saturated_fraction(empty)))


def test_jax_nn_names_rank4_and_layers_in_a_scan():
    x = jnp.asarray(np.random.default_rng(0).normal(size=(2, 4, 4, 3)) * 2, jnp.float32)
    _, sat = analysis.with_saturation(
        lambda x: jax.nn.relu6(4.0 * jax.nn.hard_tanh(x)),
        unit_axis={"hard_tanh_0": -1, "relu6_0": -1},
    )(x)
    z = np.asarray(x).reshape(-1, 3)
    np.testing.assert_allclose(sat["hard_tanh_0"].fraction, (np.abs(z) >= 1).mean(0), rtol=1e-6)
    np.testing.assert_array_equal(sat["relu6_0"].fraction, [0.0, 0.0, 0.0])  # at most 4
    # jax.nn.hard_sigmoid is jitted under relujax's name: both bounds, kinks included.
    _, sat = analysis.with_saturation(jax.nn.hard_sigmoid)(
        jnp.array([[-4.0], [3.0], [0.0], [-3.0]])
    )
    np.testing.assert_array_equal(sat["hard_sigmoid_0"].fraction, [0.75])

    ws = jnp.stack([jnp.eye(2) * 10.0, jnp.eye(2) * 0.1])  # layer 0 saturates, layer 1 not

    def net(h):
        return jax.lax.scan(lambda h, w: (relujax.hard_tanh(h @ w), None), h, ws)[0]

    _, sat = jax.jit(analysis.with_saturation(net))(jnp.array([[0.5, -0.05], [-1.0, 2.0]]))
    assert list(sat) == ["hard_tanh_0[0]", "hard_tanh_0[1]"]
    np.testing.assert_allclose(sat["hard_tanh_0[0]"].fraction, [1.0, 0.5])
    np.testing.assert_allclose(sat["hard_tanh_0[1]"].fraction, [0.0, 0.0])


def test_nnx_mlp_and_errors():
    model = relujax.nn.MLP(2, [3], 1, activation="relu6", rngs=nnx.Rngs(0))
    x = jnp.array([[100.0, 100.0], [-100.0, -100.0]])
    _, sat = analysis.with_saturation(model)(x)
    (name,) = list(sat)
    z = x @ model.layers[0].kernel[...] + model.layers[0].bias[...][None]
    np.testing.assert_allclose(sat[name].fraction, (np.asarray(z) >= 6).mean(0))
    with pytest.raises(ValueError, match="no selected site has a bounded activation"):
        analysis.with_saturation(relujax.relu)(x)


def test_capped_relu_saturates_at_its_own_cap_read_from_each_call():
    z = jnp.array([[-1.0, 2.0], [0.0, 2.5], [1.0, 1.9], [2.0, jnp.nan], [3.0, 0.5]])

    def f(x, cap):  # two calls, two caps: a literal one and a traced one
        return relujax.capped_relu(x, cap=2.0), relujax.capped_relu(x * 2.0, cap=cap)

    _, sat = jax.jit(analysis.with_saturation(f))(z, jnp.float32(3.0))
    assert list(sat) == ["capped_relu_0", "capped_relu_1"]
    # Hand counts: cap 2 -> unit 0 {2 (kink), 3}, unit 1 {2 (kink), 2.5}; NaN not a sample.
    first = sat["capped_relu_0"]
    np.testing.assert_array_equal(first.upper.to_numpy(), [2, 2])
    np.testing.assert_array_equal(first.samples.to_numpy(), [5, 4])
    np.testing.assert_array_equal(first.lower.to_numpy(), [0, 0])  # the silent side: not counted
    # 2z against cap 3 -> unit 0 {4, 6}, unit 1 {4, 5, 3.8}.
    np.testing.assert_array_equal(sat["capped_relu_1"].upper.to_numpy(), [2, 3])
    # The cap is read per call: relu6 is capped_relu with cap 6, and agrees with it.
    wide = jnp.array([[5.0], [6.0], [7.0], [-1.0]])
    _, a = analysis.with_saturation(lambda x: relujax.capped_relu(x, 6.0))(wide)
    _, b = analysis.with_saturation(relujax.relu6)(wide)
    np.testing.assert_array_equal(a["capped_relu_0"].upper.to_numpy(), [2])
    np.testing.assert_array_equal(b["relu6_0"].upper.to_numpy(), [2])
    # Under vmap over caps: each model's own cap.
    caps = jnp.array([1.0, 2.5])
    _, per = jax.vmap(analysis.with_saturation(lambda c: relujax.capped_relu(z, cap=c)))(caps)
    np.testing.assert_array_equal(per["capped_relu_0"].upper.to_numpy(), [[3, 3], [1, 1]])
