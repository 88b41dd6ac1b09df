"""Checkpoints that cannot silently change results: integrity, fingerprint, locking, atomicity.

One tiny problem (2 configs, 6 steps in 3 chunks) keeps the compiled program shared.
"""

import json
import os
import subprocess
import sys

import chex
import numpy as np
import pytest

from relujax import data, sweep
from relujax.sweep import _lock
from relujax.sweep._result import write_text_atomically

DS = data.gaussian_mixture(n_train=64, n_test=16, dim=4, num_classes=3)
CONFIGS = [sweep.Config("constant", 1e-2, seed=0), sweep.Config("cosine_decay", 3e-2, seed=1)]
KW = dict(
    steps=6,
    model=sweep.MLPSpec((4,)),
    batch_size=8,
    eval_every=2,
    chunk_steps=2,
    probe_size=16,
    strategy="map",
)


@pytest.fixture(scope="module")
def uninterrupted():
    return sweep.run(CONFIGS, DS, **KW)


def _interrupted(directory, after=2):
    seen = []

    def stop(info):
        seen.append(info)
        if info.chunk == after:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        sweep.run(CONFIGS, DS, checkpoint_dir=str(directory), callback=stop, **KW)
    return seen[-1]


def _flip_a_bit_of(directory, step):
    """Flip one bit of one saved parameter of ``step``, leaving the rest of the step as it was.

    Orbax compresses what it stores, so a bit flipped in a file may land anywhere; here the
    ``state`` item is read back with orbax (no checks), one bit of the first value of a
    kernel is flipped, and the item is written back in place: the silent single-bit change
    of a value that a disk or a copy can make.
    """
    import orbax.checkpoint as ocp

    path = os.path.join(directory, str(step), "state")
    checkpointer = ocp.StandardCheckpointer()
    saved = checkpointer.restore(path)
    name = next(k for k, v in saved["state"].items() if np.asarray(v).dtype == np.float32)
    array = np.array(saved["state"][name])
    array.reshape(-1).view(np.uint32)[0] ^= 1
    saved["state"][name] = array
    checkpointer.save(path, saved, force=True)
    checkpointer.wait_until_finished()


def _assert_same(a, b):
    for name in a.metrics:
        np.testing.assert_array_equal(a.metrics[name], b.metrics[name], err_msg=name)
    chex.assert_trees_all_equal(a.final_params, b.final_params)


def test_flipped_bit_falls_back_to_the_newest_intact_step(tmp_path, uninterrupted):
    ckpt = tmp_path / "ckpt"
    _interrupted(ckpt)
    _flip_a_bit_of(str(ckpt), 2)
    with pytest.warns(UserWarning, match=r"checkpoint step 2 .*corrupt.*resuming from step 1"):
        resumed = sweep.run(CONFIGS, DS, checkpoint_dir=str(ckpt), **KW)
    _assert_same(resumed, uninterrupted)


def test_no_intact_step_says_what_to_do(tmp_path):
    ckpt = tmp_path / "ckpt"
    _interrupted(ckpt)
    _flip_a_bit_of(str(ckpt), 2)
    _flip_a_bit_of(str(ckpt), 1)
    with pytest.raises(RuntimeError, match=r"no intact checkpoint.*delete the directory"):
        sweep.run(CONFIGS, DS, checkpoint_dir=str(ckpt), **KW)


def test_fingerprint_covers_the_strategy(tmp_path):
    ckpt = tmp_path / "ckpt"
    _interrupted(ckpt, after=1)
    with pytest.raises(ValueError, match=r"different sweep.*strategy"):
        sweep.run(CONFIGS, DS, checkpoint_dir=str(ckpt), **dict(KW, strategy="vmap"))


def test_a_live_owner_locks_the_directory_and_a_dead_one_does_not(tmp_path, uninterrupted):
    ckpt = tmp_path / "ckpt"
    ckpt.mkdir()
    owner = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        _lock.DirectoryLock(str(ckpt))._write(owner.pid)  # as the other process would
        with pytest.raises(RuntimeError, match=f"in use by process {owner.pid}"):
            sweep.run(CONFIGS, DS, checkpoint_dir=str(ckpt), **KW)
    finally:
        owner.kill()
        owner.wait()
    # The owner died without cleaning up: its stale lock is taken over.
    result = sweep.run(CONFIGS, DS, checkpoint_dir=str(ckpt), **KW)
    _assert_same(result, uninterrupted)
    assert not (ckpt / _lock.LOCK_NAME).exists()  # released at the end


def test_lock_is_exclusive_within_a_process(tmp_path):
    with _lock.DirectoryLock(str(tmp_path)) as held:
        info = json.loads((tmp_path / _lock.LOCK_NAME).read_text())
        assert info["pid"] == os.getpid() and held.path.endswith(_lock.LOCK_NAME)
        with pytest.raises(RuntimeError, match="in use by process"):
            _lock.DirectoryLock(str(tmp_path)).acquire()
    assert not (tmp_path / _lock.LOCK_NAME).exists()


def test_results_are_written_atomically_under_unique_names(tmp_path, monkeypatch):
    path = tmp_path / "result.json"
    path.write_text("old")
    temps = []
    real_replace = os.replace

    def spy(src, dst):
        temps.append(os.path.basename(src))
        assert os.path.dirname(src) == str(tmp_path)
        real_replace(src, dst)

    monkeypatch.setattr(os, "replace", spy)
    write_text_atomically(path, "first")
    write_text_atomically(path, "second")
    assert path.read_text() == "second" and len(set(temps)) == 2

    def crash(src, dst):
        raise OSError("disk full")

    monkeypatch.setattr(os, "replace", crash)
    with pytest.raises(OSError, match="disk full"):
        write_text_atomically(path, "third")
    assert path.read_text() == "second"  # the old file is intact
    assert sorted(p.name for p in tmp_path.iterdir()) == ["result.json"]  # no temporary left
