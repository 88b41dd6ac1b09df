"""Checkpoints of a running sweep with orbax-checkpoint, verified on restore.

Layout: ``<directory>/<chunks done>/`` holds two orbax items, ``state`` (a flat dict
``{"0": leaf, "1": leaf, ...}`` of the training state's leaves, PRNG key arrays stored as their
``uint32`` key data, plus the metric arrays recorded so far) and ``meta`` (JSON: the sweep's
fingerprint and settings, the number of chunks done, the format version, and the manifest:
the SHA-256 of every saved array's dtype, shape and bytes). Orbax writes each step to a
temporary directory and renames it when complete, so a run killed mid-save leaves the previous
checkpoint intact. The two most recent checkpoints are kept.

On restore every array is checked against its digest. A step that fails (a flipped bit, a
truncated file, unreadable metadata) is moved aside as ``<step>.corrupt`` with a warning, and
the newest intact step is used; when none is intact the error says to start afresh.

``<directory>/.relujax.lock`` (:class:`~relujax.sweep.DirectoryLock`) keeps a second process
from writing the same directory. Sharded arrays are written and read by every process of a
multi-host run (orbax coordinates them); process 0 holds the lock and renames corrupt steps.
"""

from __future__ import annotations

import hashlib
import os
import warnings
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from relujax import _optional
from relujax.sweep._host import to_host
from relujax.sweep._lock import DirectoryLock

FORMAT = 2


def _is_key(x: Any) -> bool:
    return isinstance(x, jax.Array) and jnp.issubdtype(x.dtype, jax.dtypes.prng_key)


def _keydata(tree: Any) -> Any:
    return jax.tree.map(lambda x: jax.random.key_data(x) if _is_key(x) else x, tree)


def _flatten(tree: Any) -> dict[str, Any]:
    return {str(i): x for i, x in enumerate(jax.tree.leaves(_keydata(tree)))}


def _unflatten(like: Any, flat: dict[str, Any]) -> Any:
    leaves, treedef = jax.tree.flatten(like)
    out = []
    for i, ref in enumerate(leaves):
        value = flat[str(i)]
        if _is_key(ref):
            value = jax.random.wrap_key_data(value, impl=jax.random.key_impl(ref))
        out.append(value)
    return jax.tree.unflatten(treedef, out)


def digest(array: Any) -> str:
    """SHA-256 of an array's dtype, shape and bytes."""
    a = np.ascontiguousarray(array)
    h = hashlib.sha256(f"{a.dtype.str}{a.shape}".encode())
    h.update(a.tobytes())
    return h.hexdigest()


def _manifest(tree: dict[str, Any]) -> dict[str, str]:
    host = to_host(tree)
    return {
        f"{group}/{name}": digest(value)
        for group, leaves in host.items()
        for name, value in leaves.items()
    }


def _differences(saved: dict[str, Any], current: dict[str, Any]) -> list[str]:
    keys = sorted(set(saved) | set(current))
    return [k for k in keys if saved.get(k) != current.get(k)]


class Checkpointer:
    """Saves and restores ``(state, metrics, chunks_done)`` of one sweep in ``directory``.

    Args:
      directory: the checkpoint directory (created; locked while this object is open).
      fingerprint: hash of everything that changes the sweep's results.
      settings: the JSON settings behind ``fingerprint``, to name what differs.
    """

    def __init__(self, directory: str | os.PathLike, fingerprint: str, settings: dict[str, Any]):
        ocp = _optional.require(
            "orbax.checkpoint", package="orbax-checkpoint", purpose="sweep checkpoints"
        )
        self._ocp = ocp
        self.directory = os.path.abspath(os.fspath(directory))
        self.fingerprint = fingerprint
        self.settings = settings
        self._lock = DirectoryLock(self.directory)
        if jax.process_index() == 0:
            self._lock.acquire()
        try:
            self._manager = ocp.CheckpointManager(
                self.directory,
                options=ocp.CheckpointManagerOptions(
                    max_to_keep=2, create=True, enable_async_checkpointing=False
                ),
            )
        except BaseException:
            self._lock.release()
            raise

    def _check_same_sweep(self, meta: dict[str, Any]) -> None:
        if meta.get("fingerprint") == self.fingerprint and meta.get("format") == FORMAT:
            return
        if meta.get("format") != FORMAT:
            what = f"checkpoint format {meta.get('format')} (this relujax writes {FORMAT})"
        else:
            what = ", ".join(_differences(meta.get("settings", {}), self.settings)) or "data"
        raise ValueError(
            f"the checkpoint in {self.directory} belongs to a different sweep (it differs in: "
            f"{what}). Resume with the same arguments, or pass a new checkpoint_dir."
        )

    def _load(self, step: int, state_like: Any, metrics_like: dict[str, np.ndarray]):
        """``(state, metrics, chunks_done)`` of ``step``; raises ``_Corrupt`` if damaged."""
        ocp = self._ocp
        try:
            meta = self._manager.restore(
                step, args=ocp.args.Composite(meta=ocp.args.JsonRestore())
            )["meta"]
        except Exception as e:
            raise _Corrupt(f"its metadata cannot be read ({type(e).__name__})") from None
        if not isinstance(meta, dict):
            raise _Corrupt("its metadata is not a JSON object")
        self._check_same_sweep(meta)
        abstract = {
            "state": _flatten(jax.tree.map(ocp.utils.to_shape_dtype_struct, _keydata(state_like))),
            "metrics": {k: ocp.utils.to_shape_dtype_struct(v) for k, v in metrics_like.items()},
        }
        try:
            restored = self._manager.restore(
                step, args=ocp.args.Composite(state=ocp.args.StandardRestore(abstract))
            )["state"]
        except Exception as e:
            first = str(e).splitlines()[0][:200] if str(e) else type(e).__name__
            raise _Corrupt(f"its arrays cannot be read ({first})") from None
        saved = meta.get("manifest", {})
        bad = _differences(saved, _manifest(restored))
        if bad:
            raise _Corrupt(f"array {bad[0]} fails its SHA-256 check")
        state = _unflatten(state_like, restored["state"])
        metrics = {k: np.asarray(v) for k, v in restored["metrics"].items()}
        return state, metrics, int(meta["chunks_done"])

    def restore(self, state_like: Any, metrics_like: dict[str, np.ndarray]):
        """The newest intact checkpoint as ``(state, metrics, chunks_done)``, or None if none.

        Raises:
          ValueError: the checkpoint was written by a different sweep.
          RuntimeError: there are checkpoints but none is intact.
        """
        steps = sorted(self._manager.all_steps(), reverse=True)
        bad: list[tuple[int, str]] = []
        for step in steps:
            try:
                out = self._load(step, state_like, metrics_like)
            except _Corrupt as e:
                bad.append((step, str(e)))
                continue
            if bad:
                self._set_aside(bad)
                warnings.warn(
                    f"{_describe(bad)} in {self.directory}; resuming from step {step}, the "
                    "newest intact one.",
                    stacklevel=3,
                )
            return out
        if bad:
            raise RuntimeError(
                f"no intact checkpoint in {self.directory}: {_describe(bad)}. Nothing can be "
                "resumed: delete the directory, or pass another checkpoint_dir, to run the "
                "sweep again from step 0."
            )
        return None

    def _set_aside(self, bad: list[tuple[int, str]]) -> None:
        if jax.process_index() == 0:
            for step, _ in bad:
                src = os.path.join(self.directory, str(step))
                dst = f"{src}.corrupt"
                n = 1
                while os.path.exists(dst):
                    n += 1
                    dst = f"{src}.corrupt{n}"
                os.rename(src, dst)
        self._manager.reload()

    def save(self, chunks_done: int, state: Any, metrics: dict[str, np.ndarray]) -> None:
        """Writes a checkpoint (synchronously) after ``chunks_done`` chunks."""
        ocp = self._ocp
        tree = {"state": _flatten(state), "metrics": dict(metrics)}
        meta = {
            "fingerprint": self.fingerprint,
            "settings": self.settings,
            "chunks_done": chunks_done,
            "format": FORMAT,
            "manifest": _manifest(tree),
        }
        self._manager.save(
            chunks_done,
            args=ocp.args.Composite(
                state=ocp.args.StandardSave(tree), meta=ocp.args.JsonSave(meta)
            ),
            force=True,
        )
        self._manager.wait_until_finished()

    def close(self) -> None:
        """Releases orbax's resources and the directory lock."""
        try:
            self._manager.close()
        finally:
            self._lock.release()


class _Corrupt(Exception):
    """A checkpoint step that cannot be trusted (the message says why)."""


def _describe(bad: list[tuple[int, str]]) -> str:
    parts = [f"checkpoint step {step} is corrupt ({why})" for step, why in bad]
    return "; ".join(parts)
