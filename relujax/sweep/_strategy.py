"""How to batch configurations on a backend: ``vmap`` them, or ``lax.map`` one after another."""

from __future__ import annotations

import itertools
import math

import jax

STRATEGIES = ("auto", "vmap", "map")

#: On CPU, configurations whose training step costs more than this many FLOPs per example
#: are mapped sequentially (measured by benchmarks/sweep.py; see benchmarks/README.md).
CPU_MAP_FLOPS_PER_EXAMPLE = 100_000


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
    pass costs more than :data:`CPU_MAP_FLOPS_PER_EXAMPLE` FLOPs per example (compute-bound:
    XLA's CPU matmuls are faster unbatched), else ``"vmap"`` (dispatch-bound: one batched op
    replaces many small ones). A single configuration per device is always ``"vmap"``.

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
      >>> wide, narrow = sweep.MLPSpec((256, 256, 256)), sweep.MLPSpec((32, 32, 32))
      >>> [sweep.choose_strategy("auto", model=m, input_shape=(40,), out_features=10,
      ...                        batch_size=128, configs=64, devices=1, backend="cpu")
      ...  for m in (wide, narrow)]
      ['map', 'vmap']
    """
    del batch_size
    if strategy != "auto":
        return strategy
    backend = jax.default_backend() if backend is None else backend
    if backend != "cpu" or -(-configs // devices) <= 1:
        return "vmap"
    flops = flops_per_example(model, input_shape, out_features)
    return "map" if flops > CPU_MAP_FLOPS_PER_EXAMPLE else "vmap"
