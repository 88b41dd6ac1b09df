"""Train many configurations at once under Optax schedules, tracking dead units as they train.

:func:`run` trains every configuration of a :class:`Grid` (schedules x peak learning rates x
activations x initializers x seeds) or a list of :class:`Config` in one jitted program per
chunk of steps, and returns a :class:`SweepResult`.

Multi-host
----------
The config axis is sharded over ``jax.devices()``, which on a multi-host job (GPU hosts, TPU
pod slices) lists the devices of every process. Start every process with the same script and
arguments, after ``jax.distributed.initialize()`` (coordinator address, process count and id
from the environment on Cloud TPU and SLURM)::

  jax.distributed.initialize()
  result = relujax.sweep.run(grid, dataset, steps=..., checkpoint_dir="gs://.../sweep")

Every process builds the same host arrays (the data and the initial states are deterministic
functions of the seeds); ``jax.make_array_from_callback`` places on each device its slice of
the config axis (``NamedSharding(Mesh(devices, ("configs",)), PartitionSpec("configs"))``;
the data are replicated with ``PartitionSpec()``). The program is a ``jax.shard_map`` over
that mesh with no collectives: configurations never communicate. Metrics are gathered on
every process with ``multihost_utils.process_allgather`` after each chunk; orbax writes and
reads the sharded checkpoints from all processes (use a shared file system or bucket). No
process pool is involved: JAX's multi-controller runtime is the only parallel machinery.
"""

from relujax.sweep import optimizers as optimizers
from relujax.sweep._lock import DirectoryLock as DirectoryLock
from relujax.sweep._reference import run_reference as run_reference
from relujax.sweep._result import SweepResult as SweepResult
from relujax.sweep._result import versions as versions
from relujax.sweep._run import ChunkInfo as ChunkInfo
from relujax.sweep._run import run as run
from relujax.sweep._spec import OPTIMIZERS as OPTIMIZERS
from relujax.sweep._spec import CNNSpec as CNNSpec
from relujax.sweep._spec import Config as Config
from relujax.sweep._spec import Grid as Grid
from relujax.sweep._spec import MLPSpec as MLPSpec
from relujax.sweep._spec import OptimizerSpec as OptimizerSpec
from relujax.sweep._strategy import STRATEGIES as STRATEGIES
from relujax.sweep._strategy import choose_strategy as choose_strategy
from relujax.sweep._train import config_keys as config_keys
from relujax.sweep._train import loss_fn as loss_fn
from relujax.sweep._train import sample_batch as sample_batch

__all__ = [
    "OPTIMIZERS",
    "STRATEGIES",
    "CNNSpec",
    "ChunkInfo",
    "Config",
    "DirectoryLock",
    "Grid",
    "MLPSpec",
    "OptimizerSpec",
    "SweepResult",
    "choose_strategy",
    "config_keys",
    "loss_fn",
    "optimizers",
    "run",
    "run_reference",
    "sample_batch",
    "versions",
]
