"""Save and load statistics (``.npz``), e.g. to resume an interrupted pass with ``init=``."""

from __future__ import annotations

import json
import os
import tempfile
import zipfile
import zlib
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from relujax.analysis._count import Count
from relujax.analysis._model_stats import ModelStats
from relujax.analysis._stats import UnitStats

_FORMAT = "relujax.analysis.ModelStats/1"


def save_stats(path: str | os.PathLike[str], stats: ModelStats) -> None:
    """Writes ``stats`` to ``path`` as a NumPy ``.npz`` archive, atomically.

    The file is written to a temporary name and renamed, so an interrupted save never
    leaves a truncated archive behind. Counts are stored exactly (both uint32 words).

    Args:
      path: destination file (conventionally ``*.npz``; no suffix is added).
      stats: statistics from :func:`collect` or :func:`with_stats`.

    Examples:
      >>> import os, tempfile, jax.numpy as jnp
      >>> from relujax import analysis
      >>> s = analysis.ModelStats({"h": analysis.UnitStats.from_batch(jnp.array([[1.0, -1.0]]))})
      >>> path = os.path.join(tempfile.mkdtemp(), "stats.npz")
      >>> analysis.save_stats(path, s)
      >>> analysis.load_stats(path)["h"].firing.to_numpy()
      array([1, 0], dtype=uint64)
    """
    if not isinstance(stats, ModelStats):
        raise TypeError(f"stats must be a ModelStats, got {type(stats).__name__}.")
    host = jax.device_get(stats)
    arrays: dict[str, Any] = {
        "__meta__": np.array(json.dumps({"format": _FORMAT, "sites": list(host)}))
    }
    for i, value in enumerate(host.values()):
        for field, x in value._asdict().items():
            if isinstance(x, Count):
                arrays[f"{i}.{field}.hi"] = np.asarray(x.hi)
                arrays[f"{i}.{field}.lo"] = np.asarray(x.lo)
            else:
                arrays[f"{i}.{field}"] = np.asarray(x)
    path = os.fspath(path)
    directory = os.path.dirname(os.path.abspath(path))
    fd, tmp = tempfile.mkstemp(dir=directory, suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            np.savez(f, **arrays)
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.remove(tmp)
        raise


def load_stats(path: str | os.PathLike[str]) -> ModelStats:
    """Reads statistics written by :func:`save_stats`.

    Args:
      path: the ``.npz`` file.

    Returns:
      The :class:`ModelStats`, as device arrays.

    Raises:
      FileNotFoundError: if there is no such file.
      ValueError: if the file was not written by :func:`save_stats`, or is truncated or
        corrupted (the message names the path).

    Examples:
      >>> import os, tempfile, jax.numpy as jnp
      >>> from relujax import analysis
      >>> s = analysis.ModelStats({"h": analysis.UnitStats.from_batch(jnp.array([[2.0]]))})
      >>> path = os.path.join(tempfile.mkdtemp(), "stats.npz")
      >>> analysis.save_stats(path, s)
      >>> list(analysis.load_stats(path)), analysis.load_stats(path)["h"].pre_mean
      (['h'], Array([2.], dtype=float32))
    """
    path = os.fspath(path)
    try:
        return _read(path)
    except _FOREIGN as e:
        raise ValueError(
            f"load_stats: {path} is truncated or corrupted ({type(e).__name__}: {e}); it is not "
            "a complete file written by relujax.analysis.save_stats. Write it again."
        ) from e


# What np.load and the archive reader raise on a cut or damaged file (a missing file is a
# FileNotFoundError, passed through).
_FOREIGN = (EOFError, zipfile.BadZipFile, zlib.error, KeyError, json.JSONDecodeError, TypeError)


def _read(path: str) -> ModelStats:
    try:
        archive = np.load(path, allow_pickle=False)
    except ValueError as e:  # not an .npy/.npz at all (np.load's message for foreign bytes)
        raise EOFError(str(e)) from e
    if not isinstance(archive, np.lib.npyio.NpzFile):
        raise ValueError(f"load_stats: {path} holds one array, not a save_stats archive.")
    with archive as data:
        if "__meta__" not in data.files:
            raise ValueError(f"{path} was not written by relujax.analysis.save_stats.")
        try:
            meta = json.loads(str(data["__meta__"]))
        except ValueError as e:
            raise EOFError(str(e)) from e
        if meta.get("format") != _FORMAT:
            raise ValueError(f"{path}: unknown format {meta.get('format')!r}.")
        items = []
        for i, name in enumerate(meta["sites"]):
            fields = {}
            for field in UnitStats._fields:
                try:
                    if f"{i}.{field}.hi" in data:
                        fields[field] = Count(
                            jnp.asarray(data[f"{i}.{field}.hi"]),
                            jnp.asarray(data[f"{i}.{field}.lo"]),
                        )
                    else:
                        fields[field] = jnp.asarray(data[f"{i}.{field}"])
                except ValueError as e:  # a member cut short inside the archive
                    raise EOFError(str(e)) from e
            items.append((name, UnitStats(**fields)))
    return ModelStats(items)
