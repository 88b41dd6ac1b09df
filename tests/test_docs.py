"""The documentation pages say what the code does.

- Every ```` ```python ```` block of ``docs/**/*.md`` that is directly followed by a plain
  ```` ``` ```` block is executed and must print that block (the README's rule, see
  ``test_readme.py``: text up to whitespace, numbers to the precision shown).
- Every dotted ``relujax.<...>`` name in the pages and the README names something that exists.
- Every figure a page shows exists.
- Every public module has an API page (``.. relujax-api:: <module>``) in the API toctree.
"""

from __future__ import annotations

import contextlib
import importlib
import io
import re
from pathlib import Path

import pytest
from test_readme import examples, same_output

import relujax

ROOT = Path(__file__).resolve().parent.parent
DOCS = ROOT / "docs"
PAGES = sorted(p for p in DOCS.rglob("*.md") if "_build" not in p.parts)

DOC_EXAMPLES = [
    (page.relative_to(ROOT).as_posix(), line, code, out)
    for page in PAGES
    for line, code, out in examples(page.read_text())
]

_NAME = re.compile(r"(?<![\w./-])relujax(?:\.[A-Za-z_]\w*)+")
_IMAGE = re.compile(r"!\[[^\]]*\]\((?P<path>[^)\s]+)\)")


def _resolve(dotted: str) -> bool:
    """Whether ``relujax.a.b.c`` is a module or an attribute chain under one."""
    parts = dotted.split(".")
    for split in range(len(parts), 0, -1):
        try:
            obj = importlib.import_module(".".join(parts[:split]))
        except ImportError:
            continue
        for attr in parts[split:]:
            if not hasattr(obj, attr):
                return False
            obj = getattr(obj, attr)
        return True
    return False


def test_pages_exist_and_have_examples():
    names = {p.name for p in PAGES}
    for page in ("index.md", "getting_started.md", "activations.md", "analysis.md"):
        assert page in names
    assert len(DOC_EXAMPLES) >= 4


@pytest.mark.parametrize(
    ("page", "line", "code", "expected"),
    DOC_EXAMPLES,
    ids=[f"{e[0]}:{e[1]}" for e in DOC_EXAMPLES],
)
def test_docs_example_prints_what_the_page_shows(page, line, code, expected):
    buffer = io.StringIO()
    with contextlib.redirect_stdout(buffer):
        exec(compile(code, f"{page}:{line}", "exec"), {"__name__": "__docs__"})
    assert same_output(buffer.getvalue(), expected), (
        f"{page} line {line} prints\n{buffer.getvalue()}\nbut the page shows\n{expected}"
    )


@pytest.mark.parametrize(
    "page", [*PAGES, ROOT / "README.md"], ids=lambda p: p.relative_to(ROOT).as_posix()
)
def test_every_relujax_name_and_figure_a_page_mentions_exists(page):
    text = page.read_text()
    missing = sorted({n for n in _NAME.findall(text) if not _resolve(n)})
    assert not missing, f"{page.name} names what relujax lacks: {missing}"
    for m in _IMAGE.finditer(text):
        assert (page.parent / m["path"]).is_file(), f"{page.name} shows a missing {m['path']}"


def test_every_public_module_has_an_api_page():
    import pkgutil

    public = {"relujax"} | {
        info.name
        for info in pkgutil.walk_packages(relujax.__path__, "relujax.")
        if not any(part.startswith("_") for part in info.name.split(".")[1:])
    }
    api = DOCS / "api"
    documented = {}
    for page in api.glob("*.rst"):
        for m in re.finditer(r"^\.\. relujax-api:: (\S+)$", page.read_text(), re.MULTILINE):
            documented[m[1]] = page.stem
    assert set(documented) == public
    toctree = (api / "index.md").read_text().split()
    assert sorted(set(documented.values()) - set(toctree)) == []


def test_name_check_can_fail():
    assert _resolve("relujax.analysis.collect")
    assert not _resolve("relujax.analysis.no_such_function")
    assert _NAME.findall("see `relujax.init.rai` and relujax/sweep/__init__.py") == [
        "relujax.init.rai"
    ]
