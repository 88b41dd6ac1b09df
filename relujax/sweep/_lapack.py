"""A clear error instead of a deadlock: batched LAPACK calls in a multi-device CPU sweep.

jaxlib before 0.12 runs a batched CPU decomposition (``lapack_*`` custom calls over a batch
of matrices: SVD, QR, eigh, Cholesky, LU) by splitting the batch over XLA's intra-op thread
pool and blocking its own pool thread until the parts are done (``jax::ParallelBatchMap``).
A sweep on several CPU devices runs one such call per device at once; with as many devices
as pool threads every thread waits and the program never finishes (0% CPU). relujax's own
``feature_rank`` avoids it (one SVD per matrix); a user's intervention or model may not (an
orthogonal re-initialization under the config ``vmap`` is a batched QR). This module finds
such calls in the lowered chunk program before it runs.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any

import jax

#: The first jaxlib whose batched CPU LAPACK calls were seen not to deadlock (0.12.0.1).
FIXED_IN = (0, 12)

_CALL = re.compile(r"custom_call\s+@(lapack_\w+)\(.*?\)\s*(?:\{.*?\}\s*)?:\s*\(([^)]*)\)")
_TENSOR = re.compile(r"tensor<([0-9x]*)x?[a-z]\w*>")


def batched_lapack_calls(stablehlo: str) -> list[tuple[str, tuple[int, ...]]]:
    """The ``lapack_*`` custom calls of a StableHLO module whose first operand is a batch.

    Args:
      stablehlo: the text of a lowered program (``jax.jit(f).lower(...).as_text()``).

    Returns:
      ``(target, operand shape)`` of each call whose first operand has more than two axes
      and more than one matrix (leading axes multiply to more than 1).

    Examples:
      >>> text = ('%0:2 = stablehlo.custom_call @lapack_sgeqrf_ffi(%x) {mhlo.backend_config '
      ...         '= {}} : (tensor<4x16x16xf32>) -> (tensor<4x16x16xf32>, tensor<4x16xf32>)\\n'
      ...         '%1 = stablehlo.custom_call @lapack_sgesdd_ffi(%y) : (tensor<16x16xf32>) -> '
      ...         'tensor<16xf32>')
      >>> batched_lapack_calls(text)
      [('lapack_sgeqrf_ffi', (4, 16, 16))]
    """
    found = []
    for line in stablehlo.splitlines():
        match = _CALL.search(line)
        if match is None:
            continue
        first = _TENSOR.search(match.group(2))
        if first is None:
            continue
        dims = tuple(int(d) for d in first.group(1).split("x") if d)
        batch = 1
        for d in dims[:-2]:
            batch *= d
        if len(dims) > 2 and batch > 1:
            found.append((match.group(1), dims))
    return found


def _jaxlib_version() -> tuple[int, ...]:
    import jaxlib.version

    return tuple(int(p) for p in re.findall(r"\d+", jaxlib.version.__version__)[:2])


def at_risk(devices: Sequence[Any]) -> bool:
    """Whether a program on ``devices`` can deadlock on a batched LAPACK call: several CPU
    devices and a jaxlib before :data:`FIXED_IN`."""
    return (
        len(devices) > 1
        and all(d.platform == "cpu" for d in devices)
        and _jaxlib_version() < FIXED_IN
    )


def check(program: Any, args: Sequence[Any], devices: Sequence[Any]) -> None:
    """Raises before running ``program(*args)`` when it would deadlock (see the module).

    Args:
      program: the jitted chunk program.
      args: its arguments.
      devices: the devices of the config axis.

    Raises:
      ValueError: naming the batched LAPACK call and the ways around it.
    """
    if not at_risk(devices):
        return
    calls = batched_lapack_calls(program.lower(*args).as_text())
    if calls:
        target, shape = calls[0]
        raise ValueError(
            f"sweep: the chunk program holds a batched CPU LAPACK call ({target} on a batch of "
            f"shape {shape}, e.g. a QR, SVD or eigh in an intervention or model under the "
            f"config vmap). On {len(devices)} CPU devices jaxlib {jax.__version__} runs such "
            f"calls on its shared thread pool and deadlocks. Use devices=jax.devices()[:1], "
            f"strategy='map', or jax/jaxlib >= {FIXED_IN[0]}.{FIXED_IN[1]}."
        )
