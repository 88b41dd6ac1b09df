"""Checkpoints of a running sweep with orbax-checkpoint.

Layout: ``<directory>/<chunks done>/`` holds two orbax items, ``state`` (a flat dict
``{"0": leaf, "1": leaf, ...}`` of the training state's leaves, PRNG key arrays stored as their
``uint32`` key data, plus the metric arrays recorded so far) and ``meta`` (JSON: the sweep's
fingerprint, the number of chunks done, the format version). Orbax writes each step to a
temporary directory and renames it when complete, so a run killed mid-save leaves the previous
checkpoint intact. The two most recent checkpoints are kept. Sharded arrays are written and
read by every process of a multi-host run (orbax coordinates them).
"""

from __future__ import annotations

import os
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

FORMAT = 1


def _is_key(x: Any) -> bool:
    return isinstance(x, jax.Array) and jnp.issubdtype(x.dtype, jax.dtypes.prng_key)


def _flatten(tree: Any) -> dict[str, Any]:
    leaves = jax.tree.leaves(tree)
    return {str(i): jax.random.key_data(x) if _is_key(x) else x for i, x in enumerate(leaves)}


def _unflatten(like: Any, flat: dict[str, Any]) -> Any:
    leaves, treedef = jax.tree.flatten(like)
    out = []
    for i, ref in enumerate(leaves):
        value = flat[str(i)]
        if _is_key(ref):
            value = jax.random.wrap_key_data(value, impl=jax.random.key_impl(ref))
        out.append(value)
    return jax.tree.unflatten(treedef, out)


class Checkpointer:
    """Saves and restores ``(state, metrics, chunks_done)`` of one sweep in ``directory``."""

    def __init__(self, directory: str | os.PathLike, fingerprint: str):
        import orbax.checkpoint as ocp

        self._ocp = ocp
        self.directory = os.path.abspath(os.fspath(directory))
        self.fingerprint = fingerprint
        self._manager = ocp.CheckpointManager(
            self.directory,
            options=ocp.CheckpointManagerOptions(
                max_to_keep=2, create=True, enable_async_checkpointing=False
            ),
        )

    def restore(self, state_like: Any, metrics_like: dict[str, np.ndarray]):
        """The latest checkpoint as ``(state, metrics, chunks_done)``, or None if there is none.

        Raises:
          ValueError: if the checkpoint was written by a different sweep.
        """
        ocp = self._ocp
        step = self._manager.latest_step()
        if step is None:
            return None
        meta = self._manager.restore(step, args=ocp.args.Composite(meta=ocp.args.JsonRestore()))[
            "meta"
        ]
        if meta.get("fingerprint") != self.fingerprint or meta.get("format") != FORMAT:
            raise ValueError(
                f"the checkpoint in {self.directory} belongs to a different sweep (other "
                "configurations, model, optimizer, data or step settings). Resume with the "
                "same arguments, or pass a new checkpoint_dir."
            )
        abstract = {
            "state": _flatten(jax.tree.map(ocp.utils.to_shape_dtype_struct, _keydata(state_like))),
            "metrics": {k: ocp.utils.to_shape_dtype_struct(v) for k, v in metrics_like.items()},
        }
        restored = self._manager.restore(
            step, args=ocp.args.Composite(state=ocp.args.StandardRestore(abstract))
        )["state"]
        state = _unflatten(state_like, restored["state"])
        metrics = {k: np.asarray(v) for k, v in restored["metrics"].items()}
        return state, metrics, int(meta["chunks_done"])

    def save(self, chunks_done: int, state: Any, metrics: dict[str, np.ndarray]) -> None:
        """Writes a checkpoint (synchronously) after ``chunks_done`` chunks."""
        ocp = self._ocp
        tree = {"state": _flatten(state), "metrics": dict(metrics)}
        meta = {"fingerprint": self.fingerprint, "chunks_done": chunks_done, "format": FORMAT}
        self._manager.save(
            chunks_done,
            args=ocp.args.Composite(
                state=ocp.args.StandardSave(tree), meta=ocp.args.JsonSave(meta)
            ),
            force=True,
        )
        self._manager.wait_until_finished()

    def close(self) -> None:
        """Releases orbax's resources."""
        self._manager.close()


def _keydata(tree: Any) -> Any:
    return jax.tree.map(lambda x: jax.random.key_data(x) if _is_key(x) else x, tree)
