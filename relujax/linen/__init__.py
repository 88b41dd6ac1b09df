"""Flax Linen versions of the relujax modules, with the arguments of :mod:`relujax.nn`.

Each Linen module and its NNX twin are built from the same plan (argument checks, layer
shapes, forward pass), so they accept the same arguments, raise the same errors and trace to
the same program. Parameters map one to one (:func:`params_from_nnx`, :func:`update_nnx`:
NNX ``layers/0/kernel`` is Linen ``layers_0/kernel``); given the same parameters both compute
the same outputs and gradients. The random draws differ (NNX counts keys in ``nnx.Rngs``
streams, Linen folds module paths into its key), so equal seeds give different parameters.
"""

from relujax.linen._cnn import CNN as CNN
from relujax.linen._convert import params_from_nnx as params_from_nnx
from relujax.linen._convert import update_nnx as update_nnx
from relujax.linen._mlp import MLP as MLP
from relujax.linen._prelu import PReLU as PReLU
from relujax.linen._rrelu import RReLU as RReLU

__all__ = ["CNN", "MLP", "PReLU", "RReLU", "params_from_nnx", "update_nnx"]
