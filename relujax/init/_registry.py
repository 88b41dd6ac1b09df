"""Look initializers up by name."""

from __future__ import annotations

import difflib
from collections.abc import Callable
from typing import Any

from relujax.init import _rai, _scaling, _simple

# Factories: name -> callable(**params) returning an initializer.
_FACTORIES: dict[str, Callable[..., Any]] = {
    "he_normal": _scaling.he_normal,
    "he_uniform": _scaling.he_uniform,
    "kaiming_normal": _scaling.he_normal,
    "kaiming_uniform": _scaling.he_uniform,
    "xavier_normal": _scaling.xavier_normal,
    "xavier_uniform": _scaling.xavier_uniform,
    "glorot_normal": _scaling.xavier_normal,
    "glorot_uniform": _scaling.xavier_uniform,
    "lecun_normal": _scaling.lecun_normal,
    "orthogonal": _scaling.orthogonal,
    "rai": _rai.rai,
    "normal": _simple.normal,
    "constant": _simple.constant,
}
# Initializers that are functions themselves (as jax.nn.initializers.zeros).
_PLAIN: dict[str, Callable[..., Any]] = {"zeros": _simple.zeros, "ones": _simple.ones}


def names() -> tuple[str, ...]:
    """The names :func:`get` accepts, sorted.

    Returns:
      A tuple of strings.

    Examples:
      >>> import relujax
      >>> "he_normal" in relujax.init.names(), "rai" in relujax.init.names()
      (True, True)
    """
    return tuple(sorted((*_FACTORIES, *_PLAIN)))


def get(name: str | Callable[..., Any], **params: Any) -> Callable[..., Any]:
    """Returns an initializer by name, configured with ``params``.

    ``get("he_normal", negative_slope=0.1)`` is ``he_normal(negative_slope=0.1)``;
    ``get("zeros")`` is :func:`zeros` itself. A callable is returned unchanged (so
    modules can accept either form); giving it ``params`` is an error.

    Args:
      name: one of :func:`names`, or an initializer.
      **params: keyword arguments of the named factory.

    Returns:
      An initializer ``init(key, shape, dtype=None) -> Array``.

    Raises:
      ValueError: for an unknown name (the message suggests the closest names) or
        parameters given to a parameterless initializer.

    Examples:
      >>> import jax, relujax
      >>> init = relujax.init.get("constant", value=-1.0)
      >>> init(jax.random.key(0), (2,))
      Array([-1., -1.], dtype=float32)
      >>> relujax.init.get("he_norml")
      Traceback (most recent call last):
      ...
      ValueError: Unknown initializer 'he_norml'. Did you mean 'he_normal'...
    """
    if callable(name):
        if params:
            raise ValueError(
                f"get() got parameters {sorted(params)} for an initializer object {name!r}; "
                "parameters are only accepted with a name."
            )
        return name
    if not isinstance(name, str):
        raise TypeError(f"name must be a string or an initializer, got {name!r}.")
    key = name.strip().lower().replace("-", "_")
    if key in _FACTORIES:
        return _FACTORIES[key](**params)
    if key in _PLAIN:
        if params:
            raise ValueError(f"Initializer {name!r} takes no parameters, got {sorted(params)}.")
        return _PLAIN[key]
    close = difflib.get_close_matches(key, names(), n=3, cutoff=0.5)
    hint = f" Did you mean {' or '.join(map(repr, close))}?" if close else ""
    raise ValueError(f"Unknown initializer {name!r}.{hint} Accepted names: {', '.join(names())}.")
