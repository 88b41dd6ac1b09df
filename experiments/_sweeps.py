"""What the experiments share on top of :func:`relujax.sweep.run`.

- :class:`ReDo`: ReDo recycling (Sokar et al. 2023, :func:`relujax.remedies.redo`) as a
  sweep intervention that counts the recycled units, with Adam's per-weight step count
  restarted (default) or kept, per configuration;
- :func:`run`: a checkpointed sweep (a rerun resumes) reporting to the run's progress line;
- :func:`arrays`: a result's per-run curves under the names the experiments' tables use.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from experiments import _common
from relujax import remedies, sweep


@dataclasses.dataclass(frozen=True)
class ReDo(sweep.Intervention):
    """ReDo every ``redo_every`` steps (0: never) at threshold ``redo_tau``, per configuration.

    After update ``t`` (0-based) with ``t > 0`` and ``t % redo_every == 0``, the units whose
    ReDo score on the step's batch is at most ``redo_tau`` get fresh incoming weights
    (``kernel_init``, bias 0), zero outgoing weights and zeroed Adam moments; their Adam step
    counts restart (per-weight counts, ``adam_per_param``) unless ``redo_keep_count`` is 1,
    the old behaviour. Recycling one step after a multiple of the period means an evaluation
    every ``redo_every`` steps sees the network ``redo_every - 1`` steps after the last
    recycling, never a freshly recycled one. Records ``recycled``, the units recycled so far.

    Attributes:
      layers: number of hidden layers of the MLP.
      kernel_init: initializer of the fresh incoming weights.
    """

    name = "redo"
    hyperparameters = {"redo_every": 0.0, "redo_tau": 0.1, "redo_keep_count": 0.0}  # noqa: RUF012
    needs_stats = True
    layers: int = 1
    kernel_init: str = "lecun_normal"

    def init(self, params: Any) -> Any:
        del params
        return jnp.zeros((), jnp.float32)

    def apply(self, ctx: Any, params: Any, opt_state: Any, state: Any) -> tuple[Any, Any, Any]:
        layout = remedies.sequential(
            [("layers", i) for i in range(self.layers + 1)], kernel_init=self.kernel_init
        )
        out = remedies.redo(
            params,
            ctx.stats,
            ctx.key,
            layout=layout,
            tau=ctx.hparams["redo_tau"],
            opt_state=opt_state,
            when=remedies.due(ctx.step, ctx.hparams["redo_every"]),
        )
        keep = ctx.hparams["redo_keep_count"] > 0

        def counts(new: Any, old: Any) -> Any:
            if isinstance(new, remedies.ScaleByAdamPerParamState):
                count = jax.tree.map(lambda n, o: jnp.where(keep, o, n), new.count, old.count)
                return new._replace(count=count)
            return new

        is_adam = lambda x: isinstance(x, remedies.ScaleByAdamPerParamState)
        new_opt = jax.tree.map(counts, out.opt_state, opt_state, is_leaf=is_adam)
        recycled = state + sum(jnp.sum(m).astype(jnp.float32) for m in out.masks)
        return out.params, new_opt, recycled

    def metrics(self, state: Any) -> dict[str, Any]:
        return {"recycled": state}


def run(
    args: _common.RunArgs,
    progress: _common.Progress,
    label: str,
    configs: Sequence[sweep.Config],
    data: Any,
    *,
    steps: int,
    **options: Any,
) -> sweep.SweepResult:
    """``sweep.run`` checkpointed under ``OUT/checkpoints/<label>``, reporting progress."""
    units = len(configs) * steps
    result = sweep.run(
        list(configs),
        data,
        steps=steps,
        checkpoint_dir=str((args.out / "checkpoints" / label).resolve()),
        callback=progress.callback(label, units),
        **options,
    )
    progress.finished(units)
    return result


def arrays(result: sweep.SweepResult) -> dict[str, Any]:
    """Per-run curves: ``steps[E]``; ``dead``, ``dormant`` ``[K, E, L]``; ``test_accuracy``,
    ``test_loss``, ``recycled`` ``[K, E]`` (zeros without ReDo)."""
    m = result.metrics
    k, e = m["test_loss"].shape
    return {
        "steps": np.asarray(result.steps),
        "dead": m["dead_fraction"],
        "dormant": m["dormant_fraction"],
        "test_accuracy": m["test_accuracy"],
        "test_loss": m["test_loss"],
        "recycled": m["recycled"] if "recycled" in m else np.zeros((k, e), np.float32),
    }


def unit_fraction(per_layer: np.ndarray, hidden: Sequence[int]) -> np.ndarray:
    """Per-layer fractions ``[..., L]`` -> fraction of all hidden units ``[...]``."""
    w = np.asarray(hidden, dtype=np.float64) / float(sum(hidden))
    return per_layer @ w
