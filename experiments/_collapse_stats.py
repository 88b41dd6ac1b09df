"""What ``trained_collapse`` measures: the function a ReLU MLP computes, whether it is
constant, and binomial intervals for the fraction of nets that are.

The networks are ``relujax.nn.MLP`` parameter trees as plain dicts,
``{"layers": {i: {"kernel": [d_in, d_out], "bias": [d_out]}}}``: ``len(layers) - 1`` hidden
ReLU layers and a linear readout. :func:`forward` evaluates them independently of the
sweep's model (the experiment checks that both agree on the test loss).

A trained net has *collapsed* when it is (numerically) a constant function on the input box:
the variance of its output over a dense grid, relative to the target's variance there, is at
most :data:`THRESHOLD`. A net is *born dead* when, at initialization, some hidden layer is
zero on the whole grid: it then stays constant whatever the training, since no gradient
reaches that layer or the ones before it. (:func:`relujax.analysis.born_dead_probability`
uses the same criterion. It used to test whether the last hidden layer takes one value on
the grid in float32; in deep RAI nets a live layer's variation can fall below float32
resolution, so a few nets pass that test and are not dead: training revives them.
:func:`float_constant` is that former criterion, kept as a diagnostic.)
"""

from __future__ import annotations

import math
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from experiments._stats import Interval

#: Relative output variance at or below which a trained net counts as collapsed.
THRESHOLD = 1e-3
#: Grid MSE, relative to the target's variance, at or below which a net has fitted it.
FIT = 1e-2
#: Two-sided normal quantile of the 95% intervals.
Z95 = 1.959963984540054


def _layers(params: Any) -> list[tuple[Any, Any]]:
    layers = params["layers"]
    return [(layers[i]["kernel"], layers[i]["bias"]) for i in range(len(layers))]


def activations(params: Any, x: jax.Array) -> list[jax.Array]:
    """Every hidden layer's activations ``[n, width]`` on inputs ``x`` ``[n, d_in]``."""
    h, out = x, []
    for kernel, bias in _layers(params)[:-1]:
        h = jnp.maximum(h @ kernel + bias[None], 0.0)
        out.append(h)
    return out


def hidden(params: Any, x: jax.Array) -> jax.Array:
    """The last hidden layer's activations ``[n, width]`` on inputs ``x`` ``[n, d_in]``."""
    return activations(params, x)[-1]


def forward(params: Any, x: jax.Array) -> jax.Array:
    """The net's scalar output ``[n]`` on inputs ``x`` ``[n, d_in]`` (linear readout)."""
    kernel, bias = _layers(params)[-1]
    return (hidden(params, x) @ kernel + bias[None])[:, 0]


def relative_variance(params: Any, grid: jax.Array, target: jax.Array) -> jax.Array:
    """``var(f(grid)) / var(target)``: 0 for a constant net, about 1 for a good fit."""
    return jnp.var(forward(params, grid)) / jnp.var(target)


def collapsed(params: Any, grid: jax.Array, target: jax.Array, *, threshold: float = THRESHOLD):
    """Whether the net is constant on the grid up to ``threshold`` (relative variance)."""
    return relative_variance(params, grid, target) <= threshold


def dead_layer(params: Any, grid: jax.Array) -> jax.Array:
    """Whether some hidden layer is zero on the whole grid (the net is constant for good)."""
    return jnp.any(jnp.stack([jnp.all(h == 0.0) for h in activations(params, grid)]))


def float_constant(params: Any, grid: jax.Array) -> jax.Array:
    """Whether the last hidden layer takes one float value on the whole grid (the former
    criterion of :func:`relujax.analysis.born_dead_probability`, which counted live nets)."""
    h = hidden(params, grid)
    return jnp.all(jnp.max(h, axis=0) == jnp.min(h, axis=0))


@jax.jit
def _per_net(stacked: Any, grid: jax.Array, target: jax.Array) -> dict[str, jax.Array]:
    def one(p):
        out = forward(p, grid)
        return {
            "relative_variance": jnp.var(out) / jnp.var(target),
            "dead_layer": dead_layer(p, grid),
            "float_constant": float_constant(p, grid),
            "grid_mse": jnp.mean(jnp.square(out - target)),
            "relative_mse": jnp.mean(jnp.square(out - target)) / jnp.var(target),
        }

    return jax.vmap(one)(stacked)


def per_net(stacked: Any, grid: np.ndarray, target: np.ndarray) -> dict[str, np.ndarray]:
    """For params stacked on a leading axis: relative variance, dead-layer and float-constant
    flags, grid MSE and grid MSE relative to the target's variance."""
    g, t = jnp.asarray(grid, jnp.float32), jnp.asarray(target, jnp.float32)
    return {k: np.asarray(v) for k, v in _per_net(stacked, g, t).items()}


def wilson(k: int, n: int, *, z: float = Z95) -> Interval:
    r"""Wilson score interval of a binomial proportion ``k / n``.

    .. math:: \frac{\hat p + z^2/2n \pm z\sqrt{\hat p(1-\hat p)/n + z^2/4n^2}}{1 + z^2/n}

    Returned as an :class:`~experiments._stats.Interval` (``mean`` = ``k / n``).

    Examples:
      >>> iv = wilson(0, 10)
      >>> round(iv.lo, 4), round(iv.hi, 4)
      (0.0, 0.2775)
    """
    if n <= 0:
        return Interval(math.nan, math.nan, math.nan, 0)
    p = k / n
    denom = 1.0 + z * z / n
    centre = (p + z * z / (2 * n)) / denom
    half = z * math.sqrt(p * (1.0 - p) / n + z * z / (4.0 * n * n)) / denom
    return Interval(p, max(0.0, centre - half), min(1.0, centre + half), n)


def difference(a: Interval, b: Interval) -> Interval:
    r"""Newcombe's (1998, method 10) interval for ``p_a - p_b`` from two Wilson intervals.

    .. math:: d - \sqrt{(p_a - l_a)^2 + (u_b - p_b)^2}, \quad
              d + \sqrt{(u_a - p_a)^2 + (p_b - l_b)^2}, \qquad d = p_a - p_b

    ``n`` of the result is the smaller sample (for :func:`experiments._stats.verdict`).
    """
    d = a.mean - b.mean
    lo = d - math.sqrt((a.mean - a.lo) ** 2 + (b.hi - b.mean) ** 2)
    hi = d + math.sqrt((a.hi - a.mean) ** 2 + (b.mean - b.lo) ** 2)
    return Interval(d, lo, hi, min(a.n, b.n))
