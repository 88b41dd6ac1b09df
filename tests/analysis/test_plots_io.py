"""Plots show the report's numbers; statistics survive a save/load round trip exactly."""

import os

import chex
import jax
import jax.numpy as jnp
import matplotlib
import numpy as np
import pytest

from relujax import analysis
from relujax.analysis import ModelStats, UnitStats

matplotlib.use("Agg")

PRE = jnp.array([[-1.0, 0.5, 2.0, 1.0], [-2.0, -1.0, 2.0, -1.0], [-3.0, -1.0, 2.0, 3.0]])
STATS = ModelStats(
    {
        "a": UnitStats.from_batch(PRE, jax.nn.relu(PRE)),
        "b": UnitStats.from_batch(PRE[:, :2] - 5.0, jax.nn.relu(PRE[:, :2] - 5.0)),
    }
)
REPORT = analysis.diagnose(STATS)


def test_plot_dead_bar_heights_are_report_percentages():
    import matplotlib.pyplot as plt

    ax = analysis.plot_dead(REPORT)
    heights = [[b.get_height() for b in c] for c in ax.containers]
    want = [[100 * REPORT[n].dead_fraction for n in ("a", "b")]]
    want += [[100 * REPORT[n].dormant_fraction(t) for n in ("a", "b")] for t in REPORT.taus]
    want += [[100 * REPORT[n].low_firing_fraction for n in ("a", "b")]]
    np.testing.assert_allclose(heights, want)
    assert heights[0] == [25.0, 100.0]
    plt.close("all")


def test_firing_histogram_and_heatmap_data():
    import matplotlib.pyplot as plt

    ax = analysis.plot_firing_rates(REPORT, bins=3)
    # rates: a -> 0, 1/3, 1, 2/3 ; b -> 0, 0: bins [0,1/3) [1/3,2/3) [2/3,1]
    stacked_tops = [p.get_height() for p in ax.patches]
    assert sum(stacked_tops) == 6
    hist = analysis.firing_rate_histograms([REPORT, REPORT], site="a", bins=3)
    np.testing.assert_allclose(hist, [[0.25, 0.25], [0.25, 0.25], [0.5, 0.5]])
    ax = analysis.plot_firing_heatmap([REPORT, REPORT], site="a", steps=[10, 20], bins=3)
    np.testing.assert_allclose(ax.images[0].get_array(), hist)
    with pytest.raises(ValueError, match="no site 'zz'"):
        analysis.firing_rate_histograms([REPORT], site="zz")
    with pytest.raises(ValueError, match="one value per report"):
        analysis.plot_firing_heatmap([REPORT], site="a", steps=[1, 2])
    plt.close("all")


def test_save_load_round_trip_is_exact(tmp_path):
    big = STATS["a"]._replace(count=analysis.Count(jnp.full(4, 3, jnp.uint32), STATS["a"].count.lo))
    stats = ModelStats({"a/b c": big, "b": STATS["b"]})
    path = os.path.join(tmp_path, "stats.npz")
    analysis.save_stats(path, stats)
    back = analysis.load_stats(path)
    assert list(back) == ["a/b c", "b"]
    chex.assert_trees_all_equal(back, stats)
    np.testing.assert_array_equal(back["a/b c"].count.to_numpy(), [3 * 2**32 + 3] * 4)
    assert not [f for f in os.listdir(tmp_path) if f.endswith(".tmp")]


def test_load_rejects_foreign_files(tmp_path):
    path = os.path.join(tmp_path, "other.npz")
    np.savez(path, x=np.ones(2))
    with pytest.raises(ValueError, match="not written by"):
        analysis.load_stats(path)
    with pytest.raises(TypeError, match="ModelStats"):
        analysis.save_stats(path, {"a": STATS["a"]})
