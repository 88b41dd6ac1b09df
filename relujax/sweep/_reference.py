"""The canonical loop: the same training as :func:`run`, written as the Flax/Optax tutorials do.

One jitted train step called from Python per step, one configuration after another. It is
slow by design (dispatch on every step); it exists as the baseline of ``benchmarks/sweep.py``
and as an independent implementation the sweep is tested against.
"""

from __future__ import annotations

import functools
import time
from collections.abc import Sequence
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import optax
from flax import nnx

from relujax import analysis
from relujax.data import Dataset
from relujax.sweep._result import SweepResult, versions
from relujax.sweep._spec import CNNSpec, Config, Grid, MLPSpec, OptimizerSpec, abstract_split
from relujax.sweep._train import LAYERED, _layer_metrics, config_keys, loss_fn, sample_batch
from relujax.sweep._validate import as_configs, check_dataset, check_int


@functools.lru_cache(maxsize=64)
def _train_step(graph_key, optimizer, schedule, steps, batch_size):
    """The jitted step of one (model graph, optimizer, schedule structure); peak is traced."""
    graphdef = abstract_split(*graph_key)[0]

    def tx(peak):
        return optimizer.build(schedule.build(total_steps=steps, peak_value=peak))

    @functools.partial(jax.jit, donate_argnums=(0, 1, 2))
    def train_step(params, rest, opt_state, peak, data_key, step, x_train, y_train):
        idx = sample_batch(data_key, step, x_train.shape[0], batch_size)
        x, y = x_train[idx], y_train[idx]

        def objective(p):
            model = nnx.merge(graphdef, p, rest)
            loss = loss_fn(model(x), y)
            return loss, nnx.split(model, nnx.Param, ...)[2]

        (loss, new_rest), grads = jax.value_and_grad(objective, has_aux=True)(params)
        updates, opt_state = tx(peak).update(grads, opt_state, params)
        return optax.apply_updates(params, updates), new_rest, opt_state, loss

    @jax.jit
    def learning_rate(peak, step):
        return schedule.build(total_steps=steps, peak_value=peak)(step).astype(jnp.float32)

    return train_step, learning_rate


@functools.lru_cache(maxsize=64)
def _evaluate(graph_key, dormant_tau, classification):
    graphdef = abstract_split(*graph_key)[0]

    @jax.jit
    def evaluate(params, rest, lr, x_probe, y_probe, x_test, y_test):
        def apply(p, r, x):
            return nnx.merge(graphdef, p, r)(x)

        probe_out, stats = analysis.with_stats(apply)(params, rest, x_probe)
        test_out = apply(params, rest, x_test)
        out = {
            "train_loss": loss_fn(probe_out, y_probe),
            "test_loss": loss_fn(test_out, y_test),
            "lr": lr,
        }
        if classification:
            hits = jnp.argmax(test_out, -1) == y_test
            out["test_accuracy"] = jnp.mean(hits.astype(jnp.float32))
        out.update(_layer_metrics(stats, dormant_tau))
        return out

    return evaluate


def run_reference(
    configs: Grid | Sequence[Config],
    dataset: Dataset,
    *,
    steps: int,
    model: MLPSpec | CNNSpec | None = None,
    optimizer: OptimizerSpec | str = "adam",
    batch_size: int = 128,
    eval_every: int | None = None,
    probe_size: int = 1024,
    dormant_tau: float = 0.025,
) -> SweepResult:
    """Train each configuration with a Python loop over a jitted step (the canonical loop).

    Same configurations, data order, schedules, optimizer, evaluations and result format as
    :func:`run` (whose ``chunk_steps``, ``strategy`` and checkpoint arguments have no meaning
    here). The learning rate is ``optimizer.build(schedule.build(total_steps, peak_value=lr))``,
    a plain Optax optimizer; a run stops training at its first non-finite loss.

    Args:
      configs: a :class:`Grid` or a list of :class:`Config`.
      dataset: a :class:`relujax.data.Dataset`.
      steps: training steps.
      model: :class:`MLPSpec` (default) or :class:`CNNSpec`.
      optimizer: an :class:`OptimizerSpec` or a name.
      batch_size: minibatch size.
      eval_every: steps between evaluations (must divide ``steps``); default ``steps``.
      probe_size: size of the probe set.
      dormant_tau: ReDo threshold.

    Returns:
      A :class:`SweepResult`; ``meta["seconds_per_config"]`` (wall clock) and
      ``meta["cpu_seconds_per_config"]`` (process CPU time) hold each configuration's
      steady-state loop time (measured after its first step and evaluation, which compile,
      and scaled to all steps).

    Examples:
      >>> from relujax import data, sweep
      >>> ds = data.gaussian_mixture(n_train=256, n_test=64, dim=8, num_classes=3)
      >>> r = sweep.run_reference([sweep.Config("constant", 1e-2)], ds, steps=40,
      ...     model=sweep.MLPSpec((16,)), batch_size=32, eval_every=10, probe_size=128)
      >>> r.metrics["train_loss"].shape, r.meta["strategy"]
      ((1, 5), 'jax.jit loop')
    """
    configs = as_configs(configs)
    model = MLPSpec() if model is None else model
    optimizer = OptimizerSpec(optimizer) if isinstance(optimizer, str) else optimizer
    check_dataset(dataset, model)
    steps = check_int("steps", steps)
    batch_size = check_int("batch_size", batch_size)
    eval_every = steps if eval_every is None else check_int("eval_every", eval_every)
    if steps % eval_every:
        raise ValueError(f"eval_every={eval_every} must divide steps={steps}.")
    probe_size = min(check_int("probe_size", probe_size), len(dataset.x_train))
    classification = dataset.is_classification
    y_dtype = jnp.int32 if classification else jnp.float32
    x_train, y_train = (
        jnp.asarray(dataset.x_train, jnp.float32),
        jnp.asarray(dataset.y_train, y_dtype),
    )
    x_test, y_test = jnp.asarray(dataset.x_test, jnp.float32), jnp.asarray(dataset.y_test, y_dtype)
    x_probe, y_probe = x_train[:probe_size], y_train[:probe_size]
    n_evals = steps // eval_every + 1
    eval_steps = np.arange(n_evals) * eval_every
    metrics: dict[str, list[Any]] = {}
    diverged, sites, params_out, seconds, cpu_seconds = [], [], [], [], []
    t0 = time.perf_counter()
    for config in configs:
        init_key, data_key = config_keys(config.seed)
        net = model.build(
            dataset.input_shape,
            dataset.output_dim,
            activation=config.activation,
            kernel_init=config.init,
            rngs=nnx.Rngs(init_key),
        )
        graphdef, params, rest = nnx.split(net, nnx.Param, ...)
        graph_key = (model, dataset.input_shape, dataset.output_dim, config.activation)
        train_step, learning_rate = _train_step(
            graph_key, optimizer, config.schedule, steps, batch_size
        )
        evaluate = _evaluate(graph_key, float(dormant_tau), classification)
        peak = jnp.float32(config.peak_lr)
        opt_state = optimizer.build(lambda count: jnp.float32(1.0)).init(params)

        def apply(p, r, x, graphdef=graphdef):
            return nnx.merge(graphdef, p, r)(x)

        sites.append(tuple(s.name for s in analysis.find_sites(apply, params, rest, x_probe)))
        records, losses, first_bad = [], [], -1
        t_config, c_config = time.perf_counter(), time.process_time()
        for step in range(steps + 1):
            if step % eval_every == 0:
                # Divergence is checked where the loop syncs anyway: at evaluations.
                finite = np.isfinite(np.asarray(jnp.stack(losses))) if losses else np.ones(0, bool)
                if not finite.all():
                    first_bad = step - len(losses) + int(np.argmin(finite))
                    break
                lr = learning_rate(peak, jnp.int32(step))
                records.append(evaluate(params, rest, lr, x_probe, y_probe, x_test, y_test))
                losses = []
            if step == steps:
                break
            params, rest, opt_state, loss = train_step(
                params, rest, opt_state, peak, data_key, jnp.int32(step), x_train, y_train
            )
            losses.append(loss)
            if step == 0:  # the first step and evaluation compile: not timed
                loss.block_until_ready()
                t_config, c_config = time.perf_counter(), time.process_time()
        host = jax.device_get(records)
        scale = steps / max(steps - 1, 1)
        seconds.append((time.perf_counter() - t_config) * scale)
        cpu_seconds.append((time.process_time() - c_config) * scale)
        for name in host[0]:
            values = np.full((n_evals, *np.shape(host[0][name])), np.nan, np.float32)
            for e, r in enumerate(host):
                values[e] = r[name]
            if first_bad >= 0:
                values[eval_steps >= first_bad] = np.nan
            metrics.setdefault(name, []).append(values)
        diverged.append(first_bad)
        params_out.append(jax.device_get(params))
    order = ["train_loss", "test_loss", *(["test_accuracy"] if classification else []), "lr"]
    stacked = {n: np.stack(metrics[n]) for n in [*order, *LAYERED]}
    meta = {
        "model": model.to_dict(),
        "optimizer": optimizer.to_dict(),
        "steps": steps,
        "batch_size": batch_size,
        "eval_every": eval_every,
        "probe_size": probe_size,
        "dormant_tau": float(dormant_tau),
        "strategy": "jax.jit loop",
        "wall_seconds": time.perf_counter() - t0,
        "seconds_per_config": seconds,
        "cpu_seconds_per_config": cpu_seconds,
        "versions": versions(),
    }
    return SweepResult(
        configs=configs,
        steps=eval_steps.astype(np.int64),
        metrics=stacked,
        diverged_step=np.asarray(diverged, np.int64),
        layer_sites=tuple(sites),
        meta=meta,
        final_params=params_out,
    )
