"""Runs a Python script in a fresh process (its own XLA_FLAGS, CPU only), with a time limit
that turns a deadlock into a test failure instead of a CI run that never ends."""

import os
import subprocess
import sys

import pytest


def run_python(script: str, *args: str, what: str, timeout: int = 180):
    """``python -c script *args`` with ``JAX_PLATFORMS=cpu`` and no inherited ``XLA_FLAGS``;
    fails the test naming ``what`` when it takes longer than ``timeout`` seconds, and when it
    exits non-zero (with the end of its stderr). Returns the ``CompletedProcess``."""
    env = dict(os.environ, JAX_PLATFORMS="cpu")
    env.pop("XLA_FLAGS", None)
    try:
        proc = subprocess.run(
            [sys.executable, "-c", script, *args],
            capture_output=True,
            text=True,
            env=env,
            timeout=timeout,
        )
    except subprocess.TimeoutExpired:
        pytest.fail(f"{what} did not finish in {timeout} s (deadlock)")
    assert proc.returncode == 0, proc.stderr[-3000:]
    return proc
