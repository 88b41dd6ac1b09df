"""Remedies for dead and dormant units and for loss of plasticity.

- ReDo recycling (Sokar et al. 2023): a :class:`Layout` says which parameters belong to
  which unit; :func:`recycle` gives the selected units fresh incoming weights, zero outgoing
  weights and a fresh optimizer state, as a pure, jittable function of boolean masks;
  :func:`redo` and :func:`dormant_masks` pick the tau-dormant units;
  :func:`recycle_module` and :func:`redo_module` do it in place for Flax NNX models.
- Adam with a step count per weight (:func:`adam`, :func:`adamw`,
  :func:`scale_by_adam_per_param`), so that re-initialized weights restart Adam.
- Continual backprop (Dohare et al. 2024, :func:`continual_backprop`), shrink and perturb
  (Ash & Adams 2020, :func:`shrink_perturb`), layer resets (Nikishin et al. 2022,
  :func:`reset_layers`) and L2 toward the initial parameters (Kumar et al. 2023,
  :func:`add_decayed_weights_to_init`, an Optax transformation).
- :mod:`relujax.remedies.interventions`: each remedy as a per-step intervention of a
  compiled training loop, by name.
"""

from relujax.remedies import interventions as interventions
from relujax.remedies._adam import ScaleByAdamPerParamState as ScaleByAdamPerParamState
from relujax.remedies._adam import adam as adam
from relujax.remedies._adam import adamw as adamw
from relujax.remedies._adam import scale_by_adam_per_param as scale_by_adam_per_param
from relujax.remedies._cbp import UTILITIES as UTILITIES
from relujax.remedies._cbp import CBPState as CBPState
from relujax.remedies._cbp import CBPStep as CBPStep
from relujax.remedies._cbp import continual_backprop as continual_backprop
from relujax.remedies._cbp import continual_backprop_init as continual_backprop_init
from relujax.remedies._l2_init import L2InitState as L2InitState
from relujax.remedies._l2_init import add_decayed_weights_to_init as add_decayed_weights_to_init
from relujax.remedies._layer_reset import reset_layers as reset_layers
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
from relujax.remedies._schedule import due as due
from relujax.remedies._shrink_perturb import shrink_perturb as shrink_perturb

__all__ = [
    "ADAM_RESETS",
    "FLATTEN_ORDERS",
    "UTILITIES",
    "CBPState",
    "CBPStep",
    "L2InitState",
    "Layer",
    "Layout",
    "Recycled",
    "ScaleByAdamPerParamState",
    "adam",
    "adamw",
    "add_decayed_weights_to_init",
    "continual_backprop",
    "continual_backprop_init",
    "dormant_masks",
    "dormant_units",
    "due",
    "interventions",
    "layout_of",
    "recycle",
    "recycle_module",
    "redo",
    "redo_module",
    "reset_layers",
    "scale_by_adam_per_param",
    "sequential",
    "shrink_perturb",
]
