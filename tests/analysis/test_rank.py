"""Effective rank and approximate (99%) rank on matrices with known singular values."""

import math

import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from relujax.analysis import approximate_rank, effective_rank


def with_singular_values(s, rows=6, seed=0):
    """A (rows, len(s)) matrix U diag(s) V^T with random orthogonal U, V."""
    k = len(s)
    u, _ = np.linalg.qr(np.random.default_rng(seed).normal(size=(rows, k)))
    v, _ = np.linalg.qr(np.random.default_rng(seed + 1).normal(size=(k, k)))
    return jnp.asarray(u @ np.diag(s) @ v.T, jnp.float32)


def entropy_rank(s):
    p = np.asarray(s, float) / np.sum(s)
    p = p[p > 0]
    return math.exp(-np.sum(p * np.log(p)))


@pytest.mark.parametrize(
    ("s", "erank", "srank"),
    [
        ((3.0, 1.0), entropy_rank((3, 1)), 2),
        ((1.0, 1.0, 1.0, 1.0), 4.0, 4),  # all equal: full rank
        ((5.0, 0.0, 0.0), 1.0, 1),  # rank one
        ((100.0, 0.5, 0.25), entropy_rank((100, 0.5, 0.25)), 1),  # 100/100.75 = 0.9926
        ((90.0, 9.5, 0.5), entropy_rank((90, 9.5, 0.5)), 2),  # 90/100 < 0.99 <= 99.5/100
        ((0.0, 0.0), 0.0, 0),  # the zero matrix
    ],
)
def test_known_spectra(s, erank, srank):
    f = with_singular_values(s)
    chex.assert_trees_all_close(effective_rank(f), jnp.float32(erank), rtol=1e-4, atol=1e-5)
    assert int(approximate_rank(f)) == srank
    chex.assert_type(approximate_rank(f), jnp.int32)


def test_threshold_parameter():
    f = with_singular_values((4.0, 3.0, 2.0, 1.0))  # cumulative 0.4, 0.7, 0.9, 1.0
    assert [int(approximate_rank(f, threshold=t)) for t in (0.3, 0.5, 0.8, 0.95, 1.0)] == [
        1,
        2,
        3,
        4,
        4,
    ]
    with pytest.raises(ValueError, match="threshold"):
        approximate_rank(f, threshold=0.0)
    with pytest.raises(ValueError, match="2-D"):
        effective_rank(jnp.ones(3))


def test_under_jit_vmap_and_grad():
    fs = jnp.stack([with_singular_values((3.0, 1.0), seed=i) for i in range(3)])
    chex.assert_trees_all_close(jax.vmap(effective_rank)(fs), jnp.full(3, entropy_rank((3, 1))),
                                rtol=1e-4)  # fmt: skip
    np.testing.assert_array_equal(jax.jit(jax.vmap(approximate_rank))(fs), [2, 2, 2])
    # d erank / d s_i at p = (3/4, 1/4): erank = exp(H), dH/ds_i = -(log p_i + H) / sum(s)
    f = jnp.diag(jnp.array([3.0, 1.0]))
    g = jax.grad(effective_rank)(f)
    h = -(0.75 * math.log(0.75) + 0.25 * math.log(0.25))
    want = [math.exp(h) * -(math.log(p) + h) / 4.0 for p in (0.75, 0.25)]
    chex.assert_trees_all_close(jnp.diag(g), jnp.array(want, jnp.float32), rtol=1e-4)
    chex.assert_tree_all_finite(jax.grad(effective_rank)(jnp.zeros((2, 2))))
