"""How to batch configurations on a backend: ``vmap`` them, or ``lax.map`` one after another."""

from __future__ import annotations

import itertools
import math

import jax

STRATEGIES = ("auto", "vmap", "map")

#: On CPU with several JAX devices (one per core, the config axis sharded over them),
#: configurations whose forward pass costs more than this many FLOPs per example are mapped
#: sequentially. Measured (benchmarks/README.md, 2-core x86 CPU, 2 devices, K = 64 MLPs
#: 40-w-w-w-10, batch 128, 500 Adam steps): ``lax.map`` beats ``vmap`` from w = 32 (7.3k
#: FLOPs; 3.27 vs 3.75 s) to w = 256 (288k; 74.0 vs 93.8 s); ``vmap`` wins at w = 16 (2.6k;
#: 1.80 vs 2.00 s) and w = 8 (1.1k; 1.17 vs 1.58 s).
CPU_MAP_FLOPS_PER_EXAMPLE = 5_000

#: The same threshold with a single CPU device, whose one program uses every core through
#: XLA's multi-threaded kernels. Measured as above on one device: ``vmap`` wins at w = 8
#: (2.74 vs 3.72 s), 16 (2.82 vs 4.65 s) and 32 (5.92 vs 8.14 s), ``lax.map`` at w = 256
#: (82.1 vs 103.4 s).
CPU_MAP_FLOPS_PER_EXAMPLE_ONE_DEVICE = 100_000


def flops_per_example(model, input_shape, out_features) -> int:
    """Multiply-add FLOPs of one forward pass per example (dense and conv layers), x2."""
    from relujax.sweep._spec import MLPSpec

    if isinstance(model, MLPSpec):
        sizes = (math.prod(input_shape), *model.hidden, out_features)
        return 2 * sum(a * b for a, b in itertools.pairwise(sizes))
    spatial = list(input_shape[:-1])
    channels = input_shape[-1]
    total = 0
    for c in model.features:
        total += 2 * math.prod(spatial) * (model.kernel_size ** len(spatial)) * channels * c
        channels = c
        if model.pool is not None:
            spatial = [-(-s // model.pool_size) for s in spatial]
    sizes = (channels, *model.hidden, out_features)
    return total + 2 * sum(a * b for a, b in itertools.pairwise(sizes))


def choose_strategy(
    strategy: str,
    *,
    model,
    input_shape: tuple[int, ...],
    out_features: int,
    batch_size: int,
    configs: int,
    devices: int,
    backend: str | None = None,
) -> str:
    """The strategy ``run`` uses for a group of configurations.

    ``"vmap"`` and ``"map"`` are returned as given. ``"auto"``: on GPU and TPU always
    ``"vmap"`` (batched matmuls fill the device); on CPU ``"map"`` when the model's forward
    pass costs more than :data:`CPU_MAP_FLOPS_PER_EXAMPLE` FLOPs per example with several
    devices, or :data:`CPU_MAP_FLOPS_PER_EXAMPLE_ONE_DEVICE` with one (XLA's CPU matmuls are
    faster unbatched once they are large enough), else ``"vmap"`` (small models are
    dominated by per-operation overhead, which one batched operation shares among all
    configurations). A single configuration per device is always ``"vmap"``.

    Args:
      strategy: ``"auto"``, ``"vmap"`` or ``"map"``.
      model: the sweep's model spec.
      input_shape: shape of one example.
      out_features: output width.
      batch_size: minibatch size (unused by the rule, kept for future calibration).
      configs: configurations in the group.
      devices: devices they are sharded over.
      backend: ``jax.default_backend()`` if None.

    Returns:
      ``"vmap"`` or ``"map"``.

    Examples:
      >>> from relujax import sweep
      >>> from relujax.sweep._strategy import choose_strategy
      >>> wide, narrow = sweep.MLPSpec((256, 256, 256)), sweep.MLPSpec((32, 32, 32))
      >>> [choose_strategy("auto", model=m, input_shape=(40,), out_features=10,
      ...                        batch_size=128, configs=64, devices=d, backend="cpu")
      ...  for m in (wide, narrow) for d in (1, 2)]
      ['map', 'map', 'vmap', 'map']
    """
    del batch_size
    if strategy != "auto":
        return strategy
    backend = jax.default_backend() if backend is None else backend
    if backend != "cpu" or -(-configs // devices) <= 1:
        return "vmap"
    flops = flops_per_example(model, input_shape, out_features)
    limit = CPU_MAP_FLOPS_PER_EXAMPLE if devices > 1 else CPU_MAP_FLOPS_PER_EXAMPLE_ONE_DEVICE
    return "map" if flops > limit else "vmap"
