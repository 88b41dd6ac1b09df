"""Exact hi/lo uint32 counts: carry logic on synthetic values near 2**32."""

import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from relujax.analysis import Count

U32 = 2**32


def _count(values):
    v = np.asarray(values, np.uint64)
    hi = (v >> np.uint64(32)).astype(np.uint32)
    lo = (v & np.uint64(U32 - 1)).astype(np.uint32)
    return Count(jnp.asarray(hi), jnp.asarray(lo))


@pytest.mark.parametrize(
    ("a", "b"),
    [
        (0, 0),
        (U32 - 1, 1),  # the low word wraps exactly to 0
        (U32 - 1, U32 - 1),
        (2**31, 2**31),  # int32 would overflow here
        (3 * U32 + 5, U32 - 2),
        (2**40 + 123, 2**33 + (U32 - 124)),
    ],
)
def test_add_matches_exact_integer_sum(a, b):
    got = _count([a]).add(_count([b])).to_numpy()
    np.testing.assert_array_equal(got, np.array([a + b], np.uint64))


def test_of_wraps_batch_counts_and_accumulates_past_two_to_the_32():
    c = Count.zeros((2,))
    step = Count.of(jnp.array([2**31 - 1, 7], jnp.int32))
    for _ in range(5):  # 5 * (2**31 - 1) > 2**32
        c = c.add(step)
    np.testing.assert_array_equal(c.to_numpy(), [5 * (2**31 - 1), 35])
    chex.assert_type([c.hi, c.lo], jnp.uint32)


def test_to_float_is_close_for_large_counts():
    c = _count([3 * U32 + 12345])
    np.testing.assert_allclose(c.to_float(), 3 * U32 + 12345, rtol=1e-7)


def test_add_under_jit_and_vmap():
    a = _count([U32 - 1, 5, 2**35])
    b = _count([2, U32 - 5, 1])
    want = np.array([U32 + 1, U32, 2**35 + 1], np.uint64)
    np.testing.assert_array_equal(jax.jit(Count.add)(a, b).to_numpy(), want)
    np.testing.assert_array_equal(jax.vmap(Count.add)(a, b).to_numpy(), want)


def test_add_in_scan_carry():
    steps = jnp.full((6,), 2**30 + 3, jnp.int32)

    def body(c, n):
        return c.add(Count.of(n)), None

    total, _ = jax.lax.scan(body, Count.zeros(), steps)
    assert int(total.to_numpy()) == 6 * (2**30 + 3)
