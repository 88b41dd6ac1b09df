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
    assert "Claims:" in summary and "a too-high LR kills ReLUs" in summary


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
    assert {c["id"] for c in claims} == {"lr_kills", "warmup", "never_die"}
    for c in claims:
        assert c.get("verdict", "holds") in ("holds", "does not hold", "not resolved")


def test_summary_intervals_match_the_runs(run):
    # Every table cell is the t-interval over seeds of each seed's mean over schedules,
    # recomputed here from the raw curves of results.json.
    from scipy import stats

    out, _ = run
    summary = json.loads((out / "summary.json").read_text())
    record = json.loads((out / "results.json").read_text())
    scale = lr_schedules.SCALES["quick"]
    w = np.asarray(scale.hidden, float) / sum(scale.hidden)
    runs = record["sweeps"]["mnist1d"]["runs"]
    for row in summary["datasets"]["mnist1d"]["table"]:
        for lr in scale.peak_lrs:
            per_seed = [
                np.mean(
                    [
                        np.asarray(r["metrics"]["dead_fraction"], float)[-1] @ w
                        for r in runs
                        if r["config"]["activation"] == row["activation"]
                        and r["config"]["peak_lr"] == lr
                        and r["config"]["seed"] == seed
                    ]
                )
                for seed in scale.seeds
            ]
            mean = np.mean(per_seed)
            half = stats.t.ppf(0.975, len(per_seed) - 1) * np.std(per_seed, ddof=1)
            half /= np.sqrt(len(per_seed))
            cell = row["dead"][f"{lr:g}"]
            assert cell["n"] == len(scale.seeds)
            np.testing.assert_allclose(cell["mean"], mean, rtol=1e-6, atol=1e-9)
            np.testing.assert_allclose(cell["lo"], max(mean - half, 0.0), rtol=1e-6, atol=1e-9)
            np.testing.assert_allclose(cell["hi"], min(mean + half, 1.0), rtol=1e-6, atol=1e-9)


def test_readme_block_renders_from_the_summary(run):
    from experiments import _lr_report, render_readme

    out, _ = run
    summary = json.loads((out / "summary.json").read_text())
    block = _lr_report.readme_block(summary)
    assert block.count("| MNIST-1D | relu |") == 1  # one table row per activation
    assert "a too-high LR kills ReLUs" in block
    text = "<!-- generated:lr_schedules -->\nold\n<!-- /generated:lr_schedules -->\n"
    assert block in render_readme.render(text, {"lr_schedules": summary})


def test_quick_runs_have_their_own_folder():
    from experiments import _common

    assert _common.default_out("lr_schedules", "quick").name == "lr_schedules-quick"
    assert _common.default_out("lr_schedules", "default").name == "lr_schedules"


def test_help_states_run_time_and_resuming(capsys):
    with pytest.raises(SystemExit):
        lr_schedules.main(["--help"])
    text = " ".join(capsys.readouterr().out.split())
    assert "Run time on a 2-core CPU" in text and "resumes" in text
