r"""Interventions: a per-step hook inside the sweep's compiled training loop.

An intervention changes the parameters and the optimizer state after the optimizer's update,
every step, inside the ``lax.scan`` that trains a chunk. It is traced once per program; what
differs between configurations (whether and how often to act, a threshold, a noise scale)
are its *hyperparameters*, per-configuration scalars given in :attr:`Config.intervention`
and passed to it as traced arrays, so K configurations with different remedies (or none)
train in one program. Plasticity remedies fit this shape: ReDo recycling (Sokar et al.,
2023), shrink and perturb (Ash & Adams, 2020), continual backprop (Dohare et al., 2024),
layer resets (Nikishin et al., 2022).

Step :math:`t` of a configuration runs

.. math:: g_t = \nabla L(\theta_t; B_t),\quad
   (u_t, s_{t+1}) = \text{opt.update}(g_t, s_t, \theta_t),\quad
   \theta'_{t+1} = \theta_t + u_t,\quad
   (\theta_{t+1}, s'_{t+1}, z_{t+1}) = I(c_t, \theta'_{t+1}, s_{t+1}, z_t)

where :math:`I` is the intervention, :math:`z` its own state (counters, running averages)
and :math:`c_t` a :class:`StepContext`. A configuration that diverged keeps its state frozen,
the intervention's included.

To write one, subclass :class:`Intervention` as a frozen dataclass (it must be hashable: it
keys the compiled program) and implement :meth:`Intervention.apply`; declare its
hyperparameters with their defaults in :attr:`~Intervention.hyperparameters`, set
:attr:`~Intervention.needs_stats` if it reads unit statistics of the step's forward pass, and
override :meth:`~Intervention.init` and :meth:`~Intervention.metrics` to keep and report a
state. :class:`Chain` runs several in order.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping
from typing import Any, ClassVar, NamedTuple

import jax
import jax.numpy as jnp
from jax import Array

__all__ = ["Chain", "Intervention", "Remedy", "StepContext"]


class StepContext(NamedTuple):
    """What an intervention sees of the step it follows (one configuration, traced).

    Attributes:
      step: ``int32`` scalar, the index of the step just taken (0 for the first update).
      key: a typed PRNG key of this configuration and step, independent of the minibatch
        draws: ``fold_in(fold_in(jax.random.key(seed), 2), step)``.
      x: the step's minibatch inputs.
      y: its labels or targets.
      stats: :class:`relujax.analysis.ModelStats` of the step's forward pass (before the
        update), or None unless the intervention sets ``needs_stats``.
      hparams: this configuration's hyperparameters, ``{name: float32 scalar}``.
      apply: ``apply(params, x) -> outputs``, the model's forward pass.
      initial_params: the configuration's parameters at step 0 (for resets and L2-init).
    """

    step: Array
    key: Array
    x: Array
    y: Array
    stats: Any
    hparams: Mapping[str, Array]
    apply: Callable[[Any, Array], Array]
    initial_params: Any


@dataclasses.dataclass(frozen=True)
class Intervention:
    """Base class of interventions (subclass it as a frozen dataclass).

    Class attributes a subclass may override:

    - ``name``: a short name for results and error messages.
    - ``hyperparameters``: ``{name: default}``, the per-configuration values (floats).
    - ``needs_stats``: whether :meth:`apply` reads ``ctx.stats`` (then the training forward
      pass records unit statistics, at a cost).


    Examples:
      Shrink every parameter by ``factor`` every ``every`` steps (0: never), per config:

      >>> import dataclasses, jax, jax.numpy as jnp
      >>> from relujax import sweep
      >>> @dataclasses.dataclass(frozen=True)
      ... class Shrink(sweep.Intervention):
      ...     name = "shrink"
      ...     hyperparameters = {"every": 0.0, "factor": 1.0}
      ...     def apply(self, ctx, params, opt_state, state):
      ...         every = ctx.hparams["every"].astype(jnp.int32)
      ...         act = (every > 0) & ((ctx.step + 1) % jnp.maximum(every, 1) == 0)
      ...         scale = jnp.where(act, ctx.hparams["factor"], 1.0)
      ...         return jax.tree.map(lambda p: p * scale, params), opt_state, state
      >>> configs = [sweep.Config("constant", 1e-2),
      ...            sweep.Config("constant", 1e-2, intervention={"every": 5, "factor": 0.5})]
      >>> configs[1].intervention
      (('every', 5.0), ('factor', 0.5))
    """

    name: ClassVar[str] = "intervention"
    hyperparameters: ClassVar[Mapping[str, float]] = {}
    needs_stats: ClassVar[bool] = False

    def init(self, params: Any) -> Any:
        """The intervention's state for one configuration at step 0 (default: none)."""
        del params
        return ()

    def apply(
        self, ctx: StepContext, params: Any, opt_state: Any, state: Any
    ) -> tuple[Any, Any, Any]:
        """One step: ``(params, opt_state, state) -> (params, opt_state, state)``.

        Must keep the pytree structures, shapes and dtypes, and act only through traced
        conditions (``jnp.where``), never Python ``if`` on traced values.
        """
        raise NotImplementedError(f"{type(self).__name__} must implement apply().")

    def metrics(self, state: Any) -> dict[str, Array]:
        """Scalars recorded at every evaluation, as ``SweepResult.metrics[name]`` (``[K, E]``)."""
        del state
        return {}

    def __call__(self, ctx: StepContext, params: Any, opt_state: Any, state: Any):
        return self.apply(ctx, params, opt_state, state)


@dataclasses.dataclass(frozen=True, init=False)
class Chain(Intervention):
    """Several interventions applied in order every step (their hyperparameter and metric
    names must differ).

    Args:
      *interventions: the interventions.

    Examples:
      >>> from relujax import sweep
      >>> sweep.Chain().hyperparameters
      {}
    """

    parts: tuple[Intervention, ...] = ()

    def __init__(self, *interventions: Intervention) -> None:
        for part in interventions:
            if not isinstance(part, Intervention):
                raise TypeError(f"Chain takes relujax.sweep.Intervention values, got {part!r}.")
        names: dict[str, str] = {}
        for part in interventions:
            for key in part.hyperparameters:
                if key in names:
                    raise ValueError(
                        f"Chain: hyperparameter {key!r} of {part.name!r} is also one of "
                        f"{names[key]!r}; rename one."
                    )
                names[key] = part.name
        object.__setattr__(self, "parts", tuple(interventions))

    @property
    def name(self) -> str:  # type: ignore[override]
        return "+".join(p.name for p in self.parts) or "chain"

    @property
    def hyperparameters(self) -> dict[str, float]:  # type: ignore[override]
        return {k: v for p in self.parts for k, v in p.hyperparameters.items()}

    @property
    def needs_stats(self) -> bool:  # type: ignore[override]
        return any(p.needs_stats for p in self.parts)

    def init(self, params: Any) -> Any:
        return tuple(p.init(params) for p in self.parts)

    def apply(self, ctx, params, opt_state, state):
        out = []
        for i, (part, s) in enumerate(zip(self.parts, state, strict=True)):
            sub = ctx._replace(key=jax.random.fold_in(ctx.key, i))
            params, opt_state, s = part.apply(sub, params, opt_state, s)
            out.append(s)
        return params, opt_state, tuple(out)

    def metrics(self, state: Any) -> dict[str, Array]:
        out: dict[str, Array] = {}
        for part, s in zip(self.parts, state, strict=True):
            for k, v in part.metrics(s).items():
                if k in out:
                    raise ValueError(f"Chain: two interventions report the metric {k!r}.")
                out[k] = jnp.asarray(v, jnp.float32)
        return out


def check(intervention: Any) -> Intervention | None:
    """``intervention`` if it is None or an :class:`Intervention`, else ``TypeError``."""
    if intervention is None or isinstance(intervention, Intervention):
        if intervention is not None:
            for key, value in intervention.hyperparameters.items():
                if not isinstance(key, str):
                    raise TypeError(f"intervention hyperparameter names must be str, got {key!r}.")
                float(value)
            hash(intervention)
        return intervention
    raise TypeError(
        "intervention must be a relujax.sweep.Intervention (subclass it as a frozen "
        f"dataclass) or None, got {intervention!r}."
    )


@dataclasses.dataclass(frozen=True, eq=False, init=False)
class Remedy(Intervention):
    """A remedy of :mod:`relujax.remedies.interventions` as a sweep intervention.

    The remedy is built inside the compiled step from this configuration's (traced)
    hyperparameters, ``remedies.interventions.get(remedy, **traced, **static)``, and its
    ``update(state, params, opt_state, key, step + 1, stats)`` is applied after each update
    (the remedies count updates from 1). ``static`` arguments (a ``layout``, ``adam_reset``,
    ``init``, ``layers``) are the same for every configuration.

    Args:
      remedy: a name of ``relujax.remedies.interventions.names()``.
      traced: ``{hyperparameter: default}``, the values each :class:`Config` may set in its
        ``intervention`` dict (e.g. ``{"every": 0, "tau": 0.1}``; ``every = 0`` never acts).
      **static: the remedy's other keyword arguments.

    Examples:
      >>> from relujax import sweep
      >>> sp = sweep.Remedy("shrink_perturb", traced={"every": 0, "shrink": 1.0, "sigma": 0.0})
      >>> sp.name, sp.needs_stats, sorted(sp.hyperparameters)
      ('shrink_perturb', False, ['every', 'shrink', 'sigma'])
    """

    remedy: str = ""
    traced: tuple[tuple[str, float], ...] = ()
    static: tuple[tuple[str, Any], ...] = ()

    # Identity, not Intervention's field-less dataclass equality (under which every Remedy
    # equals every other and they share one compiled program); static values may be
    # unhashable (a list of layers).
    __eq__ = object.__eq__  # pyright: ignore[reportAssignmentType]
    __hash__ = object.__hash__

    def __init__(self, remedy: str, *, traced: Mapping[str, float], **static: Any) -> None:
        from relujax.remedies import interventions

        built = interventions.get(remedy, **dict(traced), **static)
        object.__setattr__(self, "remedy", built.name)
        object.__setattr__(self, "traced", tuple((k, float(v)) for k, v in traced.items()))
        object.__setattr__(self, "static", tuple(static.items()))

    def _build(self, hparams: Mapping[str, Any]) -> Any:
        from relujax.remedies import interventions

        return interventions.get(self.remedy, **dict(hparams), **dict(self.static))

    @property
    def name(self) -> str:  # type: ignore[override]
        return self.remedy

    @property
    def hyperparameters(self) -> dict[str, float]:  # type: ignore[override]
        return dict(self.traced)

    @property
    def needs_stats(self) -> bool:  # type: ignore[override]
        return bool(self._build(self.hyperparameters).needs_activations)

    def init(self, params: Any) -> Any:
        return self._build(self.hyperparameters).init(params)

    def apply(self, ctx, params, opt_state, state):
        remedy = self._build(ctx.hparams)
        stats = ctx.stats if remedy.needs_activations else None
        params, opt_state, state = remedy.update(
            state, params, opt_state, ctx.key, ctx.step + 1, stats
        )
        return params, opt_state, state
