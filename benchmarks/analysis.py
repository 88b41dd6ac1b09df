"""Overhead of relujax.analysis.collect against the plain jitted forward pass.

For an MLP 784-1024-1024-1024-10 and a small CNN (relujax.nn, ReLU), over 32 batches of 256:

  ratio = time(analysis.collect(model, batches)) / time(jitted forward over the same batches)

for the default statistics and for moments=False (counts, firing and E|h| only),
both as a Python loop of one jitted call per batch, compile excluded (each is run once before
timing; collect reuses its compiled step across calls). Reported: the median of interleaved
repeats. Memory: XLA's compiled temp bytes of a lax.scan over 8 and 32 batches of the
with_stats step (equal: peak memory does not grow with the number of batches).

Run: python benchmarks/analysis.py [--repeats 7]
The last line reads exactly: analysis overhead: mlp <r>x, cnn <r>x
"""

from __future__ import annotations

import argparse
import statistics
import time

import jax
import jax.numpy as jnp
from flax import nnx
from jax import lax

import relujax.nn
from relujax import analysis

N_BATCHES, BATCH = 32, 256


def models() -> dict[str, tuple[nnx.Module, tuple[int, ...]]]:
    rngs = nnx.Rngs(0)
    mlp = relujax.nn.MLP(784, [1024, 1024, 1024], 10, rngs=rngs)
    cnn = relujax.nn.CNN(1, [32, 64], 10, hidden=[128], rngs=rngs)
    return {"mlp": (mlp, (BATCH, 784)), "cnn": (cnn, (BATCH, 28, 28, 1))}


def timed(fn) -> float:
    start = time.perf_counter()
    jax.block_until_ready(fn())
    return time.perf_counter() - start


def overhead(model: nnx.Module, shape: tuple[int, ...], repeats: int) -> dict[str, float]:
    keys = jax.random.split(jax.random.key(1), N_BATCHES)
    batches = [jax.random.normal(k, shape) for k in keys]
    graphdef, state = nnx.split(model)
    forward = jax.jit(lambda state, x: nnx.merge(graphdef, state)(x))

    def run_forward():
        return [forward(state, b) for b in batches]

    runs = {
        "forward": run_forward,
        "collect": lambda: analysis.collect(model, batches),
        "collect(moments=False)": lambda: analysis.collect(model, batches, moments=False),
    }
    for run in runs.values():  # compile
        run()
    times: dict[str, list[float]] = {name: [] for name in runs}
    for _ in range(repeats):  # interleaved, so that load changes hit all alike
        for name, run in runs.items():
            times[name].append(timed(run))
    med = {name: statistics.median(t) for name, t in times.items()}
    ratios = {name: med[name] / med["forward"] for name in runs if name != "forward"}
    for name, t in med.items():
        extra = f"   ratio {ratios[name]:.3f}" if name in ratios else ""
        print(f"  {name:24s} {t * 1e3:8.1f} ms{extra}")
    return ratios


def scan_temp_bytes(model: nnx.Module, shape: tuple[int, ...], n: int) -> int:
    step = analysis.with_stats(model)
    stacked = jax.ShapeDtypeStruct((n, *shape), jnp.float32)

    sites = analysis.find_sites(model, jax.ShapeDtypeStruct(shape, jnp.float32))
    init = analysis.ModelStats((s.name, analysis.UnitStats.empty(s.units)) for s in sites)

    def scan_all(stacked):
        return lax.scan(lambda c, b: (c.merge(step(b)[1]), None), init, stacked)[0]

    compiled = jax.jit(scan_all).lower(stacked).compile()
    return compiled.memory_analysis().temp_size_in_bytes


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=7)
    args = parser.parse_args()
    print(f"jax {jax.__version__}, backend {jax.default_backend()}, {jax.devices()[0]}")
    ratios = {}
    for name, (model, shape) in models().items():
        print(f"{name}: {N_BATCHES} batches of {shape}")
        ratios[name] = overhead(model, shape, args.repeats)
        mem = {n: scan_temp_bytes(model, shape, n) for n in (8, 32)}
        print(f"  scan temp bytes: 8 batches {mem[8]}, 32 batches {mem[32]}")
    cheap = {name: r["collect(moments=False)"] for name, r in ratios.items()}
    full = {name: r["collect"] for name, r in ratios.items()}
    print(f"analysis overhead (moments=False): mlp {cheap['mlp']:.2f}x, cnn {cheap['cnn']:.2f}x")
    print(f"analysis overhead: mlp {full['mlp']:.2f}x, cnn {full['cnn']:.2f}x")


if __name__ == "__main__":
    main()
