"""Resetting the optimizer state of re-initialized weights, one rule for every remedy."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import jax
import jax.numpy as jnp
from jax import Array

from relujax import _validation
from relujax.remedies._adam import ScaleByAdamPerParamState
from relujax.remedies._l2_init import L2InitState

#: How a remedy resets Adam for the weights it re-initializes (``adam_reset=`` of
#: :func:`relujax.remedies.recycle` and the other remedies).
ADAM_RESETS = ("per_param", "moments")


def adam_reset_option(where: str, adam_reset: Any) -> str:
    """``adam_reset`` checked: one of :data:`ADAM_RESETS`."""
    return _validation.choice(f"{where}: adam_reset", adam_reset, ADAM_RESETS)


def _shapes(tree: Any) -> list[tuple[int, ...]]:
    return [jnp.shape(x) for x in jax.tree.leaves(tree)]


def _like(node: Any, treedef: Any, shapes: list[tuple[int, ...]]) -> bool:
    """Whether ``node`` has the parameters' tree structure and leaf shapes."""
    if node is None:
        return False
    leaves, nodedef = jax.tree.flatten(node)
    return nodedef == treedef and [jnp.shape(x) for x in leaves] == shapes


def _global_count_adam(node: Any, treedef: Any, shapes: list[tuple[int, ...]]) -> bool:
    """An Adam-type state (count, mu, nu...) whose one scalar count bias-corrects every weight."""
    fields = getattr(node, "_fields", ())
    if not {"count", "mu", "nu"} <= set(fields):  # Adam, AdamW, AMSGrad, AdaBelief, Yogi...
        return False
    return jnp.ndim(node.count) == 0 and _like(node.mu, treedef, shapes)


def reset_state(
    opt_state: Any,
    params: Any,
    new_params: Any,
    touched: Sequence[Array | None],
    *,
    adam_reset: str,
    where: str,
) -> Any:
    """The optimizer state with the ``touched`` entries of re-initialized weights reset.

    Every subtree shaped like ``params`` (Adam's ``mu`` and ``nu``, momentum traces,
    wherever they sit: chains, ``inject_hyperparams``) has the touched entries zeroed. The
    per-entry counts of :func:`~relujax.remedies.scale_by_adam_per_param` are zeroed too with
    ``adam_reset="per_param"`` and kept with ``"moments"``; the anchor of
    :func:`~relujax.remedies.add_decayed_weights_to_init` takes the new values of the touched
    weights. Scalar leaves (global step counts, schedule counts) are never changed.

    With ``adam_reset="per_param"``, an Adam-type state with one global count (plain
    :func:`optax.adam`) cannot be reset right and raises ``ValueError``.

    Args:
      opt_state: an Optax state of ``params``.
      params: the parameters before the reset (they fix what "shaped like" means).
      new_params: the parameters after it.
      touched: per leaf of ``params`` (``jax.tree.leaves`` order), a boolean array of the
        leaf's shape marking re-initialized entries, or None for an untouched leaf.
      adam_reset: ``"per_param"`` or ``"moments"``.
      where: the public function's name, for error messages.

    Returns:
      The new optimizer state.
    """
    treedef = jax.tree.structure(params)
    shapes = _shapes(params)
    new_leaves = jax.tree.leaves(new_params)

    def zero(node: Any) -> Any:
        leaves = jax.tree.leaves(node)
        out = [
            x if t is None else jnp.where(t, jnp.zeros_like(x), x)
            for x, t in zip(leaves, touched, strict=True)
        ]
        return jax.tree.unflatten(treedef, out)

    def is_node(node: Any) -> bool:
        return (
            isinstance(node, (ScaleByAdamPerParamState, L2InitState))
            or _like(node, treedef, shapes)
            or (adam_reset == "per_param" and _global_count_adam(node, treedef, shapes))
        )

    def reset(node: Any) -> Any:
        if isinstance(node, ScaleByAdamPerParamState):
            if not _like(node.mu, treedef, shapes):
                return node
            count = zero(node.count) if adam_reset == "per_param" else node.count
            return ScaleByAdamPerParamState(count, zero(node.mu), zero(node.nu))
        if isinstance(node, L2InitState):
            if not _like(node.init_params, treedef, shapes):
                return node
            anchor = jax.tree.leaves(node.init_params)
            out = [
                a if t is None else jnp.where(t, n.astype(a.dtype), a)
                for a, n, t in zip(anchor, new_leaves, touched, strict=True)
            ]
            return L2InitState(jax.tree.unflatten(treedef, out))
        if _like(node, treedef, shapes):
            return zero(node)
        if _global_count_adam(node, treedef, shapes):
            raise ValueError(
                f"{where}: adam_reset='per_param' needs one step count per weight, but the "
                f"optimizer state holds {type(node).__name__} with one global count (e.g. "
                "optax.adam). Build the optimizer with relujax.remedies.adam, adamw or "
                "scale_by_adam_per_param, or pass adam_reset='moments' to zero the moments and "
                "keep the global count (the re-initialized weights' next updates are then about "
                "(1 - b1) / sqrt(1 - b2) times those of a fresh Adam)."
            )
        return node

    return jax.tree.map(reset, opt_state, is_leaf=is_node)
