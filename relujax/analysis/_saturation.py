"""Saturation of bounded activations: how often a unit sits flat at a bound of its output."""

from __future__ import annotations

from collections.abc import Callable, Collection, Mapping
from typing import Any, NamedTuple, cast

import jax
import jax.numpy as jnp
import numpy as np
from jax import Array, lax

from relujax.activations._catalog import DESCRIPTORS
from relujax.activations._descriptor import Saturation
from relujax.analysis import _capture
from relujax.analysis._capture import Observer, Site, UnitAxis
from relujax.analysis._collect import _frozen, _trace
from relujax.analysis._count import Count
from relujax.analysis._model_stats import ModelStats
from relujax.analysis._select import Selector, select

#: The bounded activations by site name, with where each saturates: from the descriptors
#: (:attr:`relujax.activations.Activation.saturation`). jax.nn's ``hard_tanh``, ``hard_sigmoid``
#: and ``relu6`` are jitted under the same names and are counted the same way.
SATURATION: dict[str, Saturation] = {
    d.name: d.saturation for d in DESCRIPTORS if d.saturation is not None
}

#: The parameter names of each bounded activation, in the order its site's call takes them
#: after ``x`` (a bound given by name, capped_relu's ``cap``, is read from that operand).
_PARAMS: dict[str, tuple[str, ...]] = {
    d.name: tuple(p.name for p in d.params) for d in DESCRIPTORS if d.saturation is not None
}


class SaturationStats(NamedTuple):
    r"""Per-unit counts of saturated samples of a bounded activation (see
    :class:`relujax.activations.Saturation`).

    A sample is saturated at the lower bound when :math:`z \le \text{lower}` and at the
    upper bound when :math:`z \ge \text{upper}` (pre-activation :math:`z`, kinks included:
    relujax's derivative is 0 there). Samples are entries of the unit (samples, times
    spatial positions for a channel); NaN pre-activations are not counted (:math:`\pm\infty`
    are, as saturated). A monoid: :meth:`merge` adds two batches' counts.

    Attributes:
      samples: :class:`Count` ``[units]``, the samples that are not NaN.
      lower: :class:`Count` ``[units]``, those saturated at the lower bound.
      upper: :class:`Count` ``[units]``, those saturated at the upper bound.

    Examples:
      >>> import jax.numpy as jnp
      >>> from relujax.analysis import Count, SaturationStats
      >>> s = SaturationStats(*(Count.of(jnp.array(c)) for c in ([4, 4], [1, 0], [3, 1])))
      >>> s.fraction, s.always
      (Array([1.  , 0.25], dtype=float32), Array([ True, False], dtype=bool))
    """

    samples: Count
    lower: Count
    upper: Count

    @classmethod
    def empty(cls, units: int) -> SaturationStats:
        """No samples yet: zero counts for ``units`` units."""
        z = Count.zeros((units,))
        return cls(z, z, z)

    @classmethod
    def from_batch(
        cls, pre: Any, saturation: Saturation, *, params: Mapping[str, Any] | None = None
    ) -> SaturationStats:
        """Counts of one batch of pre-activations ``(..., units)``, pooling all but the last axis.

        Args:
          pre: pre-activations, units on the last axis (a 0-d array is one unit).
          saturation: where the activation saturates (a descriptor's ``saturation``).
          params: the values of the parameters that ``saturation`` names as bounds
            (``{"cap": 2.0}`` for capped_relu's ``Saturation(upper="cap")``); scalars or
            arrays broadcastable to ``pre``, possibly traced.

        Returns:
          A ``SaturationStats`` with fields of shape ``(units,)`` (never differentiated).

        Examples:
          >>> import jax.numpy as jnp
          >>> from relujax.activations import Saturation
          >>> from relujax.analysis import SaturationStats
          >>> z = jnp.array([[-1.0, 0.5], [1.0, 2.0], [0.0, jnp.nan]])
          >>> s = SaturationStats.from_batch(z, Saturation(lower=-1.0, upper=1.0))
          >>> s.samples.to_numpy(), s.lower.to_numpy(), s.upper.to_numpy()
          (array([3, 2], dtype=uint64), array([1, 0], dtype=uint64), array([1, 1], dtype=uint64))
        """
        missing = [b for b in saturation.params if b not in (params or {})]
        if missing:
            raise ValueError(
                f"SaturationStats.from_batch: the bounds {missing} of {saturation} are "
                f"parameters; give their values as params={{name: value}}."
            )
        lower, upper = saturation.resolve(params or {})
        z = lax.stop_gradient(jnp.asarray(pre))
        if z.ndim == 0:
            z = z.reshape(1)
        lead = tuple(range(z.ndim - 1))

        def count(mask: Array | None) -> Count:
            if mask is None:
                return Count.zeros(z.shape[-1:])
            return Count.of(jnp.sum(mask, axis=lead, dtype=jnp.int32))

        low = None if lower is None else z <= lax.stop_gradient(lower)
        high = None if upper is None else z >= lax.stop_gradient(upper)
        return cls(count(~jnp.isnan(z)), count(low), count(high))

    @property
    def units(self) -> int:
        """Number of units (the size of the last axis)."""
        return int(np.shape(self.samples.lo)[-1])

    @property
    def saturated(self) -> Array:
        """``float32[units]``: saturated samples per unit, at either counted bound."""
        return self.lower.to_float() + self.upper.to_float()

    @property
    def fraction(self) -> Array:
        """``float32[units]``: each unit's fraction of saturated samples (NaN without samples)."""
        n = self.samples.to_float()
        return jnp.where(n > 0, self.saturated / jnp.where(n > 0, n, 1.0), jnp.nan)

    @property
    def always(self) -> Array:
        """``bool[units]``: units saturated on every one of their (at least one) samples."""
        lo = self.lower.add(self.upper)
        return ((lo.hi == self.samples.hi) & (lo.lo == self.samples.lo)) & (
            (self.samples.hi > 0) | (self.samples.lo > 0)
        )

    def merge(self, other: SaturationStats) -> SaturationStats:
        """The counts of both streams of samples together."""
        return SaturationStats(
            self.samples.add(other.samples),
            self.lower.add(other.lower),
            self.upper.add(other.upper),
        )


class _SaturationObserver(Observer):
    def __init__(self, selected: Collection[str]):
        self.selected = frozenset(selected)

    def empty(self, site: Site) -> SaturationStats:
        return SaturationStats.empty(site.units)

    def observe(self, acc, site, pre, out) -> None:
        self.observe_call(acc, site, pre, out, ())

    def observe_call(self, acc, site, pre, out, operands) -> None:
        names = _PARAMS[site.function]
        saturation = SATURATION[site.function]
        params = dict(zip(names, operands, strict=False))
        if any(b not in params for b in saturation.params):  # a jitted function of that name
            raise ValueError(  # that does not take the bound as its second argument
                f"with_saturation: site {site.name!r} ({site.function}) saturates at its "
                f"parameters {list(saturation.params)}, but its call passes "
                f"{len(operands)} operand(s) after x."
            )
        batch = SaturationStats.from_batch(pre, saturation, params=params)
        self.absorb(acc, site.name, batch)

    def absorb(self, acc, name, state) -> None:
        previous = acc.get(name)
        acc[name] = state if previous is None else previous.merge(state)


def with_saturation(
    fn: Callable[..., Any],
    *,
    sites: Selector | None = None,
    exclude: Selector | None = None,
    activations: Collection[str] | None = None,
    loops: str = "auto",
    unit_axis: UnitAxis = None,
) -> Callable[..., tuple[Any, ModelStats]]:
    r"""Wraps ``fn`` to also return how often each unit of a bounded activation saturates.

    ``with_saturation(fn)(*args)`` returns ``(fn(*args), saturation)``, ``saturation`` a
    :class:`ModelStats` of :class:`SaturationStats` for the selected sites whose activation
    is bounded (``hard_tanh``, ``hard_sigmoid``, ``relu6``, ``capped_relu``: the descriptors
    with a :class:`~relujax.activations.Saturation`), in call order. Unit :math:`j` is saturated on
    a sample when its pre-activation :math:`z` is in a flat region at a bound of the output:

    - hard_tanh: :math:`z \le -1` (output -1) or :math:`z \ge 1` (output 1);
    - hard_sigmoid: :math:`z \le -3` (output 0) or :math:`z \ge 3` (output 1);
    - relu6: :math:`z \ge 6` (output 6) only: its flat region at 0 is the silent side of a
      ReLU, counted as dead/dormant by :func:`diagnose`;
    - capped_relu: :math:`z \ge c` (output :math:`c`) only, with each call's own ``cap``
      :math:`c` (a number or a traced scalar, per model under ``vmap``).

    The kinks are included because relujax's derivative is 0 there (jax.nn's hard_tanh
    gives 1 at :math:`\pm 1`; only samples exactly at a kink differ). Per unit,
    :attr:`SaturationStats.fraction` is the fraction of its samples that are saturated and
    :attr:`SaturationStats.always` whether every sample is; :func:`saturated_fraction` and
    :func:`always_saturated_fraction` average them over a layer. Sites are found and
    observed as by :func:`with_stats` (same ``sites``, ``exclude``, ``loops`` and
    ``unit_axis``; sites in loops are supported); it works inside ``jax.jit`` and
    ``jax.vmap``, and the counts are never differentiated. An NNX module's state updates
    during the call are discarded.

    Args:
      fn: a function, an NNX module or a bound Linen ``apply``.
      sites: which sites to observe: names, globs or compiled regexes (default: all).
      exclude: sites to leave out, in the same forms.
      activations: ``jit`` names treated as activations (default :func:`default_activations`).
      loops: how sites inside ``scan`` loops are kept (see :func:`collect`).
      unit_axis: which axis holds a site's units (see :func:`collect`).

    Returns:
      A function returning ``(output, ModelStats of SaturationStats)``.

    Raises:
      ValueError: when no selected site has a bounded activation (the message lists the
        bounded ones), or ``fn`` has no activation site at all.

    Examples:
      >>> import jax, jax.numpy as jnp, relujax
      >>> from relujax import analysis
      >>> x = jnp.array([[-2.0, 0.5], [1.0, 3.0], [0.0, 7.0]])
      >>> def f(x):
      ...     return relujax.relu6(relujax.hard_tanh(x) * 8.0)
      >>> _, sat = jax.jit(analysis.with_saturation(f))(x)
      >>> sat["hard_tanh_0"].fraction, sat["relu6_0"].fraction  # relu6 sees 8 * hard_tanh(x)
      (Array([0.6667, 0.6667], dtype=float32), Array([0.3333, 0.6667 ], dtype=float32))
    """
    fn = _frozen(fn)

    def wrapped(*args: Any, **kwargs: Any) -> tuple[Any, ModelStats]:
        traced = _trace(fn, args, kwargs, activations, loops, unit_axis)
        chosen = select(traced.plan.sites, sites, exclude)
        bounded = [s for s in chosen if s.function in SATURATION]
        if not bounded:
            found = sorted({s.function for s in chosen})
            raise ValueError(
                f"with_saturation: no selected site has a bounded activation (found {found}); "
                f"the bounded ones are {sorted(SATURATION)}."
            )
        slots, keys = traced.observed(bounded)
        acc: dict[str, SaturationStats] = {}
        obs = _SaturationObserver(keys)
        outs = _capture.evaluate(traced.plan, traced.plan.consts, traced.dynamic, acc, obs)
        views = _capture.views(slots, acc, {s.name for s in bounded})
        return jax.tree.unflatten(traced.out_tree, outs), ModelStats(cast(Any, views))

    return wrapped


def saturated_fraction(s: SaturationStats) -> Array:
    r"""A layer's mean saturated fraction: :math:`\frac{1}{H'}\sum_j \text{fraction}_j`.

    The mean of :attr:`SaturationStats.fraction` over the :math:`H'` units that have
    samples (NaN if none has); equally, the fraction of all (unit, sample) entries that are
    saturated when every unit has the same number of samples.

    Args:
      s: a :class:`SaturationStats` (leading axes, e.g. of ``vmap``-ed models, are kept).

    Returns:
      A ``float32`` array of the leading shape.

    Examples:
      >>> import jax.numpy as jnp
      >>> from relujax.analysis import Count, SaturationStats, saturated_fraction
      >>> s = SaturationStats(*(Count.of(jnp.array(c)) for c in ([4, 4], [1, 0], [3, 1])))
      >>> saturated_fraction(s)  # (1 + 0.25) / 2
      Array(0.625, dtype=float32)
    """
    return jnp.nanmean(s.fraction, axis=-1)


def always_saturated_fraction(s: SaturationStats) -> Array:
    r"""The fraction of a layer's :math:`H` units saturated on every sample.

    .. math:: \frac{1}{H} \sum_j \mathbb{1}[\text{every sample of unit } j \text{ is saturated}]

    Such a unit passes no gradient on this data, like a dead ReLU, but at a nonzero output.

    Args:
      s: a :class:`SaturationStats`.

    Returns:
      A ``float32`` array of the leading shape.

    Examples:
      >>> import jax.numpy as jnp
      >>> from relujax.analysis import Count, SaturationStats, always_saturated_fraction
      >>> s = SaturationStats(*(Count.of(jnp.array(c)) for c in ([4, 4], [1, 0], [3, 1])))
      >>> always_saturated_fraction(s)
      Array(0.5, dtype=float32)
    """
    return jnp.mean(s.always.astype(jnp.float32), axis=-1)
