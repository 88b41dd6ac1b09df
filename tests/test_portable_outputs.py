"""Printed outputs that the suite compares must not depend on the CPU.

The sign of a zero is not portable: ``-0.`` in one machine's output can be ``0.`` on another
(a different vectorization or operation order), and the README's test command failed on an
Intel CPU for that reason. No doctest of ``relujax/`` and no example output of the README or
the docs pages may show a negative zero.
"""

from __future__ import annotations

import doctest
import importlib
import pkgutil
import re
from pathlib import Path

import pytest
from test_readme import examples

import relujax

ROOT = Path(__file__).resolve().parent.parent
# -0, -0., -0.0, -0.00 ... as a whole number (not -0.5, not x-0).
NEGATIVE_ZERO = re.compile(r"(?<![\w.])-0(?:\.0*)?(?![\d.eE])")


def _doctest_outputs() -> list[tuple[str, str]]:
    finder = doctest.DocTestFinder()
    names = ["relujax", *(m.name for m in pkgutil.walk_packages(relujax.__path__, "relujax."))]
    out = []
    for name in names:
        module = importlib.import_module(name)
        for test in finder.find(module, name):
            out += [(test.name, example.want) for example in test.examples if example.want]
    return out


def _page_outputs() -> list[tuple[str, str]]:
    pages = [ROOT / "README.md", *sorted((ROOT / "docs").rglob("*.md"))]
    return [
        (f"{page.relative_to(ROOT)}:{line}", output)
        for page in pages
        if "_build" not in page.parts
        for line, _, output in examples(page.read_text())
    ]


@pytest.mark.parametrize(
    ("text", "negative"),
    [
        ("Array([-0.        , -0.33333334], dtype=float32)", True),
        ("[-0. 1.]", True),
        ("-0", True),
        ("Array([-0.5, 0.], dtype=float32)", False),
        ("x-0.0", False),
        ("-0.01 -0.0001 1e-05 10-0", False),
    ],
)
def test_negative_zero_pattern(text, negative):
    assert bool(NEGATIVE_ZERO.search(text)) is negative


def test_no_output_shows_a_negative_zero():
    outputs = _doctest_outputs() + _page_outputs()
    assert len(outputs) > 50  # the scan sees the doctests and the pages
    bad = [f"{where}: {want.strip()[:80]}" for where, want in outputs if NEGATIVE_ZERO.search(want)]
    assert not bad, "outputs that show a negative zero:\n" + "\n".join(bad)
