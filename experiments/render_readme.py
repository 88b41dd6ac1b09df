"""Render the README's and the docs' experiment tables, claims and figures from the summaries.

``python -m experiments.render_readme [--check | --compare DIR] [--results DIR]``

Every number the README and the docs pages show from an experiment lives between the lines
``<!-- generated:NAME -->`` and ``<!-- /generated:NAME -->`` and is rendered from
``experiments/summaries/<experiment>.json``, the small ``summary.json`` (means over seeds
with 95% t-intervals) that the experiment's default run writes into its output folder.

- no option: copy the summaries of finished default runs (``results/<name>/summary.json``)
  into ``experiments/summaries/``, then rewrite every generated block and redraw the
  figures in ``docs/`` from the summaries;
- ``--check``: write nothing; exit 1 if a generated block differs from its rendering (the
  test suite runs this check);
- ``--compare DIR``: check that a fresh run's means (``DIR/<name>/summary.json``, e.g. a
  run on another machine) land inside the committed intervals; exit 1 listing those that
  do not.
"""

from __future__ import annotations

import argparse
import json
import re
import shutil
import sys
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

from experiments import (
    _lr_report,
    continual,
    initialization,
    input_shift,
    remedies,
    trained_collapse,
)
from experiments._stats import Interval

ROOT = Path(__file__).resolve().parent.parent
SUMMARIES = ROOT / "experiments" / "summaries"
DOCS = ROOT / "docs"

#: block name -> (experiment whose summary it renders, renderer).
BLOCKS: dict[str, tuple[str, Callable[[dict[str, Any]], str]]] = {
    "lr_schedules": ("lr_schedules", _lr_report.readme_block),
    "remedies": ("remedies", remedies.readme_block),
    "initialization": ("initialization", initialization.readme_block),
    "input_shift": ("input_shift", input_shift.readme_block),
    "continual": ("continual", continual.readme_block),
    "trained_collapse": ("trained_collapse", trained_collapse.readme_block),
}

#: experiment -> figures in docs/ drawn from its summary: file name -> drawer(summary, path).
FIGURES: dict[str, dict[str, Callable[[dict[str, Any], Path], None]]] = {
    "lr_schedules": {"lr_schedules_dead_vs_step.png": _lr_report.readme_figure},
}

_BLOCK = re.compile(
    r"(?P<open><!-- generated:(?P<name>[\w-]+) -->\n)(?P<body>.*?)"
    r"(?P<close><!-- /generated:(?P=name) -->)",
    re.DOTALL,
)


def _experiments() -> list[str]:
    return list(dict.fromkeys(b[0] for b in BLOCKS.values()))


def pages() -> list[Path]:
    """The files that may hold generated blocks: README.md and docs/**/*.md."""
    return [ROOT / "README.md", *sorted(DOCS.rglob("*.md"))]


def load_summary(experiment: str, folder: Path = SUMMARIES) -> dict[str, Any] | None:
    """The committed summary of ``experiment`` (None if there is none)."""
    path = folder / f"{experiment}.json"
    return json.loads(path.read_text()) if path.exists() else None


def render(text: str, summaries: dict[str, dict[str, Any]]) -> str:
    """``text`` with every generated block whose summary exists rendered afresh."""

    def one(m: re.Match[str]) -> str:
        name = m["name"]
        if name not in BLOCKS or BLOCKS[name][0] not in summaries:
            return m[0]
        experiment, renderer = BLOCKS[name]
        return f"{m['open']}{renderer(summaries[experiment]).rstrip()}\n{m['close']}"

    return _BLOCK.sub(one, text)


def stale_blocks(summaries: dict[str, dict[str, Any]] | None = None) -> list[str]:
    """``"file: block"`` for every generated block that differs from its rendering."""
    if summaries is None:
        summaries = {e: s for e in _experiments() if (s := load_summary(e)) is not None}
    out = []
    for page in pages():
        text = page.read_text()
        for m in _BLOCK.finditer(text):
            if render(m[0], summaries) != m[0]:
                out.append(f"{page.relative_to(ROOT)}: {m['name']}")
    return out


def update_summaries(results: Path) -> list[str]:
    """Copies ``results/<name>/summary.json`` of default-scale runs into the summaries."""
    copied = []
    for experiment in _experiments():
        src = results / experiment / "summary.json"
        if not src.exists():
            continue
        summary = json.loads(src.read_text())
        if summary.get("scale") != "default":
            print(f"skipped {src}: a {summary.get('scale')!r} run, not the default one")
            continue
        SUMMARIES.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(src, SUMMARIES / f"{experiment}.json")
        copied.append(experiment)
    return copied


def _intervals(tree: Any, path: str = "") -> Iterator[tuple[str, Interval]]:
    if Interval.is_dict(tree):
        yield path, Interval.from_dict(tree)
    elif isinstance(tree, dict):
        for k, v in tree.items():
            yield from _intervals(v, f"{path}/{k}")
    elif isinstance(tree, list):
        for i, v in enumerate(tree):
            yield from _intervals(v, f"{path}/{i}")


def compare(committed: dict[str, Any], fresh: dict[str, Any], *, slack: float = 1e-3) -> list[str]:
    """Intervals of ``committed`` whose mean in ``fresh`` lies outside them (``slack`` added).

    The slack absorbs the rounding of the printed numbers (0.1 point of a fraction).
    """
    fresh_iv = dict(_intervals(fresh))
    bad = []
    for path, iv in _intervals(committed):
        new = fresh_iv.get(path)
        if new is None or iv.n < 2:
            continue
        if not iv.contains(new.mean, slack=slack):
            bad.append(f"{path}: {new.mean:.4f} outside [{iv.lo:.4f}, {iv.hi:.4f}]")
    return bad


def main(argv: Sequence[str] | None = None) -> int:
    """Command line; returns the exit status."""
    parser = argparse.ArgumentParser(
        prog="python -m experiments.render_readme", description=(__doc__ or "").splitlines()[0]
    )
    group = parser.add_mutually_exclusive_group()
    group.add_argument("--check", action="store_true", help="exit 1 if a generated block is stale")
    group.add_argument("--compare", type=Path, help="results folder of a fresh run to check")
    parser.add_argument(
        "--results", type=Path, default=ROOT / "results", help="default runs' results"
    )
    args = parser.parse_args(argv)
    experiments = _experiments()
    if args.compare is not None:
        bad = []
        for e in experiments:
            committed, path = load_summary(e), args.compare / e / "summary.json"
            if committed is not None and path.exists():
                bad += [f"{e}{b}" for b in compare(committed, json.loads(path.read_text()))]
        print("\n".join(bad) or "every mean of the fresh run lies inside the committed intervals")
        return 1 if bad else 0
    if not args.check:
        for e in update_summaries(args.results):
            print(f"summary updated: experiments/summaries/{e}.json")
    summaries = {e: s for e in experiments if (s := load_summary(e)) is not None}
    stale = stale_blocks(summaries)
    if args.check:
        print("\n".join(f"stale: {s}" for s in stale) or "every generated block is up to date")
        return 1 if stale else 0
    for page in pages():
        text = page.read_text()
        new = render(text, summaries)
        if new != text:
            page.write_text(new)
            print(f"rewrote {page.relative_to(ROOT)}")
    for e, figs in FIGURES.items():
        if e in summaries:
            for file, draw in figs.items():
                draw(summaries[e], DOCS / file)
                print(f"drew docs/{file}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
