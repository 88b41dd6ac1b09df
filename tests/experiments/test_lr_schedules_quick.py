"""The main job, ``experiments.lr_schedules``, at its ``--quick`` scale, with real checks."""

import json

import numpy as np
import pytest

from experiments import lr_schedules


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    out = tmp_path_factory.mktemp("lr_schedules")
    payload = lr_schedules.main(["--quick", "--out", str(out)])
    return out, payload


def test_files_and_record(run):
    out, payload = run
    record = json.loads((out / "results.json").read_text())
    scale = lr_schedules.SCALES["quick"]
    assert record["experiment"] == "lr_schedules" and record["scale"] == "quick"
    sweep = record["sweeps"]["mnist1d"]
    n = len(scale.schedules) * len(scale.peak_lrs) * len(scale.activations) * len(scale.seeds)
    assert len(sweep["runs"]) == n
    assert sweep["steps"] == list(range(0, scale.steps + 1, scale.eval_every))
    for name in payload["figures"]:
        assert (out / name).stat().st_size > 1000
    assert not (out / "checkpoints").exists()  # removed once the results are written
    summary = (out / "summary.md").read_text()
    assert "## Claims" in summary and "a too-high LR kills ReLUs" in summary


def test_numbers_are_consistent(run):
    _, payload = run
    for r in payload["sweeps"]["mnist1d"]["runs"]:
        m = r["metrics"]
        dead = np.asarray(m["dead_fraction"], dtype=float)  # [E, L]
        dormant = np.asarray(m["dormant_fraction"], dtype=float)
        assert dead.shape == (len(m["train_loss"]), 2)
        assert np.all((dead >= 0) & (dead <= 1)) and np.all((dormant >= 0) & (dormant <= 1))
        # a unit that never fires has E|h| = 0 for ReLU, so it is also dormant
        if r["config"]["activation"] == "relu":
            assert np.all(dormant >= dead)
        acc = np.asarray(m["test_accuracy"], dtype=float)
        assert np.all((acc >= 0) & (acc <= 1))
        # the recorded learning rate follows the configured schedule's peak
        assert max(m["lr"]) <= r["config"]["peak_lr"] * (1 + 1e-6)
    claims = payload["claims"]
    assert {c["claim"] for c in claims} >= {"a too-high LR kills ReLUs"}
