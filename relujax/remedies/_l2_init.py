"""L2 regularization toward the initial parameters (Kumar et al. 2023): an Optax transformation."""

from __future__ import annotations

from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import optax
from jax.typing import ArrayLike

from relujax import _validation


class L2InitState(NamedTuple):
    """State of :func:`add_decayed_weights_to_init`.

    Attributes:
      init_params: the anchor :math:`\\theta_0`, the parameters given to ``init``. The
        remedies that re-initialize weights (``recycle``, ``reset_layers``,
        ``continual_backprop``) move the anchor of those weights to their new values.

    Examples:
      >>> import jax.numpy as jnp
      >>> from relujax import remedies
      >>> remedies.add_decayed_weights_to_init(0.1).init({"w": jnp.ones(2)}).init_params
      {'w': Array([1., 1.], dtype=float32)}
    """

    init_params: Any


def add_decayed_weights_to_init(weight_decay: ArrayLike = 1e-2) -> optax.GradientTransformation:
    r"""Adds :math:`\lambda (\theta - \theta_0)` to the updates: L2 toward the initial weights.

    .. math:: u \leftarrow u + \lambda\,(\theta - \theta_0)

    the gradient of :math:`\frac{\lambda}{2} \lVert \theta - \theta_0 \rVert^2`, where
    :math:`\theta_0` are the parameters given to ``init``: "L2 Init", the regenerative
    regularization of Kumar, Marklund and Van Roy ("Maintaining Plasticity in Continual
    Learning via Regenerative Regularization", 2023). Like :func:`optax.add_decayed_weights`
    (which pulls toward 0) it goes where the regularizer's gradient belongs in a chain: before
    the optimizer's scaling for a coupled penalty (``optax.chain(add_decayed_weights_to_init(
    lam), optax.adam(lr))``, Kumar et al.'s form), or after it for a decoupled one.

    Args:
      weight_decay: :math:`\lambda \ge 0`; may be a traced array (configurations vmapped).

    Returns:
      An :class:`optax.GradientTransformation` (its ``update`` needs ``params``) whose state
      is an :class:`L2InitState`.

    Examples:
      >>> import jax.numpy as jnp
      >>> from relujax import remedies
      >>> reg = remedies.add_decayed_weights_to_init(0.5)
      >>> state = reg.init({"w": jnp.array([1.0, 2.0])})
      >>> updates, _ = reg.update({"w": jnp.zeros(2)}, state, {"w": jnp.array([3.0, 2.0])})
      >>> updates["w"]  # 0.5 * (theta - theta0)
      Array([1., 0.], dtype=float32)
    """
    _validation.number_array("add_decayed_weights_to_init: weight_decay", weight_decay, minimum=0.0)

    def init_fn(params: Any) -> L2InitState:
        return L2InitState(jax.tree.map(jnp.asarray, params))

    def update_fn(updates: Any, state: L2InitState, params: Any = None) -> tuple[Any, L2InitState]:
        if params is None:
            raise ValueError(
                "add_decayed_weights_to_init: update needs params (call "
                "update(grads, state, params))."
            )
        updates = jax.tree.map(
            lambda u, p, p0: (u + weight_decay * (p - p0)).astype(u.dtype),
            updates,
            params,
            state.init_params,
        )
        return updates, state

    return optax.GradientTransformation(init_fn, update_fn)  # pyright: ignore[reportArgumentType]
