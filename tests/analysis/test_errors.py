"""Bad inputs get relujax's own errors; keys of both kinds; the one dormancy score."""

import math
import os

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from relujax import analysis
from relujax.analysis import UnitStats


def _stats():
    pre = jnp.array([[-1.0, 2.0, 0.5], [-3.0, 0.5, 0.5]])
    return analysis.ModelStats({"h": UnitStats.from_batch(pre, jnp.maximum(pre, 0.0))})


@pytest.mark.parametrize(
    ("stats", "error", "match"),
    [
        ({"h": jnp.ones(3)}, TypeError, r"diagnose: stats\['h'\] must be a UnitStats"),
        ({"h": {"count": 3}}, TypeError, r"diagnose: stats\['h'\] must be a UnitStats"),
        ([1, 2], TypeError, "diagnose: stats must be a ModelStats or a mapping"),
        ({3: None}, TypeError, "site names must be strings"),
        ({}, ValueError, "diagnose: stats has no site"),
    ],
)
def test_diagnose_rejects_what_is_not_statistics(stats, error, match):
    with pytest.raises(error, match=match):
        analysis.diagnose(stats)


def test_diagnose_accepts_a_plain_dict_of_unit_stats():
    stats = _stats()
    from_dict = analysis.diagnose(dict(stats))
    np.testing.assert_array_equal(from_dict["h"].dead, analysis.diagnose(stats)["h"].dead)


@pytest.mark.parametrize("keep", [0.0, 0.5, 0.9])
def test_truncated_stats_file_is_a_clear_error(tmp_path, keep):
    path = os.path.join(tmp_path, "s.npz")
    analysis.save_stats(path, _stats())
    data = open(path, "rb").read()
    with open(path, "wb") as f:
        f.write(data[: int(keep * len(data))])
    with pytest.raises(ValueError, match=r"load_stats: .*s\.npz.* truncated or corrupted"):
        analysis.load_stats(path)


def test_missing_stats_file_names_the_path(tmp_path):
    with pytest.raises(FileNotFoundError, match=r"nothing\.npz"):
        analysis.load_stats(os.path.join(tmp_path, "nothing.npz"))


def test_born_dead_legacy_and_typed_keys_give_equal_results():
    kw = dict(width=2, depth=3, n_trials=64, n_points=8)
    typed = analysis.born_dead_probability(jax.random.key(3), **kw)
    legacy = analysis.born_dead_probability(jax.random.PRNGKey(3), **kw)
    assert float(typed) == float(legacy)
    with pytest.raises(TypeError, match=r"born_dead_probability: key must be a jax\.random key"):
        analysis.born_dead_probability(3, **kw)


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        ({"domain": (-math.inf, math.inf)}, ValueError, "domain must be finite"),
        ({"domain": (0.0, math.nan)}, ValueError, "domain must be finite"),
        ({"domain": (1.0, 1.0)}, ValueError, "low < high"),
        ({"domain": 3.0}, TypeError, r"domain must be a pair \(low, high\)"),
        ({"width": 0}, ValueError, "width must be an int >= 1"),
        ({"depth": 2.0}, TypeError, "depth must be an int"),
        ({"n_points": 1}, ValueError, "n_points must be an int >= 2"),
    ],
)
def test_born_dead_bad_arguments(kwargs, error, match):
    base = dict(width=2, depth=2, n_trials=8)
    with pytest.raises(error, match=match):
        analysis.born_dead_probability(jax.random.key(0), **{**base, **kwargs})


def test_summary_shows_the_nonfinite_share_of_an_all_nan_site():
    nan = jnp.full((4, 2), jnp.nan)
    good = jnp.array([[1.0, -1.0], [2.0, -2.0]])
    stats = analysis.ModelStats(
        {
            "broken": UnitStats.from_batch(nan, nan),
            "fine": UnitStats.from_batch(good, jnp.maximum(good, 0.0)),
        }
    )
    report = analysis.diagnose(stats)
    assert report["broken"].nonfinite_fraction == 1.0
    lines = report.summary().splitlines()
    head = lines[0].split()
    assert "nonfinite%" in head
    col = head.index("nonfinite%")
    broken = next(line.split() for line in lines if line.startswith("broken"))
    fine = next(line.split() for line in lines if line.startswith("fine"))
    assert (broken[col], fine[col]) == ("100.0", "0.0")
    assert broken[head.index("dead%")] == "-"  # no unit saw a finite value: not "0.0% dead"


def test_summary_of_finite_stats_has_no_nonfinite_column():
    assert "nonfinite%" not in analysis.diagnose(_stats()).summary()


@pytest.mark.parametrize(
    ("abs_mean", "want"),
    [
        ([0.0, 0.5, 1.5], [0.0, 0.75, 2.25]),
        ([0.0, 0.5, 1.5, math.nan], [0.0, 0.75, 2.25, math.nan]),  # unseen: NaN, not in mean
        ([0.0, 0.0, math.nan], [0.0, 0.0, math.nan]),  # silent layer: all dormant
        ([math.nan, math.nan], [math.nan, math.nan]),  # nothing finite: nothing dormant
    ],
)
def test_dormancy_score_closed_forms(abs_mean, want):
    got = np.asarray(analysis.dormancy_score(jnp.array(abs_mean)))
    np.testing.assert_allclose(got, want, rtol=1e-6)
    dormant = np.asarray(analysis.dormant(jnp.array(abs_mean), 0.1))
    np.testing.assert_array_equal(dormant, np.asarray(want) <= 0.1)


def test_dormancy_under_jit_and_vmap_and_in_diagnose():
    a = jnp.array([[0.0, 1.0, 2.0], [1.0, 1.0, jnp.nan]])
    got = jax.jit(jax.vmap(analysis.dormancy_score))(a)
    np.testing.assert_allclose(np.asarray(got), [[0.0, 1.0, 2.0], [1.0, 1.0, np.nan]])
    stats = _stats()
    report = analysis.diagnose(stats)
    np.testing.assert_allclose(
        report["h"].score, np.asarray(analysis.dormancy_score(stats["h"].abs_mean)), rtol=1e-6
    )
    with pytest.raises(ValueError, match="dormant: tau must be >= 0"):
        analysis.dormant(a, -0.1)
