"""Stages 2-4 of a sweep (initial state, chunks, result) and ``run``, which chains them all."""

from __future__ import annotations

import json
import time
import weakref
from collections.abc import Callable, Sequence
from typing import Any, NamedTuple, cast

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx
from jax.sharding import NamedSharding
from jax.sharding import PartitionSpec as P

from relujax import _optional, _validation
from relujax.data import Dataset
from relujax.sweep import _lapack, _stream
from relujax.sweep._checkpoint import Checkpointer
from relujax.sweep._host import put, to_host
from relujax.sweep._intervention import Intervention
from relujax.sweep._options import Options
from relujax.sweep._plan import AXIS, Plan, plan
from relujax.sweep._result import SweepResult, versions
from relujax.sweep._spec import CNNSpec, Config, Grid, MLPSpec, OptimizerSpec
from relujax.sweep._stream import Stream
from relujax.sweep._train import LAYERED, ONLINE, RANKS, SCALARS, Data, Keys, RunState, config_keys


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


class SweepState(NamedTuple):
    """A sweep between chunks: what :func:`initial_state` returns and :func:`train_chunk` advances.

    Attributes:
      chunks_done: chunks trained so far.
      states: per activation group, the stacked training states (device arrays, sharded
        over the config axis).
      metrics: name -> host array ``[K, E(, L)]``, NaN where not yet recorded.
      diverged_step: ``int[K]``, -1 where not diverged.
      inputs: the constant device inputs ``(hps, keys, data)`` of the program (``data``
        the fixed arrays or the stacked :class:`Stream` s).
    """

    chunks_done: int
    states: tuple[RunState, ...]
    metrics: dict[str, np.ndarray]
    diverged_step: np.ndarray
    inputs: tuple[Any, Any, Data | Stream]


# --------------------------------------------------------------------------------------------
# stage 2: the initial state


def _init_one(p: Plan, activation: str, config: Config) -> tuple[Any, Any]:
    """``(params, rest)`` of one configuration, built eagerly exactly as a single run would.

    Eager construction reuses JAX's compiled random kernels across configurations (one
    compile per layer shape), which is much cheaper than compiling a vmapped initializer.
    """
    d = p.datasets[config.data]
    model = p.options.model.build(
        d.input_shape,
        p._static.out_features,
        activation=activation,
        kernel_init=config.kernel_initializer(),
        bias_init=config.bias_initializer(),
        rngs=nnx.Rngs(config_keys(config.seed)[0]),
    )
    _, params, rest = nnx.split(model, nnx.Param, ...)
    return params, rest


def _init_group(p: Plan, activation: str, members: Sequence[int]) -> RunState:
    """Stacked initial states of the configurations ``members`` (all of one activation)."""
    configs = [p.configs[k] for k in members]
    parts = [_init_one(p, activation, c) for c in configs]
    if len({jax.tree.structure(x) for x in parts}) != 1:
        inits = sorted({c.init for c in configs})
        raise ValueError(f"the inits {inits} build parameters of different structures.")
    params, rest = jax.tree.map(lambda *xs: jnp.stack(xs), *parts)
    opt = cast(OptimizerSpec, p.options.optimizer).build(lambda count: jnp.float32(1.0))
    opt_state = jax.vmap(opt.init)(params)
    diverged = jnp.full((len(configs),), -1, jnp.int32)
    iv: Intervention | None = p.options.intervention
    istate = () if iv is None else jax.vmap(iv.init)(params)
    return RunState(params, rest, opt_state, diverged, istate, params)


def _hparams(p: Plan, members: Sequence[int]) -> dict[str, Any]:
    iv = p.options.intervention
    defaults = {} if iv is None else dict(iv.hyperparameters)
    configs = [p.configs[k] for k in members]
    return {
        "schedule": jax.tree.map(lambda a: np.asarray(a)[list(members)], p._schedules.params),
        "data": np.asarray([c.data for c in configs], np.int32),
        "intervention": {
            name: np.asarray([dict(c.intervention).get(name, default) for c in configs], np.float32)
            for name, default in defaults.items()
        },
    }


def _keys(p: Plan, members: Sequence[int]) -> Keys:
    keys = [config_keys(p.configs[k].seed) for k in members]
    return Keys(data=jnp.stack([k[1] for k in keys]), intervention=jnp.stack([k[2] for k in keys]))


def _data(p: Plan) -> Data | Stream:
    if p.is_stream:
        return _stream.stack(cast(tuple[Stream, ...], p.datasets))
    x_dtype, y_dtype = np.float32, np.int32 if p.classification else np.float32
    n = p.probe_size

    def stack(field, dtype, rows=None) -> Any:  # host arrays, put on the devices later
        return np.stack([np.asarray(getattr(d, field), dtype)[:rows] for d in p.datasets])

    return Data(
        stack("x_train", x_dtype),
        stack("y_train", y_dtype),
        stack("x_train", x_dtype, n),
        stack("y_train", y_dtype, n),
        stack("x_test", x_dtype),
        stack("y_test", y_dtype),
    )


def initial_state(p: Plan) -> SweepState:
    """Stage 2: the initial state of every configuration, placed on the plan's devices.

    Args:
      p: a :class:`Plan`.

    Returns:
      A :class:`SweepState` with no chunk done.

    Examples:
      >>> from relujax import data, sweep
      >>> ds = data.gaussian_mixture(n_train=64, n_test=16, dim=4, num_classes=3)
      >>> p = sweep.plan([sweep.Config("constant", 1e-2)], ds,
      ...                sweep.Options(steps=4, model=sweep.MLPSpec((8,)), eval_every=2))
      >>> s = sweep.initial_state(p)
      >>> s.chunks_done, s.metrics["test_loss"].shape
      (0, (1, 3))
    """
    mesh = p._static.mesh
    replicated, sharded = NamedSharding(mesh, P()), NamedSharding(mesh, P(AXIS))
    activations = [g.activation for g in p._static.groups]
    states = tuple(
        put(_init_group(p, a, m), sharded) for a, m in zip(activations, p._padded, strict=True)
    )
    hps = tuple(put(_hparams(p, m), sharded) for m in p._padded)
    keys = tuple(put(_keys(p, m), sharded) for m in p._padded)
    data = put(_data(p), replicated)
    k, e, layers = len(p.configs), p.evaluations, p.options.model.layers
    names = ["train_loss", "test_loss", *(["test_accuracy"] if p.classification else []), "lr"]
    if p.is_stream:
        names += ["online_loss", *(["online_accuracy"] if p.classification else [])]
    if p.options.intervention is not None:
        names += _intervention_metric_names(p, states[0])
    metrics: dict[str, np.ndarray] = {n: np.full((k, e), np.nan, np.float32) for n in names}
    layered = LAYERED + (RANKS if p.options.feature_rank else ())
    metrics.update({n: np.full((k, e, layers), np.nan, np.float32) for n in layered})
    return SweepState(0, states, metrics, np.full((k,), -1, np.int64), (hps, keys, data))


def _intervention_metric_names(p: Plan, group_state: RunState) -> list[str]:
    iv = cast(Intervention, p.options.intervention)  # called only with an intervention
    one = jax.tree.map(lambda a: a[0], group_state.intervention)
    shapes = jax.eval_shape(iv.metrics, one)
    for name, s in shapes.items():
        if s.shape != ():
            raise ValueError(f"intervention metric {name!r} must be a scalar, got shape {s.shape}.")
        if name in (*SCALARS, *ONLINE, *LAYERED, *RANKS):
            raise ValueError(f"intervention metric {name!r} clashes with a built-in metric.")
    return list(shapes)


# --------------------------------------------------------------------------------------------
# stage 3: chunks


#: Plans whose chunk program was checked by :func:`relujax.sweep._lapack.check`.
_LAPACK_CHECKED: weakref.WeakSet[Plan] = weakref.WeakSet()


def train_chunk(p: Plan, s: SweepState) -> tuple[SweepState, float]:
    """Stage 3: train the next chunk of every configuration in one compiled program.

    Args:
      p: the :class:`Plan`.
      s: the state after ``s.chunks_done`` chunks (its device arrays are donated).

    Returns:
      ``(new state, seconds)``: the state after one more chunk, with its evaluations
      recorded, and the chunk's wall time.
    """
    if s.chunks_done >= p.chunks:
        raise ValueError(f"all {p.chunks} chunks are done.")
    t0 = time.perf_counter()
    c = s.chunks_done
    hps, keys, data = s.inputs
    chunk_steps, eval_every = cast(int, p.options.chunk_steps), cast(int, p.options.eval_every)
    start = jnp.int32(c * chunk_steps)
    args = (s.states, hps, keys, start, data)
    if p not in _LAPACK_CHECKED:  # once per plan: lowering the program again costs a trace
        _lapack.check(p.program(), args, p.devices)
        _LAPACK_CHECKED.add(p)
    states, chunk_metrics = p.program()(*args)
    chunk_metrics = to_host(chunk_metrics)
    per_chunk = chunk_steps // eval_every
    metrics = {n: v.copy() for n, v in s.metrics.items()}
    diverged = s.diverged_step.copy()
    rows = np.arange(per_chunk + 1) + c * per_chunk
    cols = slice(0 if c == 0 else 1, None)
    for g, m in enumerate(p.members):
        cm = chunk_metrics[g]
        for n in metrics:
            metrics[n][np.ix_(m, rows[cols])] = cm[n][: len(m), cols]  # pyright: ignore[reportCallIssue, reportArgumentType]
        diverged[list(m)] = to_host(states[g].diverged_at)[: len(m)]
    new = SweepState(c + 1, states, metrics, diverged, s.inputs)
    return new, time.perf_counter() - t0


# --------------------------------------------------------------------------------------------
# stage 4: the result


def result(p: Plan, s: SweepState, *, wall_seconds: float | None = None) -> SweepResult:
    """Stage 4: the :class:`SweepResult` of a finished sweep (metrics masked after divergence).

    Args:
      p: the :class:`Plan`.
      s: the state after all chunks.
      wall_seconds: recorded in ``meta`` if given.

    Returns:
      A :class:`SweepResult`.
    """
    if s.chunks_done != p.chunks:
        raise ValueError(f"the sweep has done {s.chunks_done} of {p.chunks} chunks.")
    eval_steps = np.arange(p.evaluations, dtype=np.int64) * cast(int, p.options.eval_every)
    masked = {}
    diverged = s.diverged_step
    for n, v in s.metrics.items():
        bad = (diverged[:, None] >= 0) & (eval_steps[None, :] >= diverged[:, None])
        v = v.copy()
        v[bad] = np.nan
        masked[n] = v
    params: list[Any] = [None] * len(p.configs)
    for st, m in zip(s.states, p.members, strict=True):
        host = to_host(st.params)
        for j, k in enumerate(m):
            params[k] = jax.tree.map(lambda a, j=j: a[j], host)
    shapes = [
        d.describe()
        if isinstance(d, Stream)
        else {
            "x_train": list(d.x_train.shape),
            "x_test": list(d.x_test.shape),
            "task": "classification" if d.is_classification else "regression",
            "output_dim": d.output_dim,
        }
        for d in p.datasets
    ]
    meta = {
        **p.settings,
        "configs": len(p.configs),
        "dataset": shapes[0] if len(shapes) == 1 else shapes,
        "versions": versions(),
    }
    if wall_seconds is not None:
        meta["wall_seconds"] = wall_seconds
    return SweepResult(
        configs=p.configs,
        steps=eval_steps,
        metrics=masked,
        diverged_step=diverged.copy(),
        layer_sites=tuple(p.layer_sites[c.activation] for c in p.configs),
        meta=meta,
        final_params=params,
    )


# --------------------------------------------------------------------------------------------
# run


def run(
    configs: Grid | Sequence[Config],
    data: Dataset | Stream | Sequence[Dataset] | Sequence[Stream],
    *,
    steps: int | None = None,
    model: MLPSpec | CNNSpec | None = None,
    optimizer: OptimizerSpec | str = "adam",
    batch_size: int = 128,
    eval_every: int | None = None,
    chunk_steps: int | None = None,
    probe_size: int = 1024,
    dormant_tau: float = 0.025,
    strategy: str = "auto",
    map_batch_size: int | None = None,
    intervention: Intervention | None = None,
    feature_rank: bool = False,
    options: Options | None = None,
    checkpoint_dir: str | None = None,
    checkpoint_every: int = 1,
    progress: bool = False,
    callback: Callable[[ChunkInfo], None] | None = None,
    devices: Sequence[jax.Device] | None = None,  # pyright: ignore[reportInvalidTypeForm]  (jax.Device is an alias variable)
) -> SweepResult:
    r"""Train every configuration together and record their metrics and dead units.

    ``run`` chains the four stages: :func:`plan` (validate and group),
    :func:`initial_state`, :func:`train_chunk` (one compiled program per chunk of steps;
    checkpoints, progress and ``callback`` between chunks) and :func:`result`. The keyword
    arguments from ``steps`` to ``intervention`` are the fields of :class:`Options`; give
    them one by one or as ``options=Options(...)`` (not both).

    Configurations are grouped by activation (one model graph each); within a group their
    parameters, optimizer states, schedule parameters, intervention hyperparameters and data
    keys are stacked along a leading *config axis*, sharded over ``devices`` with
    :func:`jax.shard_map`, and trained by ``lax.scan`` over the chunk's steps, with an
    evaluation every ``eval_every`` steps, and configurations batched with ``jax.vmap`` or
    mapped one after another with ``jax.lax.map`` (``strategy``). Configuration ``k`` with
    seed ``s`` draws its parameters from ``fold_in(key(s), 0)`` (``Config.init`` with its
    parameters), its minibatches of step ``t`` as ``randint(fold_in(fold_in(key(s), 1), t),
    (batch_size,), 0, n)`` from its data set ``Config.data``, and uses its own learning-rate
    schedule (``optimizer.build(schedule)``, bit-identical to a plain single run's optimizer).
    After each update the ``intervention`` (if any) acts with the configuration's own
    hyperparameters (see :class:`Intervention`).

    At step 0 and every ``eval_every`` steps it records, per configuration, the loss on a
    fixed probe set (the first ``probe_size`` training examples), the test loss and accuracy,
    the learning rate, per activation layer the fraction of dead units (never fired on the
    probe set), of dormant units (ReDo score :math:`\le` ``dormant_tau``) and the mean
    firing rate, and the intervention's metrics.

    On CPU, expose one JAX device per core (``XLA_FLAGS=--xla_force_host_platform_device_count=N``
    before JAX starts): the config axis is then split over the cores.

    A configuration whose training loss becomes non-finite at step :math:`t` is marked
    diverged at :math:`t`; its state is frozen and its later metrics are NaN. Configurations
    are independent: no computation mixes them.

    With ``checkpoint_dir``, a verified checkpoint is written every ``checkpoint_every``
    chunks and at the end (the directory is locked against a second writer); calling ``run``
    again with the same arguments resumes from the newest intact one and returns the result
    an uninterrupted run would (bit for bit on the same devices).

    Args:
      configs: a :class:`Grid` or a list of :class:`Config`.
      data: a :class:`relujax.data.Dataset` (integer labels: classification with softmax
        cross-entropy; float targets ``[n, d]``: regression with mean squared error), or a
        list of data sets of equal shapes indexed by ``Config.data``; or a :class:`Stream`
        (online data: minibatches and evaluation sets that change with the step) or a list
        of streams, which adds ``online_loss`` (and ``online_accuracy``) to the metrics.
      steps: training steps per configuration (see :class:`Options` for this and the
        following ten).
      model: :class:`MLPSpec` (default: three hidden layers of 256) or :class:`CNNSpec`.
      optimizer: an :class:`OptimizerSpec` or a name of ``sweep.optimizers.names()``.
      batch_size: minibatch size.
      eval_every: steps between evaluations; default ``steps``.
      chunk_steps: steps per compiled chunk; default ``steps``.
      probe_size: size of the probe set.
      dormant_tau: ReDo's threshold :math:`\tau` for dormant units.
      strategy: ``"vmap"``, ``"map"`` or ``"auto"``.
      map_batch_size: with ``"map"``, vmap over this many configurations at a time.
      intervention: a per-step :class:`Intervention`, or None.
      feature_rank: also record the effective rank of each layer's probe features.
      options: all of the above as an :class:`Options`.
      checkpoint_dir: directory for orbax checkpoints (needs the ``orbax-checkpoint``
        package, in relujax's ``experiments`` extra); None disables them.
      checkpoint_every: chunks between checkpoints.
      progress: show a ``tqdm`` progress bar over chunks (process 0 only; ``tqdm`` is in the
        ``experiments`` extra).
      callback: called with a :class:`ChunkInfo` after every chunk (after its checkpoint).
      devices: devices of the config axis (default: all of ``jax.devices()``, every host).

    Returns:
      A :class:`SweepResult`.

    Raises:
      TypeError: an argument of the wrong type, before anything is compiled.
      ValueError: unknown names, empty grids, steps not divisible into chunks or
        evaluations, non-finite data, data sets whose shapes do not fit together or the
        model, bad devices, before anything is compiled.

    Examples:
      >>> from relujax import data, sweep
      >>> ds = data.gaussian_mixture(n_train=256, n_test=64, dim=8, num_classes=3)
      >>> configs = sweep.Grid(["constant"], [1e-2, 1e35]).configs()  # the second diverges
      >>> result = sweep.run(configs, ds, steps=40, model=sweep.MLPSpec((16,)), batch_size=32,
      ...                    eval_every=10, probe_size=128, chunk_steps=10, strategy="map")
      >>> result.steps, result.diverged_step
      (array([ 0, 10, 20, 30, 40]), array([-1,  1]))
      >>> print(result.metrics["test_accuracy"][0].round(1))
      [0.5 0.8 1.  1.  1. ]
    """
    fields: dict[str, Any] = dict(
        steps=steps,
        model=MLPSpec() if model is None else model,
        optimizer=optimizer,
        batch_size=batch_size,
        eval_every=eval_every,
        chunk_steps=chunk_steps,
        probe_size=probe_size,
        dormant_tau=dormant_tau,
        strategy=strategy,
        map_batch_size=map_batch_size,
        intervention=intervention,
        feature_rank=feature_rank,
    )
    if options is None:
        if steps is None:
            raise TypeError("run() needs steps=... (or options=Options(steps=...)).")
        options = Options(**fields)
    elif steps is not None:
        raise TypeError(
            "run(): give the training settings as options=... or as keywords, not both."
        )
    checkpoint_every = _validation.integer("checkpoint_every", checkpoint_every, minimum=1)
    if callback is not None and not callable(callback):
        raise TypeError(f"callback must be callable, got {callback!r}.")
    p = plan(configs, data, options, devices=devices)
    tqdm = None
    if progress:
        tqdm = _optional.require("tqdm.auto", package="tqdm", purpose="sweep.run(progress=True)")
    checkpointer = None
    if checkpoint_dir is not None:
        # Opened (and locked) before the initial state is built, so a second writer fails fast.
        checkpointer = Checkpointer(
            checkpoint_dir, p.fingerprint, json.loads(json.dumps(p.settings, default=str))
        )
    try:
        s = initial_state(p)
        if checkpointer is not None:
            restored = checkpointer.restore(s.states, s.metrics)
            if restored is not None:
                states, metrics, done = restored
                diverged = s.diverged_step.copy()
                for st, m in zip(states, p.members, strict=True):
                    diverged[list(m)] = to_host(st.diverged_at)[: len(m)]
                s = SweepState(done, states, metrics, diverged, s.inputs)
        bar = None
        if tqdm is not None and jax.process_index() == 0:
            bar = tqdm.tqdm(total=p.chunks, initial=s.chunks_done, unit="chunk", desc="sweep")
        t_start = time.perf_counter()
        try:
            while s.chunks_done < p.chunks:
                s, seconds = train_chunk(p, s)
                c = s.chunks_done
                if checkpointer is not None and (c % checkpoint_every == 0 or c == p.chunks):
                    checkpointer.save(c, s.states, s.metrics)
                if bar is not None:
                    bar.update(1)
                    bar.set_postfix(diverged=int((s.diverged_step >= 0).sum()))
                if callback is not None:
                    step = c * cast(int, p.options.chunk_steps)
                    callback(ChunkInfo(c, p.chunks, step, seconds, s.metrics, s.diverged_step))
        finally:
            if bar is not None:
                bar.close()
        wall = time.perf_counter() - t_start
    finally:
        if checkpointer is not None:
            checkpointer.close()
    return result(p, s, wall_seconds=wall)
