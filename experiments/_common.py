"""Shared command line, output folder and report writing for the experiments.

Every experiment is ``python -m experiments.<name> [--quick | --full] [--out DIR] [--seed N]``:
the default scale runs in a few minutes on a 2-core CPU, ``--quick`` in seconds (the tests use
it) and ``--full`` at paper scale. Each writes ``results.json`` (every run's config and curves),
``summary.md`` (a findings table, one sentence of interpretation per row) and PNG figures into
``--out`` (default ``results/<name>/``; ``results/<name>-quick/`` and ``results/<name>-full/``
for the other scales, so that a smoke run never meets a default run's checkpoints), and prints
the summary at the end. Ctrl-C stops a run with one line saying where it stopped; rerunning
the same command resumes from the last checkpoint (experiments that write checkpoints).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import math
import os
import platform
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

SCALES = ("quick", "default", "full")


@dataclasses.dataclass(frozen=True)
class RunArgs:
    """Parsed command line of an experiment."""

    name: str
    scale: str
    out: Path
    seed: int


def default_out(name: str, scale: str) -> Path:
    """``results/<name>/`` for the default scale, ``results/<name>-<scale>/`` otherwise."""
    return Path("results") / (name if scale == "default" else f"{name}-{scale}")


def parse_args(
    name: str,
    description: str,
    argv: Sequence[str] | None = None,
    *,
    run_time: str = "a few minutes",
    resumes: bool = False,
) -> RunArgs:
    """Parses the common command line of experiment ``name``.

    Args:
      name: the experiment's module name.
      description: first line of ``--help``.
      argv: the arguments (default ``sys.argv[1:]``).
      run_time: the default run's wall time on a 2-core CPU, for ``--help``.
      resumes: whether the experiment checkpoints (``--help`` says how resuming works).
    """
    if resumes:
        resume = (
            "Interrupting a run (Ctrl-C) keeps its checkpoints in OUT/checkpoints/; rerunning "
            "the same command resumes from the last one (they are deleted once the results "
            "are written)."
        )
    else:
        resume = "This experiment does not checkpoint: an interrupted run starts over."
    epilog = (
        f"Run time on a 2-core CPU: default scale {run_time}; --quick a smoke run of seconds "
        f"to a minute; --full much longer (paper scale). Output: results.json, summary.md and "
        f"figures in results/{name}/ (--quick: results/{name}-quick/, --full: "
        f"results/{name}-full/). {resume}"
    )
    parser = argparse.ArgumentParser(
        prog=f"python -m experiments.{name}", description=description, epilog=epilog
    )
    group = parser.add_mutually_exclusive_group()
    group.add_argument("--quick", action="store_true", help="smoke run of a few seconds")
    group.add_argument("--full", action="store_true", help="paper-scale run")
    parser.add_argument(
        "--out",
        type=Path,
        default=None,
        help=f"output folder (default results/{name}/, or results/{name}-quick/ ...)",
    )
    parser.add_argument("--seed", type=int, default=0, help="base random seed")
    ns = parser.parse_args(argv)
    scale = "quick" if ns.quick else "full" if ns.full else "default"
    out = ns.out if ns.out is not None else default_out(name, scale)
    out.mkdir(parents=True, exist_ok=True)
    return RunArgs(name=name, scale=scale, out=out, seed=ns.seed)


class Progress:
    """One progress line per chunk over the whole run (all sweeps), with an ETA.

    ``total`` counts work units (configuration-steps) of every sweep of the run. Each sweep
    reports through :meth:`callback` (``sweep.run``'s ``callback=``); :meth:`finished` counts
    a sweep as done, whether trained or restored from its checkpoint. The ETA extrapolates the
    rate of the chunks trained by this process (compilation included). :attr:`where` says
    where the run is, for the Ctrl-C line.
    """

    def __init__(self, name: str, total: int) -> None:
        self.name = name
        self.total = max(int(total), 1)
        self.offset = 0  # units of the sweeps finished before the current one
        self.where = "before the first training step"
        self._started = time.time()
        self._trained = 0  # units trained by this process (restored chunks excluded)
        _LATEST[:] = [self]

    def callback(self, label: str, units: int) -> Any:
        """A ``sweep.run`` callback for sweep ``label`` of ``units`` configuration-steps."""
        last: dict[str, int] = {}
        self.where = f"{label} before its first chunk"

        def report(info: Any) -> None:
            done_here = units * info.chunk // info.chunks
            # The first report of a resumed sweep follows chunks restored, not trained.
            self._trained += done_here - last.get("done", units * (info.chunk - 1) // info.chunks)
            last["done"] = done_here
            done = self.offset + done_here
            elapsed = time.time() - self._started
            rate = self._trained / max(elapsed, 1e-9)
            eta = (self.total - done) / rate if rate > 0 else math.inf
            total_steps = info.step * info.chunks // info.chunk
            self.where = f"{label} at step {info.step}/{total_steps}"
            print(
                f"[{self.name}] {label}: step {info.step}/{total_steps} | whole run "
                f"{done / self.total:.0%} | elapsed {_clock(elapsed)} | ETA {_clock(eta)}",
                flush=True,
            )

        return report

    def finished(self, units: int) -> None:
        """Counts a sweep of ``units`` configuration-steps as done."""
        self.offset += units


_LATEST: list[Progress] = []  # the running experiment's progress, for the Ctrl-C line


def _clock(seconds: float) -> str:
    if not math.isfinite(seconds):
        return "?"
    m, s = divmod(round(seconds), 60)
    return f"{m}:{s:02d}"


def cli(main: Any, name: str, *, resumes: bool) -> None:
    """Runs ``main()``; Ctrl-C prints one line (where it stopped, how to resume), exit 130."""
    try:
        main()
    except KeyboardInterrupt:
        at = f" {_LATEST[0].where}" if _LATEST else ""
        how = (
            "rerun the same command to resume from the last checkpoint"
            if resumes
            else "this experiment does not checkpoint: rerunning starts over"
        )
        print(f"\n[{name}] interrupted{at}; {how}.", file=sys.stderr, flush=True)
        raise SystemExit(130) from None


def environment() -> dict[str, Any]:
    """Library versions and machine facts recorded with every result."""
    import jax

    import relujax

    versions = {"python": platform.python_version(), "relujax": relujax.__version__}
    for mod in ("jax", "jaxlib", "flax", "optax", "numpy"):
        try:
            versions[mod] = __import__(mod).__version__
        except ImportError:  # pragma: no cover - all are dependencies
            pass
    return {
        "versions": versions,
        "backend": jax.default_backend(),
        "devices": [str(d) for d in jax.devices()],
        "platform": platform.platform(),
    }


def _jsonable(obj: Any) -> Any:
    if isinstance(obj, dict):
        return {str(k): _jsonable(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [_jsonable(v) for v in obj]
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        return _jsonable(dataclasses.asdict(obj))
    if hasattr(obj, "tolist"):
        return _jsonable(np.asarray(obj).tolist())
    if isinstance(obj, float) and not math.isfinite(obj):
        return None  # JSON has no NaN/inf; a missing value is honest
    if isinstance(obj, np.generic):
        return _jsonable(obj.item())
    return obj


def jsonable(obj: Any) -> Any:
    """``obj`` with arrays as lists, dataclasses as dicts and NaN/inf as None (for JSON)."""
    return _jsonable(obj)


def write_results(args: RunArgs, payload: dict[str, Any], *, started: float) -> Path:
    """Writes ``results.json`` with the payload, the command line and the environment."""
    record = {
        "experiment": args.name,
        "scale": args.scale,
        "seed": args.seed,
        "command": " ".join([f"python -m experiments.{args.name}", *sys.argv[1:]]),
        "wall_seconds": round(time.time() - started, 2),
        "environment": environment(),
        **payload,
    }
    path = args.out / "results.json"
    tmp = path.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(_jsonable(record), indent=1))
    os.replace(tmp, path)
    return path


def markdown_table(header: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    """A GitHub-flavoured markdown table; floats with 3 significant digits."""

    def fmt(v: Any) -> str:
        if isinstance(v, float):
            return "nan" if not math.isfinite(v) else f"{v:.3g}"
        return str(v)

    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(fmt(v) for v in row) + " |" for row in rows]
    return "\n".join(lines)


def write_summary(args: RunArgs, text: str) -> Path:
    """Writes ``summary.md`` and prints it."""
    path = args.out / "summary.md"
    path.write_text(text.rstrip() + "\n")
    print(text)
    return path


def pyplot():
    """matplotlib.pyplot with the non-interactive Agg backend."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt
