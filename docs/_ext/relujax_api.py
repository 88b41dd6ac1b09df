"""The ``relujax-api`` directive: the API reference of one public module, from its ``__all__``.

``.. relujax-api:: relujax.analysis`` documents every name in ``relujax.analysis.__all__``
(``autoclass`` with members for classes, ``autofunction`` for functions, ``autodata`` for
the rest), so that a name added to ``__all__`` appears in the docs without editing them. A
name that another public module documents (the root package re-exports the activations of
``relujax.activations``) gets a link to it instead of a second description. The
``missing-reference`` hook resolves references to a private path
(``relujax.analysis._report.Report``, as autodoc writes type annotations), to a re-export or
relative to the current module, to the public name that documents the same object; any other
broken reference still fails the build.
"""

from __future__ import annotations

import dataclasses
import functools
import importlib
import inspect
import pkgutil
import sys
from typing import Any

from docutils import nodes
from docutils.statemachine import StringList
from sphinx import addnodes
from sphinx.pycode import ModuleAnalyzer, PycodeError
from sphinx.util.docutils import SphinxDirective
from sphinx.util.nodes import nested_parse_with_titles


@functools.cache
def public_modules() -> list[str]:
    """Every public module (no ``_``-prefixed part), the most specific first, the root last.

    An object exported by several public modules is documented under the first: the deepest
    (``relujax.activations.relu``, not the root's re-export ``relujax.relu``).
    """
    import relujax

    names = [
        info.name
        for info in pkgutil.walk_packages(relujax.__path__, "relujax.")
        if not any(part.startswith("_") for part in info.name.split(".")[1:])
    ]
    return [*sorted(names, key=lambda n: (-n.count("."), n)), "relujax"]


def _exports(module_name: str) -> dict[str, Any]:
    module = importlib.import_module(module_name)
    return {name: getattr(module, name) for name in module.__all__}


def canonical_name(obj: Any) -> str | None:
    """``module.name`` of the public module that documents ``obj`` (None if none exports it)."""
    for module_name in public_modules():
        for name, value in _exports(module_name).items():
            if value is obj and not inspect.ismodule(value):
                return f"{module_name}.{name}"
    return None


def _fields(cls: type) -> list[str]:
    """A NamedTuple's or dataclass's fields: its "Attributes:" section documents them.

    autodoc would describe them a second time (``Alias for field number N``, or the
    docstring of a default value's type).
    """
    if dataclasses.is_dataclass(cls):
        return [f.name for f in dataclasses.fields(cls)]
    return list(getattr(cls, "_fields", ()))


def _data_entry(module_name: str, name: str, obj: Any) -> list[str]:
    """A constant: its value (when short) and the ``#:`` comment where it is defined.

    autodoc would show the docstring of the value's type (``tuple``'s) for a re-exported
    constant, so the comment is looked up in the private module that defines the name.
    """
    value = repr(obj)
    lines = [f".. py:data:: {name}"]
    if len(value) <= 100:
        lines.append(f"   :value: {value}")
    lines.append("")
    for source in sorted(m for m in sys.modules if m.startswith(f"{module_name}._")):
        if getattr(sys.modules[source], name, None) is not obj:
            continue
        try:
            docs = ModuleAnalyzer.for_module(source).find_attr_docs().get(("", name))
        except PycodeError:
            continue
        if docs:
            lines += [f"   {line}" for line in docs] + [""]
            break
    return lines


class RelujaxApi(SphinxDirective):
    """Documents every name in one module's ``__all__``."""

    required_arguments = 1

    def run(self) -> list[nodes.Node]:
        module_name = self.arguments[0]
        lines = [f".. automodule:: {module_name}", ""]
        summary: list[str] = []
        entries: list[str] = []
        for name, obj in _exports(module_name).items():
            full = f"{module_name}.{name}"
            if inspect.ismodule(obj):
                summary.append(f"* :py:mod:`{full}`: the ``{name}`` package")
                continue
            home = canonical_name(obj)
            if home is not None and home != full:
                summary.append(f"* ``{full}``: the same object as :py:obj:`{home}`")
                continue
            if inspect.isclass(obj):
                entries += [f".. autoclass:: {full}", "   :members:", "   :show-inheritance:"]
                if fields := _fields(obj):
                    entries.append(f"   :exclude-members: {', '.join(fields)}")
                entries.append("")
            elif callable(obj):
                entries += [f".. autofunction:: {full}", ""]
            else:
                entries += _data_entry(module_name, name, obj)
        if summary:
            lines += [*summary, ""]
        lines += entries
        container = nodes.container()
        nested_parse_with_titles(self.state, StringList(lines, source=module_name), container)
        return container.children


def _lookup(path: str) -> Any:
    """The object at a dotted path (module attributes followed), or None."""
    parts = path.split(".")
    for split in range(len(parts), 0, -1):
        try:
            obj: Any = importlib.import_module(".".join(parts[:split]))
        except ImportError:
            continue
        try:
            for attr in parts[split:]:
                obj = getattr(obj, attr)
        except AttributeError:
            return None
        return obj
    return None


def _resolve_to_public(app, env, node, contnode):
    """Resolves a reference to the public name that documents the same relujax object.

    Handles ``relujax.<...>._private.Name`` (how autodoc writes annotations), re-exports
    (``relujax.prelu`` is documented as ``relujax.activations.prelu``) and names relative to
    the current module or its packages (``swish`` in a docstring of ``relujax.activations``).
    A private relujax type in a signature or an attribute's type (a state container a public
    function returns) is shown as text. Any other target that is no documented relujax
    object stays unresolved, and the build fails on it: a docstring must not link a private
    name.
    """
    if node.get("refdomain") != "py":
        return None
    target = node.get("reftarget", "")
    candidates = [target] if target.startswith("relujax.") else []
    module = node.get("py:module") or ""
    while module.startswith("relujax"):  # the current module, then its parent packages
        candidates.append(f"{module}.{target}")
        module = module.rpartition(".")[0]
    if node.get("py:class") and not target.startswith("relujax."):
        candidates.append(f"{node.get('py:module', '')}.{node['py:class']}.{target}")
    for candidate in candidates:
        parts = candidate.split(".")
        # The longest prefix that is a documented object; the rest are its attributes.
        for cut in range(len(parts), 1, -1):
            obj = _lookup(".".join(parts[:cut]))
            if obj is None or inspect.ismodule(obj):
                continue
            home = canonical_name(obj)
            if home is None:
                continue
            new_target = ".".join([home, *parts[cut:]])
            if new_target == target:
                break
            found = env.get_domain("py").resolve_xref(
                env, node["refdoc"], app.builder, node["reftype"], new_target, node, contnode
            )
            if found is not None:
                return found
            break
    if _in_type_annotation(node) and any(_private_relujax(c) for c in [target, *candidates]):
        return contnode  # a private type in an annotation: shown as text, not linked
    return None


def _in_type_annotation(node: nodes.Node) -> bool:
    """Whether ``node`` sits in a signature or in an attribute's "Type" field."""
    parent = node.parent
    while parent is not None:
        if isinstance(parent, addnodes.desc_signature):
            return True
        if isinstance(parent, nodes.field) and parent[0].astext() == "Type":
            return True
        parent = parent.parent
    return False


def _private_relujax(path: str) -> bool:
    """Whether ``path`` names an object of relujax that no public module exports.

    A bare name (as ``from __future__ import annotations`` leaves an annotation) is looked up
    in the private modules of the package the reference sits in.
    """
    parts = path.split(".")
    if parts[0] == "relujax" and any(p.startswith("_") for p in parts[1:]):
        return _lookup(path) is not None
    package, _, name = path.rpartition(".")
    return any(
        getattr(sys.modules[m], name, None) is not None
        for m in list(sys.modules)
        if package.startswith("relujax") and m.startswith(f"{package}._")
    )


def _keep_property_docstrings(app, what, name, obj, options, lines):
    """Undoes napoleon's reading of a property's first words as its type.

    Napoleon takes ``"Fraction of units: ..."`` in a property docstring for a Google-style
    ``type: description`` and drops the words; relujax's properties carry return
    annotations, so their docstrings are rendered as written.
    """
    if what == "property" and obj is not None:
        doc = inspect.getdoc(getattr(obj, "fget", obj))
        if doc:
            lines[:] = [*doc.splitlines(), ""]


def setup(app):
    app.add_directive("relujax-api", RelujaxApi)
    app.connect("missing-reference", _resolve_to_public)
    # After napoleon (priority 500), which this corrects.
    app.connect("autodoc-process-docstring", _keep_property_docstrings, priority=600)
    return {"parallel_read_safe": True, "parallel_write_safe": True}
