"""Move parameters between the NNX and Linen versions of relujax modules."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import jax
from flax import nnx


def _linen_path(path: tuple[Any, ...]) -> tuple[str, ...]:
    out: list[str] = []
    for part in path:
        if isinstance(part, int) and out:
            out[-1] = f"{out[-1]}_{part}"
        else:
            out.append(str(part))
    return tuple(out)


def params_from_nnx(model: nnx.Module | nnx.State) -> dict[str, Any]:
    """Linen variables ``{"params": ...}`` holding an NNX model's ``nnx.Param`` values.

    NNX list entries ``layers/0/kernel`` become Linen names ``layers_0/kernel`` (the names
    Linen gives to submodules kept in a list in ``setup``), so
    ``relujax.linen.MLP(...).apply(params_from_nnx(nnx_mlp), x)`` equals ``nnx_mlp(x)``
    for the same constructor arguments; likewise CNN, PReLU. A state of parameters (such
    as the gradients ``nnx.grad`` returns) maps the same way, so NNX gradients compare
    directly with ``jax.grad`` of the Linen ``apply``.

    Args:
      model: an NNX module, e.g. :class:`relujax.nn.MLP`, or an ``nnx.State`` of its
        parameters.

    Returns:
      A nested dict ``{"params": {...}}`` of arrays.

    Examples:
      >>> import jax, jax.numpy as jnp, relujax
      >>> from flax import nnx
      >>> model = relujax.nn.MLP(8, [8], 8, rngs=nnx.Rngs(0))
      >>> params = relujax.linen.params_from_nnx(model)["params"]
      >>> sorted(params), params["layers_0"]["kernel"].shape
      (['layers_0', 'layers_1'], (8, 8))
    """
    if not isinstance(model, (nnx.Module, nnx.State)):
        raise TypeError(
            f"params_from_nnx: model must be an nnx.Module or an nnx.State, got "
            f"{type(model).__name__}."
        )
    params: dict[str, Any] = {}
    state = model if isinstance(model, nnx.State) else nnx.state(model, nnx.Param)
    for path, var in nnx.to_flat_state(state):
        node = params
        *parents, leaf = _linen_path(tuple(path))
        for name in parents:
            node = node.setdefault(name, {})
        node[leaf] = var.get_value() if isinstance(var, nnx.Variable) else var
    return {"params": params}


def update_nnx(model: nnx.Module, variables: dict[str, Any]) -> None:
    """Writes Linen ``variables["params"]`` into the matching ``nnx.Param``s of ``model``.

    The inverse of :func:`params_from_nnx`; every NNX parameter must be present with the
    same shape (a missing or mis-shaped one is an error, nothing is silently skipped).

    Args:
      model: an NNX module, updated in place.
      variables: Linen variables with a ``"params"`` entry (dicts or ``FrozenDict``).

    Examples:
      >>> import jax, jax.numpy as jnp, relujax
      >>> from flax import nnx
      >>> model = relujax.nn.PReLU()
      >>> relujax.linen.update_nnx(model, {"params": {"slope": jnp.array(0.5)}})
      >>> model.slope[...]
      Array(0.5, dtype=float32)
    """
    if not isinstance(model, nnx.Module):
        raise TypeError(f"update_nnx: model must be an nnx.Module, got {type(model).__name__}.")
    if not isinstance(variables, Mapping) or "params" not in variables:
        raise KeyError(
            "update_nnx: variables has no 'params' entry; pass what a Linen module's init "
            "returns ({'params': {...}})."
        )
    params = variables["params"]
    state = nnx.state(model, nnx.Param)
    for path, var in nnx.to_flat_state(state):
        node = params
        lpath = _linen_path(tuple(path))
        for name in lpath:
            if not isinstance(node, Mapping) or name not in node:
                raise KeyError(f"variables['params'] has no entry {'/'.join(lpath)}.")
            node = node[name]
        value = jax.numpy.asarray(node)
        if value.shape != var.shape:
            raise ValueError(
                f"params/{'/'.join(lpath)} has shape {value.shape}, the model expects {var.shape}."
            )
        var.set_value(value.astype(var.dtype))
    nnx.update(model, state)
