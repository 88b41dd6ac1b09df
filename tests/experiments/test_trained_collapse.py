"""trained_collapse: the quick run's files and invariants, the collapse detector on hand-made
nets, and the Wilson / Newcombe intervals against hand computations and published values."""

import json
import math

import numpy as np
import pytest

from experiments import _collapse_report, trained_collapse
from experiments import _collapse_stats as cs

BOX = math.sqrt(3.0)
GRID = np.linspace(-BOX, BOX, 201, dtype=np.float32)[:, None]
TARGET = np.abs(GRID[:, 0])


def _net(layers):
    """A parameter dict from ``[(kernel, bias), ...]`` (hidden layers, then the readout)."""
    return {
        "layers": {
            i: {"kernel": np.asarray(k, np.float32), "bias": np.asarray(b, np.float32)}
            for i, (k, b) in enumerate(layers)
        }
    }


IDENTITY = (np.eye(2), np.zeros(2))


def _measure(net):
    stacked = {
        "layers": {i: {k: v[None] for k, v in lay.items()} for i, lay in net["layers"].items()}
    }
    return {k: v[0] for k, v in cs.per_net(stacked, GRID, TARGET).items()}


def test_dead_first_layer_is_constant_and_collapsed():
    # pre-activation -x - 2 < 0 on the whole box: the first layer is zero everywhere
    net = _net([([[-1.0, -1.0]], [-2.0, -2.0]), IDENTITY, ([[1.0], [1.0]], [0.7])])
    m = _measure(net)
    assert bool(m["dead_layer"]) and bool(m["float_constant"]) and m["relative_variance"] == 0.0
    assert bool(cs.collapsed(net, GRID, TARGET))
    np.testing.assert_allclose(np.asarray(cs.forward(net, GRID)), 0.7)


def test_abs_net_is_not_collapsed():
    # relu(x) + relu(-x) = |x| exactly, through an identity layer (relu of h >= 0 is h)
    net = _net([([[1.0, -1.0]], [0.0, 0.0]), IDENTITY, ([[1.0], [1.0]], [0.0])])
    m = _measure(net)
    assert not bool(m["dead_layer"]) and not bool(cs.collapsed(net, GRID, TARGET))
    np.testing.assert_allclose(m["relative_variance"], 1.0, rtol=1e-5)
    assert m["grid_mse"] < 1e-10


@pytest.mark.parametrize(("eps", "expected"), [(0.01, True), (0.1, False)])
def test_threshold_on_a_scaled_target(eps, expected):
    # f = eps |x| + 3: relative variance eps**2 (1e-4 <= 1e-3 collapsed, 1e-2 not)
    net = _net([([[1.0, -1.0]], [0.0, 0.0]), ([[eps], [eps]], [3.0])])
    np.testing.assert_allclose(cs.relative_variance(net, GRID, TARGET), eps**2, rtol=1e-3)
    assert bool(cs.collapsed(net, GRID, TARGET)) is expected


def test_one_live_branch_hand_variance():
    # relu(x): only the x > 0 ray alive; a reference variance ratio in plain numpy
    net = _net([([[1.0, 0.0]], [0.0, 0.0]), ([[1.0], [0.0]], [0.0])])
    x = GRID[:, 0].astype(np.float64)
    expected = np.var(np.maximum(x, 0)) / np.var(np.abs(x))
    np.testing.assert_allclose(cs.relative_variance(net, GRID, TARGET), expected, rtol=1e-5)
    m = _measure(net)
    assert not bool(m["dead_layer"]) and not bool(m["float_constant"])


def test_float_constant_is_not_dead():
    # relu(1e-9 x + 1) rounds to 1 in float32 on the whole box: one float value, yet the
    # layer is alive (born_dead_probability's former criterion counted it, ours does not)
    net = _net([([[1e-9, 1e-9]], [1.0, 1.0]), ([[1.0], [1.0]], [0.0])])
    m = _measure(net)
    assert bool(m["float_constant"]) and not bool(m["dead_layer"])


@pytest.mark.parametrize(("k", "n"), [(0, 10), (3, 10), (940, 1000), (1000, 1000)])
def test_wilson_is_the_score_quadratic(k, n):
    # endpoints solve (p - pi)^2 = z^2 pi (1 - pi) / n
    z, p = cs.Z95, k / n
    roots = np.sort(np.roots([1 + z * z / n, -(2 * p + z * z / n), p * p]).real)
    iv = cs.wilson(k, n)
    assert iv.mean == p and iv.n == n
    np.testing.assert_allclose([iv.lo, iv.hi], roots, atol=1e-9)


def test_newcombe_published_examples():
    # Newcombe (1998), Stat. Med. 17:873, method 10: 56/70 - 48/80 and 9/10 - 3/10
    d = cs.difference(cs.wilson(56, 70), cs.wilson(48, 80))
    np.testing.assert_allclose([d.mean, d.lo, d.hi], [0.2, 0.0524, 0.3339], atol=1e-4)
    d = cs.difference(cs.wilson(9, 10), cs.wilson(3, 10))
    np.testing.assert_allclose([d.lo, d.hi], [0.1705, 0.8090], atol=1e-4)


@pytest.fixture(scope="module")
def quick(tmp_path_factory):
    out = tmp_path_factory.mktemp("trained_collapse")
    return out, trained_collapse.main(["--quick", "--out", str(out)])


def test_quick_run_files_and_invariants(quick):
    out, payload = quick
    record = json.loads((out / "results.json").read_text())
    assert record["experiment"] == "trained_collapse" and record["scale"] == "quick"
    summary = json.loads((out / "summary.json").read_text())
    text = (out / "summary.md").read_text()
    assert trained_collapse.readme_block(summary) in text and "|---|" in text
    assert (out / payload["figures"][0]).stat().st_size > 1000
    n = trained_collapse.SCALES["quick"].trainings
    for name, cell in payload["cells"].items():
        s = summary["cells"][name]
        for a, init in enumerate(trained_collapse.INITS):
            row = s["inits"][init]
            # the fractions are the per-net flags' means; a born-dead net stays constant
            k = int(cell["collapsed"][a].sum())
            assert row["collapsed"]["mean"] == pytest.approx(k / n)
            assert row["collapsed"] == cs.wilson(k, n).to_dict()
            assert row["born_dead_not_collapsed"] == 0
            assert np.all(cell["collapsed"][a] >= cell["born_dead"][a])
            assert not np.any(cell["collapsed"][a] & cell["fitted"][a])  # fitted: variance ~ 1
            # the sweep's dead-layer flag (training points) = ours (grid), before and after
            assert np.array_equal(cell["sweep_dead_layer"][a][:, 0], cell["born_dead"][a])
            assert np.array_equal(cell["sweep_dead_layer"][a][:, -1], cell["dead_layer_after"][a])
        # independent forward pass = the sweep's own test loss on the same grid
        assert s["checks"]["max_abs_gap_grid_mse_vs_sweep"] < 1e-4
        assert s["claims"]["born_dead_nets_stay_collapsed"] == "holds"
    assert _collapse_report.PAPER["found"] is False  # stated, not invented
