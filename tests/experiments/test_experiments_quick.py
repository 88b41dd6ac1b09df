"""Smoke runs of the experiments at their ``--quick`` scale, in-process, with real checks.

Each test runs ``main(["--quick", "--out", tmp])`` once (module-scoped fixtures) and checks
the files it writes and invariants its numbers must satisfy whatever the scale.
"""

import json

import numpy as np
import pytest

from experiments import born_dead, initialization, input_shift, remedies


def _run(module, tmp_path_factory):
    out = tmp_path_factory.mktemp(module.NAME)
    payload = module.main(["--quick", "--out", str(out)])
    return out, payload


def _check_files(out, payload):
    record = json.loads((out / "results.json").read_text())
    assert record["experiment"] in str(out)
    assert record["scale"] == "quick"
    assert record["environment"]["versions"]["jax"]
    summary = (out / "summary.md").read_text()
    assert summary.startswith("# ") and "|---|" in summary
    for name in payload["figures"]:
        assert (out / name).stat().st_size > 1000  # a real PNG, not an empty file
    module = {m.NAME: m for m in (initialization, input_shift, remedies)}.get(record["experiment"])
    if module is not None:  # the docs block renders from summary.json alone
        block = module.readme_block(json.loads((out / "summary.json").read_text()))
        assert block in summary and "|---|" in block
    return record, summary


@pytest.fixture(scope="module")
def born(tmp_path_factory):
    return _run(born_dead, tmp_path_factory)


def test_born_dead(born):
    out, payload = born
    _, summary = _check_files(out, payload)
    scale = born_dead.SCALES["quick"]
    for init in born_dead.INITS:
        for width in scale.widths:
            p = np.asarray(payload["probability"][init][str(width)])
            assert p.shape == (len(scale.depths),)
            assert np.all((p >= 0) & (p <= 1))
            # One key per width shared by the depths: the estimate never decreases with depth.
            assert np.all(np.diff(p) >= 0)
    # The exact bounds hold for He (zero bias, symmetric weights) at every point.
    n = sum(len(scale.depths) for _ in scale.widths)
    assert payload["checks"]["he_within_bounds"] == f"{n}/{n}"
    assert "He within bounds" in summary


def test_born_dead_bounds_closed_form():
    # width 1: P(dead) = 1 - 2**-(L-1) exactly, inside [1 - 2 q, 1 - q] with q = 2**-L.
    for depth in (1, 2, 5):
        lo, hi = born_dead.bounds(1, depth)
        assert lo <= 1 - 2.0 ** -(depth - 1) <= hi
        assert hi == pytest.approx(1 - 0.5**depth)


@pytest.fixture(scope="module")
def init_run(tmp_path_factory):
    return _run(initialization, tmp_path_factory)


def test_initialization(init_run):
    out, payload = init_run
    _check_files(out, payload)
    runs = payload["shallow"]["runs"]
    assert len(runs) == len(initialization.INITS) * len(initialization.SCALES["quick"].seeds)
    by_label = {r["arm"]["label"]: r for r in runs}
    he, neg = by_label["He normal"], by_label["He + bias -1"]
    # Same seed, same kernels: a bias of -1 lowers every first-layer pre-activation, so its
    # first-layer dead units at init are a superset of He's.
    assert neg["dead"][0][0] >= he["dead"][0][0]
    for r in runs + payload["deep"]["runs"]:
        acc = np.asarray(r["test_accuracy"], float)
        assert np.all((acc >= 0) & (acc <= 1))
        dead = np.asarray(r["dead"], float)
        assert np.all((dead >= 0) & (dead <= 1))
    assert {r["arm"]["label"] for r in payload["deep"]["runs"]} == {"He normal", "Xavier normal"}


@pytest.fixture(scope="module")
def shift_run(tmp_path_factory):
    return _run(input_shift, tmp_path_factory)


def test_input_shift(shift_run):
    out, payload = shift_run
    _check_files(out, payload)
    scale = input_shift.SCALES["quick"]
    grid = payload["grid"]
    assert len(grid) == len(input_shift.ACTIVATIONS) * 2 * len(scale.shifts)
    for act in input_shift.ACTIVATIONS:
        # Standardized inputs are the same data whatever the shift (up to rounding), and
        # the same seed draws the same net: identical dead fractions at init.
        std_init = {grid[f"{act} standardized {m:g}"]["dead_init"]["mean"] for m in scale.shifts}
        assert len(std_init) == 1
        assert grid[f"{act} raw 0"]["dead_init"] == grid[f"{act} standardized 0"]["dead_init"]


def test_input_shift_standardization():
    ds = input_shift.datasets(input_shift.SCALES["quick"], seed=0)
    for m, prep, d in ds:
        mean = d.x_train.mean(axis=0)
        if prep == "standardized":
            np.testing.assert_allclose(mean, 0.0, atol=1e-5)
            np.testing.assert_allclose(d.x_train.std(axis=0), 1.0, rtol=1e-4)
        else:
            np.testing.assert_allclose(mean, m, atol=1e-4)


@pytest.fixture(scope="module")
def remedies_run(tmp_path_factory):
    return _run(remedies, tmp_path_factory)


def test_remedies(remedies_run):
    out, payload = remedies_run
    _check_files(out, payload)
    runs = payload["runs"]
    labels = [r["arm"]["label"] for r in runs]
    assert list(dict.fromkeys(labels)) == [
        "nothing",
        "lower LR",
        "warmup",
        "He init",
        "LeakyReLU",
        "ReDo",
        "ReDo, Adam count kept",
    ]
    seeds = remedies.SCALES["quick"].seeds
    assert len(labels) == 7 * len(seeds)
    # Every arm but "He init" starts from the same LeCun-normal draw (same seed), whichever
    # program trains it: equal dead fractions at step 0.
    first = [r for r in runs if r["arm"]["seed"] == seeds[0]]
    start = {r["arm"]["label"]: tuple(r["dead"][0]) for r in first}
    same = {start[lab] for lab in start if lab != "He init"}
    assert len(same) == 1
    # Only the ReDo arms recycle, and they do.
    recycled = {r["arm"]["label"]: r["recycled"][-1] for r in first}
    assert recycled["ReDo"] > 0 and recycled["ReDo, Adam count kept"] > 0
    assert all(v == 0 for lab, v in recycled.items() if not lab.startswith("ReDo"))
    # Same seed, same batches, same recycled units: the two ReDo arms differ only in Adam's
    # step count, so they recycle the same number of units at the first recycling (the only
    # one at the quick scale, after update 11).
    assert recycled["ReDo"] == recycled["ReDo, Adam count kept"]
    by_arm = payload["by_arm"]
    assert set(by_arm) == set(labels)
    # The difference against "nothing" is the mean over seeds of the per-seed differences.
    lower = by_arm["lower LR"]["vs nothing"]["accuracy"]
    acc = {}
    for lab, r in zip(labels, runs, strict=True):
        acc.setdefault(lab, []).append(r["test_accuracy"][-1])
    expected = np.mean(np.subtract(acc["lower LR"], acc["nothing"]))
    np.testing.assert_allclose(lower["mean"], expected, rtol=1e-5, atol=1e-7)
    assert "vs ReDo, Adam count kept" in by_arm["ReDo"]
    summary = json.loads((out / "summary.json").read_text())
    assert remedies.table_markdown(summary).count("\n") == len(by_arm) + 1
