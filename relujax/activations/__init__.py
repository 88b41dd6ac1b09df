"""The ReLU family and its relatives, with an explicit derivative rule at every kink.

Every function is jitted under its own name: in a jaxpr it is one ``jit`` equation with
``params["name"]`` in :data:`SITE_NAMES`, the pre-activation as its first input and the
activation as its first output. Aliases (``swish``, ``hard_silu``) run under their canonical
name (``silu``, ``hard_swish``). Each function has a descriptor (:class:`Activation`, via
:func:`get_descriptor`) from which :func:`get`, :func:`names` and the property sets
(:data:`NONNEGATIVE`, :data:`SIGN_PRESERVING`, :data:`SATURATING`, :data:`MODULE_ACTIVATIONS`)
are derived.

The functions jax.nn also has are drop-ins: same names, signatures, defaults, values and
dtypes (integer, bool, Python-scalar and weakly typed inputs give jax.nn's dtype, in default
and x64 mode), and derivatives that differ only at kinks. Derivatives are right for every
parameter value accepted, negative slopes and alphas included.

Derivatives at the kinks (first f', second f''; the rule's value exactly at the point, which
is the value on the side named; jax.nn's where it differs):

================  ==========  ==================  ==================  ====================
function          kink x      f'(x)               f''(x)              jax.nn f'(x)
================  ==========  ==================  ==================  ====================
relu              0           0                   0
relu6             0, 6        0, 0                0
capped_relu       0, c        0, 0                0
shifted_relu      s           0                   0
squared_relu      0           0                   0 (left; right 2)
crelu             0           0 (each half)       0
threshold         t           0                   0
leaky_relu        0           alpha (left)        0                   1
prelu, rrelu      0           a (left)            0
elu               0           alpha (left)        alpha (left)
selu              0           lambda alpha        lambda alpha
celu              0           1 (no kink)         1 / alpha (left)
hard_tanh         -1, 1       0, 0                0                   1, 1
hard_sigmoid      -3, 3       0, 0                0
hard_swish        -3, 3       0, 1 (outer)        0
================  ==========  ==================  ==================  ====================

gelu, silu, mish and softplus are smooth (f'(0) = 0.5, 0.5, 0.6 and 0.5).
"""

from relujax.activations._catalog import MODULE_ACTIVATIONS as MODULE_ACTIVATIONS
from relujax.activations._catalog import NONNEGATIVE as NONNEGATIVE
from relujax.activations._catalog import SATURATING as SATURATING
from relujax.activations._catalog import SIGN_PRESERVING as SIGN_PRESERVING
from relujax.activations._catalog import SITE_NAMES as SITE_NAMES
from relujax.activations._catalog import activation_names as activation_names
from relujax.activations._catalog import get as get
from relujax.activations._catalog import get_activation as get_activation
from relujax.activations._catalog import get_descriptor as get_descriptor
from relujax.activations._catalog import names as names
from relujax.activations._descriptor import Activation as Activation
from relujax.activations._descriptor import Param as Param
from relujax.activations._descriptor import Saturation as Saturation
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
from relujax.activations._relu import capped_relu as capped_relu
from relujax.activations._relu import crelu as crelu
from relujax.activations._relu import relu as relu
from relujax.activations._relu import relu6 as relu6
from relujax.activations._relu import shifted_relu as shifted_relu
from relujax.activations._relu import squared_relu as squared_relu
from relujax.activations._relu import threshold as threshold
from relujax.activations._smooth import gelu as gelu
from relujax.activations._smooth import mish as mish
from relujax.activations._smooth import silu as silu
from relujax.activations._smooth import softplus as softplus
from relujax.activations._smooth import swish as swish

__all__ = [
    "MODULE_ACTIVATIONS",
    "NONNEGATIVE",
    "SATURATING",
    "SIGN_PRESERVING",
    "SITE_NAMES",
    "Activation",
    "Param",
    "Saturation",
    "activation_names",
    "capped_relu",
    "celu",
    "crelu",
    "elu",
    "gelu",
    "get",
    "get_activation",
    "get_descriptor",
    "hard_sigmoid",
    "hard_silu",
    "hard_swish",
    "hard_tanh",
    "leaky_relu",
    "mish",
    "names",
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
