"""The README says what the code does: its examples print what it shows, its numbers are current.

- Every ```` ```python ```` block of README.md that is directly followed by a plain
  ```` ``` ```` block (its printed output) is executed, and what it prints is compared with
  that block: text exactly (up to whitespace), numbers to the precision the README prints
  them (as doctest's ``NUMBER`` option), so that the README must print CPU-robust values.
- Every ``<!-- generated:NAME -->`` block of README.md and docs/ equals what
  ``python -m experiments.render_readme`` renders from the committed summaries in
  ``experiments/summaries/``.
"""

from __future__ import annotations

import contextlib
import io
import itertools
import json
import re
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parent.parent
README = ROOT / "README.md"

_FENCE = re.compile(r"^```(?P<lang>[\w-]*)\n(?P<body>.*?)^```$", re.MULTILINE | re.DOTALL)
_NUMBER = re.compile(r"[-+]?(?:\d+\.\d*|\.\d+|\d+)(?:[eE][-+]?\d+)?")


def examples(text: str) -> list[tuple[int, str, str]]:
    """``(line, code, output)`` for each python block directly followed by an output block."""
    fences = list(_FENCE.finditer(text))
    out = []
    for code, nxt in itertools.pairwise(fences):
        between = text[code.end() : nxt.start()]
        if code["lang"] == "python" and nxt["lang"] == "" and not between.strip():
            out.append((text.count("\n", 0, code.start()) + 1, code["body"], nxt["body"]))
    return out


def same_output(actual: str, expected: str) -> bool:
    """Text equal up to whitespace; each number equal to the precision it is written with."""
    a_text, e_text = _NUMBER.split(actual), _NUMBER.split(expected)
    if [" ".join(t.split()) for t in a_text] != [" ".join(t.split()) for t in e_text]:
        return False
    for a, e in zip(_NUMBER.findall(actual), _NUMBER.findall(expected), strict=True):
        mantissa = e.lower().split("e")[0]
        decimals = len(mantissa.split(".")[1]) if "." in mantissa else 0
        exponent = int(e.lower().split("e")[1]) if "e" in e.lower() else 0
        if abs(float(a) - float(e)) > 0.5 * 10.0 ** (exponent - decimals) * (1 + 1e-9):
            return False
    return True


@pytest.mark.parametrize(
    ("actual", "expected", "same"),
    [
        ("[0.01 0.01 1.  ]", "[0.01 0.01 1.  ]", True),
        ("0.49201", "0.492", True),  # printed finer than the README shows
        ("0.4926", "0.492", False),
        ("acc=0.492 dead=[0. 0.]", "acc=0.492  dead=[0. 0.]", True),
        ("acc=0.492", "loss=0.492", False),
        ("1.974 [-1. -1.]", "1.974 [-1. -1. -1.]", False),
        ("-0.31606027", "-0.31606028", False),
    ],
)
def test_same_output(actual, expected, same):
    assert same_output(actual, expected) is same


def test_examples_are_found():
    text = "a\n```python\nprint(1)\n```\n```\n1\n```\n```python\nx = 2\n```\ntext\n```\n2\n```\n"
    assert examples(text) == [(2, "print(1)\n", "1\n")]


README_EXAMPLES = examples(README.read_text())


@pytest.mark.parametrize(
    ("line", "code", "expected"), README_EXAMPLES, ids=[f"line{e[0]}" for e in README_EXAMPLES]
)
def test_readme_example_prints_what_the_readme_shows(line, code, expected):
    buffer = io.StringIO()
    with contextlib.redirect_stdout(buffer):
        exec(compile(code, f"README.md:{line}", "exec"), {"__name__": "__readme__"})
    assert same_output(buffer.getvalue(), expected), (
        f"README.md line {line} prints\n{buffer.getvalue()}\nbut the README shows\n{expected}"
    )


# --------------------------------------------------------------------------------------------
# generated blocks

render_readme = pytest.importorskip("experiments.render_readme")


def test_generated_blocks_are_current():
    assert render_readme.stale_blocks() == []


def _summary() -> dict:
    """A small summary of the form ``experiments.lr_schedules`` writes (two seeds)."""
    iv = {"mean": 0.25, "lo": 0.125, "hi": 0.375, "n": 2}
    row = {m: {"0.001": iv, "0.1": iv} for m in ("dead", "dormant", "accuracy")}
    claim = {"mean": 0.5, "lo": 0.25, "hi": 0.75, "n": 2}
    return {
        "experiment": "lr_schedules",
        "scale": "default",
        "wall_seconds": 12.0,
        "sizes": {
            "peak_lrs": [0.001, 0.1],
            "seeds": [0, 1],
            "schedules": ["constant"],
            "activations": ["relu"],
            "hidden": [8, 8],
            "batch_size": 4,
            "steps": 10,
        },
        "datasets": {"mnist1d": {"label": "MNIST-1D", "table": [{"activation": "relu", **row}]}},
        "claims": [
            {
                "id": "lr_kills",
                "dataset": "mnist1d",
                "low": iv,
                "high": iv,
                "difference": claim,
                "verdict": "holds",
            }
        ],
    }


def test_render_rewrites_only_generated_blocks():
    text = (
        "intro\n<!-- generated:lr_schedules -->\nold numbers\n"
        "<!-- /generated:lr_schedules -->\nend\n"
    )
    new = render_readme.render(text, {"lr_schedules": _summary()})
    assert new.startswith("intro\n<!-- generated:lr_schedules -->\n")
    assert new.endswith("<!-- /generated:lr_schedules -->\nend\n")
    assert "old numbers" not in new
    assert "The default run trains 4 MLPs per data set (MNIST-1D; hidden layers 8-8)" in new
    assert (
        "| MNIST-1D | relu | 25.0% [12.5, 37.5] | 25.0% [12.5, 37.5] | 0.250 [0.125, 0.375] |"
        in new
    )
    assert (
        "| a too-high LR kills ReLUs (dead at peak LR 0.001 -> 0.1) | MNIST-1D | 25.0% [12.5, "
        "37.5] -> 25.0% [12.5, 37.5]: +50.0 points [+25.0, +75.0] | holds |"
    ) in new
    assert render_readme.render(new, {"lr_schedules": _summary()}) == new  # a fixed point
    assert render_readme.render(text, {}) == text  # no summary: left alone


def test_compare_flags_means_outside_the_intervals():
    committed = _summary()
    fresh = json.loads(json.dumps(committed))
    assert render_readme.compare(committed, fresh) == []
    fresh["claims"][0]["difference"]["mean"] = 0.8
    bad = render_readme.compare(committed, fresh)
    assert bad == ["/claims/0/difference: 0.8000 outside [0.2500, 0.7500]"]
    assert np.isclose(0.8, float(bad[0].split()[1]))
