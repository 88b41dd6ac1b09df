"""The settings of a sweep that shape its numbers, as one frozen, validated value."""

from __future__ import annotations

import dataclasses
from typing import Any, cast

from relujax import _validation
from relujax.sweep import _intervention, _strategy
from relujax.sweep._spec import CNNSpec, MLPSpec, OptimizerSpec


@dataclasses.dataclass(frozen=True)
class Options:
    r"""How a sweep trains: everything but the configurations, the data and where it runs.

    Validated on construction (``TypeError`` for a wrong type, ``ValueError`` for a wrong
    value, naming the field); ``optimizer`` may be given as a name and ``eval_every`` /
    ``chunk_steps`` as None (then ``steps``).

    Attributes:
      steps: training steps per configuration.
      model: :class:`MLPSpec` (default: three hidden layers of 256) or :class:`CNNSpec`.
      optimizer: an :class:`OptimizerSpec` or a name of ``sweep.optimizers.names()``.
      batch_size: minibatch size.
      eval_every: steps between evaluations (must divide ``chunk_steps``).
      chunk_steps: steps per compiled chunk (must divide ``steps``); checkpoints, progress
        and callbacks happen between chunks.
      probe_size: size of the probe set (capped at the training set size).
      dormant_tau: ReDo's threshold :math:`\tau` for the dormant fraction.
      strategy: ``"vmap"``, ``"map"`` (``lax.map``, configurations one after another) or
        ``"auto"`` (per backend and model size).
      map_batch_size: with ``"map"``, vmap over this many configurations at a time.
      intervention: a per-step :class:`Intervention` (or None); its hyperparameters are
        set per configuration in :attr:`Config.intervention`.
      feature_rank: also record ``effective_rank`` ``[K, E, L]``, the effective rank of each
        layer's activations on the probe set (an SVD per layer and evaluation).

    Examples:
      >>> from relujax import sweep
      >>> o = sweep.Options(steps=100, eval_every=10, optimizer="AdamW")
      >>> o.chunk_steps, o.optimizer.name
      (100, 'adamw')
    """

    steps: int
    model: MLPSpec | CNNSpec = MLPSpec()  # noqa: RUF009 - frozen, hence safe to share
    optimizer: OptimizerSpec | str = "adam"
    batch_size: int = 128
    eval_every: int | None = None
    chunk_steps: int | None = None
    probe_size: int = 1024
    dormant_tau: float = 0.025
    strategy: str = "auto"
    map_batch_size: int | None = None
    intervention: _intervention.Intervention | None = None
    feature_rank: bool = False

    def __post_init__(self) -> None:
        def put(name: str, value: Any) -> None:
            object.__setattr__(self, name, value)

        if not isinstance(self.model, (MLPSpec, CNNSpec)):
            raise TypeError(
                f"model must be a relujax.sweep.MLPSpec or CNNSpec, got {self.model!r}."
            )
        if isinstance(self.optimizer, str):
            put("optimizer", OptimizerSpec(self.optimizer))
        if not isinstance(self.optimizer, OptimizerSpec):
            raise TypeError(
                f"optimizer must be an OptimizerSpec or a name, got {self.optimizer!r}."
            )
        steps = _validation.integer("steps", self.steps, minimum=1)
        put("steps", steps)
        put("batch_size", _validation.integer("batch_size", self.batch_size, minimum=1))
        every = steps if self.eval_every is None else self.eval_every
        chunk = steps if self.chunk_steps is None else self.chunk_steps
        put("eval_every", _validation.integer("eval_every", every, minimum=1))
        put("chunk_steps", _validation.integer("chunk_steps", chunk, minimum=1))
        # eval_every and chunk_steps are ints from here on (optimizer an OptimizerSpec).
        if steps % cast(int, self.chunk_steps):
            raise ValueError(f"chunk_steps={self.chunk_steps} must divide steps={steps}.")
        if cast(int, self.chunk_steps) % cast(int, self.eval_every):
            raise ValueError(
                f"eval_every={self.eval_every} must divide chunk_steps={self.chunk_steps}."
            )
        put("probe_size", _validation.integer("probe_size", self.probe_size, minimum=1))
        put("dormant_tau", _validation.real("dormant_tau", self.dormant_tau, minimum=0.0))
        _validation.choice("strategy", self.strategy, _strategy.STRATEGIES)
        if self.map_batch_size is not None:
            put(
                "map_batch_size",
                _validation.integer("map_batch_size", self.map_batch_size, minimum=1),
            )
        _intervention.check(self.intervention)
        put("feature_rank", _validation.boolean("feature_rank", self.feature_rank))

    def settings(self) -> dict[str, Any]:
        """JSON-friendly description (the intervention by name and hyperparameter defaults)."""
        iv = self.intervention
        extra = {"feature_rank": True} if self.feature_rank else {}  # old fingerprints kept
        return {
            "model": self.model.to_dict(),
            "optimizer": cast(OptimizerSpec, self.optimizer).to_dict(),
            "steps": self.steps,
            "batch_size": self.batch_size,
            "eval_every": self.eval_every,
            "chunk_steps": self.chunk_steps,
            "probe_size": self.probe_size,
            "dormant_tau": self.dormant_tau,
            "map_batch_size": self.map_batch_size,
            "intervention": None
            if iv is None
            else {"name": iv.name, "type": type(iv).__qualname__, **dict(iv.hyperparameters)},
            **extra,
        }
