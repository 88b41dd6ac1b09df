"""Initializers for ReLU-family networks, Flax-compatible: ``init(key, shape, dtype)``.

Following ``jax.nn.initializers``, most entries are factories that take hyperparameters
and return the initializer (``he_normal()(key, shape)``); ``zeros`` and ``ones`` are
initializers themselves. :func:`get` builds any of them by name. :func:`rai` also draws a
layer's kernel and bias jointly (``rai().pair(key, kernel_shape)``); relujax's modules
recognise any such :class:`PairedInitializer`.

Every initializer checks its call: a bad key, shape (negative or zero-sized axes where a fan
is needed) or dtype is an error naming the initializer and the parameter; legacy
``jax.random.PRNGKey`` keys and typed keys give equal results.
"""

from relujax.init._rai import PairedInitializer as PairedInitializer
from relujax.init._rai import rai as rai
from relujax.init._registry import get as get
from relujax.init._registry import names as names
from relujax.init._scaling import he_normal as he_normal
from relujax.init._scaling import he_uniform as he_uniform
from relujax.init._scaling import leaky_gain as leaky_gain
from relujax.init._scaling import lecun_normal as lecun_normal
from relujax.init._scaling import orthogonal as orthogonal
from relujax.init._scaling import xavier_normal as xavier_normal
from relujax.init._scaling import xavier_uniform as xavier_uniform
from relujax.init._simple import constant as constant
from relujax.init._simple import normal as normal
from relujax.init._simple import ones as ones
from relujax.init._simple import zeros as zeros

__all__ = [
    "PairedInitializer",
    "constant",
    "get",
    "he_normal",
    "he_uniform",
    "leaky_gain",
    "lecun_normal",
    "names",
    "normal",
    "ones",
    "orthogonal",
    "rai",
    "xavier_normal",
    "xavier_uniform",
    "zeros",
]
