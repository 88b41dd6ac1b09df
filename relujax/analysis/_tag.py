"""Mark any array as an activation site: an identity that shows up in a jaxpr by name."""

from __future__ import annotations

import functools
from collections.abc import Callable

import jax
from jax import Array
from jax.typing import ArrayLike

#: ``jit`` equations whose ``name`` starts with this prefix are tags; the rest is the site name.
TAG_PREFIX = "relujax_tag:"


@functools.cache
def _identity(name: str) -> Callable[[ArrayLike], Array]:
    def identity(x):
        return x

    identity.__name__ = identity.__qualname__ = TAG_PREFIX + name
    return jax.jit(identity)


def tag(x: ArrayLike, name: str) -> Array:
    """Marks ``x`` as an activation site called ``name``; returns ``x`` unchanged.

    Use it for activations :func:`collect` does not recognise (a hand-written
    ``jnp.where(x > 0, x, 0)``, a PReLU layer of another library) or to observe any
    intermediate array. In a jaxpr the tag is one ``jit`` equation named
    ``relujax_tag:<name>`` wrapping the identity; XLA inlines it, so outside
    :func:`collect` / :func:`with_stats` it costs nothing under ``jit`` (called eagerly it is
    one dispatch of a jitted identity). The tagged array is both pre-activation and output: a
    unit fires where ``x > 0``. Gradients pass through unchanged.

    A tag used more than once (in a Python loop, say) gives sites ``name``, ``name_1``, ...;
    inside ``lax.scan`` it is one site pooled over the iterations.

    Args:
      x: array to observe; its last axis is the unit axis.
      name: site name (non-empty string).

    Returns:
      ``x`` as an array.

    Raises:
      TypeError: if ``name`` is not a non-empty string.

    Examples:
      >>> import jax, jax.numpy as jnp
      >>> from relujax import analysis
      >>> def f(x):
      ...     return analysis.tag(jnp.where(x > 0, x, 0.0), "my_relu")
      >>> stats = analysis.collect(f, jnp.array([[[-1.0, 2.0]], [[3.0, -4.0]]]))
      >>> list(stats), stats["my_relu"].firing_rate
      (['my_relu'], Array([0.5, 0.5], dtype=float32))
      >>> jax.grad(lambda x: analysis.tag(x, "t").sum())(jnp.ones(2))
      Array([1., 1.], dtype=float32)
    """
    if not isinstance(name, str) or not name:
        raise TypeError(f"tag: name must be a non-empty string, got {name!r}.")
    return _identity(name)(x)
