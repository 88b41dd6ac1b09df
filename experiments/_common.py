"""Shared command line, output folder and report writing for the experiments.

Every experiment is ``python -m experiments.<name> [--quick | --full] [--out DIR] [--seed N]``:
the default scale runs in a few minutes on a 2-core CPU, ``--quick`` in seconds (the tests use
it) and ``--full`` at paper scale. Each writes ``results.json`` (every run's config and curves),
``summary.md`` (a findings table, one sentence of interpretation per row) and PNG figures into
``--out`` (default ``results/<name>/``), and prints the summary at the end.
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


def parse_args(name: str, description: str, argv: Sequence[str] | None = None) -> RunArgs:
    """Parses the common command line of experiment ``name``."""
    parser = argparse.ArgumentParser(prog=f"python -m experiments.{name}", description=description)
    group = parser.add_mutually_exclusive_group()
    group.add_argument("--quick", action="store_true", help="smoke run of a few seconds")
    group.add_argument("--full", action="store_true", help="paper-scale run")
    parser.add_argument(
        "--out", type=Path, default=None, help=f"output folder (default results/{name}/)"
    )
    parser.add_argument("--seed", type=int, default=0, help="base random seed")
    ns = parser.parse_args(argv)
    scale = "quick" if ns.quick else "full" if ns.full else "default"
    out = ns.out if ns.out is not None else Path("results") / name
    out.mkdir(parents=True, exist_ok=True)
    return RunArgs(name=name, scale=scale, out=out, seed=ns.seed)


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
