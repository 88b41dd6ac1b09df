"""born_dead_probability against hand-derived cases; exact monotonicity in depth; RAI."""

import re
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import relujax
from relujax.analysis import born_dead_probability

KEY = jax.random.key(0)
NORMAL = jax.nn.initializers.normal(1.0)


@pytest.mark.parametrize(("depth", "want"), [(1, 0.0), (2, 0.5), (4, 0.875)])
def test_width_one_without_bias(depth, want):
    # Layer 1, relu(w x) on a symmetric domain, is non-constant unless w = 0 (probability 0);
    # every later layer kills the live unit iff its weight is negative: 1 - 2**-(depth - 1).
    p = float(born_dead_probability(KEY, width=1, depth=depth, n_trials=4000))
    assert p == pytest.approx(want, abs=0.03)  # 4 standard errors
    if depth == 1:
        assert p == 0.0


def test_one_layer_with_gaussian_bias():
    # relu(w x + b) is zero on [-a, a] iff b + a|w| <= 0; with w, b ~ N(0, 1) and a = sqrt(3)
    # that is P = arctan(1 / sqrt(3)) / pi = 1/6. A monotone unit is constant on the interval
    # iff it is at both ends, so two points decide exactly.
    p = born_dead_probability(
        KEY, width=1, depth=1, init=NORMAL, bias_init=NORMAL, n_trials=20000, n_points=2
    )
    assert float(p) == pytest.approx(1 / 6, abs=4 * (5 / 36 / 20000) ** 0.5)


def test_exactly_monotone_in_depth_and_rai_helps():
    # Same key: nets of different depth share their first layers, so dead stays dead.
    he = [float(born_dead_probability(KEY, width=1, depth=d, n_trials=4000)) for d in (2, 3, 8)]
    assert he[0] <= he[1] <= he[2] and he[2] > 0.95
    rai = float(born_dead_probability(KEY, width=1, depth=8, n_trials=4000, init="rai"))
    assert rai < he[2] - 0.25  # RAI (Lu et al. 2020) keeps narrow deep nets alive


def test_jit_and_vmap_over_keys():
    f = lambda k: born_dead_probability(k, width=1, depth=4, n_trials=4000)  # compiled above
    keys = jax.random.split(KEY, 3)
    batched = jax.jit(jax.vmap(f))(keys)
    assert batched.shape == (3,)
    assert jnp.allclose(batched, jnp.stack([f(k) for k in keys]))


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        ({"width": 0}, ValueError, "width"),
        ({"depth": 1.5}, TypeError, "depth"),  # wrong type: TypeError (relujax._validation)
        ({"n_points": 1}, ValueError, "n_points"),
        ({"domain": (1.0, -1.0)}, ValueError, "low < high"),
        ({"domain": 1.0}, TypeError, "pair"),
        ({"init": "rai", "bias_init": NORMAL}, ValueError, "paired"),
        ({"init": "zeros", "bias_init": "ones"}, ValueError, "zero kernel"),
        ({"init": "nope"}, ValueError, "nope"),
        ({"init": 3}, TypeError, "init must be"),
    ],
)
def test_bad_arguments(kwargs, error, match):
    base = {"width": 2, "depth": 2, "n_trials": 10}
    with pytest.raises(error, match=match):
        born_dead_probability(KEY, **{**base, **kwargs})


def _rai_reference(key, *, width, depth, n_trials, n_points):
    """Per trial: is some layer zero on the grid; the last layer's relative spread.

    The draws of born_dead_probability (one lax.map chunk: trial ``t`` has key
    ``split(split(key)[1], n_trials)[t]``, its layer ``l`` is drawn from
    ``split(fold_in(k_t, l))[0]``), then an independent float64 numpy forward pass on the
    grid of ``n_points`` evenly spaced points.
    """
    pair = relujax.init.rai().pair
    x = np.linspace(-(3**0.5), 3**0.5, n_points)[:, None]
    zero, spread = np.zeros(n_trials, bool), np.zeros(n_trials)
    for t, k in enumerate(jax.random.split(jax.random.split(key)[1], n_trials)):
        h = x
        for i in range(depth):
            w, b = pair(jax.random.split(jax.random.fold_in(k, i))[0], (h.shape[1], width))
            h = np.maximum(h @ np.float64(w) + np.float64(b), 0.0)
            zero[t] |= not h.any()
        spread[t] = np.max(np.ptp(h, axis=0) / np.maximum(np.max(h, axis=0), 1e-300))
    return zero, spread


def test_deep_rai_nets_below_float32_resolution_are_alive():
    # Width 2, depth 20, RAI: in some live nets the last layer's input-dependent part is
    # below float32 resolution relative to the biases (relative spread < 2**-24), so its
    # float32 values can all be equal; such a net is not born dead (no layer is zero, it is
    # not constant in float64). Testing "the last layer takes one float32 value" gave 16/32.
    kw = {"width": 2, "depth": 20, "n_trials": 32, "n_points": 64}
    zero, spread = _rai_reference(jax.random.key(1), **kw)
    assert np.any(~zero & (spread > 0) & (spread < 2.0**-24))  # the case is in this draw
    p = float(born_dead_probability(jax.random.key(1), init="rai", **kw))
    assert p == zero.sum() / kw["n_trials"] == 15 / 32  # a count over the same trials: exact


def test_the_figures_in_the_analysis_docs():
    """docs/analysis.md quotes born_dead_probability(key(0), width=2, depth=10) for He and RAI."""
    text = (Path(__file__).resolve().parents[2] / "docs" / "analysis.md").read_text()
    m = re.search(r"width=2, depth=10\)` is (\d\.\d+)\s+with He init and (\d\.\d+) with", text)
    assert m, "the born-dead sentence of docs/analysis.md moved: update this test"
    he = born_dead_probability(jax.random.key(0), width=2, depth=10)
    rai = born_dead_probability(jax.random.key(0), width=2, depth=10, init="rai")
    assert (m.group(1), m.group(2)) == (f"{float(he):.3f}", f"{float(rai):.3f}")
