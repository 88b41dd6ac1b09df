"""Backward-pass memory and throughput of relujax's activations against jax.nn's.

For every activation this prints, relujax beside jax.nn (measured in the same run):

* ``mem loop`` / ``mem scan``: extra compiled temporary memory of ``jit(grad(loss))`` for a
  16-layer MLP (batch 4096, width 256, float32, no bias, stacked weights), per layer, over the
  same MLP with the identity activation, in units of one activation tensor
  (batch * width * 4 bytes). ``loop`` is a Python loop over layers (as a Flax MLP is), ``scan``
  is ``lax.scan`` over the stacked weights. From ``memory_analysis()``: deterministic.
* ``fwd`` / ``fwd+bwd``: element throughput of the activation alone (``jit(f)`` and
  ``jit(grad(sum(f)))``) on a large array, in Gelem/s, and relujax's as a ratio to jax.nn's.
* ``step``: time of one ``jit(grad(loss))`` step of the loop-layout MLP, relujax / jax.nn.

and a ``copy`` line: the element throughput of ``-x``, one read and one write per element,
the physical limit of any element-wise op on this machine.

Usage::

    python benchmarks/activations.py            # full run, the figures in benchmarks/README.md
    python benchmarks/activations.py --quick    # smaller sizes, fewer repeats (a smoke run)
    python benchmarks/activations.py --names relu,gelu
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable

import jax
import jax.numpy as jnp
from jax import lax

import relujax

# (name, relujax function, jax.nn function or None); functions of x only.
CASES: list[tuple[str, Callable, Callable | None]] = [
    ("relu", relujax.relu, jax.nn.relu),
    ("relu6", relujax.relu6, jax.nn.relu6),
    ("leaky_relu", relujax.leaky_relu, jax.nn.leaky_relu),
    ("hard_tanh", relujax.hard_tanh, jax.nn.hard_tanh),
    ("hard_sigmoid", relujax.hard_sigmoid, jax.nn.hard_sigmoid),
    ("elu", relujax.elu, jax.nn.elu),
    ("selu", relujax.selu, jax.nn.selu),
    ("celu", relujax.celu, jax.nn.celu),
    ("gelu", relujax.gelu, jax.nn.gelu),
    ("gelu_erf", lambda x: relujax.gelu(x, approximate=False), lambda x: jax.nn.gelu(x, False)),
    ("silu", relujax.silu, jax.nn.silu),
    ("mish", relujax.mish, jax.nn.mish),
    ("softplus", relujax.softplus, jax.nn.softplus),
    ("hard_swish", relujax.hard_swish, jax.nn.hard_swish),
    ("squared_relu", relujax.squared_relu, None),
    ("shifted_relu", relujax.shifted_relu, None),
    ("prelu", lambda x: relujax.prelu(x, jnp.full(x.shape[-1:], 0.25, x.dtype)), None),
    ("rrelu (eval)", relujax.rrelu, None),
    ("rrelu (train)", lambda x: relujax.rrelu(x, jax.random.key(0)), None),
    ("threshold", lambda x: relujax.threshold(x, 0.5, 0.0), None),
]


def mlp_loss(act: Callable, layout: str, depth: int) -> Callable:
    """Mean output of a bias-free MLP with stacked weights ``ws[depth, width, width]``."""

    def loop(ws, x):
        h = x
        for i in range(depth):
            h = act(h @ ws[i])
        return jnp.mean(h)

    def scan(ws, x):
        h, _ = lax.scan(lambda h, w: (act(h @ w), None), x, ws)
        return jnp.mean(h)

    return {"loop": loop, "scan": scan}[layout]


def temp_bytes(act: Callable, layout: str, batch: int, width: int, depth: int) -> int:
    """Compiled temporary memory of ``jit(grad(loss))`` (no execution)."""
    ws = jax.ShapeDtypeStruct((depth, width, width), jnp.float32)
    x = jax.ShapeDtypeStruct((batch, width), jnp.float32)
    compiled = jax.jit(jax.grad(mlp_loss(act, layout, depth))).lower(ws, x).compile()
    stats = compiled.memory_analysis()
    if stats is None:
        raise RuntimeError(f"XLA gives no memory analysis on {jax.default_backend()}.")
    return stats.temp_size_in_bytes


def extra_memory(act: Callable, layout: str, batch: int, width: int, depth: int, base: int):
    """Per-layer extra temporary memory over the identity MLP, in activation tensors."""
    return (temp_bytes(act, layout, batch, width, depth) - base) / (depth * batch * width * 4)


def interleaved(fns: list[Callable], *args, repeats: int) -> list[float]:
    """Median wall time of each function, timed alternately so that load hits all alike."""
    for f in fns:
        jax.block_until_ready(f(*args))  # compile and warm up
    times: list[list[float]] = [[] for _ in fns]
    for _ in range(repeats):
        for f, out in zip(fns, times, strict=True):
            start = time.perf_counter()
            jax.block_until_ready(f(*args))
            out.append(time.perf_counter() - start)
    return [statistics.median(t) for t in times]


def throughputs(acts: list[Callable], x: jax.Array, repeats: int) -> list[tuple[float, float]]:
    """(forward, forward+backward) element throughput in Gelem/s of each activation."""
    fwd = interleaved([jax.jit(a) for a in acts], x, repeats=repeats)
    bwd = interleaved(
        [jax.jit(jax.grad(lambda x, a=a: jnp.sum(a(x)))) for a in acts], x, repeats=repeats
    )
    return [(x.size / f / 1e9, x.size / b / 1e9) for f, b in zip(fwd, bwd, strict=True)]


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="small sizes, few repeats")
    parser.add_argument("--names", default="", help="comma-separated subset of activations")
    args = parser.parse_args()

    batch, width, depth = (1024, 256, 8) if args.quick else (4096, 256, 16)
    elems = 1 << (20 if args.quick else 24)
    repeats = 3 if args.quick else 15
    step_repeats = 2 if args.quick else 11
    cases = [c for c in CASES if not args.names or c[0] in args.names.split(",")]

    print(f"jax {jax.__version__}, backend {jax.default_backend()}, {jax.devices()[0]}")
    print(f"memory: MLP batch {batch}, width {width}, depth {depth}, float32; per layer, in")
    print(
        f"activation tensors over the identity MLP. throughput: {elems} float32 elements, Gelem/s."
    )
    x = jax.random.normal(jax.random.key(0), (elems,), jnp.float32) * 3
    ((copy_fwd, _),) = throughputs([lambda x: -x], x, repeats)
    print(f"copy (-x): {copy_fwd:.2f} Gelem/s")

    base = {lay: temp_bytes(lambda z: z, lay, batch, width, depth) for lay in ("loop", "scan")}
    ws = jax.random.normal(jax.random.key(1), (depth, width, width)) / width**0.5
    h0 = jax.random.normal(jax.random.key(2), (batch, width))

    header = (
        f"{'activation':<14}{'mem loop':>16}{'mem scan':>16}"
        f"{'fwd Gel/s':>11}{'ratio':>7}{'f+b Gel/s':>11}{'ratio':>7}{'step':>7}"
    )
    print(header)
    print("-" * len(header))
    for name, ours, theirs in cases:
        mem = {}
        for lay in ("loop", "scan"):
            o = extra_memory(ours, lay, batch, width, depth, base[lay])
            t = extra_memory(theirs, lay, batch, width, depth, base[lay]) if theirs else None
            mem[lay] = f"{o:6.2f} / {t:5.2f}" if t is not None else f"{o:6.2f} /   -  "
        if theirs is None:
            ((fo, bo),) = throughputs([ours], x, repeats)
            ratios = ("      -",) * 3
        else:
            (fo, bo), (ft, bt) = throughputs([ours, theirs], x, repeats)
            steps = [jax.jit(jax.grad(mlp_loss(fn, "loop", depth))) for fn in (ours, theirs)]
            step_o, step_t = interleaved(steps, ws, h0, repeats=step_repeats)
            ratios = (f"{fo / ft:7.2f}", f"{bo / bt:7.2f}", f"{step_o / step_t:7.2f}")
        print(
            f"{name:<14}{mem['loop']:>16}{mem['scan']:>16}"
            f"{fo:11.2f}{ratios[0]}{bo:11.2f}{ratios[1]}{ratios[2]}",
            flush=True,
        )
    print("mem: relujax / jax.nn. ratio: relujax throughput / jax.nn's (> 1 is faster);")
    print("step: relujax MLP training-step time / jax.nn's (< 1 is faster).")


if __name__ == "__main__":
    main()
