"""Remedies for dead and dormant units: ReDo recycling (Sokar et al. 2023).

A :class:`Layout` says which parameters belong to which unit (incoming kernel column and
bias, outgoing kernel rows, flattened conv channels included); :func:`recycle` gives the
selected units fresh incoming weights, zero outgoing weights and zeroed optimizer moments,
as a pure, jittable function of boolean mask arrays; :func:`redo` and
:func:`dormant_masks` pick the tau-dormant units from :mod:`relujax.analysis` statistics.
:func:`recycle_module` and :func:`redo_module` do the same in place for Flax NNX models
(:class:`relujax.nn.MLP`, ``CNN``) and their ``nnx.Optimizer``.
"""

from relujax.remedies._adam import ScaleByAdamPerParamState as ScaleByAdamPerParamState
from relujax.remedies._adam import adam as adam
from relujax.remedies._adam import adamw as adamw
from relujax.remedies._adam import scale_by_adam_per_param as scale_by_adam_per_param
from relujax.remedies._l2_init import L2InitState as L2InitState
from relujax.remedies._l2_init import add_decayed_weights_to_init as add_decayed_weights_to_init
from relujax.remedies._layout import FLATTEN_ORDERS as FLATTEN_ORDERS
from relujax.remedies._layout import Layer as Layer
from relujax.remedies._layout import Layout as Layout
from relujax.remedies._layout import layout_of as layout_of
from relujax.remedies._layout import sequential as sequential
from relujax.remedies._opt_state import ADAM_RESETS as ADAM_RESETS
from relujax.remedies._recycle import Recycled as Recycled
from relujax.remedies._recycle import recycle as recycle
from relujax.remedies._redo import dormant_masks as dormant_masks
from relujax.remedies._redo import dormant_units as dormant_units
from relujax.remedies._redo import recycle_module as recycle_module
from relujax.remedies._redo import redo as redo
from relujax.remedies._redo import redo_module as redo_module

__all__ = [
    "ADAM_RESETS",
    "FLATTEN_ORDERS",
    "L2InitState",
    "Layer",
    "Layout",
    "Recycled",
    "ScaleByAdamPerParamState",
    "adam",
    "adamw",
    "add_decayed_weights_to_init",
    "dormant_masks",
    "dormant_units",
    "layout_of",
    "recycle",
    "recycle_module",
    "redo",
    "redo_module",
    "scale_by_adam_per_param",
    "sequential",
]
