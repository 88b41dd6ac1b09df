"""Per-unit activity statistics of one activation site: a monoid over batches."""

from __future__ import annotations

import functools
import math
from typing import Any, NamedTuple

import jax
import jax.core
import jax.numpy as jnp
from jax import Array, lax
from jax.typing import ArrayLike

from relujax.analysis import _reduce
from relujax.analysis._count import Count


def _weight(n_a: Array, n_b: Array) -> tuple[Array, Array]:
    """Returns (n_b / (n_a + n_b), n_a + n_b), with weight 0 when both are 0."""
    n = n_a + n_b
    w = jnp.where(n > 0, n_b / jnp.where(n > 0, n, 1.0), 0.0)
    return w, n


class UnitStats(NamedTuple):
    r"""Per-unit statistics of one activation site, accumulated over any number of samples.

    A *unit* is an index of the last axis; every other axis (batch, and the spatial axes of a
    convolution) is pooled, so a conv site has one unit per channel, as in ReDo (Sokar et al.
    2023). For each unit, with pre-activation :math:`x` and output :math:`h = f(x)` over the
    *finite* samples (a sample is non-finite when :math:`x` or :math:`h` is NaN or infinite):

    - ``count`` :math:`n`, ``firing`` :math:`\#\{x > 0\}` and ``nonfinite`` are exact
      :class:`Count`\ s (no overflow at :math:`2^{31}`). A unit *fires* on a sample when its
      pre-activation is > 0; for the ReLUs, whose output is never negative, that is exactly
      :math:`h > 0`. Non-finite samples are neither firing nor silent: they only enter
      ``nonfinite``.
    - ``pre_mean``, ``pre_m2`` and ``out_mean``, ``out_m2``: mean and sum of squared deviations
      :math:`M_2 = \sum (x - \bar x)^2`, from which sums follow as :math:`n \bar x` and
      :math:`M_2 + n \bar x^2`. They are kept in this form, not as raw sums of squares,
      because float32 :math:`\sum x^2 - (\sum x)^2 / n` loses every digit when the mean is
      large against the spread.
    - ``out_abs_mean`` :math:`E|h|` (ReDo's score numerator); ``pre_min``, ``pre_max``.

    :meth:`merge` combines two summaries exactly as one pass over the union would (Chan,
    Golub and LeVeque's pairwise update for the moments), so ``UnitStats`` is a monoid with
    :meth:`empty` as identity; streaming over batches equals one pass over the concatenated
    data up to float32 rounding. It is a pytree: stats of K models under ``jax.vmap`` carry a
    leading axis of size K, and all properties work elementwise.

    Examples:
      >>> import jax.numpy as jnp
      >>> from relujax.analysis import UnitStats
      >>> x = jnp.array([[-1.0, 2.0], [-3.0, 4.0], [1.0, 0.0]])
      >>> s = UnitStats.from_batch(x, jnp.maximum(x, 0.0))
      >>> s.firing_rate
      Array([0.3333, 0.6667 ], dtype=float32)
      >>> s.abs_mean
      Array([0.3333, 2.        ], dtype=float32)
      >>> both = UnitStats.from_batch(x[:2], jnp.maximum(x[:2], 0.0)).merge(
      ...     UnitStats.from_batch(x[2:], jnp.maximum(x[2:], 0.0)))
      >>> both.pre_mean, s.pre_mean
      (Array([-1.,  2.], dtype=float32), Array([-1.,  2.], dtype=float32))
    """

    count: Count  # pyright: ignore[reportIncompatibleMethodOverride]  (a field, not tuple.count)
    firing: Count
    nonfinite: Count
    pre_mean: Array
    pre_m2: Array
    pre_min: Array
    pre_max: Array
    out_mean: Array
    out_m2: Array
    out_abs_mean: Array

    @classmethod
    def empty(cls, units: int) -> UnitStats:
        """The identity of :meth:`merge`: no samples seen.

        Args:
          units: number of units (size of the last axis).

        Returns:
          A ``UnitStats`` with zero counts, ``pre_min = +inf`` and ``pre_max = -inf``.

        Examples:
          >>> from relujax.analysis import UnitStats
          >>> UnitStats.empty(3).count.to_numpy()
          array([0, 0, 0], dtype=uint64)
        """
        z = jnp.zeros((units,), jnp.float32)
        c = Count.zeros((units,))
        inf = jnp.full((units,), jnp.inf, jnp.float32)
        return cls(c, c, c, z, z, inf, -inf, z, z, z)

    @classmethod
    def from_batch(
        cls,
        pre: ArrayLike,
        out: ArrayLike | None = None,
        *,
        nonnegative: bool = False,
        sign_preserving: bool = False,
        moments: bool = True,
    ) -> UnitStats:
        """Statistics of one batch, pooling every axis but the last.

        Fast path: when every value is finite (checked on the sums themselves: a sum over a
        column is finite only if the column is), the statistics are plain per-unit reductions
        (sum, sum of squares, min, max, the count of positives as a sum of ``sign``), which
        XLA runs as single passes over the activation without masking. Otherwise a
        ``lax.cond`` takes the masked path that drops non-finite samples. Per-batch moments
        are raw float32 sums: the variance of a batch has relative error about
        ``1e-7 * sqrt(rows) * (1 + mean**2 / var)``, ample for diagnosis.

        Args:
          pre: pre-activations, shape ``(..., units)`` (a 0-d array is one unit).
          out: outputs of the activation, same shape as ``pre``; ``None`` means ``pre`` itself
            (a tagged array, whose units fire when positive).
          nonnegative: promise that finite outputs are never negative (the ReLUs, softplus):
            then ``E|h| = E[h]``, saving one pass.
          sign_preserving: promise that ``out > 0`` exactly where ``pre > 0`` (ReLU, leaky
            ReLU, ELU, GELU, SiLU, ...): firing is then counted on the output, so that with
            ``moments=False`` the pre-activation is never read.
          moments: also the moments, minimum and maximum (default). ``False`` keeps only what
            the dead/dormant diagnosis needs (counts, firing, ``E|h|``), one or two passes
            over the output instead of about seven; the moment fields are then NaN. In this
            mode non-finite values are detected through the output and the firing sum only
            (a pre-activation of ``-inf`` whose output is finite counts as a silent sample),
            and with ``sign_preserving`` the pre-activation is not read at all.

        Returns:
          A ``UnitStats`` whose fields have shape ``(units,)``. Statistics are computed in
          float32 and never differentiated (``stop_gradient``).

        Raises:
          ValueError: if ``pre`` and ``out`` have different shapes.

        Examples:
          >>> import jax.numpy as jnp
          >>> from relujax.analysis import UnitStats
          >>> x = jnp.array([[1.0, jnp.nan], [-2.0, 3.0]])
          >>> s = UnitStats.from_batch(x)
          >>> s.count.to_numpy(), s.firing.to_numpy(), s.nonfinite.to_numpy()
          (array([2, 1], dtype=uint64), array([1, 1], dtype=uint64), array([0, 1], dtype=uint64))
        """
        x = jnp.asarray(pre)
        same = out is None
        y = x if same else jnp.asarray(out)
        if x.shape != y.shape:
            raise ValueError(f"pre and out must have the same shape, got {x.shape} and {y.shape}.")
        if x.ndim == 0:
            x, y = x.reshape(1, 1), y.reshape(1, 1)
        elif x.ndim == 1:
            x, y = x[None], y[None]
        # No reshape to (rows, units): reducing over the leading axes in place lets XLA keep a
        # single materialization of the pre-activation (a reshape adds a copy on CPU).
        kw = dict(nonnegative=nonnegative, sign_preserving=sign_preserving, moments=moments)
        y = None if same else y
        if isinstance(x, jax.core.Tracer) or isinstance(y, jax.core.Tracer):
            # Traced (jit, vmap, scan): one program with both paths under lax.cond.
            return _from_batch(x, y, **kw)
        # Concrete arrays: decide on the host, compiling only the path that is needed.
        fast, finite = _eager_fast(x, y, **kw)
        if bool(finite):
            return fast
        return _eager_masked(x, y, sign_preserving=sign_preserving, moments=moments)

    def merge(self, other: UnitStats) -> UnitStats:
        r"""Statistics of the union of the samples behind ``self`` and ``other``.

        Counts add exactly; means are count-weighted; with :math:`\delta = \bar x_b - \bar x_a`,
        :math:`M_2 = M_{2,a} + M_{2,b} + \delta^2 n_a n_b / n` (Chan et al. 1979).

        Args:
          other: ``UnitStats`` of the same units (and the same leading axes, if any).

        Returns:
          The merged ``UnitStats``.

        Examples:
          >>> import jax.numpy as jnp
          >>> from relujax.analysis import UnitStats
          >>> a = UnitStats.from_batch(jnp.array([[1.0], [3.0]]))
          >>> b = UnitStats.from_batch(jnp.array([[5.0]]))
          >>> m = a.merge(b)
          >>> m.pre_mean, m.pre_m2  # of [1, 3, 5]: mean 3, sum of squared deviations 8
          (Array([3.], dtype=float32), Array([8.], dtype=float32))
        """
        return _merge(self, other)

    # --- derived properties (elementwise; NaN where a unit saw no finite sample) -------------

    @property
    def units(self) -> int:
        """Number of units (size of the last axis)."""
        return self.pre_mean.shape[-1]

    @property
    def samples(self) -> Array:
        """Finite samples seen per unit, as float32 (``count.to_float()``)."""
        return self.count.to_float()

    def _per_sample(self, total: Array) -> Array:
        n = self.count.to_float()
        return jnp.where(n > 0, total / jnp.where(n > 0, n, 1.0), jnp.nan)

    @property
    def firing_rate(self) -> Array:
        r"""Fraction of finite samples with pre-activation > 0: :math:`\#\{x > 0\} / n`."""
        return self._per_sample(self.firing.to_float())

    @property
    def dead(self) -> Array:
        """Boolean: the unit saw finite samples and fired on none of them."""
        return _is_zero(self.firing) & ~_is_zero(self.count)

    @property
    def always_active(self) -> Array:
        """Boolean: pre-activation > 0 on every finite sample (a linearized unit)."""
        same = (self.firing.hi == self.count.hi) & (self.firing.lo == self.count.lo)
        return same & ~_is_zero(self.count)

    @property
    def mean(self) -> Array:
        """Mean output :math:`E[h]` (NaN without samples)."""
        return jnp.where(_is_zero(self.count), jnp.nan, self.out_mean)

    @property
    def std(self) -> Array:
        r"""Population standard deviation of the output, :math:`\sqrt{M_2 / n}`."""
        return jnp.sqrt(self._per_sample(self.out_m2))

    @property
    def abs_mean(self) -> Array:
        """Mean absolute output :math:`E|h|`, the numerator of ReDo's dormancy score."""
        return jnp.where(_is_zero(self.count), jnp.nan, self.out_abs_mean)

    @property
    def pre_std(self) -> Array:
        """Population standard deviation of the pre-activation."""
        return jnp.sqrt(self._per_sample(self.pre_m2))

    @property
    def nonfinite_fraction(self) -> Array:
        """Fraction of all samples (finite or not) that were non-finite."""
        bad = self.nonfinite.to_float()
        total = bad + self.count.to_float()
        return jnp.where(total > 0, bad / jnp.where(total > 0, total, 1.0), jnp.nan)


def as_float32(x: Array) -> Array:
    """``x`` as float32, keeping the values of a narrower float dtype exactly.

    XLA:CPU (jaxlib 0.10) computes bfloat16 operations in float32 and drops a
    ``convert(convert(v, bfloat16), float32)`` pair, so a plain ``x.astype(float32)`` of a
    bfloat16 activation can read the unrounded float32 value of the operation that made it,
    a value the model never holds: the minimum of a bfloat16 site came out as -3.2815 where
    every element of the site is a bfloat16 number (the true minimum -3.28125). An explicit
    ``reduce_precision`` to bfloat16 keeps the rounding (a no-op on exact input, subnormals
    included). Not for float16: XLA did not drop its converts, and ``reduce_precision`` to
    float16 flushes float16's subnormals to zero (a gelu output of 5e-5 stopped firing).
    """
    if jnp.dtype(x.dtype) != jnp.dtype(jnp.bfloat16):
        return x.astype(jnp.float32)
    return lax.reduce_precision(x.astype(jnp.float32), exponent_bits=8, mantissa_bits=7)


def _is_zero(c: Count) -> Array:
    return (c.hi == 0) & (c.lo == 0)


def _fast(
    x: Array, y: Array, *, same: bool, nonnegative: bool, sign_preserving: bool, moments: bool
) -> tuple[UnitStats, Array]:
    """Unmasked statistics of finite arrays, one plain reduction each; and whether every
    value was finite (checked on the sums: a sum over a column is finite only if it is)."""
    x = as_float32(x)
    y = x if same else as_float32(y)
    axes = tuple(range(x.ndim - 1))
    units = x.shape[-1]
    rows = math.prod(x.shape[:-1])
    r = jnp.float32(max(rows, 1))
    on_output = sign_preserving or same  # firing is read off the output
    src = y if on_output else x
    if rows < 2**24:  # sums of 0.0s, 1.0s and 2.0s are exact in float32 below 2**24 terms
        # No comparison with a broadcast 0: XLA:CPU materializes such a broadcast for its
        # YNNPACK reductions (a full-size array of zeros written and read per site).
        s = jnp.sign(src)
        if nonnegative and on_output:
            fire_sum = jnp.sum(s, axis=axes)  # sign is 0 or 1
        else:
            fire_sum = jnp.sum(s * s + s, axis=axes) * 0.5  # s^2 + s: 2 if > 0, else 0
        firing = Count.of(fire_sum.astype(jnp.int32))
    else:
        positive = jnp.maximum(src, 0.0)
        fire_sum = jnp.sum(positive, axis=axes)  # only for the finiteness check
        firing = Count.of(jnp.sum(positive > 0, axis=axes, dtype=jnp.int32))
    t1 = jnp.sum(y, axis=axes) if nonnegative or moments else None
    abs_mean = t1 / r if nonnegative else jnp.sum(jnp.abs(y), axis=axes) / r
    common: dict[str, Any] = dict(
        count=Count.of(jnp.full((units,), rows, jnp.uint32)),
        firing=firing,
        nonfinite=Count.zeros((units,)),
        out_abs_mean=abs_mean,
    )
    if not moments:
        nan = jnp.full((units,), jnp.nan, jnp.float32)
        stats = UnitStats(**common, pre_mean=nan, pre_m2=nan, pre_min=nan, pre_max=nan,
                          out_mean=nan, out_m2=nan)  # fmt: skip
        return stats, _all_finite(abs_mean, fire_sum)
    s1, s2 = jnp.sum(x, axis=axes), jnp.sum(x * x, axis=axes)
    t2 = s2 if same else jnp.sum(y * y, axis=axes)
    pre_mean, out_mean = s1 / r, t1 / r
    stats = UnitStats(
        **common,
        pre_mean=pre_mean,
        pre_m2=jnp.maximum(s2 - pre_mean * s1, 0.0),
        pre_min=jnp.min(x, axis=axes),
        pre_max=jnp.max(x, axis=axes),
        out_mean=out_mean,
        out_m2=jnp.maximum(t2 - out_mean * t1, 0.0),
    )
    return stats, _all_finite(s1, s2, t1, t2, abs_mean)  # pyright: ignore[reportArgumentType]  (t1 is set with moments)


def _all_finite(*sums: Array) -> Array:
    return jnp.all(jnp.isfinite(jnp.stack(sums)))


def _masked(x: Array, y: Array) -> UnitStats:
    """Statistics over the finite samples of ``(rows, units)`` arrays.

    The rare path (taken only when a batch holds NaN or inf), so it is written to compile
    small: one elementwise kernel and two reductions over stacked quantities.
    """
    rows = x.shape[0]
    finite = jnp.isfinite(x) & jnp.isfinite(y)
    zero = jnp.float32(0.0)
    xs = jnp.where(finite, x, zero)
    ys = jnp.where(finite, y, zero)
    fin = finite.astype(jnp.float32)
    fire = (finite & (x > 0)).astype(jnp.float32)
    stacked = jnp.stack([fin, fire, xs, xs * xs, ys, ys * ys, jnp.abs(ys)], axis=1)
    n_f, fire_f, s1, s2, t1, t2, a1 = jnp.sum(stacked, axis=0)
    if rows < 2**24:  # float32 sums of 0/1 are exact below 2**24
        n_int, fire_int = n_f.astype(jnp.int32), fire_f.astype(jnp.int32)
    else:
        n_int = jnp.sum(finite, axis=0, dtype=jnp.int32)
        fire_int = jnp.sum(finite & (x > 0), axis=0, dtype=jnp.int32)
    n = jnp.maximum(n_f, 1.0)
    pre_mean, out_mean = s1 / n, t1 / n
    extremes = jnp.stack([jnp.where(finite, x, jnp.inf), jnp.where(finite, -x, jnp.inf)], 1)
    low, neg_high = jnp.min(extremes, axis=0)
    return UnitStats(
        count=Count.of(n_int),
        firing=Count.of(fire_int),
        nonfinite=Count.of(rows - n_int),
        pre_mean=pre_mean,
        pre_m2=jnp.maximum(s2 - pre_mean * s1, 0.0),
        pre_min=low,
        pre_max=-neg_high,
        out_mean=out_mean,
        out_m2=jnp.maximum(t2 - out_mean * t1, 0.0),
        out_abs_mean=a1 / n,
    )


def _inputs(x: Array, y: Array | None, sign_preserving: bool, moments: bool):
    same = y is None
    if not moments and sign_preserving and y is not None:  # y is None exactly when same
        # Everything needed is in the output: never touch (and so never materialize) the
        # pre-activation, which XLA may otherwise keep only inside a fused kernel.
        x, y, same = y, None, True
    # Cast to float32 only block by block (in _fast): a float16 activation is never copied.
    x = lax.stop_gradient(x)
    y = x if y is None else lax.stop_gradient(y)
    return x, y, same


def _fast_of(
    x, y, *, nonnegative, sign_preserving, moments, block_bytes=None
) -> tuple[UnitStats, Array]:
    """The fast path; on CPU, blocked for the full statistics of activations beyond the LLC.

    The blocked form (:func:`relujax.analysis._reduce.fold_blocks`) folds :func:`_fast` over
    cache-sized blocks with :func:`_merge_impl` (exact counts, Chan et al.'s moment update),
    so the seven statistics of a block are computed while it is in cache instead of reading
    the whole activation from memory seven times. It is used where it measured faster: on
    CPU, with ``moments``, for activations of at least ``_reduce.MIN_BYTES`` (beyond a server
    CPU's last-level cache; below that the re-reads hit the cache anyway and XLA:CPU's copies
    into the loop cost more than they save). ``lax.platform_dependent`` picks the branch when
    the program is lowered for its device: GPUs and TPUs keep the single unblocked pass.
    ``block_bytes`` forces blocks of that size on every backend (for tests).
    """
    x, y, same = _inputs(x, y, sign_preserving, moments)
    kw = dict(same=same, nonnegative=nonnegative, sign_preserving=sign_preserving, moments=moments)
    arrays = [x] if same else [x, y]
    forced = block_bytes is not None
    size = block_bytes if forced else _reduce.BLOCK_BYTES
    wanted = forced or (moments and math.prod(x.shape) * 4 >= _reduce.MIN_BYTES)
    plan = _reduce.block_plan(x.shape, 4, size) if wanted else None  # blocks are read as f32
    if plan is None:
        return _fast(x, y, **kw)

    def summarize(xb, yb=None):
        return _fast(xb, xb if yb is None else yb, **kw)

    def merge(a, b):
        return _merge_impl(a[0], b[0]), a[1] & b[1]

    def blocked(*arrays):
        return _reduce.fold_blocks(summarize, merge, arrays, axes=plan[0], rows=plan[1])

    if forced:
        return blocked(*arrays)
    return lax.platform_dependent(*arrays, cpu=blocked, default=summarize)


def _masked_of(x, y, *, sign_preserving, moments) -> UnitStats:
    x, y, same = _inputs(x, y, sign_preserving, moments)
    x = as_float32(x)
    y = x if same else as_float32(y)
    units = x.shape[-1]
    out = _masked(x.reshape(-1, units), y.reshape(-1, units))
    if moments:
        return out
    nan = jnp.full((units,), jnp.nan, jnp.float32)
    return out._replace(pre_mean=nan, pre_m2=nan, pre_min=nan, pre_max=nan, out_mean=nan,
                        out_m2=nan)  # fmt: skip


_STATIC = ("nonnegative", "sign_preserving", "moments")
_eager_fast = jax.jit(_fast_of, static_argnames=_STATIC)
_eager_masked = jax.jit(_masked_of, static_argnames=("sign_preserving", "moments"))


@functools.partial(jax.jit, static_argnames=_STATIC)
def _from_batch(x, y, *, nonnegative, sign_preserving, moments) -> UnitStats:
    fast, finite = _fast_of(
        x, y, nonnegative=nonnegative, sign_preserving=sign_preserving, moments=moments
    )
    return lax.cond(
        finite,
        lambda: fast,
        lambda: _masked_of(x, y, sign_preserving=sign_preserving, moments=moments),
    )


@functools.partial(jax.jit, static_argnames=("nonnegative",))
def _from_shifted(c, shift, y, *, nonnegative) -> UnitStats:
    """``from_batch(c + shift, y, sign_preserving=True)`` without forming ``c + shift``.

    For a pre-activation ``x = c + shift`` whose ``shift`` is constant along every axis but the
    units (a layer's bias: ``shift`` has shape ``(1, ..., 1, units)``), the statistics of ``x``
    follow from those of ``c``: the mean shifts by ``shift``, :math:`M_2` does not change, and
    so do the minimum and maximum, exactly (float rounding is monotonic, so
    ``min(fl(c + b)) == fl(min(c) + b)``). Firing is read off the output (``sign_preserving``),
    so ``x`` is never read: XLA:CPU then need not write it to memory, where the activation
    already fuses ``c + shift`` into its own kernel (in a CNN's training step the write of
    ``x`` cost more than all seven reductions). A non-finite ``x`` makes ``min`` or ``max``
    (or a sum) non-finite, and the masked path then forms ``x`` itself, the model's own sum.
    """
    shift = lax.stop_gradient(jnp.asarray(shift))
    fast, finite = _fast_of(c, y, nonnegative=nonnegative, sign_preserving=True, moments=True)
    b = shift.reshape(-1).astype(jnp.float32)
    fast = fast._replace(
        pre_mean=fast.pre_mean + b, pre_min=fast.pre_min + b, pre_max=fast.pre_max + b
    )
    finite = finite & _all_finite(fast.pre_min, fast.pre_max, fast.pre_mean)
    return lax.cond(
        finite,
        lambda: fast,
        lambda: _masked_of(c + shift, y, sign_preserving=True, moments=True),
    )


def _merge_impl(a: UnitStats, b: UnitStats) -> UnitStats:
    n_a = a.count.to_float()
    w, _ = _weight(n_a, b.count.to_float())
    d_pre = b.pre_mean - a.pre_mean
    d_out = b.out_mean - a.out_mean
    cross = n_a * w  # n_a * n_b / n, without forming n_a * n_b
    return UnitStats(
        count=a.count.add(b.count),
        firing=a.firing.add(b.firing),
        nonfinite=a.nonfinite.add(b.nonfinite),
        pre_mean=a.pre_mean + d_pre * w,
        pre_m2=a.pre_m2 + b.pre_m2 + jnp.square(d_pre) * cross,
        pre_min=jnp.minimum(a.pre_min, b.pre_min),
        pre_max=jnp.maximum(a.pre_max, b.pre_max),
        out_mean=a.out_mean + d_out * w,
        out_m2=a.out_m2 + b.out_m2 + jnp.square(d_out) * cross,
        out_abs_mean=a.out_abs_mean + (b.out_abs_mean - a.out_abs_mean) * w,
    )


_merge = jax.jit(_merge_impl)
