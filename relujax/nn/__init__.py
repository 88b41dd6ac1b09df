"""Flax NNX modules for ReLU-family networks: thin wrappers over the pure activations.

``Activation``, ``PReLU`` and ``RReLU`` wrap :func:`relujax.get_activation`,
:func:`relujax.prelu` and :func:`relujax.rrelu`; ``MLP`` and ``CNN`` are ready-made networks
whose activation and initialization are one argument each. All work with ``nnx.jit``,
``nnx.grad``, ``nnx.split`` / ``nnx.merge``, ``nnx.Optimizer`` and ``nnx.vmap``.
"""

from relujax.nn._activation import Activation as Activation
from relujax.nn._cnn import CNN as CNN
from relujax.nn._mlp import MLP as MLP
from relujax.nn._prelu import PReLU as PReLU
from relujax.nn._rrelu import RReLU as RReLU

__all__ = ["CNN", "MLP", "Activation", "PReLU", "RReLU"]
