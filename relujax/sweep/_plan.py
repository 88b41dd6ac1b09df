"""Stage 1 of a sweep: the plan — validated inputs, groups, the compiled program, fingerprint."""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import Callable, Sequence
from typing import Any, NamedTuple, cast

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx
from jax.sharding import Mesh
from jax.sharding import PartitionSpec as P

from relujax import schedules as _schedules
from relujax.activations import get_descriptor
from relujax.data import Dataset
from relujax.sweep import _strategy
from relujax.sweep._intervention import Intervention
from relujax.sweep._options import Options
from relujax.sweep._result import versions
from relujax.sweep._spec import CNNSpec, Config, Grid, MLPSpec, OptimizerSpec, abstract_split
from relujax.sweep._stream import Stream, as_streams
from relujax.sweep._train import Trainer
from relujax.sweep._validate import (
    as_configs,
    as_datasets,
    check_activation,
    check_devices,
    fingerprint,
)

AXIS = "configs"


class _GroupStatic(NamedTuple):
    activation: str
    strategy: str
    map_batch_size: int | None


class _Static(NamedTuple):
    """Everything the compiled program depends on (hashable: it keys the program cache)."""

    model: MLPSpec | CNNSpec
    input_shape: tuple[int, ...]
    out_features: int
    optimizer: OptimizerSpec
    branches: tuple
    total_steps: int
    batch_size: int
    eval_every: int
    chunk_steps: int
    dormant_tau: float
    classification: bool
    intervention: Intervention | None
    groups: tuple[_GroupStatic, ...]
    mesh: Mesh
    feature_rank: bool = False


def _trainer(static: _Static, activation: str) -> Trainer:
    batch = _schedules.ScheduleBatch((), static.total_steps, {}, static.branches)
    graph = abstract_split(static.model, static.input_shape, static.out_features, activation)
    return Trainer(
        graphdef=graph[0],
        optimizer=static.optimizer,
        schedules=batch,
        batch_size=static.batch_size,
        eval_every=static.eval_every,
        chunk_steps=static.chunk_steps,
        dormant_tau=static.dormant_tau,
        classification=static.classification,
        intervention=static.intervention,
        layers=static.model.layers,
        feature_rank=static.feature_rank,
        bounded=get_descriptor(activation).saturation is not None,
    )


@functools.lru_cache(maxsize=32)
def _program(static: _Static) -> Callable[..., Any]:
    """The jitted chunk program for all groups; cached on the static settings."""
    trainers = [_trainer(static, g.activation) for g in static.groups]

    def group_fn(trainer: Trainer, group: _GroupStatic):
        def local(states, hps, keys, start, data):
            def one(state, hp, key):
                return trainer.chunk(state, hp, key, start, data)

            if group.strategy == "vmap":
                return jax.vmap(one)(states, hps, keys)
            return jax.lax.map(
                lambda a: one(*a), (states, hps, keys), batch_size=group.map_batch_size
            )

        return jax.shard_map(
            local,
            mesh=static.mesh,
            in_specs=(P(AXIS), P(AXIS), P(AXIS), P(), P()),
            out_specs=(P(AXIS), P(AXIS)),
            check_vma=False,
        )

    fns = [group_fn(t, g) for t, g in zip(trainers, static.groups, strict=True)]

    def program(states, hps, keys, start, data):
        outs = [f(s, h, k, start, data) for f, s, h, k in zip(fns, states, hps, keys, strict=True)]
        return tuple(o[0] for o in outs), tuple(o[1] for o in outs)

    return jax.jit(program, donate_argnums=(0,))


def _site_names(static: _Static, activation: str) -> tuple[str, ...]:
    from relujax import analysis

    graphdef, params, rest = abstract_split(
        static.model, static.input_shape, static.out_features, activation
    )

    def apply(params, rest, x):
        return nnx.merge(graphdef, params, rest)(x)

    x = jax.ShapeDtypeStruct((2, *static.input_shape), jnp.float32)
    return tuple(s.name for s in analysis.find_sites(apply, params, rest, x))


@dataclasses.dataclass(frozen=True, eq=False)
class Plan:
    """A validated sweep, ready to train: what :func:`plan` returns.

    Attributes:
      configs: the K configurations, in order.
      datasets: the data sets or streams (``Config.data`` indexes them).
      options: the :class:`Options`.
      devices: the devices of the config axis.
      members: per activation group, the indices of its configurations.
      strategies: per activation, ``"vmap"`` or ``"map"``.
      layer_sites: per activation, the names of its activation sites.
      probe_size: the probe set size used (capped at the smallest training set).
      settings: JSON description of everything that changes the numbers.
      fingerprint: SHA-256 of ``settings`` and the data (checkpoints must match it).
    """

    configs: tuple[Config, ...]
    datasets: tuple[Dataset, ...] | tuple[Stream, ...]
    options: Options
    devices: tuple[jax.Device, ...]  # pyright: ignore[reportInvalidTypeForm]  (jax.Device is an alias variable)
    members: tuple[tuple[int, ...], ...]
    strategies: dict[str, str]
    layer_sites: dict[str, tuple[str, ...]]
    probe_size: int
    settings: dict[str, Any]
    fingerprint: str
    _static: _Static
    _padded: tuple[tuple[int, ...], ...]
    _schedules: _schedules.ScheduleBatch

    @property
    def chunks(self) -> int:
        """Number of chunks: ``steps / chunk_steps``."""
        return self.options.steps // cast(int, self.options.chunk_steps)  # resolved by Options

    @property
    def evaluations(self) -> int:
        """Number of evaluations: ``steps / eval_every + 1`` (step 0 included)."""
        return self.options.steps // cast(int, self.options.eval_every) + 1

    @property
    def classification(self) -> bool:
        """Whether the targets are class labels."""
        return self.datasets[0].is_classification

    @property
    def is_stream(self) -> bool:
        """Whether the sweep trains on :class:`Stream` s (online data)."""
        return isinstance(self.datasets[0], Stream)

    def program(self) -> Callable[..., Any]:
        """The jitted chunk program (compiled on first call, cached across plans)."""
        return _program(self._static)


def plan(
    configs: Grid | Sequence[Config],
    data: Dataset | Stream | Sequence[Dataset] | Sequence[Stream],
    options: Options,
    *,
    devices: Sequence[jax.Device] | None = None,  # pyright: ignore[reportInvalidTypeForm]  (jax.Device is an alias variable)
) -> Plan:
    """Stage 1: validate everything and decide how the sweep runs, before compiling anything.

    Configurations are grouped by activation (one model graph each); each group is padded to
    a multiple of the device count and batched with its strategy.

    Args:
      configs: a :class:`Grid` or a list of :class:`Config`.
      data: a :class:`relujax.data.Dataset`, or a list of them with equal shapes and dtypes
        (``Config.data`` indexes it); or a :class:`Stream` or a list of streams of one kind
        and equal sizes, covering at least ``options.steps`` updates.
      options: the sweep's :class:`Options`.
      devices: devices of the config axis (default: all of ``jax.devices()``).

    Returns:
      A :class:`Plan`.

    Raises:
      TypeError: an argument of the wrong type, naming it.
      ValueError: an argument whose value cannot train, naming it.

    Examples:
      >>> from relujax import data, sweep
      >>> ds = data.gaussian_mixture(n_train=64, n_test=16, dim=4, num_classes=3)
      >>> p = sweep.plan([sweep.Config("constant", 1e-2)], ds,
      ...                sweep.Options(steps=4, model=sweep.MLPSpec((8,)), eval_every=2))
      >>> p.chunks, p.evaluations, p.layer_sites
      (1, 3, {'relu': ('relu_0',)})
    """
    configs = as_configs(configs)
    if not isinstance(options, Options):
        raise TypeError(f"options must be a relujax.sweep.Options, got {options!r}.")
    streams = as_streams(data)
    datasets: tuple[Dataset, ...] | tuple[Stream, ...]
    if streams is None:
        datasets = as_datasets(data, options.model)
    else:
        datasets = streams
        options.model.check_input(streams[0].input_shape)
        if streams[0].horizon < options.steps:
            raise ValueError(
                f"the stream covers {streams[0].horizon} updates, fewer than steps = "
                f"{options.steps}: give it more tasks."
            )
    for k, c in enumerate(configs):
        if c.data >= len(datasets):
            raise ValueError(
                f"configs[{k}].data = {c.data}, but {len(datasets)} data set(s) were given."
            )
    iv = options.intervention
    accepted = set(iv.hyperparameters) if iv is not None else set()
    for k, c in enumerate(configs):
        unknown = sorted(set(dict(c.intervention)) - accepted)
        if unknown:
            raise ValueError(
                f"configs[{k}].intervention sets {unknown}, but the sweep's intervention "
                f"accepts {sorted(accepted) or 'nothing (options.intervention is None)'}."
            )
    for name in dict.fromkeys(c.activation for c in configs):
        check_activation(name)
    batch = _schedules.stack(
        [c.schedule for c in configs],
        total_steps=options.steps,
        peak_values=[c.peak_lr for c in configs],
    )
    devices = tuple(check_devices(devices))
    mesh = Mesh(np.asarray(devices), (AXIS,))
    n_dev = len(devices)
    first = datasets[0]
    input_shape = tuple(first.input_shape)
    out_features = max(d.output_dim for d in datasets)
    activations = list(dict.fromkeys(c.activation for c in configs))
    members = tuple(
        tuple(k for k, c in enumerate(configs) if c.activation == a) for a in activations
    )
    padded = tuple(m + (m[-1],) * (-len(m) % n_dev) for m in members)
    groups = tuple(
        _GroupStatic(
            a,
            _strategy.choose_strategy(
                options.strategy,
                model=options.model,
                input_shape=input_shape,
                out_features=out_features,
                batch_size=options.batch_size,
                configs=len(m),
                devices=n_dev,
            ),
            options.map_batch_size,
        )
        for a, m in zip(activations, padded, strict=True)
    )
    static = _Static(
        model=options.model,
        input_shape=input_shape,
        out_features=out_features,
        optimizer=cast(OptimizerSpec, options.optimizer),  # resolved by Options
        branches=batch._branches,
        total_steps=options.steps,
        batch_size=options.batch_size,
        eval_every=cast(int, options.eval_every),
        chunk_steps=cast(int, options.chunk_steps),
        dormant_tau=options.dormant_tau,
        classification=first.is_classification,
        intervention=iv,
        groups=groups,
        mesh=mesh,
        feature_rank=options.feature_rank,
    )
    sites = {a: _site_names(static, a) for a in activations}
    layers = options.model.layers
    if {len(s) for s in sites.values()} != {layers}:
        raise ValueError(
            f"expected {layers} activation sites per model, found "
            f"{ {a: list(s) for a, s in sites.items()} }."
        )
    if streams is None:
        probe_size = min(options.probe_size, min(len(d.x_train) for d in cast(Any, datasets)))
    else:  # the stream's own probe set
        probe_size = int(
            jax.eval_shape(lambda s: s.evaluation(jnp.int32(0)), streams[0])[0].shape[0]
        )
    strategies = {g.activation: g.strategy for g in groups}
    settings = {
        **options.settings(),
        "probe_size": probe_size,
        "configs": [c.to_dict() for c in configs],
        # Everything else that changes the numbers: how configurations are batched, over how
        # many devices of which backend, with which library versions.
        "strategy": strategies,
        "devices": n_dev,
        "versions": {k: v for k, v in versions().items() if k != "device_count"},
    }
    arrays: Any = datasets  # fingerprinted: every array of every data set or stream
    if streams is not None:
        settings["stream"] = streams[0].describe()
        arrays = [tuple(np.asarray(a) for a in jax.tree.leaves(s)) for s in streams]
    return Plan(
        configs=configs,
        datasets=datasets,
        options=options,
        devices=devices,
        members=members,
        strategies=strategies,
        layer_sites=sites,
        probe_size=probe_size,
        settings=settings,
        fingerprint=fingerprint(settings, arrays),
        _static=static,
        _padded=padded,
        _schedules=batch,
    )
