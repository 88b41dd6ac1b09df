"""The ReLU family and its relatives, with an explicit derivative rule at every kink.

Every function is jitted under its own name: in a jaxpr it is one ``jit`` equation with
``params["name"]`` in :data:`SITE_NAMES`, the pre-activation as its first input and the
activation as its first output. Aliases (``swish``, ``hard_silu``) run under their canonical
name (``silu``, ``hard_swish``).
"""

from relujax.activations._elu import celu as celu
from relujax.activations._elu import elu as elu
from relujax.activations._elu import selu as selu
from relujax.activations._hard import hard_sigmoid as hard_sigmoid
from relujax.activations._hard import hard_silu as hard_silu
from relujax.activations._hard import hard_swish as hard_swish
from relujax.activations._hard import hard_tanh as hard_tanh
from relujax.activations._leaky import leaky_relu as leaky_relu
from relujax.activations._leaky import prelu as prelu
from relujax.activations._leaky import rrelu as rrelu
from relujax.activations._registry import activation_names as activation_names
from relujax.activations._registry import get_activation as get_activation
from relujax.activations._relu import capped_relu as capped_relu
from relujax.activations._relu import crelu as crelu
from relujax.activations._relu import relu as relu
from relujax.activations._relu import relu6 as relu6
from relujax.activations._relu import shifted_relu as shifted_relu
from relujax.activations._relu import squared_relu as squared_relu
from relujax.activations._relu import threshold as threshold
from relujax.activations._site import _SITES
from relujax.activations._smooth import gelu as gelu
from relujax.activations._smooth import mish as mish
from relujax.activations._smooth import silu as silu
from relujax.activations._smooth import softplus as softplus
from relujax.activations._smooth import swish as swish

#: Names of the ``jit`` equations the activations appear as in a jaxpr (canonical names only).
SITE_NAMES: frozenset[str] = frozenset(_SITES)

__all__ = [
    "SITE_NAMES",
    "activation_names",
    "capped_relu",
    "celu",
    "crelu",
    "elu",
    "gelu",
    "get_activation",
    "hard_sigmoid",
    "hard_silu",
    "hard_swish",
    "hard_tanh",
    "leaky_relu",
    "mish",
    "prelu",
    "relu",
    "relu6",
    "rrelu",
    "selu",
    "shifted_relu",
    "silu",
    "softplus",
    "squared_relu",
    "swish",
    "threshold",
]
