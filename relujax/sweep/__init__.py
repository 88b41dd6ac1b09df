"""Train many configurations at once under Optax schedules, tracking dead units as they train.

:func:`run` trains every configuration of a :class:`Grid` (schedules x peak learning rates x
activations x initializers x data sets x intervention settings x seeds) or a list of
:class:`Config` in one jitted program per chunk of steps, and returns a :class:`SweepResult`.
It chains four stages that can also be called one by one: :func:`plan` (validate, group,
fingerprint; nothing compiled), :func:`initial_state`, :func:`train_chunk` and
:func:`result`, with the training settings in a frozen :class:`Options`. Per-step
interventions (plasticity remedies such as ReDo) plug into the compiled loop as
:class:`Intervention` subclasses, or :class:`Remedy` for those of
:mod:`relujax.remedies.interventions`. Data are fixed data sets or online :class:`Stream` s
(:func:`bit_flipping`, :func:`permuted`) whose minibatches are pure functions of the key and
the step.

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
reads the sharded checkpoints from all processes (use a shared file system or bucket).
"""

from relujax.sweep import optimizers as optimizers
from relujax.sweep._intervention import Chain as Chain
from relujax.sweep._intervention import Intervention as Intervention
from relujax.sweep._intervention import Remedy as Remedy
from relujax.sweep._intervention import StepContext as StepContext
from relujax.sweep._lock import DirectoryLock as DirectoryLock
from relujax.sweep._options import Options as Options
from relujax.sweep._plan import Plan as Plan
from relujax.sweep._plan import plan as plan
from relujax.sweep._result import SweepResult as SweepResult
from relujax.sweep._run import ChunkInfo as ChunkInfo
from relujax.sweep._run import SweepState as SweepState
from relujax.sweep._run import initial_state as initial_state
from relujax.sweep._run import result as result
from relujax.sweep._run import run as run
from relujax.sweep._run import train_chunk as train_chunk
from relujax.sweep._spec import OPTIMIZERS as OPTIMIZERS
from relujax.sweep._spec import CNNSpec as CNNSpec
from relujax.sweep._spec import Config as Config
from relujax.sweep._spec import Grid as Grid
from relujax.sweep._spec import MLPSpec as MLPSpec
from relujax.sweep._spec import OptimizerSpec as OptimizerSpec
from relujax.sweep._stream import BitFlipping as BitFlipping
from relujax.sweep._stream import Permuted as Permuted
from relujax.sweep._stream import Stream as Stream
from relujax.sweep._stream import bit_flipping as bit_flipping
from relujax.sweep._stream import permuted as permuted

__all__ = [
    "OPTIMIZERS",
    "BitFlipping",
    "CNNSpec",
    "Chain",
    "ChunkInfo",
    "Config",
    "DirectoryLock",
    "Grid",
    "Intervention",
    "MLPSpec",
    "OptimizerSpec",
    "Options",
    "Permuted",
    "Plan",
    "Remedy",
    "StepContext",
    "Stream",
    "SweepResult",
    "SweepState",
    "bit_flipping",
    "initial_state",
    "optimizers",
    "permuted",
    "plan",
    "result",
    "run",
    "train_chunk",
]
