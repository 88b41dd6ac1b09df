"""relujax: the ReLU family in JAX, and its failure mode, the dead unit."""

__version__ = "0.1.0"

from relujax import analysis as analysis
from relujax import data as data
from relujax import init as init
from relujax import linen as linen
from relujax import nn as nn
from relujax import remedies as remedies
from relujax import schedules as schedules
from relujax import sweep as sweep
from relujax.activations import activation_names as activation_names
from relujax.activations import capped_relu as capped_relu
from relujax.activations import celu as celu
from relujax.activations import crelu as crelu
from relujax.activations import elu as elu
from relujax.activations import gelu as gelu
from relujax.activations import get_activation as get_activation
from relujax.activations import hard_sigmoid as hard_sigmoid
from relujax.activations import hard_silu as hard_silu
from relujax.activations import hard_swish as hard_swish
from relujax.activations import hard_tanh as hard_tanh
from relujax.activations import leaky_relu as leaky_relu
from relujax.activations import mish as mish
from relujax.activations import prelu as prelu
from relujax.activations import relu as relu
from relujax.activations import relu6 as relu6
from relujax.activations import rrelu as rrelu
from relujax.activations import selu as selu
from relujax.activations import shifted_relu as shifted_relu
from relujax.activations import silu as silu
from relujax.activations import softplus as softplus
from relujax.activations import squared_relu as squared_relu
from relujax.activations import swish as swish
from relujax.activations import threshold as threshold

__all__ = [
    "__version__",
    "activation_names",
    "analysis",
    "capped_relu",
    "celu",
    "crelu",
    "data",
    "elu",
    "gelu",
    "get_activation",
    "hard_sigmoid",
    "hard_silu",
    "hard_swish",
    "hard_tanh",
    "init",
    "leaky_relu",
    "linen",
    "mish",
    "nn",
    "prelu",
    "relu",
    "relu6",
    "remedies",
    "rrelu",
    "schedules",
    "selu",
    "shifted_relu",
    "silu",
    "softplus",
    "squared_relu",
    "sweep",
    "swish",
    "threshold",
]
