"""Train a population of small ReLU-family MLPs in one jitted program, tracking dead units.

Used by the ``initialization``, ``input_shift`` and ``remedies`` experiments, whose
configurations differ in what :func:`relujax.sweep.run` keeps fixed within a program: the
initializer with its parameters (small std, a negative bias), the dataset of each run (one
per input shift), and an intervention inside the training loop (ReDo recycling with
:mod:`relujax.remedies`). Everything else is the library's: models are :class:`relujax.nn.MLP`,
initializers :mod:`relujax.init`, statistics :func:`relujax.analysis.with_stats`, recycling
:func:`relujax.remedies.redo`.

All arms of one activation share one compiled program: their parameters, optimizer states,
learning rates, warmup lengths, ReDo periods and dataset indices are stacked along a leading
axis and trained with ``jax.vmap`` over a ``fori_loop`` of steps. The learning rate is
``lr * min(1, (t + 1) / warmup)`` applied to the direction of
:func:`relujax.remedies.scale_by_adam_per_param` (``optax.scale_by_adam`` with one step count
per weight, equal to it until ReDo restarts recycled weights) or ``optax.trace`` (momentum SGD).
"""

from __future__ import annotations

import dataclasses
import functools
import math
import time
from collections.abc import Callable, Sequence
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import optax
from flax import nnx

import relujax
from relujax import analysis, remedies

#: ReDo's threshold for the reported dormant fraction (as in relujax.sweep).
DORMANT_TAU = 0.025


@dataclasses.dataclass(frozen=True)
class Arm:
    """One training run.

    Attributes:
      label: name of the arm in tables and figures.
      activation: activation name (arms are grouped by it: one program each).
      kernel_init: initializer name or callable (``relujax.init``).
      bias_init: bias initializer name or callable (None: zeros).
      lr: peak learning rate.
      warmup: linear warmup steps (0: none).
      redo_every: recycle tau-dormant units every this many steps (0: never).
      adam_reset: how ReDo resets Adam for recycled weights (``relujax.remedies.redo``):
        ``"per_param"`` restarts their per-weight step counts, ``"moments"`` zeroes their
        moments and keeps the step count (the old behaviour).
      data: index of the arm's dataset in the list given to :func:`train`.
      seed: seed of the initialization and of the minibatches.
    """

    label: str
    activation: str = "relu"
    kernel_init: str | Callable[..., Any] = "he_normal"
    bias_init: str | Callable[..., Any] | None = None
    lr: float = 1e-3
    warmup: int = 0
    redo_every: int = 0
    adam_reset: str = "per_param"
    data: int = 0
    seed: int = 0


class _HP(NamedTuple):
    lr: jax.Array
    warmup: jax.Array
    redo_every: jax.Array
    data: jax.Array


class _State(NamedTuple):
    params: Any
    opt_state: Any
    key: jax.Array
    recycled: jax.Array  # units recycled so far


class _Data(NamedTuple):
    x_train: jax.Array  # [D, n, d]
    y_train: jax.Array  # [D, n]
    x_probe: jax.Array  # [D, p, d]
    x_test: jax.Array  # [D, m, d]
    y_test: jax.Array  # [D, m]


def _optimizer(name: str) -> optax.GradientTransformation:
    if name == "adam":
        # One step count per weight: without a reset it equals optax.scale_by_adam; ReDo's
        # per-parameter reset restarts the recycled weights' counts (remedies.redo).
        return remedies.scale_by_adam_per_param()
    if name == "momentum":
        return optax.trace(decay=0.9)
    if name == "sgd":
        return optax.identity()
    raise ValueError(f"optimizer must be 'adam', 'momentum' or 'sgd', got {name!r}.")


def _model(arm: Arm, sizes: tuple[int, int, tuple[int, ...]], key=None) -> relujax.nn.MLP:
    d_in, d_out, hidden = sizes
    return relujax.nn.MLP(
        d_in,
        hidden,
        d_out,
        activation=arm.activation,
        kernel_init=arm.kernel_init,
        bias_init=arm.bias_init,
        rngs=nnx.Rngs(arm.seed if key is None else key),
    )


def _init_params(arms: Sequence[Arm], sizes, jit: Callable[..., Any] = jax.jit) -> Any:
    """The stacked ``nnx.Param`` states of the arms' models (same graph), in one program.

    Built inside one ``jax.jit``: every initializer draw of every arm compiles together,
    instead of one eager compilation per initializer and layer shape.
    """

    def build(keys):
        states = [
            nnx.as_pure(nnx.state(_model(arm, sizes, key), nnx.Param))
            for arm, key in zip(arms, keys, strict=True)
        ]
        return jax.tree.map(lambda *a: jnp.stack(a), *states)

    keys = [jax.random.key(arm.seed) for arm in arms]
    return jit(build)(keys)


def _layer_metrics(stats: analysis.ModelStats) -> tuple[jax.Array, jax.Array]:
    dead = jnp.stack([jnp.mean(s.dead.astype(jnp.float32)) for s in stats.values()])
    dormant = jnp.stack(
        [
            jnp.mean(remedies.dormant_units(s, tau=DORMANT_TAU).astype(jnp.float32))
            for s in stats.values()
        ]
    )
    return dead, dormant


def _program(graphdef, layout, opt, *, batch: int, tau: float, adam_reset: str, jit=jax.jit):
    """The jitted, vmapped program: evaluate, then train a (traced) number of steps."""

    def apply(params, x):
        return nnx.merge(graphdef, params)(x)

    stats_apply = analysis.with_stats(apply)

    def evaluate(state: _State, hp: _HP, data: _Data) -> dict[str, jax.Array]:
        _, stats = stats_apply(state.params, data.x_probe[hp.data])
        dead, dormant = _layer_metrics(stats)
        logits = apply(state.params, data.x_test[hp.data])
        labels = data.y_test[hp.data]
        loss = optax.softmax_cross_entropy_with_integer_labels(logits, labels).mean()
        acc = jnp.mean((jnp.argmax(logits, -1) == labels).astype(jnp.float32))
        return {
            "dead": dead,
            "dormant": dormant,
            "test_loss": loss,
            "test_accuracy": acc,
            "recycled": state.recycled,
        }

    def step(state: _State, t: jax.Array, hp: _HP, data: _Data) -> _State:
        k_batch, k_redo, key = jax.random.split(state.key, 3)
        n = data.x_train.shape[1]
        idx = jax.random.randint(k_batch, (batch,), 0, n)
        x, y = data.x_train[hp.data, idx], data.y_train[hp.data, idx]

        def objective(params):
            # Statistics of the training batch only where ReDo needs them.
            if layout is None:
                logits, stats = apply(params, x), None
            else:
                logits, stats = stats_apply(params, x)
            loss = optax.softmax_cross_entropy_with_integer_labels(logits, y).mean()
            return loss, stats

        (_, stats), grads = jax.value_and_grad(objective, has_aux=True)(state.params)
        direction, opt_state = opt.update(grads, state.opt_state, state.params)
        warm = jnp.where(hp.warmup > 0, jnp.minimum(1.0, (t + 1) / jnp.maximum(hp.warmup, 1)), 1.0)
        lr = hp.lr * warm
        params = jax.tree.map(lambda p, d: p - lr * d, state.params, direction)
        recycled = state.recycled
        if layout is not None:
            # ReDo: the units that were tau-dormant on this step's batch get fresh incoming
            # weights, zero outgoing weights and zeroed Adam moments, every redo_every steps.
            # Recycling at the end of step t = k * redo_every (k >= 1) means an evaluation
            # after a multiple of redo_every steps sees the units redo_every - 1 steps after
            # the last recycling, never a freshly recycled (trivially alive) network.
            when = (hp.redo_every > 0) & (t > 0) & (t % jnp.maximum(hp.redo_every, 1) == 0)
            out = remedies.redo(
                params,
                stats,
                k_redo,
                layout=layout,
                tau=tau,
                opt_state=opt_state,
                when=when,
                adam_reset=adam_reset,
            )
            params, opt_state = out.params, out.opt_state
            recycled = recycled + sum(jnp.sum(m) for m in out.masks)
        return _State(params, opt_state, key, recycled)

    def run(state: _State, hp: _HP, data: _Data, start: jax.Array, n: jax.Array):
        """Evaluates ``state`` (at step ``start``), then trains it for ``n`` steps."""
        metrics = evaluate(state, hp, data)
        state = jax.lax.fori_loop(0, n, lambda i, s: step(s, start + i, hp, data), state)
        return metrics, state

    # One program per group: evaluation and training together, the number of steps traced
    # (the last call trains 0 steps and only evaluates), one dispatch per evaluation.
    return jit(jax.vmap(run, in_axes=(0, 0, None, None, None)), donate_argnums=0)


def _stack_data(datasets: Sequence[relujax.data.Dataset], probe: int) -> _Data:
    p = min(probe, min(len(d.x_train) for d in datasets))
    return _Data(
        jnp.asarray(np.stack([d.x_train for d in datasets])),
        jnp.asarray(np.stack([d.y_train for d in datasets])),
        jnp.asarray(np.stack([d.x_train[:p] for d in datasets])),
        jnp.asarray(np.stack([d.x_test for d in datasets])),
        jnp.asarray(np.stack([d.y_test for d in datasets])),
    )


def train(
    arms: Sequence[Arm],
    datasets: Sequence[relujax.data.Dataset],
    *,
    hidden: tuple[int, ...],
    steps: int,
    eval_every: int,
    batch_size: int = 128,
    optimizer: str = "adam",
    probe_size: int = 1024,
    redo_tau: float = 0.1,
    progress: str = "",
    fast_compile: bool = False,
    separate_redo: bool = True,
) -> dict[str, np.ndarray]:
    """Trains every arm; returns metrics per arm and evaluation.

    Args:
      arms: the runs (grouped by activation, one compiled program per group).
      datasets: classification datasets of equal shapes; ``Arm.data`` indexes them.
      hidden: hidden widths of the MLP.
      steps: training steps (a multiple of ``eval_every``).
      eval_every: steps between evaluations (and the first evaluation is at step 0).
      batch_size: minibatch size (sampled with replacement).
      optimizer: ``"adam"``, ``"momentum"`` (SGD, momentum 0.9) or ``"sgd"``.
      probe_size: training examples on which dead and dormant units are measured.
      redo_tau: ReDo's threshold for arms with ``redo_every > 0``.
      progress: prefix of the progress lines ("" for none).
      fast_compile: compile with XLA's backend optimization level 0: 2-3x faster
        compilation, slower code; for smoke runs (``--quick``), where compiling dominates.
      separate_redo: train ReDo arms in their own program (the others then skip ReDo's
        per-step work); False saves a compilation, for smoke runs.

    Returns:
      ``steps[E]``, ``dead[K, E, L]``, ``dormant[K, E, L]``, ``test_accuracy[K, E]``,
      ``test_loss[K, E]``, ``recycled[K, E]`` and ``seconds`` (wall time of each group).
    """
    if steps % eval_every:
        raise ValueError(f"steps={steps} must be a multiple of eval_every={eval_every}.")
    intervals = steps // eval_every
    jit = jax.jit
    if fast_compile:
        jit = functools.partial(jax.jit, compiler_options={"xla_backend_optimization_level": 0})
    data = _stack_data(datasets, probe_size)
    first = datasets[0]
    sizes = (first.input_shape[0], first.output_dim, tuple(hidden))
    opt = _optimizer(optimizer)
    out: dict[str, Any] = {
        "steps": np.arange(intervals + 1) * eval_every,
        "dead": np.full((len(arms), intervals + 1, len(hidden)), np.nan, np.float32),
        "dormant": np.full((len(arms), intervals + 1, len(hidden)), np.nan, np.float32),
        "test_accuracy": np.full((len(arms), intervals + 1), np.nan, np.float32),
        "test_loss": np.full((len(arms), intervals + 1), np.nan, np.float32),
        "recycled": np.zeros((len(arms), intervals + 1), np.float32),
        "seconds": {},
    }
    # One program per activation, and ReDo arms apart: the others skip its per-step cost.
    groups: dict[tuple[str, bool, str], list[int]] = {}
    for i, arm in enumerate(arms):
        redo = separate_redo and arm.redo_every > 0
        groups.setdefault((arm.activation, redo, arm.adam_reset), []).append(i)
    for (activation, own_program, adam_reset), members in groups.items():
        group = activation + (f" + ReDo ({adam_reset})" if own_program else "")
        started = time.time()
        abstract = nnx.eval_shape(lambda members=members: _model(arms[members[0]], sizes))
        graphdef = nnx.graphdef(abstract)
        params = _init_params([arms[i] for i in members], sizes, jit)
        redo_inits = {
            arms[i].kernel_init if isinstance(arms[i].kernel_init, str) else id(arms[i])
            for i in members
            if arms[i].redo_every > 0
        }
        if len(redo_inits) > 1:
            raise ValueError("ReDo arms of one activation must share their kernel_init.")
        layout = None
        if redo_inits:
            redo_arm = next(arms[i] for i in members if arms[i].redo_every > 0)
            layout = remedies.layout_of(abstract, kernel_init=redo_arm.kernel_init)
        state = _State(
            params,
            jax.vmap(opt.init)(params),
            # Minibatch and ReDo keys: independent of the parameter draw (nnx.Rngs(seed)).
            jnp.stack([jax.random.key(arms[i].seed + 10_000) for i in members]),
            jnp.zeros(len(members), jnp.float32),
        )
        hp = _HP(
            jnp.asarray([arms[i].lr for i in members], jnp.float32),
            jnp.asarray([arms[i].warmup for i in members], jnp.int32),
            jnp.asarray([arms[i].redo_every for i in members], jnp.int32),
            jnp.asarray([arms[i].data for i in members], jnp.int32),
        )
        program = _program(
            graphdef, layout, opt, batch=batch_size, tau=redo_tau, adam_reset=adam_reset, jit=jit
        )
        idx = np.asarray(members)
        report_every = max(1, intervals // 5)
        for e in range(intervals + 1):
            n = eval_every if e < intervals else 0
            metrics, state = program(state, hp, data, jnp.int32(e * eval_every), jnp.int32(n))
            metrics = jax.device_get(metrics)
            _store(out, idx, e, metrics)
            if progress and e and (e % report_every == 0 or e == intervals):
                acc = float(np.nanmean(metrics["test_accuracy"]))
                dead = float(np.nanmean(metrics["dead"]))
                print(
                    f"{progress} {group}: step {e * eval_every}/{steps}, {len(members)} runs, "
                    f"mean dead {dead:.1%}, mean test acc {acc:.3f} "
                    f"({time.time() - started:.0f} s)",
                    flush=True,
                )
        out["seconds"][group] = round(time.time() - started, 1)
    return out


def _store(out: dict[str, Any], idx: np.ndarray, e: int, metrics: dict[str, np.ndarray]) -> None:
    for name in ("dead", "dormant", "test_accuracy", "test_loss", "recycled"):
        out[name][idx, e] = np.asarray(metrics[name])


def unit_fraction(per_layer: np.ndarray, hidden: Sequence[int]) -> np.ndarray:
    """Per-layer fractions ``[..., L]`` -> fraction of all hidden units ``[...]``."""
    w = np.asarray(hidden, dtype=np.float64) / float(sum(hidden))
    return per_layer @ w


def mean_std(values: np.ndarray) -> tuple[float, float]:
    """Mean and standard deviation over finite values (NaN, NaN when none)."""
    v = np.asarray(values, np.float64)
    v = v[np.isfinite(v)]
    if not v.size:
        return math.nan, math.nan
    return float(v.mean()), float(v.std())
