"""Continual backpropagation (Dohare et al. 2024): replace the least useful mature units."""

from __future__ import annotations

import functools
from collections.abc import Mapping, Sequence
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
from jax import Array
from jax.typing import ArrayLike

from relujax import _validation, analysis
from relujax.remedies._layout import Layer, Layout, Path, leaf_paths
from relujax.remedies._opt_state import adam_reset_option
from relujax.remedies._recycle import _rows, _unit_axis_mask, recycle

#: The unit utilities of :func:`continual_backprop`.
UTILITIES = ("contribution", "mean_corrected")


class CBPState(NamedTuple):
    """The running statistics of :func:`continual_backprop`, one entry per layer.

    Attributes:
      utility: running average :math:`u` of each unit's utility (not bias-corrected).
      mean: running average :math:`f` of each unit's activation (not bias-corrected).
      age: int32 number of steps since each unit was (re)initialized.
      pending: float32 ``[layers]``: the fractional number of units due for replacement.

    Examples:
      >>> import jax.numpy as jnp
      >>> from relujax import remedies
      >>> params = {"a": {"kernel": jnp.ones((2, 3)), "bias": jnp.zeros(3)},
      ...           "b": {"kernel": jnp.ones((3, 1)), "bias": jnp.zeros(1)}}
      >>> remedies.continual_backprop_init(params, layout=remedies.sequential(["a", "b"])).pending
      Array([0.], dtype=float32)
    """

    utility: tuple[Array, ...]
    mean: tuple[Array, ...]
    age: tuple[Array, ...]
    pending: Array


class CBPStep(NamedTuple):
    """What :func:`continual_backprop` returns.

    Attributes:
      params: the parameters with the replaced units re-initialized.
      opt_state: the optimizer state with their entries reset (None if none was given).
      state: the new :class:`CBPState`.
      masks: one boolean ``[units]`` array per layer: the replaced units.

    Examples:
      >>> from relujax import remedies
      >>> remedies.CBPStep._fields
      ('params', 'opt_state', 'state', 'masks')
    """

    params: Any
    opt_state: Any
    state: CBPState
    masks: tuple[Array, ...]


def continual_backprop_init(params: Any, *, layout: Layout) -> CBPState:
    """The initial :class:`CBPState` of a network: every unit of age 0, utility 0.

    Args:
      params: the parameter pytree.
      layout: its :class:`Layout`.

    Returns:
      A :class:`CBPState`.

    Examples:
      >>> import jax.numpy as jnp
      >>> from relujax import remedies
      >>> params = {"l0": {"kernel": jnp.ones((2, 3)), "bias": jnp.zeros(3)},
      ...           "l1": {"kernel": jnp.ones((3, 1)), "bias": jnp.zeros(1)}}
      >>> remedies.continual_backprop_init(params, layout=remedies.sequential(["l0", "l1"])).age
      (Array([0, 0, 0], dtype=int32),)
    """
    _validation.instance("layout", layout, Layout, "a remedies.Layout")
    units = layout.units(params)
    zeros = tuple(jnp.zeros(u, jnp.float32) for u in units)
    return CBPState(
        zeros, zeros, tuple(jnp.zeros(u, jnp.int32) for u in units), jnp.zeros(len(units))
    )


def _per_layer(activations: Any, layout: Layout) -> list[Any]:
    """One activation array (or UnitStats) per layer, from a sequence or a site mapping."""
    n = len(layout.layers)
    if isinstance(activations, Mapping):
        names = list(activations)
        if all(layer.site is not None for layer in layout.layers):
            missing = [layer.site for layer in layout.layers if layer.site not in activations]
            if missing:
                raise ValueError(f"continual_backprop: no activations for sites {missing}.")
            return [activations[layer.site] for layer in layout.layers]
        if len(names) != n:
            raise ValueError(
                f"continual_backprop: activations has {len(names)} sites {names} but the layout "
                f"has {n} layers."
            )
        return [activations[name] for name in names]
    if isinstance(activations, (jax.Array, str)) or not isinstance(activations, Sequence):
        raise TypeError(
            "continual_backprop: activations must be a sequence with one [..., units] array "
            "per layer (or a mapping from site to array or UnitStats), got "
            f"{type(activations).__name__}."
        )
    if len(activations) != n:
        raise ValueError(
            f"continual_backprop: activations has {len(activations)} entries; the layout has "
            f"{n} layers."
        )
    return list(activations)


def _fold(rows: Array, units: int, flatten: str) -> Array:
    """Per-row values summed into their units (the inverse pattern of ``_rows``)."""
    r = rows.shape[0] // units
    if flatten == "channels_last":
        return rows.reshape(r, units).sum(axis=0)
    return rows.reshape(units, r).sum(axis=1)


def _outgoing_magnitude(layer: Layer, leaves: dict, units: int) -> Array:
    """:math:`\\sum_k |w_{ik}|` per unit over every outgoing array."""
    total = jnp.zeros(units, jnp.float32)
    for path in layer.outgoing:
        w = jnp.abs(leaves[path]).astype(jnp.float32)
        axis = layer.outgoing_axis % w.ndim
        rows = jnp.sum(w, axis=tuple(a for a in range(w.ndim) if a != axis))
        total = total + _fold(rows, units, layer.flatten)
    return total


def _compensation(layer: Layer, leaves: dict, value: Array, path: Path) -> Array:
    """:math:`\\sum_i f_i w_{i,\\cdot}` of one outgoing array, on its last (output) axis."""
    w = leaves[path].astype(jnp.float32)
    axis = layer.outgoing_axis % w.ndim
    v = _unit_axis_mask(_rows(value, w.shape[axis], layer.flatten), w.ndim, axis)
    return jnp.sum(w * v, axis=tuple(range(w.ndim - 1)))


def continual_backprop(
    params: Any,
    activations: Any,
    key: ArrayLike,
    state: CBPState,
    *,
    layout: Layout,
    opt_state: Any = None,
    replacement_rate: ArrayLike = 1e-4,
    decay: ArrayLike = 0.99,
    maturity: ArrayLike = 100,
    utility: str = "contribution",
    adam_reset: str = "per_param",
) -> CBPStep:
    r"""One step of continual backpropagation's generate-and-test (Dohare et al. 2024).

    Continual backprop (Dohare, Hernandez-Garcia, Lan, Rahman, Mahmood, Sutton, "Loss of
    plasticity in deep continual learning", Nature 2024, Algorithm 1) keeps, for every unit
    :math:`i` of every hidden layer, an age :math:`a_i`, a running mean activation
    :math:`f_i` and a running utility :math:`u_i` (decay :math:`\eta`), and after each
    update replaces a small fraction of its mature, least useful units. Per step, with
    :math:`h_i` the unit's activations on the batch (averaged over the batch and spatial
    positions) and :math:`W_{i\cdot}` its outgoing weights:

    .. math::
        a_i &\leftarrow a_i + 1, \qquad c_i = 1 - \eta^{a_i}, \\
        f_i &\leftarrow \eta f_i + (1 - \eta)\,\overline{h_i}, \qquad
        \hat f_i = f_i / c_i, \\
        y_i &= \textstyle\sum_k |W_{ik}| \cdot \overline{|h_i|} \ \text{(contribution)}
        \quad\text{or}\quad \sum_k |W_{ik}| \cdot \overline{|h_i - \hat f_i|}
        \ \text{(mean-corrected)}, \\
        u_i &\leftarrow \eta u_i + (1 - \eta)\,y_i, \qquad \hat u_i = u_i / c_i.

    The units with :math:`a_i > m` (``maturity``) are eligible; a layer accumulates
    :math:`\rho\,n_{eligible}` (``replacement_rate``) units per step and replaces the integer
    part, the eligible units of lowest :math:`\hat u_i` (ties: the lower index). A
    replaced unit's mean contribution moves into the next layer's bias,
    :math:`b_k \leftarrow b_k + \hat f_i W_{ik}` (``Layer.outgoing_bias``; the output is
    unchanged on average), then the unit is recycled as by :func:`recycle`: fresh incoming
    weights from the layer's ``kernel_init`` (Dohare et al. draw Kaiming-uniform:
    ``kernel_init="he_uniform"``), bias 0, outgoing weights 0, and its optimizer entries
    reset (the per-weight Adam step count of :func:`adam` with ``adam_reset="per_param"``,
    as in their AdamGnT); its age, mean and utility restart at 0. Eq. 1 of the paper is the
    contribution utility; the mean-corrected one, with the bias-corrected means and the bias
    compensation, is that of the earlier version (Dohare, Sutton, Mahmood, "Continual
    Backprop: Stochastic Gradient Descent with Persistent Randomness", 2021). The paper's
    :math:`\sum_k` is a mean over :math:`k` in the authors' code: the same ranking, as
    units are ranked within a layer.

    Everything is traced: ``replacement_rate``, ``decay`` and ``maturity`` may be arrays
    (configurations vmapped), and one compilation serves every step.

    Args:
      params: the parameter pytree, after this step's update.
      activations: this step's hidden activations, one ``[..., units]`` array per layer of
        ``layout`` (or a mapping from site name to array, matched as in
        :func:`dormant_masks`); :class:`relujax.analysis.UnitStats` (from
        :func:`relujax.analysis.with_stats`) serve the contribution utility.
      key: a PRNG key for the fresh weights.
      state: the :class:`CBPState` (:func:`continual_backprop_init` at the start).
      layout: the :class:`Layout` of ``params``.
      opt_state: the Optax state of ``params``, or None.
      replacement_rate: :math:`\rho \in [0, 1]`, units replaced per eligible unit and step
        (Dohare et al.: :math:`10^{-4}` and below).
      decay: :math:`\eta \in [0, 1)` (0.99).
      maturity: :math:`m \ge 0`, the age a unit must exceed to be replaced (100).
      utility: ``"contribution"`` or ``"mean_corrected"``.
      adam_reset: ``"per_param"`` or ``"moments"``, see :func:`recycle`.

    Returns:
      A :class:`CBPStep` ``(params, opt_state, state, masks)``.

    Examples:
      >>> import jax, jax.numpy as jnp
      >>> from relujax import remedies
      >>> params = {"l0": {"kernel": jnp.ones((1, 2)), "bias": jnp.zeros(2)},
      ...           "l1": {"kernel": jnp.array([[1.0], [2.0]]), "bias": jnp.zeros(1)}}
      >>> layout = remedies.sequential(["l0", "l1"])
      >>> state = remedies.continual_backprop_init(params, layout=layout)
      >>> h = jnp.array([[1.0, 3.0]])  # unit 0 contributes 1 * 1, unit 1 3 * 2
      >>> out = remedies.continual_backprop(params, [h], jax.random.key(0), state,
      ...     layout=layout, replacement_rate=0.5, maturity=0)
      >>> out.masks
      (Array([ True, False], dtype=bool),)
      >>> out.params["l1"]["bias"], out.params["l1"]["kernel"].ravel()
      (Array([1.], dtype=float32), Array([0., 2.], dtype=float32))
    """
    _validation.instance("layout", layout, Layout, "a remedies.Layout")
    if not isinstance(state, CBPState):
        raise TypeError(
            "continual_backprop: state must be a CBPState (continual_backprop_init), got "
            f"{type(state).__name__}."
        )
    _validation.choice("continual_backprop: utility", utility, UTILITIES)
    _validation.number_array(
        "continual_backprop: replacement_rate", replacement_rate, minimum=0.0, maximum=1.0
    )
    _validation.number_array("continual_backprop: decay", decay, minimum=0.0, maximum=1.0)
    fixed = _validation.concrete(decay)
    if fixed is not None and (fixed >= 1).any():
        raise ValueError(f"continual_backprop: decay must be in [0, 1), got {decay!r}.")
    _validation.number_array("continual_backprop: maturity", maturity, minimum=0.0)
    key = _validation.key("continual_backprop: key", key)
    acts = _per_layer(activations, layout)
    # One compiled program per (layout, shapes, options), as for recycle: eager calls do not
    # dispatch op by op, and inside an outer jit this inlines.
    return _continual_backprop_jit(
        params,
        acts,
        key,
        state,
        opt_state,
        replacement_rate,
        decay,
        maturity,
        layout=layout,
        utility=utility,
        adam_reset=adam_reset_option("continual_backprop", adam_reset),
    )


@functools.partial(jax.jit, static_argnames=("layout", "utility", "adam_reset"))
def _continual_backprop_jit(
    params: Any,
    acts: list[Any],
    key: Array,
    state: CBPState,
    opt_state: Any,
    replacement_rate: Array,
    decay: Array,
    maturity: Array,
    *,
    layout: Layout,
    utility: str,
    adam_reset: str,
) -> CBPStep:
    units = layout.units(params)
    leaves = dict(zip(leaf_paths(params), jax.tree.leaves(params), strict=True))

    utilities, means, ages, pending, masks = [], [], [], [], []
    bias_delta: dict[Path, Array] = {}
    decay = jnp.asarray(decay, jnp.float32)
    for i, (layer, h, u_count) in enumerate(zip(layout.layers, acts, units, strict=True)):
        age = state.age[i] + 1
        correction = 1 - decay ** age.astype(jnp.float32)
        if isinstance(h, analysis.UnitStats):
            if utility == "mean_corrected":
                raise TypeError(
                    "continual_backprop: the mean-corrected utility needs the activations "
                    "themselves ([..., units] arrays), not UnitStats."
                )
            batch_mean, batch_abs = h.out_mean, h.out_abs_mean
        else:
            h = jnp.asarray(h, jnp.float32)
            if h.ndim < 1 or h.shape[-1] != u_count:
                raise ValueError(
                    f"continual_backprop: activations[{i}] has shape {h.shape}; layer {i} has "
                    f"{u_count} units: [..., {u_count}]."
                )
            axes = tuple(range(h.ndim - 1))
            batch_mean, batch_abs = jnp.mean(h, axis=axes), jnp.mean(jnp.abs(h), axis=axes)
        mean = decay * state.mean[i] + (1 - decay) * batch_mean
        mean_hat = mean / correction
        if utility == "mean_corrected" and not isinstance(h, analysis.UnitStats):
            axes = tuple(range(h.ndim - 1))
            centered = h - mean_hat.reshape((1,) * (h.ndim - 1) + (-1,))
            batch_abs = jnp.mean(jnp.abs(centered), axis=axes)
        y = _outgoing_magnitude(layer, leaves, u_count) * batch_abs
        u = decay * state.utility[i] + (1 - decay) * y
        eligible = age > maturity
        owed = state.pending[i] + replacement_rate * jnp.sum(eligible)
        n = jnp.floor(owed)
        score = jnp.where(eligible, u / correction, jnp.inf)
        rank = jnp.argsort(jnp.argsort(score, stable=True), stable=True)
        replace = eligible & (rank < n)
        for w_path, b_path in zip(layer.outgoing, layer.outgoing_bias, strict=False):
            delta = _compensation(layer, leaves, jnp.where(replace, mean_hat, 0.0), w_path)
            bias_delta[b_path] = bias_delta.get(b_path, 0.0) + delta
        utilities.append(jnp.where(replace, 0.0, u))
        means.append(jnp.where(replace, 0.0, mean))
        ages.append(jnp.where(replace, 0, age))
        pending.append(owed - n)
        masks.append(replace)

    flat, treedef = jax.tree.flatten(params)
    flat = [
        (x + bias_delta[p].astype(x.dtype)) if p in bias_delta else x
        for p, x in zip(leaf_paths(params), flat, strict=True)
    ]
    compensated = jax.tree.unflatten(treedef, flat)
    out = recycle(
        compensated, masks, key, layout=layout, opt_state=opt_state, adam_reset=adam_reset
    )
    new_state = CBPState(tuple(utilities), tuple(means), tuple(ages), jnp.stack(pending))
    return CBPStep(out.params, out.opt_state, new_state, out.masks)
