"""born_dead_probability against hand-derived cases; exact monotonicity in depth; RAI."""

import jax
import jax.numpy as jnp
import pytest

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
        ({"init": "nope"}, ValueError, "nope"),
        ({"init": 3}, TypeError, "init must be"),
    ],
)
def test_bad_arguments(kwargs, error, match):
    base = {"width": 2, "depth": 2, "n_trials": 10}
    with pytest.raises(error, match=match):
        born_dead_probability(KEY, **{**base, **kwargs})
