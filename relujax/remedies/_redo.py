"""ReDo (Sokar et al. 2023): find tau-dormant units with relujax.analysis and recycle them."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

import jax.numpy as jnp
from jax import Array
from jax.typing import ArrayLike

from relujax import _validation, analysis
from relujax.remedies._layout import Layout, layout_of
from relujax.remedies._recycle import Recycled, recycle


def dormant_units(stats: analysis.UnitStats | ArrayLike, *, tau: ArrayLike) -> Array:
    r"""ReDo's tau-dormant units of one layer.

    .. math:: s_i = \frac{E|h_i|}{\frac{1}{H}\sum_{k=1}^{H} E|h_k|}, \qquad
        \text{unit } i \text{ is dormant} \iff s_i \le \tau

    (Sokar, Agarwal, Castro, Evci, "The Dormant Neuron Phenomenon in Deep Reinforcement
    Learning", ICML 2023, eq. 1), with :math:`E|h_i|` the mean absolute activation of unit
    :math:`i` over the data (and spatial positions, for a channel). A layer whose every
    output is 0 has only dormant units. With ``tau=0`` the dormant units are those with
    :math:`E|h_i| = 0`: for the ReLUs, exactly the dead units. Units without statistics
    (``NaN``, no samples) are never dormant, and are left out of the layer mean.

    Args:
      stats: a :class:`relujax.analysis.UnitStats` (its ``abs_mean``), or the ``[units]``
        array of :math:`E|h_i|` itself (leading axes, e.g. of ``vmap``-ed models, allowed).
      tau: the threshold, >= 0 (ReDo uses 0 to 0.1); may be traced.

    Returns:
      A boolean array of the shape of :math:`E|h|`.

    Examples:
      >>> import jax.numpy as jnp
      >>> from relujax import remedies
      >>> remedies.dormant_units(jnp.array([0.0, 0.05, 1.0, 2.95]), tau=0.1)  # mean 1
      Array([ True,  True, False, False], dtype=bool)
    """
    _validation.number_array("dormant_units: tau", tau, minimum=0.0)
    abs_mean = stats.abs_mean if isinstance(stats, analysis.UnitStats) else jnp.asarray(stats)
    return analysis.dormant(abs_mean, tau)  # the one definition (relujax.analysis._dormancy)


def dormant_masks(
    stats: Mapping[str, analysis.UnitStats], layout: Layout, *, tau: ArrayLike
) -> tuple[Array, ...]:
    """ReDo's dormant units of every layer of ``layout``, from :mod:`relujax.analysis` stats.

    A layer with a ``site`` name takes that site's statistics; otherwise layers and sites
    are matched in order (a relujax.nn MLP or CNN has one site per hidden layer, in order).

    Args:
      stats: a :class:`relujax.analysis.ModelStats` (from ``collect`` or ``with_stats``), or
        any mapping from site name to ``UnitStats``.
      layout: the network's :class:`Layout`.
      tau: the dormancy threshold (see :func:`dormant_units`).

    Returns:
      One boolean ``[units]`` array per layer, ready for :func:`recycle`.

    Raises:
      ValueError: if sites and layers cannot be matched.

    Examples:
      >>> import jax, jax.numpy as jnp, relujax
      >>> from relujax import remedies
      >>> params = {"l0": {"kernel": jnp.array([[1.0, -1.0]]), "bias": jnp.zeros(2)},
      ...           "l1": {"kernel": jnp.ones((2, 1)), "bias": jnp.zeros(1)}}
      >>> def f(x):
      ...     h = jax.nn.relu(x @ params["l0"]["kernel"] + params["l0"]["bias"][None])
      ...     return h @ params["l1"]["kernel"]
      >>> stats = relujax.analysis.collect(f, jnp.array([[[1.0], [2.0]]]))
      >>> remedies.dormant_masks(stats, remedies.sequential(["l0", "l1"]), tau=0.0)
      (Array([False,  True], dtype=bool),)
    """
    _validation.instance("layout", layout, Layout, "a remedies.Layout")
    if not isinstance(stats, Mapping):
        raise TypeError(
            "stats must be a relujax.analysis.ModelStats (a mapping from site to UnitStats), "
            f"got {type(stats).__name__}."
        )
    names = list(stats)
    if all(layer.site is not None for layer in layout.layers):
        chosen = []
        for layer in layout.layers:
            if layer.site is None or layer.site not in stats:
                raise ValueError(f"no statistics for site {layer.site!r}; sites are {names}.")
            chosen.append(stats[layer.site])
    elif any(layer.site is not None for layer in layout.layers):
        raise ValueError("either every layer of the layout names its site, or none does.")
    elif len(names) != len(layout.layers):
        raise ValueError(
            f"the statistics have {len(names)} sites {names} but the layout has "
            f"{len(layout.layers)} layers; name each layer's site (Layer(site=...)) or "
            "select the sites (collect(..., sites=...))."
        )
    else:
        chosen = [stats[n] for n in names]
    return tuple(dormant_units(s, tau=tau) for s in chosen)


def redo(
    params: Any,
    stats: Mapping[str, analysis.UnitStats],
    key: ArrayLike,
    *,
    layout: Layout,
    tau: float = 0.1,
    opt_state: Any = None,
    when: ArrayLike = True,
    adam_reset: str = "per_param",
) -> Recycled:
    """One ReDo step on a parameter pytree: recycle the tau-dormant units of ``stats``.

    ``recycle(params, dormant_masks(stats, layout, tau=tau) & when, key, ...)``. Call it
    every ``N`` steps of a training loop with the statistics of a batch (ReDo scores the
    current batch; :func:`relujax.analysis.with_stats` gives them from the training forward
    pass at no extra cost). Inside a ``jax.lax.scan`` pass ``when=step % N == 0``: a
    traced condition that masks everything out on the other steps, so no ``cond`` and no
    recompilation is needed.

    Args:
      params: the parameter pytree.
      stats: per-site statistics of the current parameters (``ModelStats``).
      key: a PRNG key for the fresh weights.
      layout: the :class:`Layout` of ``params``.
      tau: ReDo's dormancy threshold (Sokar et al. use 0.025 for value-based agents and up
        to 0.1).
      opt_state: the Optax state to reset, or None.
      when: a (traced) boolean; when false nothing is recycled.
      adam_reset: ``"per_param"`` (default: the recycled weights restart Adam, which needs
        :func:`relujax.remedies.adam` / ``adamw``) or ``"moments"`` (zero their moments,
        keep the step count); see :func:`recycle`.

    Returns:
      :class:`Recycled` ``(params, opt_state, masks)`` with the masks of recycled units.

    Examples:
      >>> import jax, jax.numpy as jnp, relujax
      >>> from relujax import remedies
      >>> params = {"l0": {"kernel": jnp.array([[1.0, -1.0]]), "bias": jnp.zeros(2)},
      ...           "l1": {"kernel": jnp.ones((2, 1)), "bias": jnp.zeros(1)}}
      >>> def f(p, x):
      ...     return jax.nn.relu(x @ p["l0"]["kernel"] + p["l0"]["bias"][None]) @ p["l1"]["kernel"]
      >>> x = jnp.array([[1.0], [2.0]])
      >>> _, stats = relujax.analysis.with_stats(f)(params, x)
      >>> out = remedies.redo(params, stats, jax.random.key(0),
      ...                     layout=remedies.sequential(["l0", "l1"]), tau=0.0)
      >>> out.masks, out.params["l1"]["kernel"].ravel()
      ((Array([False,  True], dtype=bool),), Array([1., 0.], dtype=float32))
    """
    masks = dormant_masks(stats, layout, tau=tau)
    gate = jnp.asarray(when, bool)
    masks = tuple(m & gate for m in masks)
    return recycle(params, masks, key, layout=layout, opt_state=opt_state, adam_reset=adam_reset)


def _nnx():
    from flax import nnx

    return nnx


def recycle_module(
    model: Any,
    masks: Sequence[ArrayLike],
    key: ArrayLike,
    *,
    optimizer: Any = None,
    layout: Layout | None = None,
    adam_reset: str = "per_param",
) -> tuple[Array, ...]:
    """:func:`recycle` for a Flax NNX model (and its ``nnx.Optimizer``), in place.

    The model's ``nnx.Param`` state (the optimizer's ``wrt`` state when an optimizer is
    given) is recycled with :func:`recycle` and written back with ``nnx.update``; so is the
    optimizer's state. Works eagerly and inside ``nnx.jit``.

    Args:
      model: an NNX module, e.g. a :class:`relujax.nn.MLP` or ``CNN``.
      masks: one boolean ``[units]`` array per layer of the layout.
      key: a PRNG key.
      optimizer: the model's ``nnx.Optimizer``, whose moments are reset, or None.
      layout: the model's :class:`Layout`; default :func:`layout_of(model) <layout_of>`.
      adam_reset: ``"per_param"`` or ``"moments"``, see :func:`recycle`.

    Returns:
      The masks of recycled units.

    Examples:
      >>> import jax, jax.numpy as jnp, optax, relujax
      >>> from flax import nnx
      >>> model = relujax.nn.MLP(2, [16], 1, rngs=nnx.Rngs(0))
      >>> opt = nnx.Optimizer(model, relujax.remedies.adam(1e-3), wrt=nnx.Param)
      >>> recycle = jnp.arange(16) == 0  # unit 0 of the hidden layer
      >>> _ = relujax.remedies.recycle_module(model, [recycle], jax.random.key(1), optimizer=opt)
      >>> model.layers[1].kernel[0, 0], model.layers[0].bias[0]
      (Array(0., dtype=float32), Array(0., dtype=float32))
    """
    nnx = _nnx()
    if not isinstance(model, nnx.Module):
        raise TypeError(f"model must be a Flax NNX module, got {type(model).__name__}.")
    layout = layout_of(model) if layout is None else layout
    wrt = nnx.Param if optimizer is None else optimizer.wrt
    params = nnx.as_pure(nnx.state(model, wrt))
    opt_state = None if optimizer is None else nnx.as_pure(optimizer.opt_state)
    out = recycle(params, masks, key, layout=layout, opt_state=opt_state, adam_reset=adam_reset)
    nnx.update(model, out.params)
    if optimizer is not None:
        nnx.update(optimizer.opt_state, nnx.state(out.opt_state))
    return out.masks


def redo_module(
    model: Any,
    batches: Any,
    key: ArrayLike,
    *,
    tau: float = 0.1,
    optimizer: Any = None,
    layout: Layout | None = None,
    collect: Callable[..., analysis.ModelStats] = analysis.collect,
    adam_reset: str = "per_param",
) -> tuple[Array, ...]:
    """One ReDo step for an NNX model: score its units on ``batches`` and recycle, in place.

    ``stats = relujax.analysis.collect(model, batches)``, then :func:`recycle_module` with
    :func:`dormant_masks` ``(stats, layout, tau=tau)``.

    Args:
      model: an NNX module (a relujax.nn ``MLP`` or ``CNN`` unless ``layout`` is given).
      batches: what :func:`relujax.analysis.collect` accepts: one stacked array of batches
        ``[num_batches, batch, ...]`` or an iterable of batches.
      key: a PRNG key.
      tau: ReDo's dormancy threshold.
      optimizer: the model's ``nnx.Optimizer``, or None.
      layout: the model's :class:`Layout` (default :func:`layout_of`).
      collect: the statistics function (``relujax.analysis.collect``).
      adam_reset: ``"per_param"`` or ``"moments"``, see :func:`recycle`.

    Returns:
      The masks of recycled units, one ``[units]`` array per layer.

    Examples:
      >>> import jax, jax.numpy as jnp, relujax
      >>> from flax import nnx
      >>> import optax
      >>> model = relujax.nn.MLP(2, [16], 1, rngs=nnx.Rngs(0))
      >>> opt = nnx.Optimizer(model, optax.adam(1e-3), wrt=nnx.Param)  # one global count
      >>> model.layers[0].bias.set_value(jnp.full(16, -100.0))  # every unit dead
      >>> masks = relujax.remedies.redo_module(
      ...     model, jnp.ones((1, 8, 2)), jax.random.key(0), optimizer=opt,
      ...     adam_reset="moments")
      >>> int(masks[0].sum()), float(model.layers[0].bias[...].sum())
      (16, 0.0)
    """
    layout = layout_of(model) if layout is None else layout
    stats = collect(model, batches)
    masks = dormant_masks(stats, layout, tau=tau)
    return recycle_module(
        model, masks, key, optimizer=optimizer, layout=layout, adam_reset=adam_reset
    )
