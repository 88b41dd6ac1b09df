"""Flax Linen versions of the relujax modules, with the arguments of :mod:`relujax.nn`.

Given the same parameters (:func:`params_from_nnx`), a Linen module and its NNX twin
compute the same outputs.
"""

from relujax.linen._cnn import CNN as CNN
from relujax.linen._convert import params_from_nnx as params_from_nnx
from relujax.linen._convert import update_nnx as update_nnx
from relujax.linen._mlp import MLP as MLP
from relujax.linen._prelu import PReLU as PReLU
from relujax.linen._rrelu import RReLU as RReLU

__all__ = ["CNN", "MLP", "PReLU", "RReLU", "params_from_nnx", "update_nnx"]
