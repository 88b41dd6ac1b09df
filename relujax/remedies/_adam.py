"""Adam with one step count per parameter entry, so that a recycled weight restarts Adam."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import optax
from jax import Array
from jax.typing import ArrayLike

from relujax import _validation

_INT32_MAX = jnp.iinfo(jnp.int32).max


class ScaleByAdamPerParamState(NamedTuple):
    """State of :func:`scale_by_adam_per_param`.

    Attributes:
      count: one int32 step count per parameter entry (a pytree shaped like the parameters).
      mu: first moments, shaped like the parameters.
      nu: second moments, shaped like the parameters.

    Examples:
      >>> import jax.numpy as jnp
      >>> from relujax import remedies
      >>> remedies.scale_by_adam_per_param().init({"w": jnp.zeros(3)}).count
      {'w': Array([0, 0, 0], dtype=int32)}
    """

    count: Any
    mu: Any
    nu: Any


def _check(b1: Any, b2: Any, eps: Any, eps_root: Any) -> None:
    # Hyperparameters may be traced (K configurations vmapped): only concrete ones are checked.
    _validation.number_array("scale_by_adam_per_param: b1", b1, minimum=0.0, maximum=1.0)
    _validation.number_array("scale_by_adam_per_param: b2", b2, minimum=0.0, maximum=1.0)
    _validation.number_array("scale_by_adam_per_param: eps", eps, minimum=0.0)
    _validation.number_array("scale_by_adam_per_param: eps_root", eps_root, minimum=0.0)


def _increment(count: Array) -> Array:
    return jnp.where(count < _INT32_MAX, count + 1, _INT32_MAX)


def _corrected(moment: Array, decay: Any, count: Array) -> Array:
    """``moment / (1 - decay**count)``, entrywise (optax's bias correction, per entry)."""
    return moment / (1 - decay**count).astype(moment.dtype)


def scale_by_adam_per_param(
    b1: ArrayLike = 0.9,
    b2: ArrayLike = 0.999,
    eps: ArrayLike = 1e-8,
    eps_root: ArrayLike = 0.0,
    *,
    mu_dtype: Any = None,
    nesterov: bool = False,
) -> optax.GradientTransformation:
    r"""Adam's scaling (Kingma & Ba 2015) with a step count per parameter entry.

    For every entry :math:`i` with gradient :math:`g_i` and its own count :math:`t_i`:

    .. math::
        t_i \leftarrow t_i + 1, \quad
        m_i \leftarrow \beta_1 m_i + (1 - \beta_1) g_i, \quad
        v_i \leftarrow \beta_2 v_i + (1 - \beta_2) g_i^2, \quad
        u_i = \frac{m_i / (1 - \beta_1^{t_i})}{\sqrt{v_i / (1 - \beta_2^{t_i}) +
        \epsilon_{root}} + \epsilon}

    Until a count is reset, every :math:`t_i` equals the step number and the updates are
    those of :func:`optax.scale_by_adam`. A remedy that re-initializes weights
    (:func:`relujax.remedies.recycle`, :func:`~relujax.remedies.reset_layers`,
    :func:`~relujax.remedies.continual_backprop`) sets their :math:`m_i = v_i = t_i = 0`, so
    their next updates are exactly those of a freshly initialized Adam; with one global
    count, zeroed moments are instead bias-corrected by :math:`1 - \beta^t \approx 1`, and
    the first update of a re-initialized weight is :math:`(1 - \beta_1) /
    \sqrt{1 - \beta_2} \approx 3.2` times a fresh Adam's. This is the per-weight step count
    of Dohare et al.'s AdamGnT ("Loss of plasticity in deep continual learning", Nature
    2024). The counts cost one int32 per parameter.

    Args:
      b1: decay of the first moment.
      b2: decay of the second moment.
      eps: added to the denominator.
      eps_root: added inside the square root.
      mu_dtype: dtype of the first moment (default: that of the parameters).
      nesterov: Nesterov momentum (Dozat 2016), as in :func:`optax.scale_by_adam`.

    Returns:
      An :class:`optax.GradientTransformation` whose state is a
      :class:`ScaleByAdamPerParamState`.

    Examples:
      >>> import jax.numpy as jnp, optax
      >>> from relujax import remedies
      >>> opt = remedies.scale_by_adam_per_param()
      >>> state = opt.init({"w": jnp.zeros(2)})
      >>> updates, state = opt.update({"w": jnp.array([0.5, -2.0])}, state)
      >>> updates["w"], state.count["w"]  # a first Adam step is sign(g)
      (Array([ 1., -1.], dtype=float32), Array([1, 1], dtype=int32))
    """
    _check(b1, b2, eps, eps_root)
    _validation.boolean("scale_by_adam_per_param: nesterov", nesterov)
    mu_dtype = None if mu_dtype is None else jnp.dtype(mu_dtype)

    def init_fn(params: Any) -> ScaleByAdamPerParamState:
        count = jax.tree.map(lambda p: jnp.zeros(jnp.shape(p), jnp.int32), params)
        mu = jax.tree.map(lambda p: jnp.zeros_like(p, dtype=mu_dtype), params)
        nu = jax.tree.map(jnp.zeros_like, params)
        return ScaleByAdamPerParamState(count, mu, nu)

    def update_fn(
        updates: Any, state: ScaleByAdamPerParamState, params: Any = None
    ) -> tuple[Any, ScaleByAdamPerParamState]:
        del params
        mu = optax.tree.update_moment(updates, state.mu, b1, 1)
        nu = optax.tree.update_moment_per_elem_norm(updates, state.nu, b2, 2)
        count = jax.tree.map(_increment, state.count)
        if nesterov:
            mu_hat = jax.tree.map(
                lambda m, g, c: (
                    b1 * _corrected(m, b1, _increment(c)) + (1 - b1) * _corrected(g, b1, c)
                ),
                mu,
                updates,
                count,
            )
        else:
            mu_hat = jax.tree.map(lambda m, c: _corrected(m, b1, c), mu, count)
        nu_hat = jax.tree.map(lambda v, c: _corrected(v, b2, c), nu, count)
        updates = jax.tree.map(lambda m, v: m / (jnp.sqrt(v + eps_root) + eps), mu_hat, nu_hat)
        mu = optax.tree.cast(mu, mu_dtype)
        nu = optax.tree.cast_like(nu, state.nu)
        return updates, ScaleByAdamPerParamState(count, mu, nu)

    return optax.GradientTransformation(init_fn, update_fn)  # pyright: ignore[reportArgumentType]


def adam(
    learning_rate: optax.ScalarOrSchedule,
    *,
    b1: ArrayLike = 0.9,
    b2: ArrayLike = 0.999,
    eps: ArrayLike = 1e-8,
    eps_root: ArrayLike = 0.0,
    mu_dtype: Any = None,
    nesterov: bool = False,
) -> optax.GradientTransformation:
    r""":func:`optax.adam` with a step count per parameter entry (recyclable).

    ``optax.chain(scale_by_adam_per_param(...), optax.scale_by_learning_rate(lr))``, the
    chain of :func:`optax.adam` with :func:`scale_by_adam_per_param` in place of
    :func:`optax.scale_by_adam`: the same updates until a remedy resets some weights, whose
    next updates are then those of a fresh Adam.

    Args:
      learning_rate: a scalar or an Optax schedule (its count stays global).
      b1: decay of the first moment.
      b2: decay of the second moment.
      eps: added to the denominator.
      eps_root: added inside the square root.
      mu_dtype: dtype of the first moment.
      nesterov: Nesterov momentum.

    Returns:
      An :class:`optax.GradientTransformation`.

    Examples:
      >>> import jax.numpy as jnp
      >>> from relujax import remedies
      >>> opt = remedies.adam(0.1)
      >>> updates, _ = opt.update({"w": jnp.array([3.0])}, opt.init({"w": jnp.zeros(1)}))
      >>> updates["w"]
      Array([-0.1], dtype=float32)
    """
    return optax.chain(
        scale_by_adam_per_param(b1, b2, eps, eps_root, mu_dtype=mu_dtype, nesterov=nesterov),
        optax.scale_by_learning_rate(learning_rate),
    )


def adamw(
    learning_rate: optax.ScalarOrSchedule,
    *,
    b1: ArrayLike = 0.9,
    b2: ArrayLike = 0.999,
    eps: ArrayLike = 1e-8,
    eps_root: ArrayLike = 0.0,
    mu_dtype: Any = None,
    weight_decay: optax.ScalarOrSchedule = 1e-4,
    mask: Any | Callable[[Any], Any] = None,
    nesterov: bool = False,
) -> optax.GradientTransformation:
    r""":func:`optax.adamw` with a step count per parameter entry (recyclable).

    ``optax.chain(scale_by_adam_per_param(...), optax.add_decayed_weights(weight_decay,
    mask), optax.scale_by_learning_rate(lr))``: decoupled weight decay (Loshchilov & Hutter
    2019) over :func:`scale_by_adam_per_param`, the chain of :func:`optax.adamw`.

    Args:
      learning_rate: a scalar or an Optax schedule.
      b1: decay of the first moment.
      b2: decay of the second moment.
      eps: added to the denominator.
      eps_root: added inside the square root.
      mu_dtype: dtype of the first moment.
      weight_decay: the decoupled weight decay.
      mask: which parameters are decayed, as in :func:`optax.add_decayed_weights`.
      nesterov: Nesterov momentum.

    Returns:
      An :class:`optax.GradientTransformation`.

    Examples:
      >>> import jax.numpy as jnp
      >>> from relujax import remedies
      >>> opt = remedies.adamw(0.1, weight_decay=0.5)
      >>> params = {"w": jnp.array([2.0])}
      >>> updates, _ = opt.update({"w": jnp.array([3.0])}, opt.init(params), params)
      >>> updates["w"]  # -0.1 * (1 + 0.5 * 2)
      Array([-0.2], dtype=float32)
    """
    return optax.chain(
        scale_by_adam_per_param(b1, b2, eps, eps_root, mu_dtype=mu_dtype, nesterov=nesterov),
        optax.add_decayed_weights(weight_decay, mask),
        optax.scale_by_learning_rate(learning_rate),
    )
