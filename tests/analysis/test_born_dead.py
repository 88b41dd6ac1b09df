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


@pytest.mark.parametrize(("width", "want"), [(1, 1 / 6), (2, 1 / 36)])
def test_one_layer_with_gaussian_bias(width, want):
    # unit dead iff b + sqrt(3)|w| <= 0 with w, b ~ N(0, 1): P = arctan(1/sqrt(3)) / pi = 1/6
    p = float(
        born_dead_probability(
            KEY, width=width, depth=1, init=NORMAL, bias_init=NORMAL, n_trials=20000
        )
    )
    assert p == pytest.approx(want, abs=4 * (want * (1 - want) / 20000) ** 0.5)


def test_exactly_monotone_in_depth_and_rai_helps():
    he = [float(born_dead_probability(KEY, width=2, depth=d, n_trials=1500)) for d in (2, 4, 8)]
    assert he[0] <= he[1] <= he[2] and he[2] > 0.6
    rai = float(born_dead_probability(KEY, width=2, depth=8, n_trials=1500, init="rai"))
    assert rai < he[2] - 0.3  # RAI (Lu et al. 2020) keeps narrow deep nets alive


def test_jit_and_vmap_over_keys():
    f = lambda k: born_dead_probability(k, width=1, depth=2, n_trials=200)
    keys = jax.random.split(KEY, 3)
    batched = jax.jit(jax.vmap(f))(keys)
    assert batched.shape == (3,)
    assert jnp.allclose(batched, jnp.stack([f(k) for k in keys]))


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        ({"width": 0}, ValueError, "width"),
        ({"depth": 1.5}, ValueError, "depth"),
        ({"n_points": 1}, ValueError, "n_points"),
        ({"domain": (1.0, -1.0)}, ValueError, "low < high"),
        ({"domain": 1.0}, ValueError, "pair"),
        ({"init": "rai", "bias_init": NORMAL}, ValueError, "paired"),
        ({"init": "nope"}, ValueError, "nope"),
        ({"init": 3}, TypeError, "init must be"),
    ],
)
def test_bad_arguments(kwargs, error, match):
    base = {"width": 2, "depth": 2, "n_trials": 10}
    with pytest.raises(error, match=match):
        born_dead_probability(KEY, **{**base, **kwargs})
