"""diagnose / Report: hand-computed dead, dormant (ReDo tau), low-firing and always-active units."""

import json
import math

import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from relujax import analysis
from relujax.analysis import ModelStats, UnitStats

# Pre-activations of 5 units over 4 samples, hand-chosen:
#   unit 0: never positive (dead)                 E|h| = 0
#   unit 1: positive once, tiny                   E|h| = 0.01 / 4 = 0.0025
#   unit 2: positive on every sample (always on)  E|h| = 2
#   unit 3: positive half the time                E|h| = (1 + 3) / 4 = 1
#   unit 4: positive 3 times                      E|h| = (2 + 2 + 2) / 4 = 1.5
PRE = jnp.array(
    [
        [-1.0, 0.01, 2.0, 1.0, 2.0],
        [-2.0, -1.0, 2.0, -1.0, 2.0],
        [-3.0, -1.0, 2.0, 3.0, 2.0],
        [-4.0, -1.0, 2.0, -2.0, -1.0],
    ]
)
STATS = ModelStats({"h": UnitStats.from_batch(PRE, jax.nn.relu(PRE))})
LAYER_MEAN = (0.0 + 0.0025 + 2.0 + 1.0 + 1.5) / 5  # 0.9005
SCORES = np.array([0.0, 0.0025, 2.0, 1.0, 1.5]) / LAYER_MEAN


def test_hand_computed_site_report():
    rep = analysis.diagnose(STATS)
    s = rep["h"]
    assert (s.units, s.samples) == (5, 4)
    np.testing.assert_allclose(s.firing_rate, [0.0, 0.25, 1.0, 0.5, 0.75])
    np.testing.assert_allclose(s.score, SCORES, rtol=1e-5)
    np.testing.assert_array_equal(s.dead, [True, False, False, False, False])
    # tau = 0: E|h| == 0; tau = 0.025 and 0.1 also catch unit 1 (score 0.00278)
    np.testing.assert_array_equal(s.dormant[0.0], [True, False, False, False, False])
    np.testing.assert_array_equal(s.dormant[0.025], [True, True, False, False, False])
    np.testing.assert_array_equal(s.dormant[0.1], [True, True, False, False, False])
    np.testing.assert_array_equal(s.low_firing, [True, False, False, False, False])
    np.testing.assert_array_equal(s.always_active, [False, False, True, False, False])
    np.testing.assert_allclose(s.pre_mean, [-2.5, -0.7475, 2.0, 0.25, 1.25], rtol=1e-6)
    np.testing.assert_allclose(s.pre_std, np.std(np.asarray(PRE), axis=0), rtol=1e-5)
    assert s.firing_quartiles == pytest.approx((0.25, 0.5, 0.75))
    assert s.nonfinite_fraction == 0.0
    assert s.persistence is None and s.effective_rank is None


def test_thresholds_are_parameters():
    rep = analysis.diagnose(STATS, taus=(0.5, 1.2), low_rate=0.3)
    np.testing.assert_array_equal(rep["h"].dormant[1.2], SCORES <= 1.2)
    np.testing.assert_array_equal(rep["h"].low_firing, [True, True, False, False, False])
    assert rep.dormant_fraction(0.5) == pytest.approx(0.4)


def test_overall_pools_units_of_all_sites():
    other = UnitStats.from_batch(-jnp.ones((3, 3)), jnp.zeros((3, 3)))  # 3 dead units
    rep = analysis.diagnose(ModelStats({"h": STATS["h"], "g": other}))
    assert (rep.units, rep.dead) == (8, 4)
    assert rep.dead_fraction == pytest.approx(4 / 8)
    assert rep.dormant_fraction(0.025) == pytest.approx(5 / 8)
    assert rep.always_active_fraction == pytest.approx(1 / 8)
    # a site where every unit is silent: all scores 0, all dormant
    np.testing.assert_array_equal(rep["g"].score, [0.0, 0.0, 0.0])


def test_persistence_against_an_earlier_report():
    before = analysis.diagnose(
        ModelStats({"h": UnitStats.from_batch((-jnp.ones((2, 5))).at[:, 2:].set(1.0))})
    )  # units 0, 1 dead
    rep = analysis.diagnose(STATS, previous=before)  # now only unit 0 dead
    np.testing.assert_array_equal(rep["h"].previous_dead, [True, True, False, False, False])
    assert rep["h"].persistence == 0.5 and rep.persistence == 0.5
    assert "persist%" in rep.summary()
    # ModelStats work as `previous` too, and a site with another unit count is skipped
    assert analysis.diagnose(STATS, previous=STATS).persistence == 1.0
    wide = ModelStats({"h": UnitStats.from_batch(-jnp.ones((2, 7)))})
    assert analysis.diagnose(STATS, previous=wide)["h"].previous_dead is None


def test_nonfinite_fraction_and_units_without_samples():
    pre = jnp.array([[jnp.nan, 1.0], [jnp.nan, -1.0], [jnp.nan, jnp.inf]])
    rep = analysis.diagnose(ModelStats({"h": UnitStats.from_batch(pre, jax.nn.relu(pre))}))
    s = rep["h"]
    assert s.nonfinite_fraction == pytest.approx(4 / 6)
    np.testing.assert_array_equal(s.dead, [False, False])  # NaN is never dead
    assert math.isnan(s.firing_rate[0]) and s.firing_rate[1] == 0.5
    assert math.isnan(s.score[0]) and not s.dormant[0.0][0]


def test_ranks_from_features():
    feats = {"h": jnp.diag(jnp.array([3.0, 1.0, 0.0, 0.0, 0.0]))}
    rep = analysis.diagnose(STATS, features=feats)
    assert rep["h"].effective_rank == pytest.approx(1.75476, rel=1e-5)
    assert rep["h"].approximate_rank == 2
    assert "erank" in rep.summary()
    with pytest.raises(ValueError, match="unknown sites"):
        analysis.diagnose(STATS, features={"nope": feats["h"]})


def test_summary_table_rows_and_values():
    text = analysis.diagnose(STATS).summary()
    lines = text.splitlines()
    assert lines[0].split() == [
        "site", "units", "dead%", "dorm0%", "dorm0.025%", "dorm0.1%", "fire<0.01%",
        "q25", "q50", "q75", "always%",
    ]  # fmt: skip
    assert lines[2].split() == ["h", "5", "20.0", "20.0", "40.0", "40.0", "20.0", "0.25",
                                "0.50", "0.75", "20.0"]  # fmt: skip
    assert lines[-1].split()[0] == "overall"


def test_to_dict_is_json_and_round_trips():
    rep = analysis.diagnose(STATS, previous=STATS)
    d = rep.to_dict()
    json.dumps(d, allow_nan=False)
    assert d["overall"]["dead_fraction"] == 0.2
    assert d["sites"]["h"]["dormant_fraction"] == {"0": 0.2, "0.025": 0.4, "0.1": 0.4}
    assert "per_unit" not in d["sites"]["h"]
    full = json.loads(json.dumps(rep.to_dict(per_unit=True), allow_nan=False))
    back = analysis.Report.from_dict(full)
    assert back.summary() == rep.summary()
    np.testing.assert_array_equal(back["h"].dead, rep["h"].dead)
    with pytest.raises(ValueError, match="per_unit=True"):
        analysis.Report.from_dict(d)


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        ({"taus": ()}, ValueError, "non-empty"),
        ({"taus": (-0.1,)}, ValueError, r"taus\[0\] must be >= 0"),
        ({"taus": (0.1, float("nan"))}, ValueError, r"taus\[1\] must be finite"),
        ({"taus": ("a",)}, TypeError, r"taus\[0\] must be a real number"),
        ({"taus": 0.1}, TypeError, "sequence"),
        ({"low_rate": 0.0}, ValueError, "low_rate"),
        ({"previous": "x"}, TypeError, "previous"),
    ],
)
def test_bad_arguments(kwargs, error, match):
    with pytest.raises(error, match=match):
        analysis.diagnose(STATS, **kwargs)


def test_stats_of_several_models_must_be_diagnosed_one_at_a_time():
    stacked = jax.tree.map(lambda a: jnp.stack([a, a]), STATS)
    with pytest.raises(ValueError, match=r"a\[k\]"):
        analysis.diagnose(stacked)
    rep = analysis.diagnose(jax.tree.map(lambda a: a[1], stacked))
    chex.assert_trees_all_close(rep["h"].firing_rate, analysis.diagnose(STATS)["h"].firing_rate)
