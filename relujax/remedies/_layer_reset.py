"""Layer reset (Nikishin et al. 2022): re-initialize whole layers and their optimizer state."""

from __future__ import annotations

import functools
from collections.abc import Callable, Sequence
from typing import Any

import jax
import jax.numpy as jnp
from jax import Array
from jax.typing import ArrayLike

from relujax import _validation
from relujax.remedies._layout import Path, as_path, leaf_paths
from relujax.remedies._opt_state import adam_reset_option, reset_state


def _selected(params: Any, layers: Sequence[Path]) -> list[bool]:
    """Per leaf of ``params``: whether its path starts with one of ``layers``."""
    paths = leaf_paths(params)
    chosen = [any(p[: len(layer)] == layer for layer in layers) for p in paths]
    for layer in layers:
        if not any(p[: len(layer)] == layer for p in paths):
            known = sorted({"/".join(p[:-1]) or "/".join(p) for p in paths})
            raise ValueError(
                f"reset_layers: layers names {'/'.join(layer)!r}, which holds no parameter; "
                f"layers are paths of subtrees such as {', '.join(map(repr, known))}."
            )
    return chosen


def reset_layers(
    params: Any,
    key: ArrayLike,
    *,
    init: Callable[[Array], Any],
    layers: Sequence[str | int | Sequence[str | int]],
    opt_state: Any = None,
    when: ArrayLike = True,
    adam_reset: str = "per_param",
) -> tuple[Any, Any]:
    r"""Re-initializes the parameters under ``layers`` and resets their optimizer state.

    The periodic reset of Nikishin et al. ("The Primacy Bias in Deep Reinforcement
    Learning", ICML 2022), who re-initialize the last :math:`k` layers of the network every
    :math:`N` updates (pass their paths as ``layers``, and ``when=remedies.due(step, N)``).
    Every leaf whose path starts with a path of ``layers`` takes its value in ``init(key)``, a
    fresh draw of the whole parameter pytree; its optimizer entries are reset as by
    :func:`recycle` (moments zeroed; the per-weight counts of :func:`adam` zeroed with
    ``adam_reset="per_param"``; the anchor of :func:`add_decayed_weights_to_init` moved to the
    new values). Other leaves and states are returned bit for bit. The reset is inside
    ``lax.cond`` on ``when``.

    Args:
      params: the parameter pytree.
      key: a PRNG key, passed to ``init``.
      init: a function from a key to a fresh parameter pytree of ``params``' structure (e.g.
        ``lambda k: model.init(k, x)["params"]``, or ``nnx.state`` of a new model).
      layers: paths of the subtrees to reset (``"params/Dense_2"``, ``("layers", 2)``).
      opt_state: the Optax state of ``params``, or None.
      when: a (traced) boolean; when false nothing changes.
      adam_reset: ``"per_param"`` or ``"moments"`` (see :func:`recycle`).

    Returns:
      ``(params, opt_state)``.

    Examples:
      >>> import jax, jax.numpy as jnp
      >>> from relujax import remedies
      >>> params = {"l0": {"w": jnp.ones(2)}, "l1": {"w": jnp.ones(2)}}
      >>> fresh = lambda k: {"l0": {"w": jnp.zeros(2)}, "l1": {"w": jnp.full(2, 5.0)}}
      >>> new, _ = remedies.reset_layers(params, jax.random.key(0), init=fresh, layers=["l1"])
      >>> new["l0"]["w"], new["l1"]["w"]
      (Array([1., 1.], dtype=float32), Array([5., 5.], dtype=float32))
    """
    adam_reset = adam_reset_option("reset_layers", adam_reset)
    key = _validation.key("reset_layers: key", key)
    if not callable(init):
        raise TypeError(f"reset_layers: init must be a function of a key, got {init!r}.")
    if isinstance(layers, (str, int)) or not isinstance(layers, Sequence) or not layers:
        raise TypeError(
            f"reset_layers: layers must be a non-empty sequence of subtree paths, got {layers!r}."
        )
    paths = tuple(as_path(p, name="reset_layers: layers") for p in layers)
    return _reset_layers_jit(
        params, key, opt_state, when, init=init, layers=paths, adam_reset=adam_reset
    )


@functools.partial(jax.jit, static_argnames=("init", "layers", "adam_reset"))
def _reset_layers_jit(
    params: Any,
    key: Array,
    opt_state: Any,
    when: Array,
    *,
    init: Callable[[Array], Any],
    layers: tuple[Path, ...],
    adam_reset: str,
) -> tuple[Any, Any]:
    params = jax.tree.map(jnp.asarray, params)
    chosen = _selected(params, layers)

    def apply(p: Any, state: Any, k: Array) -> tuple[Any, Any]:
        fresh = init(k)
        if jax.tree.structure(fresh) != jax.tree.structure(p):
            raise ValueError(
                "reset_layers: init(key) must return a pytree of params' structure, got "
                f"{jax.tree.structure(fresh)} for {jax.tree.structure(p)}."
            )
        leaves, treedef = jax.tree.flatten(p)
        new = [
            jnp.asarray(f).astype(x.dtype) if c else x
            for x, f, c in zip(leaves, jax.tree.leaves(fresh), chosen, strict=True)
        ]
        new_params = jax.tree.unflatten(treedef, new)
        if state is None:
            return new_params, None
        touched = [
            jnp.ones(x.shape, bool) if c else None for x, c in zip(leaves, chosen, strict=True)
        ]
        return new_params, reset_state(
            state, p, new_params, touched, adam_reset=adam_reset, where="reset_layers"
        )

    return jax.lax.cond(
        jnp.asarray(when, bool), apply, lambda p, s, k: (p, s), params, opt_state, key
    )
