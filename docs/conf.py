"""Sphinx configuration: the relujax documentation site, built from the docstrings.

Build: ``python -m sphinx -W --keep-going -b html docs docs/_build/html`` (``pip install -e
".[docs]"`` first). Warnings are errors and broken cross-references are warnings (nitpicky).
"""

import sys
from pathlib import Path

import relujax

sys.path.insert(0, str(Path(__file__).parent / "_ext"))

project = "relujax"
author = "relujax maintainers"
copyright = "relujax maintainers, Apache-2.0"
version = release = relujax.__version__

extensions = [
    "sphinx.ext.autodoc",
    "sphinx.ext.napoleon",
    "sphinx.ext.mathjax",
    "myst_parser",
    "relujax_api",
]
source_suffix = {".md": "markdown", ".rst": "restructuredtext"}
exclude_patterns = ["_build", "_ext"]
myst_enable_extensions = ["dollarmath", "colon_fence"]
myst_heading_anchors = 3

# Google-style docstrings, as the code writes them.
napoleon_google_docstring = True
napoleon_numpy_docstring = False
napoleon_use_rtype = False
# "Attributes:" sections as attribute entries that references can target (the fields of
# NamedTuples and dataclasses are left to them: see docs/_ext/relujax_api.py).
napoleon_use_ivar = False
# A member without a docstring of its own (Flax's inherited ``setup``) is left out.
autodoc_inherit_docstrings = False
autodoc_member_order = "bysource"
autodoc_typehints = "signature"
autodoc_preserve_defaults = True
add_module_names = False

# Every unresolved reference is a warning, and -W makes it an error.
nitpicky = True
# No inventories of other projects are fetched (the build is offline), so types from outside
# relujax cannot be linked: the standard library's, NumPy's, JAX's, Flax's, Optax's and
# typing constructs that autodoc writes in signatures. Nothing of relujax is ignored.
nitpick_ignore_regex = [
    ("py:.*", r"(jax|jaxlib|numpy|np|flax|optax|chex|orbax|matplotlib)(\..*)?"),
    ("py:.*", r"(typing|typing_extensions|collections|collections\.abc|os|pathlib|enum)\..*"),
    ("py:.*", r"(Array|ArrayLike|DTypeLike|PRNGKeyArray|Shape|Any|Callable|Sequence|Mapping)"),
    ("py:.*", r"(Iterable|Iterator|PathLike|Path|NamedTuple|Enum|ModuleType|Ellipsis)"),
    ("py:.*", r"(int|float|bool|str|bytes|complex|object|None|type|tuple|list|dict|set)"),
    ("py:.*", r"(frozenset|slice|range|Exception|ValueError|TypeError|KeyError|Warning)"),
]

html_theme = "furo"
html_title = f"relujax {release}"
html_static_path: list[str] = []
