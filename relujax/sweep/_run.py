"""``run``: train every configuration of a sweep in one compiled program per chunk of steps."""

from __future__ import annotations

import functools
import json
import math
import numbers
import time
from collections.abc import Callable, Sequence
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx
from jax.sharding import Mesh, NamedSharding
from jax.sharding import PartitionSpec as P

from relujax import _optional
from relujax import schedules as _schedules
from relujax.data import Dataset
from relujax.sweep import _strategy
from relujax.sweep._checkpoint import Checkpointer
from relujax.sweep._host import put, to_host
from relujax.sweep._result import SweepResult, versions
from relujax.sweep._spec import CNNSpec, Config, Grid, MLPSpec, OptimizerSpec, abstract_split
from relujax.sweep._train import LAYERED, Data, RunState, Trainer, config_keys
from relujax.sweep._validate import (
    as_configs,
    check_activation,
    check_dataset,
    check_devices,
    check_init,
    check_int,
)
from relujax.sweep._validate import fingerprint as fingerprint_of

AXIS = "configs"


class ChunkInfo(NamedTuple):
    """What :func:`run` passes to ``callback`` after each chunk.

    Attributes:
      chunk: number of chunks done.
      chunks: total number of chunks.
      step: steps done.
      seconds: wall time of this chunk (including the host transfer of its metrics).
      metrics: the metrics recorded so far (NaN where not yet recorded; not yet masked after
        divergence).
      diverged_step: ``int[K]``, -1 where not diverged.

    Examples:
      >>> from relujax import sweep
      >>> sweep.ChunkInfo._fields
      ('chunk', 'chunks', 'step', 'seconds', 'metrics', 'diverged_step')
    """

    chunk: int
    chunks: int
    step: int
    seconds: float
    metrics: dict[str, np.ndarray]
    diverged_step: np.ndarray


# --------------------------------------------------------------------------------------------
# the compiled program


class _GroupStatic(NamedTuple):
    activation: str
    strategy: str
    map_batch_size: int | None


class _Static(NamedTuple):
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
    groups: tuple[_GroupStatic, ...]
    mesh: Mesh


def _trainer(static: _Static, activation: str) -> Trainer:
    batch = _schedules.ScheduleBatch((), static.total_steps, {}, static.branches)
    return Trainer(
        graphdef=abstract_split(static.model, static.input_shape, static.out_features, activation)[
            0
        ],
        optimizer=static.optimizer,
        schedules=batch,
        batch_size=static.batch_size,
        eval_every=static.eval_every,
        chunk_steps=static.chunk_steps,
        dormant_tau=static.dormant_tau,
        classification=static.classification,
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


# --------------------------------------------------------------------------------------------
# initialization


def _init_one(static: _Static, activation: str, config: Config) -> tuple[Any, Any]:
    """``(params, rest)`` of one configuration, built eagerly exactly as a single run would.

    Eager construction reuses JAX's compiled random kernels across configurations (one
    compile per layer shape), which is much cheaper than compiling a vmapped initializer.
    """
    model = static.model.build(
        static.input_shape,
        static.out_features,
        activation=activation,
        kernel_init=config.init,
        rngs=nnx.Rngs(config_keys(config.seed)[0]),
    )
    _, params, rest = nnx.split(model, nnx.Param, ...)
    return params, rest


def _init_group(static: _Static, group: _GroupStatic, configs: Sequence[Config]) -> RunState:
    """Stacked initial states of ``configs`` (all of the group's activation)."""
    parts = [_init_one(static, group.activation, c) for c in configs]
    structures = {jax.tree.structure(p) for p in parts}
    if len(structures) != 1:
        inits = sorted({c.init for c in configs})
        raise ValueError(f"the inits {inits} build parameters of different structures.")
    params, rest = jax.tree.map(lambda *xs: jnp.stack(xs), *parts)
    opt = static.optimizer.build(lambda count: jnp.float32(1.0))
    opt_state = jax.vmap(opt.init)(params)
    diverged = jnp.full((len(configs),), -1, jnp.int32)
    return RunState(params, rest, opt_state, diverged)


def _site_names(static: _Static, activation: str) -> tuple[str, ...]:
    from relujax import analysis

    graphdef, params, rest = abstract_split(
        static.model, static.input_shape, static.out_features, activation
    )

    def apply(params, rest, x):
        return nnx.merge(graphdef, params, rest)(x)

    x = jax.ShapeDtypeStruct((2, *static.input_shape), jnp.float32)
    return tuple(s.name for s in analysis.find_sites(apply, params, rest, x))


# --------------------------------------------------------------------------------------------
# host transfer


# --------------------------------------------------------------------------------------------
# run


def run(
    configs: Grid | Sequence[Config],
    dataset: Dataset,
    *,
    steps: int,
    model: MLPSpec | CNNSpec | None = None,
    optimizer: OptimizerSpec | str = "adam",
    batch_size: int = 128,
    eval_every: int | None = None,
    chunk_steps: int | None = None,
    probe_size: int = 1024,
    dormant_tau: float = 0.025,
    strategy: str = "auto",
    map_batch_size: int | None = None,
    checkpoint_dir: str | None = None,
    checkpoint_every: int = 1,
    progress: bool = False,
    callback: Callable[[ChunkInfo], None] | None = None,
    devices: Sequence[jax.Device] | None = None,
) -> SweepResult:
    r"""Train every configuration together and record their metrics and dead units.

    Configurations are grouped by activation (one model graph each); within a group their
    parameters, optimizer states, schedule parameters and data keys are stacked along a
    leading *config axis*, sharded over ``devices`` with :func:`jax.shard_map`, and trained
    by one jitted program per chunk: ``lax.scan`` over the chunk's steps, with an evaluation
    every ``eval_every`` steps, and configurations batched with ``jax.vmap`` or mapped one
    after another with ``jax.lax.map`` (``strategy``). Each configuration draws its own
    minibatches (:func:`sample_batch`) and uses its own learning-rate schedule
    (``optimizer.build(schedule)``, bit-identical to a plain single run's optimizer).

    At step 0 and every ``eval_every`` steps it records, per configuration, the loss on a
    fixed probe set (the first ``probe_size`` training examples), the test loss and accuracy,
    the learning rate, and per activation layer the fraction of dead units (never fired on
    the probe set), of dormant units (ReDo score :math:`\le` ``dormant_tau``) and the mean
    firing rate, from :func:`relujax.analysis.with_stats` on the probe forward pass.

    On CPU, expose one JAX device per core (set
    ``XLA_FLAGS=--xla_force_host_platform_device_count=N`` before JAX starts): the config axis
    is then split over the cores and the shards run concurrently, which on 2 cores made the
    K = 64 MNIST-1D sweeps of ``benchmarks/sweep.py`` 1.11x (width 256: 74.0 vs 82.1 s) to
    1.81x (width 32: 3.27 vs 5.92 s) faster than one device.

    A configuration whose training loss becomes non-finite at step :math:`t` is marked
    diverged at :math:`t`; its state is frozen and its later metrics are NaN. Configurations
    are independent: no computation mixes them.

    With ``checkpoint_dir``, a checkpoint is written every ``checkpoint_every`` chunks and at
    the end; calling ``run`` again with the same arguments resumes from the latest one and
    returns the result an uninterrupted run would (bit for bit on the same devices).

    Args:
      configs: a :class:`Grid` or a list of :class:`Config`.
      dataset: a :class:`relujax.data.Dataset` (integer labels: classification with softmax
        cross-entropy; float targets ``[n, d]``: regression with mean squared error).
      steps: training steps per configuration.
      model: :class:`MLPSpec` (default: three hidden layers of 256) or :class:`CNNSpec`.
      optimizer: an :class:`OptimizerSpec` or one of :data:`OPTIMIZERS`.
      batch_size: minibatch size.
      eval_every: steps between evaluations (must divide ``chunk_steps``); default ``steps``.
      chunk_steps: steps per compiled chunk (must divide ``steps``); default ``steps``.
        Checkpoints, progress and ``callback`` happen between chunks.
      probe_size: size of the probe set (capped at the training set size).
      dormant_tau: ReDo's threshold :math:`\tau` for dormant units.
      strategy: ``"vmap"``, ``"map"`` (``lax.map``: configurations one after another inside
        the program) or ``"auto"`` (per backend and model size; see :func:`choose_strategy`).
      map_batch_size: with ``"map"``, vmap over this many configurations at a time.
      checkpoint_dir: directory for orbax checkpoints (created; needs the
        ``orbax-checkpoint`` package, in relujax's ``experiments`` extra); None disables them.
      checkpoint_every: chunks between checkpoints.
      progress: show a ``tqdm`` progress bar over chunks (process 0 only).
      callback: called with a :class:`ChunkInfo` after every chunk (after its checkpoint).
      devices: devices of the config axis (default: all of ``jax.devices()``, every host).

    Returns:
      A :class:`SweepResult`.

    Raises:
      ValueError / TypeError: for unknown schedule, optimizer, activation or init names,
        empty grids, steps not divisible into chunks or evaluations, and datasets whose
        shapes do not fit together or the model, before anything is compiled.

    Examples:
      >>> from relujax import data, sweep
      >>> ds = data.gaussian_mixture(n_train=256, n_test=64, dim=8, num_classes=3)
      >>> configs = sweep.Grid(["constant"], [1e-2, 1e35]).configs()  # the second diverges
      >>> kw = dict(steps=40, model=sweep.MLPSpec((16,)), batch_size=32, eval_every=10,
      ...           probe_size=128)
      >>> result = sweep.run(configs, ds, chunk_steps=10, strategy="map", **kw)
      >>> result.steps, result.diverged_step
      (array([ 0, 10, 20, 30, 40]), array([-1,  1]))
      >>> result.metrics["test_accuracy"].round(3)
      array([[0.516, 0.844, 0.969, 0.969, 0.969],
             [0.516,   nan,   nan,   nan,   nan]], dtype=float32)
      >>> loop = sweep.run_reference(configs, ds, **kw)  # one jitted step per Python step
      >>> bool((loop.metrics["test_loss"][0] == result.metrics["test_loss"][0]).all())
      True
    """
    # ---- validate everything first --------------------------------------------------------
    configs = as_configs(configs)
    model = MLPSpec() if model is None else model
    if not isinstance(model, (MLPSpec, CNNSpec)):
        raise TypeError(f"model must be a relujax.sweep.MLPSpec or CNNSpec, got {model!r}.")
    if isinstance(optimizer, str):
        optimizer = OptimizerSpec(optimizer)
    if not isinstance(optimizer, OptimizerSpec):
        raise TypeError(f"optimizer must be an OptimizerSpec or a name, got {optimizer!r}.")
    check_dataset(dataset, model)
    steps = check_int("steps", steps)
    batch_size = check_int("batch_size", batch_size)
    eval_every = steps if eval_every is None else check_int("eval_every", eval_every)
    chunk_steps = steps if chunk_steps is None else check_int("chunk_steps", chunk_steps)
    if steps % chunk_steps:
        raise ValueError(f"chunk_steps={chunk_steps} must divide steps={steps}.")
    if chunk_steps % eval_every:
        raise ValueError(f"eval_every={eval_every} must divide chunk_steps={chunk_steps}.")
    probe_size = min(check_int("probe_size", probe_size), len(dataset.x_train))
    checkpoint_every = check_int("checkpoint_every", checkpoint_every)
    if not (isinstance(dormant_tau, numbers.Real) and 0.0 <= dormant_tau < math.inf):
        raise ValueError(f"dormant_tau must be a number >= 0, got {dormant_tau!r}.")
    if strategy not in _strategy.STRATEGIES:
        raise ValueError(f"strategy must be one of {list(_strategy.STRATEGIES)}, got {strategy!r}.")
    if map_batch_size is not None:
        map_batch_size = check_int("map_batch_size", map_batch_size)
    for name in dict.fromkeys(c.activation for c in configs):
        check_activation(name)
    for name in dict.fromkeys(c.init for c in configs):
        check_init(name)
    batch = _schedules.stack(
        [c.schedule for c in configs],
        total_steps=steps,
        peak_values=[c.peak_lr for c in configs],
    )
    devices = check_devices(devices)
    if progress:
        _optional.require("tqdm.auto", package="tqdm", purpose="sweep.run(progress=True)")
    if checkpoint_dir is not None:
        _optional.require(
            "orbax.checkpoint", package="orbax-checkpoint", purpose="sweep.run(checkpoint_dir=...)"
        )
    mesh = Mesh(np.asarray(devices), (AXIS,))
    n_dev = len(devices)

    # ---- groups (one model graph per activation), padded to the device count ---------------
    classification = dataset.is_classification
    activations = list(dict.fromkeys(c.activation for c in configs))
    members = [[k for k, c in enumerate(configs) if c.activation == a] for a in activations]
    padded = [m + [m[-1]] * (-len(m) % n_dev) for m in members]
    input_shape = tuple(dataset.x_train.shape[1:])
    base = _Static(
        model=model,
        input_shape=input_shape,
        out_features=dataset.output_dim,
        optimizer=optimizer,
        branches=batch._branches,
        total_steps=steps,
        batch_size=batch_size,
        eval_every=eval_every,
        chunk_steps=chunk_steps,
        dormant_tau=float(dormant_tau),
        classification=classification,
        groups=(),
        mesh=mesh,
    )
    groups = tuple(
        _GroupStatic(
            a,
            _strategy.choose_strategy(
                strategy,
                model=model,
                input_shape=input_shape,
                out_features=dataset.output_dim,
                batch_size=batch_size,
                configs=len(m),
                devices=n_dev,
            ),
            map_batch_size,
        )
        for a, m in zip(activations, padded, strict=True)
    )
    static = base._replace(groups=groups)

    settings = {
        "model": model.to_dict(),
        "optimizer": optimizer.to_dict(),
        "configs": [c.to_dict() for c in configs],
        "steps": steps,
        "batch_size": batch_size,
        "eval_every": eval_every,
        "chunk_steps": chunk_steps,
        "probe_size": probe_size,
        "dormant_tau": float(dormant_tau),
        # Everything else that changes the numbers: how configurations are batched, over how
        # many devices of which backend, with which library versions.
        "strategy": {g.activation: g.strategy for g in groups},
        "map_batch_size": map_batch_size,
        "devices": n_dev,
        "versions": {k: v for k, v in versions().items() if k != "device_count"},
    }
    fingerprint = fingerprint_of(settings, dataset)

    # ---- device data and initial state --------------------------------------------------------
    replicated = NamedSharding(mesh, P())
    sharded = NamedSharding(mesh, P(AXIS))
    x_train, x_test = (np.asarray(a, np.float32) for a in (dataset.x_train, dataset.x_test))
    y_dtype = np.int32 if classification else np.float32
    y_train, y_test = (np.asarray(a, y_dtype) for a in (dataset.y_train, dataset.y_test))
    data = put(
        Data(
            x_train,
            y_train,
            x_train[:probe_size],
            y_train[:probe_size],
            x_test,
            y_test,
        ),
        replicated,
    )
    states = tuple(
        put(_init_group(static, g, [configs[k] for k in m]), sharded)
        for g, m in zip(groups, padded, strict=True)
    )
    hps = tuple(
        put(jax.tree.map(lambda a, m=m: np.asarray(a)[m], batch.params), sharded) for m in padded
    )
    keys = tuple(
        put(np.stack([np.asarray(config_keys(configs[k].seed)[1]) for k in m]), sharded)
        for m in padded
    )
    sites = {a: _site_names(static, a) for a in activations}
    n_layers = {len(s) for s in sites.values()}
    if len(n_layers) != 1 or n_layers != {model.layers}:
        raise ValueError(
            f"expected {model.layers} activation sites per model, found "
            f"{ {a: list(s) for a, s in sites.items()} }."
        )

    n_evals = steps // eval_every + 1
    per_chunk = chunk_steps // eval_every
    n_chunks = steps // chunk_steps
    k_total = len(configs)
    names = ["train_loss", "test_loss", *(["test_accuracy"] if classification else []), "lr"]
    metrics = {n: np.full((k_total, n_evals), np.nan, np.float32) for n in names}
    metrics.update(
        {n: np.full((k_total, n_evals, model.layers), np.nan, np.float32) for n in LAYERED}
    )
    diverged = np.full((k_total,), -1, np.int64)

    # ---- resume ------------------------------------------------------------------------------
    done = 0
    checkpointer = None
    if checkpoint_dir is not None:
        checkpointer = Checkpointer(checkpoint_dir, fingerprint, json.loads(json.dumps(settings)))
        restored = checkpointer.restore(states, metrics)
        if restored is not None:
            states, metrics, done = restored
            for s, m in zip(states, members, strict=True):
                diverged[m] = to_host(s.diverged_at)[: len(m)]

    program = _program(static)
    bar = None
    if progress and jax.process_index() == 0:
        tqdm = _optional.require("tqdm.auto", package="tqdm", purpose="progress=True").tqdm
        bar = tqdm(total=n_chunks, initial=done, unit="chunk", desc="sweep")
    t_start = time.perf_counter()
    try:
        for c in range(done, n_chunks):
            t0 = time.perf_counter()
            start = jnp.int32(c * chunk_steps)
            states, chunk_metrics = program(states, hps, keys, start, data)
            chunk_metrics = to_host(chunk_metrics)
            for g, m in enumerate(members):
                cm = chunk_metrics[g]
                rows = np.arange(per_chunk + 1) + c * per_chunk
                cols = slice(0 if c == 0 else 1, None)
                for n in metrics:
                    metrics[n][np.ix_(m, rows[cols])] = cm[n][: len(m), cols]
                diverged[m] = to_host(states[g].diverged_at)[: len(m)]
            seconds = time.perf_counter() - t0
            if checkpointer is not None and ((c + 1) % checkpoint_every == 0 or c + 1 == n_chunks):
                checkpointer.save(c + 1, states, metrics)
            if bar is not None:
                bar.update(1)
                bar.set_postfix(diverged=int((diverged >= 0).sum()))
            if callback is not None:
                callback(
                    ChunkInfo(c + 1, n_chunks, (c + 1) * chunk_steps, seconds, metrics, diverged)
                )
    finally:
        if bar is not None:
            bar.close()
        if checkpointer is not None:
            checkpointer.close()
    wall = time.perf_counter() - t_start

    # ---- result ------------------------------------------------------------------------------
    eval_steps = np.arange(n_evals, dtype=np.int64) * eval_every
    masked = {}
    for n, v in metrics.items():
        bad = (diverged[:, None] >= 0) & (eval_steps[None, :] >= diverged[:, None])
        v = v.copy()
        v[bad] = np.nan
        masked[n] = v
    params = [None] * k_total
    for s, m in zip(states, members, strict=True):
        host = to_host(s.params)
        for j, k in enumerate(m):
            params[k] = jax.tree.map(lambda a, j=j: a[j], host)
    meta = {
        **settings,
        "configs": len(configs),
        "dataset": {
            "x_train": list(dataset.x_train.shape),
            "x_test": list(dataset.x_test.shape),
            "task": "classification" if classification else "regression",
            "output_dim": dataset.output_dim,
        },
        "wall_seconds": wall,
        "versions": versions(),
    }
    return SweepResult(
        configs=configs,
        steps=eval_steps,
        metrics=masked,
        diverged_step=diverged,
        layer_sites=tuple(sites[c.activation] for c in configs),
        meta=meta,
        final_params=params,
    )
