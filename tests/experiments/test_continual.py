"""experiments.continual at a tiny scale: files written, summary consistent with the runs.

The quick scale is shrunk further here (2 seeds, 2 tasks per stream) so that the test costs
the compilation of the two programs and little else.
"""

import dataclasses
import json

import numpy as np
import pytest

from experiments import continual


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    quick = continual.SCALES["quick"]
    tiny = continual.Scale(
        seeds=2,
        bits=dataclasses.replace(quick.bits, tasks=3, period=20, redo_every=10, probe_size=32),
        digits=dataclasses.replace(
            quick.digits, tasks=3, period=5, hidden=(8, 8), redo_every=5, probe_size=32
        ),
    )
    out = tmp_path_factory.mktemp("continual")
    mp = pytest.MonkeyPatch()
    mp.setitem(continual.SCALES, "quick", tiny)
    try:
        payload = continual.main(["--quick", "--out", str(out)])
    finally:
        mp.undo()
    return out, payload, tiny


def test_files_and_readme_block(run):
    out, payload, _ = run
    record = json.loads((out / "results.json").read_text())
    assert record["experiment"] == "continual" and record["scale"] == "quick"
    summary = json.loads((out / "summary.json").read_text())
    text = (out / "summary.md").read_text()
    block = continual.readme_block(summary)
    assert block in text and sum(ln.startswith("|---|") for ln in block.splitlines()) == 2
    for name in payload["figures"]:
        assert (out / name).stat().st_size > 1000
    assert summary["wall_seconds"] > 0 and summary["cpu_seconds"] > 0
    assert not (out / "checkpoints").exists()


def test_values_are_sane_and_the_summary_recomputes_from_the_runs(run):
    out, _, tiny = run
    record = json.loads((out / "results.json").read_text())
    summary = json.loads((out / "summary.json").read_text())
    runs = record["runs"]
    arms = list(continual.arms(tiny.bits))
    assert len(runs) == len(arms) * tiny.seeds
    for r in runs:
        loss = np.asarray(r["bits.online_loss"], float)
        assert loss.shape == (tiny.bits.tasks,) and (loss > 0).all()
        for key in ("digits.online_accuracy", "digits.test_accuracy", "bits.dead"):
            v = np.asarray(r[key], float)
            assert ((v >= 0) & (v <= 1)).all(), key
        rank = np.asarray(r["bits.effective_rank"], float)
        assert ((rank >= 0) & (rank <= tiny.bits.hidden[0] + 1e-4)).all()
    w = continual.window(tiny.bits.tasks)
    assert summary["bits"]["window"] == w == 1
    for arm in arms:
        mine = [r for r in runs if r["arm"] == arm]
        loss = np.asarray([r["bits.online_loss"] for r in mine], float)
        early, late = loss[:, 1 : 1 + w].mean(1), loss[:, -w:].mean(1)
        got = summary["bits"]["by_arm"][arm]["online_loss"]
        np.testing.assert_allclose(got["early"]["mean"], early.mean(), rtol=1e-6)
        np.testing.assert_allclose(got["late - early"]["mean"], (late - early).mean(), rtol=1e-6)
    # Backprop's own difference to backprop is not reported; every remedy's is.
    assert "late - backprop late" not in summary["bits"]["by_arm"]["backprop"]["online_loss"]
    assert set(summary["claims"]["digits"]) >= {
        "backprop loses plasticity",
        "dead units grow with tasks",
        "ReDo holds plasticity",
    }
    for text in summary["claims"]["bits"].values():
        assert text.split(" (")[0].split(": ")[-1] in ("holds", "does not hold", "not resolved")
