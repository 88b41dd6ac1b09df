"""Overhead of relujax.analysis against the plain jitted forward pass and training step.

For an MLP 784-1024-1024-1024-10 and a small CNN (relujax.nn, ReLU), over 32 batches of 256:

* collect: time(analysis.collect(model, batches)) / time(jitted forward over the same
  batches), for the default statistics and for moments=False (counts, firing and E|h| only),
  both as a Python loop of one jitted call per batch, compile excluded (each is run once before
  timing; collect reuses its traced program and compiled step across calls). The default
  sub_batch="auto" evaluates a batch in blocks of samples where the model is proved
  per-sample and a site holds >= 4 MiB (the CNN: blocks of 16); sub_batch=None reduces each
  batch whole (the MLP is never blocked, so its two rows are the same program);
* floor: the same forward pass plus ONE per-unit sum of every site's output, in one jitted
  program, unblocked and blocked (1 MiB blocks, relujax.analysis._reduce): no statistics can
  cost less than reading each activation once. Each collect time is also given as a ratio to
  the cheaper of the two floors. Also the forward pass alone and the floor on sub-batches
  (lax.scan over the blocks that collect's "auto" chooses), the references of the blocked
  collect;
* train step: one jitted Adam step (optax, cross-entropy) whose loss is wrapped in
  analysis.with_stats (statistics returned from jax.grad's aux), over the plain step, for both
  moment settings. Each step is timed alone (it waits for the previous step's parameters
  anyway), and the three steps alternate batch by batch, each on its own parameter chain, so
  that the k-th steps of all three run under the same machine state; the ratio is the median
  over all batches x repeats of (step with statistics / plain step) of such pairs, with the
  ratios of the fastest and of the median steps beside it.

Every other figure is the minimum over interleaved repeats (the machine may be shared: the load
average is printed before and after). Memory: XLA's compiled temp bytes of a lax.scan over 8
and 32 batches of the with_stats step (equal: peak memory does not grow with the number of
batches).

Run: python benchmarks/analysis.py [--repeats 7] [--batch 256] [--batches 32] [--quick]
     python benchmarks/analysis.py --blocks 4,8,16,32,64   # the CNN's collect per block size
The last line reads exactly:
  analysis overhead: mlp <r>x, cnn <r>x; train step: mlp <r>x, cnn <r>x
(default statistics).
"""

from __future__ import annotations

import argparse
import math
import os
import platform
import statistics
import time
from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp
import optax
from flax import nnx
from jax import lax
from jax.extend import core as jcore

import relujax.nn
from relujax import analysis
from relujax.analysis import _reduce


def cpu_model() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def load() -> str:
    try:
        return " ".join(f"{v:.2f}" for v in os.getloadavg())
    except OSError:
        return "n/a"


def models(batch: int) -> dict[str, tuple[nnx.Module, tuple[int, ...]]]:
    rngs = nnx.Rngs(0)
    mlp = relujax.nn.MLP(784, [1024, 1024, 1024], 10, rngs=rngs)
    cnn = relujax.nn.CNN(1, [32, 64], 10, hidden=[128], rngs=rngs)
    return {"mlp": (mlp, (batch, 784)), "cnn": (cnn, (batch, 28, 28, 1))}


def auto_block(model: nnx.Module, x: jax.Array) -> int | None:
    """The block size collect's sub_batch="auto" picks for this model and batch on CPU."""
    from relujax.analysis import _blocks, _collect

    sites = analysis.find_sites(model, x)
    largest = max(math.prod(s.shape) * 4 for s in sites)
    if largest < _collect.AUTO_MIN_BYTES:
        return None
    return _blocks.choose(x.shape[0], -(-largest // x.shape[0]), _collect.AUTO_BLOCK_BYTES)


def sub_batched(fn: Callable[..., Any], size: int) -> Callable[..., Any]:
    """``fn(state, x)`` run on blocks of ``size`` samples of ``x`` under ``lax.scan``."""

    def run(state, x):
        blocks = x.reshape(-1, size, *x.shape[1:])
        return lax.scan(lambda c, b: (c, fn(state, b)), None, blocks)[1]

    return jax.jit(run)


def floor_fn(apply: Callable[..., Any], state: Any, x: jax.Array, blocked: bool):
    """The jitted forward pass plus one per-unit sum of each activation's output.

    Written independently of relujax.analysis's interpreter: the model's jaxpr is evaluated
    equation by equation, and after every ``jit`` equation named like an activation the sum of
    its output over all axes but the last is added to the results.
    """
    closed = jax.make_jaxpr(apply)(state, x)
    acts = analysis.default_activations()

    def total(a):
        def sums(b):
            return jnp.sum(b.astype(jnp.float32), axis=tuple(range(b.ndim - 1)))

        plan = _reduce.block_plan(a.shape, 4, _reduce.BLOCK_BYTES) if blocked else None
        if plan is None:
            return sums(a)
        return _reduce.fold_blocks(sums, lambda u, v: u + v, [a], axes=plan[0], rows=plan[1])

    def run(state, x):
        env = dict(zip(closed.jaxpr.constvars, closed.consts, strict=True))
        env.update(zip(closed.jaxpr.invars, jax.tree.leaves((state, x)), strict=True))

        def read(v):
            return v.val if isinstance(v, jcore.Literal) else env[v]

        sums = []
        for eqn in closed.jaxpr.eqns:
            params = eqn.primitive.get_bind_params(eqn.params)
            out = eqn.primitive.bind(*[read(v) for v in eqn.invars], **params)
            outs = out if eqn.primitive.multiple_results else [out]
            env.update(zip(eqn.outvars, outs, strict=True))
            if eqn.primitive.name in ("jit", "pjit") and eqn.params.get("name") in acts:
                sums.append(total(lax.stop_gradient(outs[0])))
        return [read(v) for v in closed.jaxpr.outvars], sums

    return run


def train_steps(graphdef, state, moments: bool):
    opt = optax.adam(1e-3)

    def loss(params, x, labels):
        logits = nnx.merge(graphdef, params)(x)
        return optax.softmax_cross_entropy_with_integer_labels(logits, labels).mean()

    @jax.jit
    def plain(params, opt_state, x, labels):
        value, grads = jax.value_and_grad(loss)(params, x, labels)
        updates, opt_state = opt.update(grads, opt_state, params)
        return optax.apply_updates(params, updates), opt_state, value

    observed = analysis.with_stats(loss, moments=moments)

    @jax.jit
    def with_stats(params, opt_state, x, labels):
        grads, (_, stats) = jax.grad(lambda *a: _aux(observed(*a)), has_aux=True)(params, x, labels)
        updates, opt_state = opt.update(grads, opt_state, params)
        return optax.apply_updates(params, updates), opt_state, stats

    return opt.init(state), plain, with_stats


def _aux(out_stats):
    value, stats = out_stats
    return value, (value, stats)


def timed(fn: Callable[[], Any]) -> float:
    start = time.perf_counter()
    jax.block_until_ready(fn())
    return time.perf_counter() - start


def measure(runs: dict[str, Callable[[], Any]], repeats: int) -> dict[str, float]:
    for run in runs.values():  # compile
        run()
    times: dict[str, list[float]] = {name: [] for name in runs}
    for _ in range(repeats):  # interleaved, so that load changes hit all alike
        for name, run in runs.items():
            times[name].append(timed(run))
    return {name: min(t) for name, t in times.items()}


def overhead(
    model: nnx.Module, shape: tuple[int, ...], n_batches: int, repeats: int
) -> dict[str, float]:
    keys = jax.random.split(jax.random.key(1), n_batches)
    batches = [jax.random.normal(k, shape) for k in keys]
    labels = [jax.random.randint(k, shape[:1], 0, 10) for k in keys]
    graphdef, state = nnx.split(model)

    def apply(state, x):
        return nnx.merge(graphdef, state)(x)

    forward = jax.jit(apply)
    floors = {b: jax.jit(floor_fn(apply, state, batches[0], b)) for b in (False, True)}
    size = auto_block(model, batches[0])
    opt_state, plain, observed = train_steps(graphdef, state, True)
    _, _, observed_cheap = train_steps(graphdef, state, False)

    def loop(fn):
        return lambda: [fn(state, b) for b in batches]

    step_fns = {
        "train step": plain,
        "train step + with_stats": observed,
        "train step + with_stats(moments=False)": observed_cheap,
    }
    per_step: dict[str, list[float]] = {name: [] for name in step_fns}

    def paired_steps():
        """The three steps alternate batch by batch, each on its own parameter chain, so that
        the k-th step of each variant runs under the same machine state (paired)."""
        chains = {name: (state, opt_state) for name in step_fns}
        params = state
        for b, y in zip(batches, labels, strict=True):
            for name, fn in step_fns.items():
                params, opt = chains[name]
                start = time.perf_counter()
                params, opt, _ = jax.block_until_ready(fn(params, opt, b, y))
                per_step[name].append(time.perf_counter() - start)
                chains[name] = (params, opt)
        return params

    runs: dict[str, Callable[[], Any]] = {
        "forward": loop(forward),
        "floor": loop(floors[False]),
        "floor (blocked)": loop(floors[True]),
    }
    if size is not None:
        part = floor_fn(apply, state, batches[0][:size], False)
        runs[f"forward (blocks of {size})"] = loop(sub_batched(apply, size))
        runs[f"floor (blocks of {size})"] = loop(sub_batched(part, size))
    runs.update(
        {
            "collect": lambda: analysis.collect(model, batches),
            "collect(moments=False)": lambda: analysis.collect(model, batches, moments=False),
            "collect(sub_batch=None)": lambda: analysis.collect(model, batches, sub_batch=None),
            "collect(moments=False, sub_batch=None)": lambda: analysis.collect(
                model, batches, moments=False, sub_batch=None
            ),
        }
    )
    runs["train steps (paired)"] = paired_steps
    t = measure(runs, repeats)
    for times in per_step.values():
        del times[:n_batches]  # the warm-up run (compilation)
    step_min = {name: min(v) for name, v in per_step.items()}
    step_median = {name: statistics.median(v) for name, v in per_step.items()}
    plain_times = per_step["train step"]
    paired = {  # the median over all batches x repeats of (variant step / plain step)
        name: statistics.median(a / b for a, b in zip(v, plain_times, strict=True))
        for name, v in per_step.items()
    }
    floor = min(t["floor"], t["floor (blocked)"])
    print(f"  collect's sub_batch='auto' block: {size} samples" if size else "  not blocked")
    for name, v in t.items():
        if name == "train steps (paired)":
            continue
        line = f"  {name:40s} {v * 1e3:9.1f} ms"
        if name.startswith(("floor", "collect")) or name.startswith("forward ("):
            line += f"   / forward {v / t['forward']:5.2f}x"
        if name.startswith("collect"):
            line += f"   / floor {v / floor:5.2f}x"
        print(line)
    for name in step_fns:
        line = f"  {name:40s} one step: min {step_min[name] * 1e3:7.2f} ms, median "
        line += f"{step_median[name] * 1e3:7.2f} ms"
        if name != "train step":
            line += f"   / step: paired {paired[name]:5.2f}x (mins "
            line += f"{step_min[name] / step_min['train step']:5.2f}x, medians "
            line += f"{step_median[name] / step_median['train step']:5.2f}x)"
        print(line)
    return {
        "collect": t["collect"] / t["forward"],
        "cheap": t["collect(moments=False)"] / t["forward"],
        "whole": t["collect(sub_batch=None)"] / t["forward"],
        "whole cheap": t["collect(moments=False, sub_batch=None)"] / t["forward"],
        "floor": floor / t["forward"],
        "step": paired["train step + with_stats"],
        "step cheap": paired["train step + with_stats(moments=False)"],
    }


def block_sizes(sizes: list[int], batch: int, n_batches: int, repeats: int) -> None:
    """The CNN's collect (both moment settings), forward pass and floor on blocks of each size,
    interleaved, as ratios to the whole-batch forward pass: why ``sub_batch="auto"`` picks
    the block size it does."""
    model, shape = models(batch)["cnn"]
    keys = jax.random.split(jax.random.key(1), n_batches)
    batches = [jax.random.normal(k, shape) for k in keys]
    graphdef, state = nnx.split(model)

    def apply(state, x):
        return nnx.merge(graphdef, state)(x)

    def loop(fn):
        return lambda: [fn(state, b) for b in batches]

    runs: dict[str, Callable[[], Any]] = {"forward": loop(jax.jit(apply))}
    for n in sizes:
        part = floor_fn(apply, state, batches[0][:n], False)
        runs[f"collect, blocks of {n}"] = lambda n=n: analysis.collect(model, batches, sub_batch=n)
        runs[f"collect(moments=False), blocks of {n}"] = lambda n=n: analysis.collect(
            model, batches, moments=False, sub_batch=n
        )
        runs[f"forward, blocks of {n}"] = loop(sub_batched(apply, n))
        runs[f"floor, blocks of {n}"] = loop(sub_batched(part, n))
    print(f"cnn: {n_batches} batches of {shape}, minimum of {repeats} repeats; auto picks "
          f"{auto_block(model, batches[0])}")  # fmt: skip
    t = measure(runs, repeats)
    for name, v in t.items():
        print(f"  {name:40s} {v * 1e3:9.1f} ms   / forward {v / t['forward']:5.2f}x")


def scan_temp_bytes(model: nnx.Module, shape: tuple[int, ...], n: int) -> int:
    step = analysis.with_stats(model)
    stacked = jax.ShapeDtypeStruct((n, *shape), jnp.float32)
    sites = analysis.find_sites(model, jax.ShapeDtypeStruct(shape, jnp.float32))
    init = analysis.ModelStats((s.name, analysis.UnitStats.empty(s.units)) for s in sites)

    def scan_all(stacked):
        return lax.scan(lambda c, b: (c.merge(step(b)[1]), None), init, stacked)[0]

    compiled = jax.jit(scan_all).lower(stacked).compile()
    stats = compiled.memory_analysis()
    if stats is None:
        raise RuntimeError(f"XLA gives no memory analysis on {jax.default_backend()}.")
    return stats.temp_size_in_bytes


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--batch", type=int, default=256, help="samples per batch")
    parser.add_argument("--batches", type=int, default=32, help="batches per timed run")
    parser.add_argument("--quick", action="store_true", help="smoke run: 4 batches of 32")
    parser.add_argument(
        "--blocks", type=str, default=None,
        help="only time the CNN's collect on blocks of these sizes, e.g. 4,8,16,32,64",
    )  # fmt: skip
    args = parser.parse_args()
    if args.quick:
        args.repeats, args.batch, args.batches = 2, 32, 4
    print(f"jax {jax.__version__}, backend {jax.default_backend()}, {jax.devices()[0]}")
    print(f"cpu: {cpu_model()}, {os.cpu_count()} cores; load average {load()}")
    if args.blocks:
        sizes = [int(v) for v in args.blocks.split(",")]
        block_sizes(sizes, args.batch, args.batches, args.repeats)
        print(f"load average after: {load()}")
        return
    r = {}
    for name, (model, shape) in models(args.batch).items():
        print(f"{name}: {args.batches} batches of {shape}, minimum of {args.repeats} repeats")
        r[name] = overhead(model, shape, args.batches, args.repeats)
        mem = {n: scan_temp_bytes(model, shape, n) for n in (8, 32)}
        print(f"  scan temp bytes: 8 batches {mem[8]}, 32 batches {mem[32]}")
    print(f"load average after: {load()}")
    for key, label in (
        ("cheap", "collect(moments=False)"),
        ("whole", "collect(sub_batch=None)"),
        ("whole cheap", "collect(moments=False, sub_batch=None)"),
        ("floor", "floor"),
    ):
        print(f"{label} / forward: mlp {r['mlp'][key]:.2f}x, cnn {r['cnn'][key]:.2f}x")
    print(
        f"train step with_stats(moments=False): mlp {r['mlp']['step cheap']:.2f}x, "
        f"cnn {r['cnn']['step cheap']:.2f}x"
    )
    print(
        f"analysis overhead: mlp {r['mlp']['collect']:.2f}x, cnn {r['cnn']['collect']:.2f}x; "
        f"train step: mlp {r['mlp']['step']:.2f}x, cnn {r['cnn']['step']:.2f}x"
    )


if __name__ == "__main__":
    main()
