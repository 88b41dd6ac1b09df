"""Remedies as per-step interventions of a compiled training loop, looked up by name."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
from jax import Array
from jax.typing import ArrayLike

from relujax import _validation, analysis
from relujax._registry import Registry
from relujax.remedies._cbp import continual_backprop, continual_backprop_init
from relujax.remedies._layer_reset import reset_layers
from relujax.remedies._layout import Layout
from relujax.remedies._opt_state import adam_reset_option
from relujax.remedies._recycle import recycle
from relujax.remedies._redo import dormant_masks, dormant_units
from relujax.remedies._schedule import due
from relujax.remedies._shrink_perturb import shrink_perturb


class Intervention(NamedTuple):
    """A remedy applied after every optimizer update, inside ``jit``/``scan``/``vmap``.

    ``state = init(params)`` once; then after update number ``step`` (1 after the first)::

        params, opt_state, state = update(state, params, opt_state, key, step, activations)

    ``update`` is pure and traces once: periodic remedies test :func:`due` ``(step, every)``
    inside, and every hyperparameter may be a traced array, so K configurations with
    different values (or different periods) vmap in one program. ``activations`` are this
    step's hidden activations, one ``[..., units]`` array per layer of the network's
    :class:`Layout` (or a site mapping, e.g. the :class:`relujax.analysis.ModelStats` of
    :func:`relujax.analysis.with_stats`); remedies with ``needs_activations=False``
    accept None.

    Attributes:
      name: the registry name.
      init: ``params -> state`` (``()`` for a stateless remedy).
      update: ``(state, params, opt_state, key, step, activations) -> (params, opt_state,
        state)``.
      needs_activations: whether ``update`` reads ``activations``.

    Examples:
      >>> from relujax.remedies import interventions
      >>> sp = interventions.get("shrink_perturb", shrink=0.9, sigma=0.01, every=100)
      >>> sp.name, sp.needs_activations, sp.init({})
      ('shrink_perturb', False, ())
    """

    name: str
    init: Callable[[Any], Any]
    update: Callable[..., tuple[Any, Any, Any]]
    needs_activations: bool


def _stateless(_: Any) -> tuple[()]:
    return ()


def _shrink_perturb(
    *,
    shrink: ArrayLike,
    sigma: ArrayLike,
    every: ArrayLike,
    noise: Callable[[Array], Any] | None = None,
) -> Intervention:
    """:func:`shrink_perturb` every ``every`` steps."""
    _validation.number_array("shrink_perturb: every", every, minimum=0)

    def update(state, params, opt_state, key, step, activations=None):
        new = shrink_perturb(
            params, key, shrink=shrink, sigma=sigma, noise=noise, when=due(step, every)
        )
        return new, opt_state, state

    return Intervention("shrink_perturb", _stateless, update, False)


def _layer_reset(
    *,
    init: Callable[[Array], Any],
    layers: Sequence[Any],
    every: ArrayLike,
    adam_reset: str = "per_param",
) -> Intervention:
    """:func:`reset_layers` every ``every`` steps."""
    _validation.number_array("layer_reset: every", every, minimum=0)
    adam_reset_option("layer_reset", adam_reset)

    def update(state, params, opt_state, key, step, activations=None):
        new, opt = reset_layers(
            params,
            key,
            init=init,
            layers=layers,
            opt_state=opt_state,
            when=due(step, every),
            adam_reset=adam_reset,
        )
        return new, opt, state

    return Intervention("layer_reset", _stateless, update, False)


def _redo_masks(activations: Any, layout: Layout, tau: ArrayLike) -> tuple[Array, ...]:
    if isinstance(activations, Mapping) and all(
        isinstance(v, analysis.UnitStats) for v in activations.values()
    ):
        return dormant_masks(activations, layout, tau=tau)
    if isinstance(activations, Mapping):
        activations = list(activations.values())
    if len(activations) != len(layout.layers):
        raise ValueError(
            f"redo: activations has {len(activations)} entries; the layout has "
            f"{len(layout.layers)} layers."
        )
    scores = []
    for h in activations:
        h = jnp.asarray(h, jnp.float32)
        scores.append(jnp.mean(jnp.abs(h), axis=tuple(range(h.ndim - 1))))
    return tuple(dormant_units(s, tau=tau) for s in scores)


def _redo(
    *, layout: Layout, tau: ArrayLike = 0.1, every: ArrayLike, adam_reset: str = "per_param"
) -> Intervention:
    """ReDo (:func:`redo`) every ``every`` steps on the step's activations."""
    _validation.number_array("redo: every", every, minimum=0)
    _validation.number_array("redo: tau", tau, minimum=0.0)
    adam_reset_option("redo", adam_reset)
    _validation.instance("redo: layout", layout, Layout, "a remedies.Layout")

    def update(state, params, opt_state, key, step, activations):
        masks = _redo_masks(activations, layout, tau)

        def act(p, s):
            out = recycle(p, masks, key, layout=layout, opt_state=s, adam_reset=adam_reset)
            return out.params, out.opt_state

        # lax.cond: no fresh weights are drawn on the other steps (under vmap with a batched
        # condition both branches run and are selected).
        params, opt_state = jax.lax.cond(
            due(step, every), act, lambda p, s: (p, s), params, opt_state
        )
        return params, opt_state, state

    return Intervention("redo", _stateless, update, True)


def _continual_backprop(
    *,
    layout: Layout,
    replacement_rate: ArrayLike = 1e-4,
    decay: ArrayLike = 0.99,
    maturity: ArrayLike = 100,
    utility: str = "contribution",
    adam_reset: str = "per_param",
) -> Intervention:
    """:func:`continual_backprop` after every step."""
    _validation.instance("continual_backprop: layout", layout, Layout, "a remedies.Layout")
    adam_reset_option("continual_backprop", adam_reset)

    def init(params):
        return continual_backprop_init(params, layout=layout)

    def update(state, params, opt_state, key, step, activations):
        del step
        out = continual_backprop(
            params,
            activations,
            key,
            state,
            layout=layout,
            opt_state=opt_state,
            replacement_rate=replacement_rate,
            decay=decay,
            maturity=maturity,
            utility=utility,
            adam_reset=adam_reset,
        )
        return out.params, out.opt_state, out.state

    return Intervention("continual_backprop", init, update, True)


_INTERVENTIONS: Registry[Callable[..., Intervention]] = Registry(
    "intervention",
    {
        "shrink_perturb": _shrink_perturb,
        "layer_reset": _layer_reset,
        "redo": _redo,
        "continual_backprop": _continual_backprop,
    },
    aliases={"shrink_and_perturb": "shrink_perturb", "cbp": "continual_backprop"},
)


def get(name: str, **params: Any) -> Intervention:
    """The :class:`Intervention` of a remedy, by name, with its hyperparameters.

    ============================ ================================================
    name                         hyperparameters (``every``: period, 0 = never)
    ============================ ================================================
    ``shrink_perturb``           ``shrink``, ``sigma``, ``every``, ``noise``
    ``layer_reset``              ``init``, ``layers``, ``every``, ``adam_reset``
    ``redo``                     ``layout``, ``tau``, ``every``, ``adam_reset``
    ``continual_backprop``       ``layout``, ``replacement_rate``, ``decay``,
                                 ``maturity``, ``utility``, ``adam_reset``
    ============================ ================================================

    See :func:`shrink_perturb`, :func:`reset_layers`, :func:`redo` and
    :func:`continual_backprop` for their definitions. L2 toward the initial parameters is an
    Optax transformation instead (:func:`add_decayed_weights_to_init`).

    Args:
      name: one of :func:`names` (aliases ``"shrink_and_perturb"``, ``"cbp"``).
      **params: the remedy's hyperparameters (keyword-only).

    Returns:
      An :class:`Intervention`.

    Examples:
      >>> import jax, jax.numpy as jnp
      >>> from relujax.remedies import interventions
      >>> sp = interventions.get("shrink_perturb", shrink=0.5, sigma=0.0, every=2)
      >>> params = {"w": jnp.ones(2)}
      >>> for step in (1, 2, 3, 4):  # fires after updates 2 and 4
      ...     params, _, _ = sp.update((), params, None, jax.random.key(step), step)
      >>> params["w"]
      Array([0.25, 0.25], dtype=float32)
    """
    return _INTERVENTIONS.entry(name)(**params)


def names() -> tuple[str, ...]:
    """Every intervention name, aliases included.

    Examples:
      >>> from relujax.remedies import interventions
      >>> interventions.names()
      ('cbp', 'continual_backprop', 'layer_reset', 'redo', 'shrink_and_perturb', 'shrink_perturb')
    """
    return _INTERVENTIONS.names()
