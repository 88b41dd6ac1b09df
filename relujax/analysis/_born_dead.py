"""Monte-Carlo probability that a freshly initialized ReLU net is a constant function."""

from __future__ import annotations

import functools
import math
from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp
from jax import Array, lax
from jax.typing import ArrayLike

from relujax import _validation

# Elements of the (points, width) activations per lax.map chunk: bounds peak memory.
_CHUNK_ELEMENTS = 2**22


_NAME = "born_dead_probability"


@functools.cache
def _named(value: str) -> Callable[..., Any]:
    from relujax import init as rinit

    return rinit.get(value)  # cached: the same object each time, so the jit cache hits


def _initializer(name: str, value: Any) -> Callable[..., Any]:
    from relujax import init as rinit

    if isinstance(value, str):
        return _named(value)
    if callable(value):
        return value
    raise TypeError(f"{name} must be an initializer name ({rinit.names()}) or a callable.")


def _is_zeros(value: Any) -> bool:
    from relujax import init as rinit

    return value is rinit.zeros or value is jax.nn.initializers.zeros


def born_dead_probability(
    key: Array,
    *,
    width: int,
    depth: int,
    in_features: int = 1,
    n_trials: int = 1000,
    init: str | Callable[..., Any] = "he_normal",
    bias_init: str | Callable[..., Any] | None = "zeros",
    domain: tuple[ArrayLike, ArrayLike] = (-math.sqrt(3.0), math.sqrt(3.0)),
    n_points: int | None = None,
) -> Array:
    r"""Probability that a freshly initialized ReLU net is constant on its input domain.

    Lu, Shin, Su and Karniadakis (2020, *Dying ReLU and initialization*) call a network
    *born dead* when at initialization it is a constant function of its input: some layer
    is zero on the whole domain, so nothing downstream (and no gradient) depends on the
    input. This estimates that probability for a fully connected net with ``depth`` hidden
    ReLU layers of ``width`` units,

    .. math:: h_0 = x, \quad h_{l} = \max(0, h_{l-1} W_l + b_l), \quad l = 1..\text{depth},

    by drawing ``n_trials`` initializations (vectorized with ``vmap``, in chunks) and testing
    whether some hidden layer is zero at all ``n_points`` points of the domain: an evenly
    spaced grid with both end points when ``in_features == 1``, uniform random points
    otherwise.

    Why a zero layer: for kernels drawn from a distribution with a density, the net (its
    readout is linear) is constant on the points iff, almost surely, some hidden layer is
    zero at all of them. A zero layer makes the next one ``max(0, b_{l+1})`` and every
    later one a constant. Conversely, if ``h_{l-1}`` varies, each unit's pre-activation
    ``h_{l-1} W_l + b_l`` varies (two points with ``h_{l-1}(x) \ne h_{l-1}(y)`` give it
    equal values only for a column of ``W_l`` on a hyperplane, a null event), so after the
    ReLU each unit either varies or is zero at every point: ``h_l`` varies unless it is
    zero, and ``h_0 = x`` varies. An exact zero of ``max(z, 0)`` is a robust float32 test
    (it needs ``z <= 0``, no cancellation; only an underflow below about ``1e-38`` could
    fake it); "the last layer takes one value" is not: in deep nets with non-zero biases
    (RAI) its input-dependent part can fall below float32 resolution relative to the
    biases, and its rounded values are all equal in a net that is alive.
    The density is needed: with ``init="zeros"`` every layer is the constant
    ``max(0, b_l)``, dead only where that is zero, so a non-zero ``bias_init`` is refused.

    A layer zero on the points but not between them would count as dead; with the default
    1024 points this is rare, and never for ``in_features == 1`` nets whose kinks are
    farther apart than the grid step.

    Layer ``l`` of trial ``t`` is drawn from ``fold_in(split(key)[t], l)``: nets of
    different depth share their first layers, so the estimate is exactly non-decreasing in
    ``depth`` for a fixed key (a dead layer stays dead downstream).

    Args:
      key: a PRNG key, typed (``jax.random.key``) or legacy (``jax.random.PRNGKey``): the
        same seed gives the same estimate.
      width: units per hidden layer.
      depth: number of hidden layers.
      in_features: input dimension.
      n_trials: number of initializations.
      init: kernel initializer: a :mod:`relujax.init` name or an ``init(key, shape, dtype)``
        callable (``shape = (fan_in, width)``). An initializer with a
        ``pair(key, shape, dtype) -> (kernel, bias)`` method (:func:`relujax.init.rai`,
        ``"rai"``) draws the bias jointly, and ``bias_init`` must then stay ``"zeros"``.
      bias_init: bias initializer (a name or callable, shape ``(width,)``); None means zeros.
      domain: ``(low, high)`` of the input box; scalars or arrays of shape
        ``(in_features,)``. The default is the box of zero mean and unit variance.
      n_points: points per trial (default 1024; at least 2).

    Returns:
      A float32 scalar: the fraction of born-dead trials. Works under ``jit`` and ``vmap``
      (over keys); it is piecewise constant, so its gradient is zero.

    Raises:
      TypeError: for a key that is not a PRNG key, non-integer sizes, or a domain that is
        not a pair.
      ValueError: for non-positive sizes, ``n_points < 2``, an empty or non-finite domain,
        a ``bias_init`` given together with a paired initializer or with ``init="zeros"``.

    Examples:
      >>> import jax
      >>> from relujax.analysis import born_dead_probability
      >>> # width 1, zero bias: layers 2 and 3 each kill a live unit with probability 1/2
      >>> born_dead_probability(jax.random.key(0), width=1, depth=3, n_trials=4000)  # 3/4
      Array(0.7558, dtype=float32)
    """
    key = _validation.key(f"{_NAME}: key", key)
    width = _validation.integer(f"{_NAME}: width", width, minimum=1)
    depth = _validation.integer(f"{_NAME}: depth", depth, minimum=1)
    in_features = _validation.integer(f"{_NAME}: in_features", in_features, minimum=1)
    n_trials = _validation.integer(f"{_NAME}: n_trials", n_trials, minimum=1)
    n_points = 1024 if n_points is None else n_points
    n_points = _validation.integer(f"{_NAME}: n_points", n_points, minimum=2)
    kernel_init = _initializer("init", init)
    paired = callable(getattr(kernel_init, "pair", None))
    if paired and bias_init not in ("zeros", None):
        raise ValueError(
            "bias_init must stay 'zeros' with a paired initializer (such as RAI): the bias "
            "comes from the same joint draw as the kernel."
        )
    if _is_zeros(kernel_init) and bias_init not in ("zeros", None):
        raise ValueError(
            f"{_NAME}: bias_init must be 'zeros' or None with init='zeros': a zero kernel "
            "makes every layer the constant max(0, bias), a constant net that is not zero."
        )
    b_init = None if paired or bias_init is None else _initializer("bias_init", bias_init)
    try:
        low, high = domain
    except (TypeError, ValueError):
        raise TypeError(f"{_NAME}: domain must be a pair (low, high), got {domain!r}.") from None
    # A box with an infinite side has no evenly spaced or uniform points: reject, not 0.0.
    _validation.number_array(f"{_NAME}: domain", low)
    _validation.number_array(f"{_NAME}: domain", high)
    low = jnp.broadcast_to(jnp.asarray(low, jnp.float32), (in_features,))
    high = jnp.broadcast_to(jnp.asarray(high, jnp.float32), (in_features,))
    try:
        empty = not bool(jnp.all(low < high))
    except jax.errors.ConcretizationTypeError:  # a traced domain: cannot check here
        empty = False
    if empty:
        raise ValueError(
            f"{_NAME}: domain must have low < high in every coordinate, got {domain!r}."
        )
    return _estimate(
        key,
        low,
        high,
        jnp.int32(depth),
        width=width,
        in_features=in_features,
        n_trials=n_trials,
        n_points=n_points,
        kernel_init=kernel_init,
        bias_init=b_init,
        paired=paired,
    )


@functools.partial(
    jax.jit,
    static_argnames=(
        "width",
        "in_features",
        "n_trials",
        "n_points",
        "kernel_init",
        "bias_init",
        "paired",
    ),
)
def _estimate(key, low, high, depth, *, width, in_features, n_trials, n_points, kernel_init,
              bias_init, paired) -> Array:  # fmt: skip
    k_points, k_trials = jax.random.split(key)
    if in_features == 1:
        t = jnp.linspace(0.0, 1.0, n_points, dtype=jnp.float32)[:, None]
    else:
        t = jax.random.uniform(k_points, (n_points, in_features), jnp.float32)
    points = low[None] + t * (high - low)[None]

    def layer(k: Array, index: Array | int, h: Array, fan_in: int) -> Array:
        kw, kb = jax.random.split(jax.random.fold_in(k, index))
        shape = (fan_in, width)
        if paired:
            w, b = kernel_init.pair(kw, shape, jnp.float32)
        elif bias_init is None:
            w, b = kernel_init(kw, shape, jnp.float32), jnp.zeros((width,), jnp.float32)
        else:
            w, b = kernel_init(kw, shape, jnp.float32), bias_init(kb, (width,), jnp.float32)
        return jnp.maximum(h @ w + b[None], 0.0)

    def dead(k: Array) -> Array:
        h = layer(k, 0, points, in_features)

        def step(i: Array, carry: tuple[Array, Array]) -> tuple[Array, Array]:
            h = layer(k, i, carry[0], width)
            return h, carry[1] | jnp.all(h == 0.0)

        # Identical (width, width) layers in a loop with a traced trip count: one compiled
        # program serves every depth. The flag records whether SOME layer was zero at every
        # point; the layers after a zero one are constants, max(0, b) and on, not zero.
        _, zero = lax.fori_loop(1, depth, step, (h, jnp.all(h == 0.0)))
        return zero

    batch = max(1, min(n_trials, _CHUNK_ELEMENTS // (n_points * width)))
    chunks = -(-n_trials // batch)
    keys = jax.random.split(k_trials, chunks * batch).reshape(chunks, batch)
    flags = lax.map(jax.vmap(dead), keys).reshape(-1)[:n_trials]
    return jnp.mean(flags.astype(jnp.float32))
