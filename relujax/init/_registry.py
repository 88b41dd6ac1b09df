"""Look initializers up by name: ``get(name, **params)`` and ``names()``.

Built on :class:`relujax._registry.Registry`, so names are normalized as everywhere in relujax
(``"He-Normal"`` is ``"he_normal"``) and an unknown name lists the closest and all accepted.
"""

from __future__ import annotations

import dataclasses
import inspect
from collections.abc import Callable
from typing import Any

from relujax._registry import Registry
from relujax.init import _rai, _scaling, _simple


@dataclasses.dataclass(frozen=True)
class _Entry:
    """A registered initializer: a factory taking ``**params``, or an initializer itself."""

    fn: Callable[..., Any]
    factory: bool = True

    def params(self) -> tuple[str, ...]:
        if not self.factory:
            return ()
        return tuple(
            p.name
            for p in inspect.signature(self.fn).parameters.values()
            if p.kind in (p.KEYWORD_ONLY, p.POSITIONAL_OR_KEYWORD)
        )


_INITIALIZERS: Registry[_Entry] = Registry(
    "initializer",
    {
        "he_normal": _Entry(_scaling.he_normal),
        "he_uniform": _Entry(_scaling.he_uniform),
        "xavier_normal": _Entry(_scaling.xavier_normal),
        "xavier_uniform": _Entry(_scaling.xavier_uniform),
        "lecun_normal": _Entry(_scaling.lecun_normal),
        "orthogonal": _Entry(_scaling.orthogonal),
        "rai": _Entry(_rai.rai),
        "normal": _Entry(_simple.normal),
        "constant": _Entry(_simple.constant),
        "zeros": _Entry(_simple.zeros, factory=False),
        "ones": _Entry(_simple.ones, factory=False),
    },
    aliases={
        "kaiming_normal": "he_normal",
        "kaiming_uniform": "he_uniform",
        "glorot_normal": "xavier_normal",
        "glorot_uniform": "xavier_uniform",
    },
)


def lookup(name: Any, *, param: str) -> tuple[str, _Entry]:
    """The canonical name and entry of ``name``; errors name the caller's ``param``."""
    canonical = _INITIALIZERS.resolve(name, param=param)
    return canonical, _INITIALIZERS.entry(canonical)


def names() -> tuple[str, ...]:
    """The names :func:`get` accepts (aliases such as ``"kaiming_normal"`` included), sorted.

    Returns:
      A tuple of canonical (normalized) names.

    Examples:
      >>> import relujax
      >>> "he_normal" in relujax.init.names(), "glorot_uniform" in relujax.init.names()
      (True, True)
    """
    return _INITIALIZERS.names()


def get(name: str | Callable[..., Any], /, **params: Any) -> Callable[..., Any]:
    """Returns an initializer by name, configured with ``params``.

    ``get("he_normal", negative_slope=0.1)`` is ``he_normal(negative_slope=0.1)``;
    ``get("zeros")`` is :func:`zeros` itself. Names are normalized (surrounding spaces
    dropped, case ignored, ``-`` read as ``_``: ``"He-Normal"`` is ``"he_normal"``). A
    callable is returned unchanged (so modules can take either form).

    Args:
      name: one of :func:`names` in any spelling, or an initializer.
      **params: keyword arguments of the named factory.

    Returns:
      An initializer ``init(key, shape, dtype=None) -> Array``.

    Raises:
      TypeError: ``name`` is neither a string nor a callable, or ``params`` are not
        parameters of the named factory (an initializer object, ``"zeros"`` and ``"ones"``
        take none).
      ValueError: an unknown name (the message suggests the closest names).

    Examples:
      >>> import jax, relujax
      >>> init = relujax.init.get("Constant", value=-1.0)
      >>> init(jax.random.key(0), (2,))
      Array([-1., -1.], dtype=float32)
      >>> relujax.init.get("he_norml")
      Traceback (most recent call last):
      ...
      ValueError: unknown initializer 'he_norml' for init.get: name; did you mean 'he_normal'...
    """
    if callable(name) and not isinstance(name, str):
        if params:
            raise TypeError(
                f"init.get: parameters {sorted(params)} were given with an initializer object "
                f"{name!r}; parameters are only accepted with a name."
            )
        return name
    if not isinstance(name, str):
        raise TypeError(f"init.get: name must be an initializer name or a callable, got {name!r}.")
    canonical, entry = lookup(name, param="init.get: name")
    unknown = sorted(set(params) - set(entry.params()))
    if unknown:
        accepted = ", ".join(entry.params()) or "none"
        raise TypeError(
            f"init.get: {canonical!r} got unknown parameters {unknown}; accepted: {accepted}."
        )
    return entry.fn(**params) if entry.factory else entry.fn
