"""Benchmark relujax.sweep against the canonical loop and one lax.scan per config.

Workloads (MNIST-1D, Adam, batch 128, 500 steps, and for every method an evaluation every 100
steps: probe-set loss with per-unit statistics, test loss and accuracy):

* wide:   K = 64 configs (8 schedule families x 8 peak LRs) of an MLP 40-256-256-256-10
          (compute-bound);
* narrow: the same grid with hidden width 32 (dispatch-bound).

Methods, timed in steady state (compilation excluded):

* canonical: the Flax NNX tutorial loop -- ``nnx.Optimizer(model, optax.adam(schedule))`` and
  an ``nnx.jit`` train step called from Python per step, one config after another;
* jax.jit loop: the same loop on split state with ``jax.jit`` (the Optax tutorial style,
  less Python overhead per step), written below from the engine's per-step definitions;
* scan/config: ``relujax.sweep.run`` on one config at a time (one ``lax.scan`` per config);
* sweep: ``relujax.sweep.run`` on all K configs at once, ``strategy="vmap"`` and ``"map"``
  (``*`` marks the one ``strategy="auto"`` picks).

The per-config methods are timed on one config of each schedule family (8 configs) and
scaled to K (every config costs the same). Every loop evaluates what the sweep records
(probe loss with dead/dormant/firing fractions, test loss and accuracy, learning rate, and
per layer the weight norm, distance from initialization and probe-loss gradient norm). FLOP
rate: training FLOPs (forward + backward = 3 x forward) plus the evaluations' passes (probe
and test forward, probe gradient), over the sweep's steady-state time,
against the best float32 2048^3 matmul rate measured in the same run (at the start and around
each sweep, so that a shared machine's load affects both alike).

The last line reads ``sweep: wide <r>x canonical, <u>% of matmul peak; narrow <r>x
canonical`` (``<r>`` and ``<u>`` for the ``auto`` strategy). ``--quick`` (K = 8, 60 steps,
sweep and canonical loop only) runs in under a minute.
"""

from __future__ import annotations

import argparse
import functools
import math
import os
import statistics
import sys
import time

if __name__ == "__main__":
    # One JAX CPU device per core (must be set before JAX starts; --cpu-devices overrides): the
    # sweep shards its config axis over them and runs the shards concurrently. The loops use
    # device 0 (with XLA's multi-threaded matmuls, as usual). No effect on GPU/TPU backends.
    _n = sys.argv[sys.argv.index("--cpu-devices") + 1] if "--cpu-devices" in sys.argv else None
    os.environ["XLA_FLAGS"] = (
        os.environ.get("XLA_FLAGS", "")
        + f" --xla_force_host_platform_device_count={_n or os.cpu_count()}"
    )

import jax
import jax.numpy as jnp
import numpy as np
import optax
from flax import nnx

import relujax
from relujax import analysis, data, schedules, sweep

# Internals the baselines share with the engine (benchmarks may import private helpers; the
# public API has no single-run loop): key derivation, minibatch draws, loss, unit metrics.
from relujax.sweep._strategy import choose_strategy, flops_per_example
from relujax.sweep._train import (
    config_keys,
    layer_metrics,
    loss_fn,
    make_apply,
    sample_batch,
    weight_metrics,
)

FAMILIES = [
    schedules.Schedule("constant"),
    schedules.Schedule("warmup_constant"),
    schedules.Schedule("piecewise_constant"),
    schedules.Schedule("exponential_decay"),
    schedules.Schedule("cosine_decay"),
    schedules.Schedule("warmup_cosine"),
    schedules.Schedule("linear_onecycle"),
    schedules.Schedule("sgdr", cycles=2),
]
BATCH, PROBE = 128, 1024
DORMANT_TAU = 0.025  # sweep.run's default
# Wall clock by default; --clock cpu measures process CPU time (all threads), which a shared
# machine's load does not inflate, at the price of not crediting parallelism.
CLOCK = time.perf_counter


def matmul_peak(n: int, reps: int) -> float:
    """Best float32 FLOP/s of an n x n x n matmul."""
    a = jax.random.normal(jax.random.PRNGKey(0), (n, n), jnp.float32)
    b = jax.random.normal(jax.random.PRNGKey(1), (n, n), jnp.float32)
    f = jax.jit(jnp.matmul)
    f(a, b).block_until_ready()
    best = float("inf")
    for _ in range(reps):
        t0 = CLOCK()
        f(a, b).block_until_ready()
        best = min(best, CLOCK() - t0)
    return 2 * n**3 / best


def steady(chunks: list[float]) -> float:
    """Total time of all chunks, the first (compiling) one replaced by the mean of the rest."""
    return statistics.mean(chunks[1:]) * len(chunks) if len(chunks) > 1 else chunks[0]


def time_sweep(configs, ds, strategy, kw) -> tuple[float, sweep.SweepResult]:
    marks = [CLOCK()]
    result = sweep.run(
        configs, ds, strategy=strategy, callback=lambda info: marks.append(CLOCK()), **kw
    )
    return steady(list(np.diff(marks))), result


def time_nnx_canonical(configs, ds, *, hidden, steps, eval_every) -> float:
    """The Flax NNX tutorial loop; returns the steady-state seconds summed over configs."""
    x_train, y_train = jnp.asarray(ds.x_train), jnp.asarray(ds.y_train)
    x_test, y_test = jnp.asarray(ds.x_test), jnp.asarray(ds.y_test)
    x_probe, y_probe = x_train[:PROBE], y_train[:PROBE]
    total = 0.0
    for c in configs:
        init_key, data_key, _ = config_keys(c.seed)
        model = relujax.nn.MLP(
            ds.input_shape[0],
            hidden,
            ds.output_dim,
            activation=c.activation,
            kernel_init=c.kernel_initializer(),
            bias_init=c.bias_initializer(),
            rngs=nnx.Rngs(init_key),
        )
        initial = jax.tree.map(jnp.copy, nnx.state(model, nnx.Param))
        schedule = c.schedule.build(total_steps=steps, peak_value=c.peak_lr)
        optimizer = nnx.Optimizer(model, optax.adam(schedule), wrt=nnx.Param)

        @nnx.jit
        def train_step(model, optimizer, step, data_key=data_key):
            idx = sample_batch(data_key, step, x_train.shape[0], BATCH)
            x, y = x_train[idx], y_train[idx]
            loss, grads = nnx.value_and_grad(lambda m: loss_fn(m(x), y))(model)
            optimizer.update(model, grads)
            return loss

        @nnx.jit
        def evaluate(model, initial, step, schedule=schedule):
            out, stats = analysis.with_stats(model)(x_probe)
            test_out = model(x_test)
            grads = nnx.grad(lambda m: loss_fn(m(x_probe), y_probe))(model)
            return {
                "train_loss": loss_fn(out, y_probe),
                "test_loss": loss_fn(test_out, y_test),
                "test_accuracy": jnp.mean(jnp.argmax(test_out, -1) == y_test),
                "lr": schedule(step),
                **layer_metrics(stats, DORMANT_TAU),
                **weight_metrics(nnx.state(model, nnx.Param), initial, grads, len(hidden)),
            }

        jax.block_until_ready(evaluate(model, initial, 0))  # compile (not timed)
        jax.block_until_ready(train_step(model, optimizer, 0))
        t0 = CLOCK()
        for step in range(1, steps):
            loss = train_step(model, optimizer, step)
            if (step + 1) % eval_every == 0:
                float(loss)  # the tutorial logs the loss here
                jax.block_until_ready(evaluate(model, initial, step + 1))
        total += (CLOCK() - t0) * steps / (steps - 1)
    return total


def jax_jit_loop(configs, ds, *, model, steps, eval_every) -> tuple[float, np.ndarray]:
    """The jax.jit loop: a jitted step on split state (params, rest, Optax state) called from
    Python per step, one config after another, evaluating what the sweep records.

    Returns the steady-state seconds summed over configs (each measured after its first step
    and evaluation, which compile, and scaled to all steps) and the test-loss curves
    ``[len(configs), steps / eval_every + 1]`` (NaN from a non-finite loss on, as the sweep).
    """
    x_train, y_train = jnp.asarray(ds.x_train, jnp.float32), jnp.asarray(ds.y_train, jnp.int32)
    x_test, y_test = jnp.asarray(ds.x_test, jnp.float32), jnp.asarray(ds.y_test, jnp.int32)
    x_probe, y_probe = x_train[:PROBE], y_train[:PROBE]
    opt = sweep.OptimizerSpec("adam")
    curves = np.full((len(configs), steps // eval_every + 1), np.nan, np.float32)
    total = 0.0
    for k, c in enumerate(configs):
        init_key, data_key, _ = config_keys(c.seed)
        net = model.build(
            ds.input_shape,
            ds.output_dim,
            activation=c.activation,
            kernel_init=c.kernel_initializer(),
            bias_init=c.bias_initializer(),
            rngs=nnx.Rngs(init_key),
        )
        graphdef, params, rest = nnx.split(net, nnx.Param, ...)
        apply = make_apply(graphdef)
        initial = jax.tree.map(jnp.copy, params)

        def schedule(peak, family=c.schedule):
            return family.build(total_steps=steps, peak_value=peak)

        @functools.partial(jax.jit, donate_argnums=(0, 1, 2))
        def train_step(params, rest, opt_state, peak, step, apply=apply, data_key=data_key):
            idx = sample_batch(data_key, step, x_train.shape[0], BATCH)
            x, y = x_train[idx], y_train[idx]

            def objective(p):
                out, new_rest = apply(p, rest, x)
                return loss_fn(out, y), new_rest

            (loss, new_rest), grads = jax.value_and_grad(objective, has_aux=True)(params)
            updates, opt_state = opt.build(schedule(peak)).update(grads, opt_state, params)
            return optax.apply_updates(params, updates), new_rest, opt_state, loss

        @jax.jit
        def evaluate(params, rest, peak, step, apply=apply, initial=initial):
            (probe_out, _), stats = analysis.with_stats(apply)(params, rest, x_probe)
            test_out, _ = apply(params, rest, x_test)
            grads = jax.grad(lambda p: loss_fn(apply(p, rest, x_probe)[0], y_probe))(params)
            hits = (jnp.argmax(test_out, -1) == y_test).astype(jnp.float32)
            return {
                "train_loss": loss_fn(probe_out, y_probe),
                "test_loss": loss_fn(test_out, y_test),
                "test_accuracy": jnp.mean(hits),
                "lr": schedule(peak)(step).astype(jnp.float32),
                **layer_metrics(stats, DORMANT_TAU),
                **weight_metrics(params, initial, grads, model.layers),
            }

        peak = jnp.float32(c.peak_lr)
        opt_state = opt.build(lambda count: jnp.float32(1.0)).init(params)
        records, losses = [], []
        t0 = CLOCK()
        for step in range(steps + 1):
            if step % eval_every == 0:
                # Divergence is checked where the loop syncs anyway: at evaluations.
                if losses and not np.isfinite(np.asarray(jnp.stack(losses))).all():
                    break  # the sweep freezes the config: its later metrics are NaN
                records.append(evaluate(params, rest, peak, jnp.int32(step)))
                losses = []
            if step == steps:
                break
            params, rest, opt_state, loss = train_step(
                params, rest, opt_state, peak, jnp.int32(step)
            )
            losses.append(loss)
            if step == 0:  # the first step and evaluation compile: not timed
                loss.block_until_ready()
                t0 = CLOCK()
        jax.block_until_ready(records)
        total += (CLOCK() - t0) * steps / max(steps - 1, 1)
        test_loss = [float(r["test_loss"]) for r in records]
        curves[k, : len(test_loss)] = test_loss
    return total, curves


def training_flops(model, ds, k, steps, eval_every) -> float:
    fwd = flops_per_example(model, ds.input_shape, ds.output_dim)
    train = 3 * fwd * BATCH * steps
    # Each evaluation: probe forward (with statistics), test forward, probe gradient (3 x).
    evals = (steps // eval_every + 1) * fwd * (PROBE + len(ds.x_test) + 3 * PROBE)
    return k * (train + evals)


def workload(name, hidden, configs, sample, ds, args, peak) -> dict:
    model = sweep.MLPSpec(hidden)
    k, scale = len(configs), len(configs) / len(sample)
    kw = dict(steps=args.steps, model=model, batch_size=BATCH, eval_every=args.eval_every)
    kw["probe_size"] = PROBE
    auto = choose_strategy(
        "auto",
        model=model,
        input_shape=ds.input_shape,
        out_features=ds.output_dim,
        batch_size=BATCH,
        configs=k,
        devices=jax.device_count(),
    )
    out: dict = {"auto": auto}
    # The machine may be shared: measure the peak next to the sweep, under the same load.
    peak = max(peak, matmul_peak(args.matmul_n, reps=5))
    results = {}
    for strategy in ("vmap", "map") if args.both else (auto,):
        out[strategy], results[strategy] = time_sweep(
            configs, ds, strategy, dict(kw, chunk_steps=args.eval_every)
        )
        print(f"  {name} sweep[{strategy}{'*' if strategy == auto else ''}]: {out[strategy]:.2f} s")
    best = out[auto]
    out["canonical"] = scale * time_nnx_canonical(
        sample, ds, hidden=hidden, steps=args.steps, eval_every=args.eval_every
    )
    loop_curves = None
    if not args.quick:
        seconds, loop_curves = jax_jit_loop(
            sample, ds, model=model, steps=args.steps, eval_every=args.eval_every
        )
        out["jax_loop"] = scale * seconds
        scan = 0.0
        for c in sample:
            one = dict(kw, chunk_steps=args.eval_every, devices=jax.devices()[:1])
            scan += time_sweep([c], ds, "vmap", one)[0]
        out["scan"] = scale * scan
    peak = max(peak, matmul_peak(args.matmul_n, reps=5))
    flops = training_flops(model, ds, k, args.steps, args.eval_every)
    out["speedup"] = out["canonical"] / best
    out["utilization"] = flops / best / peak
    gap = math.nan
    if loop_curves is not None:
        # The sweep computes what the loop computes (a benchmark of a wrong program is no use).
        row = configs.index(sample[0])
        gap = np.nanmax(np.abs(loop_curves[0] - results[auto].metrics["test_loss"][row]))
    for key, label in (
        ("canonical", "canonical (nnx.jit loop)"),
        ("jax_loop", "jax.jit loop"),
        ("scan", "one lax.scan per config"),
    ):
        if key in out:
            print(f"  {name} {label}: {out[key]:.2f} s -> sweep is {out[key] / best:.2f}x faster")
    check = "" if math.isnan(gap) else f"; max |test loss - loop| = {gap:.2g}"
    print(
        f"  {name}: {flops / best / 1e9:.1f} GFLOP/s = {100 * out['utilization']:.1f}% of matmul"
        f" peak ({peak / 1e9:.1f} GFLOP/s, best measured around it){check}; load average"
        f" {os.getloadavg()[0]:.1f}"
    )
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="K=8, 60 steps (under a minute)")
    parser.add_argument("--both", action="store_true", help="time both vmap and map sweeps")
    parser.add_argument(
        "--cpu-devices", type=int, default=None, help="JAX CPU devices (default: one per core)"
    )
    parser.add_argument(
        "--clock",
        choices=("wall", "cpu"),
        default="wall",
        help="wall clock, or process CPU time (robust to other processes' load)",
    )
    args = parser.parse_args()
    global CLOCK
    CLOCK = time.process_time if args.clock == "cpu" else time.perf_counter
    if args.quick:
        families, lrs = FAMILIES[:1], np.geomspace(1e-4, 1e-2, 8)
        args.steps, args.eval_every, args.matmul_n = 60, 20, 1024
    else:
        families, lrs = FAMILIES, np.geomspace(1e-4, 3e-2, 8)
        args.steps, args.eval_every, args.matmul_n = 500, 100, 2048
    print(
        f"backend={jax.default_backend()} devices={jax.device_count()} jax={jax.__version__}"
        f" clock={args.clock}"
    )
    peak = matmul_peak(args.matmul_n, reps=5)
    print(
        f"matmul peak: {peak / 1e9:.1f} GFLOP/s ({args.matmul_n}^3 float32, best of 5); "
        f"load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs"
    )
    ds = data.mnist1d()
    configs = sweep.Grid(families, [float(x) for x in lrs]).configs()
    sample = configs[:: len(lrs)][:8] if not args.quick else configs[:1]
    print(f"K={len(configs)} steps={args.steps} eval_every={args.eval_every}")
    wide = workload("wide", (256, 256, 256), configs, sample, ds, args, peak)
    narrow = workload("narrow", (32, 32, 32), configs, sample, ds, args, peak)
    print(
        f"sweep: wide {wide['speedup']:.2f}x canonical, {100 * wide['utilization']:.0f}% of "
        f"matmul peak; narrow {narrow['speedup']:.2f}x canonical"
    )


if __name__ == "__main__":
    main()
