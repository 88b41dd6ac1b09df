"""An ordered, pytree mapping from activation site to its :class:`UnitStats`."""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from typing import Any

import jax

from relujax.analysis._stats import UnitStats


@jax.tree_util.register_pytree_node_class
class ModelStats(Mapping[str, UnitStats]):
    """Per-unit statistics of every activation site of a model, in call order.

    A read-only ``Mapping`` from site name to :class:`UnitStats` that keeps its order through
    ``jit``, ``vmap`` and ``scan`` (a plain ``dict`` would come back sorted). It is the value
    of :func:`collect` and the second output of :func:`with_stats`, and a monoid like its
    values: :meth:`merge` combines the statistics of two disjoint streams of batches. Stats of
    K models gathered under ``jax.vmap`` have a leading axis of size K in every array; take
    model ``k`` with ``jax.tree.map(lambda a: a[k], stats)``.

    Examples:
      >>> import jax.numpy as jnp
      >>> from relujax.analysis import ModelStats, UnitStats
      >>> s = ModelStats({"h": UnitStats.from_batch(jnp.array([[1.0, -1.0]]))})
      >>> s
      ModelStats(h: 2 units)
      >>> s.merge(s)["h"].count.to_numpy()
      array([2, 2], dtype=uint64)
    """

    __slots__ = ("_names", "_values")

    def __init__(self, items: Mapping[str, UnitStats] | Iterable[tuple[str, UnitStats]] = ()):
        pairs: list[tuple[str, UnitStats]] = list(
            items.items() if isinstance(items, Mapping) else items  # pyright: ignore[reportAssignmentType]
        )
        names = tuple(name for name, _ in pairs)
        if len(set(names)) != len(names):
            raise ValueError(f"ModelStats: site names must be unique, got {names}.")
        self._names = names
        self._values = tuple(value for _, value in pairs)

    # --- Mapping ---------------------------------------------------------------------------
    def __getitem__(self, name: str) -> UnitStats:
        try:
            return self._values[self._names.index(name)]
        except ValueError:
            raise KeyError(f"no site {name!r}; sites are {list(self._names)}") from None

    def __iter__(self) -> Iterator[str]:
        return iter(self._names)

    def __len__(self) -> int:
        return len(self._names)

    def __repr__(self) -> str:
        parts = []
        for name, value in zip(self._names, self._values, strict=True):
            try:
                parts.append(f"{name}: {value.units} units")
            except AttributeError:
                parts.append(f"{name}: {value!r}")
        return f"ModelStats({', '.join(parts)})"

    # --- pytree ----------------------------------------------------------------------------
    def tree_flatten(self) -> tuple[tuple[Any, ...], tuple[str, ...]]:
        return self._values, self._names

    @classmethod
    def tree_unflatten(cls, names: tuple[str, ...], values: Iterable[Any]) -> ModelStats:
        out = object.__new__(cls)
        out._names = names
        out._values = tuple(values)
        return out

    # --- monoid ----------------------------------------------------------------------------
    def merge(self, other: ModelStats) -> ModelStats:
        """Site-by-site :meth:`UnitStats.merge` of two ``ModelStats`` with the same sites.

        Args:
          other: statistics of the same sites (in any order).

        Returns:
          A ``ModelStats`` in ``self``'s order.

        Raises:
          ValueError: if the two do not have the same site names.

        Examples:
          >>> import jax.numpy as jnp
          >>> from relujax.analysis import ModelStats, UnitStats
          >>> a = ModelStats({"h": UnitStats.from_batch(jnp.array([[1.0], [3.0]]))})
          >>> b = ModelStats({"h": UnitStats.from_batch(jnp.array([[5.0]]))})
          >>> a.merge(b)["h"].pre_mean
          Array([3.], dtype=float32)
        """
        if set(self._names) != set(other):
            raise ValueError(
                "ModelStats.merge: both sides need the same sites; "
                f"only in self: {sorted(set(self._names) - set(other))}, "
                f"only in other: {sorted(set(other) - set(self._names))}."
            )
        return ModelStats(
            (name, value.merge(other[name]))
            for name, value in zip(self._names, self._values, strict=True)
        )

    @property
    def units(self) -> dict[str, int]:
        """Number of units of each site, in order."""
        return {name: value.units for name, value in zip(self._names, self._values, strict=True)}
