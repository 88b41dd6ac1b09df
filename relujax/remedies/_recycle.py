"""Recycle units: fresh incoming weights, zero outgoing weights, a fresh optimizer state."""

from __future__ import annotations

import functools
from collections.abc import Sequence
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
from jax import Array
from jax.typing import ArrayLike

from relujax import _validation
from relujax.remedies._layout import Layer, Layout, leaf_paths
from relujax.remedies._opt_state import adam_reset_option, reset_state


class Recycled(NamedTuple):
    """What :func:`recycle` and :func:`redo` return.

    Attributes:
      params: the parameters with the recycled units re-initialized.
      opt_state: the optimizer state with their entries reset (None if none was given).
      masks: one boolean ``[units]`` array per layer: the units that were recycled.
    """

    params: Any
    opt_state: Any
    masks: tuple[Array, ...]


def _unit_axis_mask(mask: Array, ndim: int, axis: int) -> Array:
    """``mask`` shaped to broadcast along ``axis`` of an ``ndim``-D array (no rank promotion)."""
    shape = [1] * ndim
    shape[axis] = mask.shape[0]
    return mask.reshape(shape)


def _rows(mask: Array, rows: int, flatten: str) -> Array:
    """The unit mask expanded to ``rows`` flattened rows (``rows = units * r``)."""
    r = rows // mask.shape[0]
    if r == 1:
        return mask
    if flatten == "channels_last":
        return jnp.tile(mask, r)  # row f belongs to unit f % units
    return jnp.repeat(mask, r)  # row f belongs to unit f // r


def _fresh(layer: Layer, key: Array, kernel: Array) -> tuple[Array, Array | None]:
    """A full fresh kernel (and bias, for a paired initializer) of the layer."""
    if layer.paired:
        k, b = layer.initializer.pair(key, kernel.shape, kernel.dtype)  # pyright: ignore[reportFunctionMemberAccess]
        return k, b
    return layer.initializer(key, kernel.shape, kernel.dtype), None


def _check_masks(masks: Sequence[ArrayLike], units: tuple[int, ...]) -> tuple[Array, ...]:
    if isinstance(masks, (jax.Array, str)) or not isinstance(masks, Sequence):
        raise TypeError(
            "masks must be a sequence with one boolean [units] array per layer of the layout, "
            f"got {type(masks).__name__}."
        )
    if len(masks) != len(units):
        raise ValueError(f"masks has {len(masks)} entries; the layout has {len(units)} layers.")
    out = []
    for i, (m, u) in enumerate(zip(masks, units, strict=True)):
        m = jnp.asarray(m)
        if m.shape != (u,):
            raise ValueError(f"masks[{i}] has shape {m.shape}; layer {i} has {u} units: ({u},).")
        out.append(m.astype(bool))
    return tuple(out)


def recycle(
    params: Any,
    masks: Sequence[ArrayLike],
    key: ArrayLike,
    *,
    layout: Layout,
    opt_state: Any = None,
    adam_reset: str = "per_param",
) -> Recycled:
    r"""Recycles the units selected by ``masks`` (ReDo's reset, Sokar et al. 2023).

    For every layer :math:`l` of ``layout`` and every unit :math:`j` with
    ``masks[l][j]`` true:

    - incoming weights :math:`W_l[\dots, j]` are drawn afresh from the layer's
      ``kernel_init``, and the bias :math:`b_l[j]` is set to 0 (or to the bias of the same
      joint draw, for a paired initializer such as RAI);
    - outgoing weights, the rows of unit :math:`j` along the next kernel's fan-in axis
      (all ``r`` rows of a flattened channel), are set to 0;
    - in ``opt_state``, every subtree shaped like ``params`` (Adam's ``mu`` and ``nu``,
      momentum) has those incoming and outgoing entries set to 0, and so has the per-weight
      step count of :func:`scale_by_adam_per_param` (:func:`relujax.remedies.adam`,
      ``adamw``) with ``adam_reset="per_param"``: the recycled weights' next updates are
      those of a freshly initialized Adam (Dohare et al. 2024 reset a per-weight count the
      same way). ``adam_reset="moments"`` keeps the counts (the reset of Sokar et al.'s
      code); with one global count (:func:`optax.adam`) that is the only reset possible, and
      ``"per_param"`` raises ``ValueError`` for such a state. The anchor of
      :func:`add_decayed_weights_to_init` takes the recycled weights' new values.

    Every other entry is returned bit for bit. Since a recycled unit's outgoing weights are 0,
    its new incoming weights do not change the network's output; the output changes only by
    the removed contribution of the unit's *old* activation (nothing at all for a dead
    unit). All incoming weights are re-drawn before any outgoing weight is zeroed, so a
    recycled unit's outgoing rows are zero even when it feeds another recycled unit.

    The function is pure and traceable: ``masks`` and ``key`` are arrays, so under
    ``jax.jit`` (with ``layout`` static or closed over) one compilation serves every set of
    recycled units, and it works under ``jax.vmap`` over stacked models. Fresh kernels are
    drawn for whole layers and selected with ``where``; the cost is one initializer call per
    layer.

    Args:
      params: the parameter pytree (dicts, lists, ``nnx.State``, Linen ``params``...).
      masks: one boolean ``[units]`` array per layer of ``layout``: the units to recycle.
      key: a PRNG key for the fresh weights (split over the layers).
      layout: the :class:`Layout` of ``params``.
      opt_state: an Optax state of these parameters, or None.
      adam_reset: ``"per_param"`` (zero the recycled weights' moments and per-weight step
        counts) or ``"moments"`` (zero the moments, keep every count).

    Returns:
      A :class:`Recycled` ``(params, opt_state, masks)``.

    Raises:
      ValueError: if a layout path is missing from ``params``, the shapes do not fit, a
        mask does not have its layer's ``[units]`` shape, or ``adam_reset="per_param"`` meets
        an Adam state with one global count.

    Examples:
      >>> import jax, jax.numpy as jnp
      >>> from relujax import remedies
      >>> params = {"l0": {"kernel": jnp.ones((2, 3)), "bias": jnp.ones(3)},
      ...           "l1": {"kernel": jnp.ones((3, 1)), "bias": jnp.zeros(1)}}
      >>> layout = remedies.sequential(["l0", "l1"])
      >>> new = remedies.recycle(params, [jnp.array([False, True, False])],
      ...                        jax.random.key(0), layout=layout).params
      >>> new["l0"]["bias"], new["l1"]["kernel"].ravel()
      (Array([1., 0., 1.], dtype=float32), Array([1., 0., 1.], dtype=float32))
    """
    _validation.instance("layout", layout, Layout, "a remedies.Layout")
    # One compiled program per (layout, shapes): eager calls do not dispatch op by op, and
    # inside an outer jit this inlines.
    adam_reset = adam_reset_option("recycle", adam_reset)
    key = _validation.key("recycle: key", key)
    return _recycle_jit(params, masks, key, opt_state, layout=layout, adam_reset=adam_reset)


@functools.partial(jax.jit, static_argnames=("layout", "adam_reset"))
def _recycle_jit(
    params: Any, masks: Any, key: Array, opt_state: Any, *, layout: Layout, adam_reset: str
):
    units = layout.units(params)
    masks = _check_masks(masks, units)
    leaves, treedef = jax.tree.flatten(params)
    index = {path: i for i, path in enumerate(leaf_paths(params))}
    new = [jnp.asarray(x) for x in leaves]
    touched: list[Array | None] = [None] * len(new)

    def touch(i: int, m: Array) -> None:
        prev = touched[i]
        touched[i] = m if prev is None else prev | m

    keys = jax.random.split(key, len(layout.layers)) if layout.layers else []
    # Pass 1: fresh incoming weights.
    for layer, mask, k in zip(layout.layers, masks, keys, strict=True):
        i = index[layer.kernel]
        w = new[i]
        fresh_w, fresh_b = _fresh(layer, k, w)
        m = jnp.broadcast_to(_unit_axis_mask(mask, w.ndim, -1), w.shape)
        new[i] = jnp.where(m, fresh_w, w)
        touch(i, m)
        if layer.bias is not None:
            j = index[layer.bias]
            b = new[j]
            value = jnp.zeros_like(b) if fresh_b is None else fresh_b.astype(b.dtype)
            new[j] = jnp.where(mask, value, b)
            touch(j, mask)
    # Pass 2: zero outgoing weights.
    for layer, mask in zip(layout.layers, masks, strict=True):
        for path in layer.outgoing:
            i = index[path]
            w = new[i]
            axis = layer.outgoing_axis % w.ndim
            rows = _rows(mask, w.shape[axis], layer.flatten)
            m = jnp.broadcast_to(_unit_axis_mask(rows, w.ndim, axis), w.shape)
            new[i] = jnp.where(m, jnp.zeros_like(w), w)
            touch(i, m)
    new_params = jax.tree.unflatten(treedef, new)
    new_opt = (
        None
        if opt_state is None
        else reset_state(
            opt_state, params, new_params, touched, adam_reset=adam_reset, where="recycle"
        )
    )
    return Recycled(new_params, new_opt, masks)
