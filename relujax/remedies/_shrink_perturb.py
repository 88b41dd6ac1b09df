"""Shrink and perturb (Ash & Adams 2020): scale the weights down and add noise."""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp
from jax import Array
from jax.typing import ArrayLike

from relujax import _validation


def shrink_perturb(
    params: Any,
    key: ArrayLike,
    *,
    shrink: ArrayLike,
    sigma: ArrayLike,
    noise: Callable[[Array], Any] | None = None,
    when: ArrayLike = True,
) -> Any:
    r"""Shrink and perturb: :math:`\theta \leftarrow \lambda\,\theta + \sigma\,\epsilon`.

    The shrink-perturb trick of Ash and Adams ("On Warm-Starting Neural Network Training",
    NeurIPS 2020), used against loss of plasticity by Dohare et al. (Nature 2024). With
    ``noise=None``, :math:`\epsilon \sim \mathcal N(0, 1)` entrywise, so the perturbation is
    :math:`\mathcal N(0, \sigma^2)` (Ash & Adams' form); leaf :math:`i` of ``params`` (in
    ``jax.tree.leaves`` order) takes ``jax.random.normal(jax.random.split(key, n)[i],
    shape, dtype)``. With ``noise``, :math:`\epsilon` = ``noise(key)``, a pytree like
    ``params``: pass a fresh initialization (``lambda k: init_params(k)``) for noise from the
    initializer's distribution, so that :math:`\lambda = 1 - \sigma` interpolates toward a new
    network. Apply it every :math:`N` steps with ``when=remedies.due(step, N)``: the update
    is inside ``lax.cond`` (no noise is drawn on other steps; under ``vmap`` with a batched
    ``when`` both branches run and are selected).

    Args:
      params: the parameter pytree (float leaves).
      key: a PRNG key.
      shrink: :math:`\lambda \in [0, 1]`; may be traced.
      sigma: :math:`\sigma \ge 0`; may be traced.
      noise: a function from a key to a pytree like ``params``, or None for
        :math:`\mathcal N(0, 1)`.
      when: a (traced) boolean; when false ``params`` are returned unchanged.

    Returns:
      The new parameters, of ``params``' structure and dtypes.

    Examples:
      >>> import jax, jax.numpy as jnp
      >>> from relujax import remedies
      >>> params = {"w": jnp.array([1.0, -2.0])}
      >>> remedies.shrink_perturb(params, jax.random.key(0), shrink=0.5, sigma=0.1,
      ...                         noise=lambda k: {"w": jnp.ones(2)})["w"]
      Array([ 0.6, -0.9], dtype=float32)
    """
    _validation.number_array("shrink_perturb: shrink", shrink, minimum=0.0, maximum=1.0)
    _validation.number_array("shrink_perturb: sigma", sigma, minimum=0.0)
    key = _validation.key("shrink_perturb: key", key)
    if noise is not None and not callable(noise):
        raise TypeError(
            f"shrink_perturb: noise must be a function of a key or None, got {noise!r}."
        )

    return _shrink_perturb_jit(params, key, shrink, sigma, when, noise=noise)


@functools.partial(jax.jit, static_argnames="noise")
def _shrink_perturb_jit(
    params: Any,
    key: Array,
    shrink: Array,
    sigma: Array,
    when: Array,
    *,
    noise: Callable[[Array], Any] | None,
) -> Any:
    def draw(k: Array) -> Any:
        if noise is not None:
            return noise(k)
        leaves, treedef = jax.tree.flatten(params)
        keys = jax.random.split(k, len(leaves))
        return jax.tree.unflatten(
            treedef,
            [
                jax.random.normal(ki, jnp.shape(x), jnp.asarray(x).dtype)
                for ki, x in zip(keys, leaves, strict=True)
            ],
        )

    def apply(p: Any, k: Array) -> Any:
        eps = draw(k)
        if jax.tree.structure(eps) != jax.tree.structure(p):
            raise ValueError(
                "shrink_perturb: noise(key) must return a pytree of params' structure, got "
                f"{jax.tree.structure(eps)} for {jax.tree.structure(p)}."
            )
        return jax.tree.map(
            lambda x, e: (shrink * x + sigma * e).astype(jnp.asarray(x).dtype), p, eps
        )

    params = jax.tree.map(jnp.asarray, params)
    return jax.lax.cond(jnp.asarray(when, bool), apply, lambda p, k: p, params, key)
