"""Imports of optional packages, with an error that says which relujax extra provides them."""

from __future__ import annotations

import importlib
from types import ModuleType

#: The pip command that installs every optional package relujax uses.
EXTRA = 'pip install "relujax[experiments]"'


def require(module: str, *, package: str, purpose: str) -> ModuleType:
    """``importlib.import_module(module)``, or a ``ModuleNotFoundError`` naming the extra.

    Args:
      module: the module to import (``"tqdm.auto"``).
      package: the distribution that provides it (``"tqdm"``), for the message.
      purpose: what needs it (``"relujax.sweep.run(progress=True)"``), for the message.

    Returns:
      The imported module.

    Raises:
      ModuleNotFoundError: the package is not installed; the message names the extra.

    Examples:
      >>> require("json", package="json", purpose="a doctest").__name__
      'json'
    """
    try:
        return importlib.import_module(module)
    except ModuleNotFoundError as e:
        raise ModuleNotFoundError(
            f"{purpose} needs the optional package {package!r}, which is not installed. "
            f"Install relujax's optional dependencies with: {EXTRA}",
            name=e.name,
        ) from e
