"""One registry convention for every named thing in relujax.

Activations, initializers, schedules, data sets and optimizers are all looked up the same
way: ``get(name, **params)`` and ``names()``, with one normalization of the name
(:func:`normalize`: surrounding spaces dropped, lower case, ``-`` and spaces read as ``_``, so
``"PReLU"``, ``" prelu "`` and ``"Leaky-ReLU"`` are ``"prelu"`` and ``"leaky_relu"``), and one
error for an unknown name (``ValueError`` naming the kind, the closest names and all accepted
ones; ``TypeError`` for a name that is not a string).
"""

from __future__ import annotations

import difflib
from collections.abc import Callable, Iterator, Mapping
from typing import Any, Generic, TypeVar

__all__ = ["Registry", "normalize"]

T = TypeVar("T")


def normalize(name: str) -> str:
    """The canonical spelling of a registry name: stripped, lower case, ``-``/space as ``_``.

    Examples:
      >>> normalize(" Leaky-ReLU ")
      'leaky_relu'
    """
    return "_".join(name.strip().lower().replace("-", " ").split())


class Registry(Generic[T], Mapping[str, T]):
    """A read-only mapping from canonical names to entries, with aliases.

    Args:
      kind: what the entries are, for messages (``"activation"``, ``"initializer"``).
      entries: canonical name -> entry.
      aliases: alias -> canonical name (an alias is accepted wherever a name is and is listed
        by :meth:`names`).
    """

    def __init__(
        self, kind: str, entries: Mapping[str, T], aliases: Mapping[str, str] | None = None
    ):
        self.kind = kind
        self._entries = dict(entries)
        self._aliases = dict(aliases or {})
        for name in (*self._entries, *self._aliases):
            if normalize(name) != name:
                raise ValueError(f"{kind} name {name!r} is not canonical ({normalize(name)!r}).")
        for alias, target in self._aliases.items():
            if target not in self._entries:
                raise ValueError(f"{kind} alias {alias!r} points to unknown {target!r}.")

    def names(self) -> tuple[str, ...]:
        """Every accepted name, aliases included, sorted."""
        return tuple(sorted((*self._entries, *self._aliases)))

    def canonical(self) -> tuple[str, ...]:
        """The canonical names only (no aliases), in registration order."""
        return tuple(self._entries)

    def resolve(self, name: Any, *, param: str = "name") -> str:
        """The canonical name for ``name`` (normalized, alias resolved).

        Raises:
          TypeError: ``name`` is not a string.
          ValueError: unknown name; the message lists the closest and all accepted names.
        """
        if not isinstance(name, str):
            article = "an" if self.kind[:1] in "aeiou" else "a"
            raise TypeError(
                f"{param} must be the name of {article} {self.kind} (a str), got {name!r}."
            )
        key = normalize(name)
        key = self._aliases.get(key, key)
        if key in self._entries:
            return key
        close = difflib.get_close_matches(key, self.names(), n=3, cutoff=0.5)
        hint = f"did you mean {' or '.join(map(repr, close))}? " if close else ""
        raise ValueError(
            f"unknown {self.kind} {name!r} for {param}; {hint}accepted: {', '.join(self.names())}."
        )

    def entry(self, name: Any, *, param: str = "name") -> T:
        """The entry registered under ``name`` (any accepted spelling)."""
        return self._entries[self.resolve(name, param=param)]

    # Mapping interface: canonical names only, so ``dict(registry)`` has no duplicates.
    def __getitem__(self, name: str) -> T:
        return self.entry(name)

    def __iter__(self) -> Iterator[str]:
        return iter(self._entries)

    def __len__(self) -> int:
        return len(self._entries)

    def __contains__(self, name: object) -> bool:
        if not isinstance(name, str):
            return False
        key = normalize(name)
        return self._aliases.get(key, key) in self._entries

    def __repr__(self) -> str:
        return f"Registry({self.kind!r}, {list(self.names())})"

    def map(self, fn: Callable[[T], Any]) -> dict[str, Any]:
        """``{name: fn(entry)}`` over canonical names."""
        return {k: fn(v) for k, v in self._entries.items()}
