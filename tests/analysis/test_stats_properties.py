"""Property tests of the statistics monoid (hypothesis): merge is associative and commutative,
streaming equals one pass for random batch splits, blocked equals unblocked reductions.

Shapes are fixed per test (values, NaN positions, splits and block sizes are drawn), so that
the examples reuse a handful of compiled programs.
"""

import chex
import jax
import jax.numpy as jnp
import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from relujax.analysis import UnitStats
from relujax.analysis._stats import _fast_of

CHEAP = settings(max_examples=25, deadline=None)
ROWS, UNITS = 24, 3


def batches(rows, *, nan=True):
    """Float32 arrays (rows, UNITS) of moderate values, with some NaN rows when ``nan``."""
    values = hnp.arrays(
        np.float32,
        (rows, UNITS),
        elements=st.floats(-100, 100, width=32, allow_subnormal=False),
    )
    if not nan:
        return values
    masks = hnp.arrays(np.bool_, (rows, UNITS))
    return st.tuples(values, masks, st.integers(0, 4)).map(
        lambda t: np.where(t[1] & (np.arange(rows)[:, None] < t[2]), np.nan, t[0]).astype(
            np.float32
        )
    )


def relu_stats(x):
    x = jnp.asarray(x)
    return UnitStats.from_batch(x, jnp.maximum(x, 0.0), nonnegative=True, sign_preserving=True)


def assert_same_stats(a, b, data):
    """Counts exactly equal; moments equal to float32 rounding of the data's scale."""
    for field in ("count", "firing", "nonfinite"):
        np.testing.assert_array_equal(getattr(a, field).to_numpy(), getattr(b, field).to_numpy())
    finite = np.where(np.isfinite(data), data, 0.0).astype(np.float64)
    scale = float(np.sum(finite**2)) + 1.0  # raw sums of squares bound the rounding of M2
    chex.assert_trees_all_close(a.pre_mean, b.pre_mean, rtol=1e-5, atol=1e-4)
    chex.assert_trees_all_close(a.out_abs_mean, b.out_abs_mean, rtol=1e-5, atol=1e-4)
    chex.assert_trees_all_close(a.pre_m2, b.pre_m2, rtol=1e-4, atol=1e-5 * scale)
    chex.assert_trees_all_close(a.out_m2, b.out_m2, rtol=1e-4, atol=1e-5 * scale)
    np.testing.assert_array_equal(a.pre_min, b.pre_min)
    np.testing.assert_array_equal(a.pre_max, b.pre_max)


@CHEAP
@given(batches(8), batches(8), batches(8))
def test_merge_is_associative_and_commutative(x, y, z):
    a, b, c = relu_stats(x), relu_stats(y), relu_stats(z)
    data = np.concatenate([x, y, z])
    assert_same_stats(a.merge(b).merge(c), a.merge(b.merge(c)), data)
    assert_same_stats(a.merge(b), b.merge(a), data)
    assert_same_stats(a.merge(UnitStats.empty(UNITS)), a, x)


@CHEAP
@given(batches(ROWS), st.sets(st.integers(1, ROWS - 1), max_size=6))
def test_streaming_equals_one_pass_for_random_splits(x, cuts):
    whole = relu_stats(x)
    streamed = UnitStats.empty(UNITS)
    for part in np.split(x, sorted(cuts)):
        streamed = streamed.merge(relu_stats(part))
    assert_same_stats(streamed, whole, x)
    finite = np.isfinite(x)
    np.testing.assert_array_equal(whole.count.to_numpy(), finite.sum(0))
    np.testing.assert_array_equal(whole.firing.to_numpy(), (finite & (x > 0)).sum(0))


_BLOCKED = {}


def fast(x, block_bytes):
    """The jitted fast path with the given block size (None: one pass), cached per size."""
    if block_bytes not in _BLOCKED:
        _BLOCKED[block_bytes] = jax.jit(
            lambda x: _fast_of(
                x,
                jnp.maximum(x, 0.0),
                nonnegative=True,
                sign_preserving=True,
                moments=True,
                block_bytes=block_bytes,
            )
        )
    return _BLOCKED[block_bytes](x)


@CHEAP
@given(batches(ROWS, nan=False), st.sampled_from([1, 3, 5, 7, 12]))
def test_blocked_equals_unblocked(x, rows):
    # rows per block of (ROWS, UNITS) float32: 24 rows split exactly (1, 3, 12) or ragged (5, 7).
    blocked, ok_blocked = fast(x, rows * UNITS * 4)
    whole, ok_whole = fast(x, None)
    assert bool(ok_blocked) and bool(ok_whole)
    assert_same_stats(blocked, whole, x)
