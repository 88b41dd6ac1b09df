"""experiments.continual at a tiny scale: files written, summary consistent with the runs.

The quick scale is shrunk further here (2 seeds, 2 tasks per stream) so that the test costs
the compilation of the two programs and little else.
"""

import dataclasses
import json
import textwrap

import numpy as np
import pytest
from script_runner import run_python

from experiments import continual


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    quick = continual.SCALES["quick"]
    tiny = continual.Scale(
        seeds=2,
        # The quick probe set (200 examples): the size at which 2 devices used to deadlock.
        bits=dataclasses.replace(quick.bits, tasks=3, period=20, redo_every=10),
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


TWO_DEVICES = textwrap.dedent(
    """
    import json, os, sys
    from pathlib import Path
    # XLA's intra-op pool is sized from the CPU affinity: two CPUs (the CI's), so that the
    # devices are as many as the pool's threads, as when the sweep deadlocked.
    if hasattr(os, "sched_setaffinity") and len(os.sched_getaffinity(0)) > 2:
        os.sched_setaffinity(0, sorted(os.sched_getaffinity(0))[:2])
    os.environ["XLA_FLAGS"] = "--xla_force_host_platform_device_count=2"
    import jax
    assert jax.device_count() == 2, jax.devices()
    from experiments import _common, continual
    from relujax import sweep
    fields, seeds, out = json.loads(sys.argv[1]), int(sys.argv[2]), Path(sys.argv[3])
    part = continual.Part(**dict(fields, hidden=tuple(fields["hidden"])))
    streams = [
        sweep.bit_flipping(s, tasks=part.tasks, period=part.period, probe_size=part.probe_size,
                           test_size=part.probe_size)
        for s in range(seeds)
    ]
    args = _common.RunArgs(name="continual", scale="quick", out=out, seed=0)
    progress = _common.Progress("continual", 1)
    labels, res = continual._sweep(args, progress, "bits", part, streams, 0)
    series = continual._per_task(res, part.hidden)
    record = {"labels": labels, **{k: v.tolist() for k, v in series.items()}}
    (out / "two.json").write_text(json.dumps(record))
    """
)


def test_bit_flipping_sweep_on_two_devices_equals_the_run(run, tmp_path):
    """``_sweep`` as ``main`` calls it (Plasticity intervention, feature rank, checkpoints,
    progress callback, chunks) on 2 CPU devices: the per-task series of the in-process run.

    It used to deadlock (the rank's batched CPU SVD, see ``relujax.sweep._train``).
    """
    _, payload, tiny = run
    argv = [json.dumps(dataclasses.asdict(tiny.bits)), str(tiny.seeds), str(tmp_path)]
    run_python(TWO_DEVICES, *argv, what="the bit-flipping sweep on 2 devices")
    two = json.loads((tmp_path / "two.json").read_text())
    runs = payload["runs"]
    assert two["labels"] == [r["arm"] for r in runs]
    names = [k for k in two if k != "labels"]
    assert set(names) == {"online_loss", "dead", "effective_rank", "replaced"}
    for name in names:
        want = np.asarray([r[f"bits.{name}"] for r in runs], float)
        np.testing.assert_allclose(np.asarray(two[name], float), want, rtol=1e-5, err_msg=name)
