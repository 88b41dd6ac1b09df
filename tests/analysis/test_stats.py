"""UnitStats: hand-computed values, the monoid laws, NaN handling, fast == masked path,
blocked == unblocked reductions."""

import math

import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from relujax.analysis import UnitStats, _reduce
from relujax.analysis._reduce import block_plan, fold_blocks
from relujax.analysis._stats import _fast, _fast_of, _masked


def randn(seed, *shape):
    """Standard normal float32 samples from NumPy (no XLA compile, unlike jax.random)."""
    return jnp.asarray(np.random.default_rng(seed).normal(size=shape), jnp.float32)


X = jnp.array([[-1.0, 2.0, 0.0], [3.0, -4.0, 0.0], [5.0, 6.0, 0.0], [-7.0, 8.0, 0.0]])


def relu_stats(x, **kw):
    return UnitStats.from_batch(x, jnp.maximum(x, 0.0), **kw)


def numpy_reference(x, y):
    """Statistics of finite rows, the slow obvious way (float64)."""
    x, y = np.asarray(x, np.float64), np.asarray(y, np.float64)
    out = {}
    for name in (
        "count",
        "firing",
        "pre_mean",
        "pre_var",
        "out_mean",
        "out_var",
        "abs",
        "min",
        "max",
        "nonfinite",
    ):
        out[name] = []
    for u in range(x.shape[-1]):
        xu, yu = x[..., u].ravel(), y[..., u].ravel()
        f = np.isfinite(xu) & np.isfinite(yu)
        xu, yu = xu[f], yu[f]
        out["count"].append(f.sum())
        out["nonfinite"].append((~f).sum())
        out["firing"].append((xu > 0).sum())
        out["pre_mean"].append(xu.mean() if xu.size else 0.0)
        out["pre_var"].append(xu.var() if xu.size else np.nan)
        out["out_mean"].append(yu.mean() if yu.size else 0.0)
        out["out_var"].append(yu.var() if yu.size else np.nan)
        out["abs"].append(np.abs(yu).mean() if yu.size else 0.0)
        out["min"].append(xu.min() if xu.size else np.inf)
        out["max"].append(xu.max() if xu.size else -np.inf)
    return {k: np.array(v) for k, v in out.items()}


def assert_matches_reference(s, x, y, rtol=1e-5):
    ref = numpy_reference(x, y)
    np.testing.assert_array_equal(s.count.to_numpy(), ref["count"])
    np.testing.assert_array_equal(s.firing.to_numpy(), ref["firing"])
    np.testing.assert_array_equal(s.nonfinite.to_numpy(), ref["nonfinite"])
    np.testing.assert_allclose(s.pre_mean, ref["pre_mean"], rtol=rtol, atol=1e-5)
    np.testing.assert_allclose(s.out_mean, ref["out_mean"], rtol=rtol, atol=1e-5)
    np.testing.assert_allclose(s.pre_std**2, ref["pre_var"], rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose(s.std**2, ref["out_var"], rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose(s.out_abs_mean, ref["abs"], rtol=rtol, atol=1e-5)
    np.testing.assert_array_equal(s.pre_min, ref["min"].astype(np.float32))
    np.testing.assert_array_equal(s.pre_max, ref["max"].astype(np.float32))


def test_hand_computed_relu_batch():
    s = relu_stats(X)
    chex.assert_trees_all_close(s.firing_rate, jnp.array([0.5, 0.75, 0.0]))
    chex.assert_trees_all_close(s.abs_mean, jnp.array([2.0, 4.0, 0.0]))  # (3+5)/4, (2+6+8)/4
    chex.assert_trees_all_close(s.pre_mean, jnp.array([0.0, 3.0, 0.0]))
    chex.assert_trees_all_close(s.pre_std**2, jnp.array([21.0, 21.0, 0.0]))  # 84/4 each
    np.testing.assert_array_equal(s.dead, [False, False, True])
    np.testing.assert_array_equal(s.always_active, [False, False, False])
    chex.assert_trees_all_close(s.pre_min, jnp.array([-7.0, -4.0, 0.0]))
    chex.assert_trees_all_close(s.pre_max, jnp.array([5.0, 8.0, 0.0]))
    chex.assert_shape([s.pre_mean, s.count.lo], (3,))


@pytest.mark.parametrize("nonnegative", [False, True])
def test_matches_numpy_reference(nonnegative):
    x = randn(0, 5, 7, 4) * 3 + 1
    y = jnp.maximum(x, 0.0)
    assert_matches_reference(UnitStats.from_batch(x, y, nonnegative=nonnegative), x, y)


def test_tag_form_uses_input_as_output():
    x = jnp.array([[1.0, -2.0], [-3.0, 4.0]])
    s = UnitStats.from_batch(x)
    chex.assert_trees_all_close(s.abs_mean, jnp.array([2.0, 3.0]))
    chex.assert_trees_all_close(s.firing_rate, jnp.array([0.5, 0.5]))
    chex.assert_trees_all_close(s.out_mean, s.pre_mean)


def test_conv_layout_pools_batch_and_space_per_channel():
    x = randn(1, 2, 3, 5, 4)  # NHWC, 4 channels
    y = jnp.maximum(x, 0.0)
    s = UnitStats.from_batch(x, y)
    assert s.units == 4
    np.testing.assert_array_equal(s.count.to_numpy(), [30] * 4)
    assert_matches_reference(s, x.reshape(-1, 4), y.reshape(-1, 4))


def test_scalar_and_vector_inputs():
    assert UnitStats.from_batch(jnp.float32(2.0)).units == 1
    s = UnitStats.from_batch(jnp.array([1.0, -1.0]))  # one sample of two units
    np.testing.assert_array_equal(s.firing.to_numpy(), [1, 0])


def test_shape_mismatch_is_an_error():
    with pytest.raises(ValueError, match="same shape"):
        UnitStats.from_batch(jnp.ones((2, 3)), jnp.ones((2, 4)))


@pytest.mark.parametrize("bad", [jnp.nan, jnp.inf, -jnp.inf])
def test_nonfinite_values_are_counted_never_firing_or_dead(bad):
    x = jnp.array([[1.0, bad, -1.0], [2.0, bad, bad], [3.0, -1.0, -2.0]])
    s = relu_stats(x)
    np.testing.assert_array_equal(s.nonfinite.to_numpy(), [0, 2, 1])
    np.testing.assert_array_equal(s.count.to_numpy(), [3, 1, 2])
    np.testing.assert_array_equal(s.firing.to_numpy(), [3, 0, 0])
    chex.assert_tree_all_finite((s.pre_mean, s.pre_m2, s.out_mean, s.out_m2, s.out_abs_mean))
    np.testing.assert_array_equal(s.dead, [False, True, True])  # dead on its finite samples
    assert_matches_reference(s, x, jnp.maximum(x, 0.0))


def test_all_nonfinite_unit_is_neither_dead_nor_active():
    x = jnp.array([[jnp.nan, 1.0], [jnp.nan, 2.0]])
    s = relu_stats(x)
    np.testing.assert_array_equal(s.dead, [False, False])
    np.testing.assert_array_equal(s.always_active, [False, True])
    assert np.isnan(s.firing_rate[0]) and np.isnan(s.mean[0])
    chex.assert_trees_all_close(s.nonfinite_fraction, jnp.array([1.0, 0.0]))


def test_fast_path_equals_masked_path_on_finite_data():
    x = randn(2, 64, 5) - 0.5
    y = jax.nn.elu(x)
    for sign_preserving in (False, True):
        fast = jax.jit(
            lambda x, y, sp=sign_preserving: _fast(
                x, y, same=False, nonnegative=False, sign_preserving=sp, moments=True
            )[0]
        )(x, y)
        chex.assert_trees_all_close(fast, jax.jit(_masked)(x, y), rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("bad", [None, jnp.nan])
def test_without_moments_keeps_counts_firing_and_abs_mean(bad):
    x = randn(6, 16, 3)
    if bad is not None:
        x = x.at[3, 1].set(bad)
    y = jax.nn.leaky_relu(x)
    full = UnitStats.from_batch(x, y)
    for kw in ({}, {"sign_preserving": True}):
        cheap = UnitStats.from_batch(x, y, moments=False, **kw)
        for field in ("count", "firing", "nonfinite", "out_abs_mean"):
            chex.assert_trees_all_close(getattr(cheap, field), getattr(full, field), rtol=1e-6)
        for field in ("pre_mean", "pre_m2", "pre_min", "pre_max", "out_mean", "out_m2"):
            assert np.isnan(getattr(cheap, field)).all()
    # merging keeps the moment fields NaN and the counts exact
    twice = cheap.merge(cheap)
    np.testing.assert_array_equal(twice.firing.to_numpy(), 2 * full.firing.to_numpy())
    assert np.isnan(twice.pre_mean).all()


@pytest.mark.parametrize("moments", [True, False])
@pytest.mark.parametrize(
    ("act", "kw"),
    [
        (lambda x: jnp.maximum(x, 0.0), {"nonnegative": True, "sign_preserving": True}),
        (lambda x: jnp.where(x > 0, x, 0.1 * x), {"sign_preserving": True}),
        (lambda x: jnp.where(x > 0, x, 0.1 * x), {}),
    ],
)
def test_firing_counts_by_hand_at_zero_and_negative_zero(act, kw, moments):
    # Per unit: positives, exact zeros (+0.0 and -0.0), negatives and tiny values.
    x = jnp.array([[1.0, 0.0, -1.0], [0.0, -0.0, 2.0], [-0.0, 3.0, 1e-30], [-2.0, -1e-30, 4.0]])
    want = [1, 1, 3]

    def stats(x):
        return UnitStats.from_batch(x, act(x), moments=moments, **kw)

    for s in (stats(x), jax.jit(stats)(x)):  # eager (fast path only) and traced (with cond)
        np.testing.assert_array_equal(s.firing.to_numpy(), want)
        np.testing.assert_array_equal(s.count.to_numpy(), [4, 4, 4])


def test_empty_is_the_identity_of_merge():
    s = relu_stats(X)
    e = UnitStats.empty(3)
    chex.assert_trees_all_close(e.merge(s), s)
    chex.assert_trees_all_close(s.merge(e), s)
    np.testing.assert_array_equal(e.dead, [False] * 3)


@pytest.mark.parametrize("splits", [(7,), (5, 10, 15), tuple(range(1, 20))])
def test_streaming_equals_one_pass(splits):
    x = randn(3, 20, 6) * 2 + 3  # mean >> 0: tests the M2 merge
    y = jax.nn.leaky_relu(x)
    whole = UnitStats.from_batch(x, y)
    parts = np.split(np.arange(20), splits)
    streamed = UnitStats.empty(6)
    for idx in parts:
        streamed = streamed.merge(UnitStats.from_batch(x[idx], y[idx]))
    chex.assert_trees_all_close(streamed, whole, rtol=2e-5, atol=2e-5)


def test_merge_is_associative_and_commutative():
    # One shape (one compile); NaN rows give the three summaries 4, 2 and 1 samples.
    a, b, c = (
        relu_stats((randn(40 + i, 4, 3) + i).at[: 4 - n].set(jnp.nan))
        for i, n in enumerate((4, 2, 1))
    )
    np.testing.assert_array_equal(c.count.to_numpy(), [1, 1, 1])
    chex.assert_trees_all_close(a.merge(b).merge(c), a.merge(b.merge(c)), rtol=1e-5, atol=1e-6)
    chex.assert_trees_all_close(a.merge(b), b.merge(a), rtol=1e-5, atol=1e-6)


def test_from_batch_and_merge_under_jit_vmap_and_grad():
    xs = randn(5, 3, 8, 2)  # 3 models' activations
    one = [relu_stats(x) for x in xs]
    batched = jax.vmap(lambda x: relu_stats(x))(xs)
    for k in range(3):
        chex.assert_trees_all_close(jax.tree.map(lambda a, k=k: a[k], batched), one[k])
    jitted = jax.jit(lambda a, b: relu_stats(a).merge(relu_stats(b)))(xs[0], xs[1])
    chex.assert_trees_all_close(jitted, one[0].merge(one[1]), rtol=1e-6)
    # Statistics are stop_gradient-ed: they never feed gradients back into a model.
    g = jax.grad(lambda x: jnp.sum(relu_stats(x).pre_mean) + jnp.sum(relu_stats(x).abs_mean))(xs[0])
    chex.assert_trees_all_close(g, jnp.zeros_like(xs[0]))


def test_float32_counts_stay_exact_for_large_batches():
    # 2**12 rows x 3: counts of ones summed in float32 are exact (rows < 2**24).
    x = jnp.where(jnp.arange(4096)[:, None] % 3 == 0, 1.0, -1.0) * jnp.ones((1, 3))
    s = relu_stats(x)
    np.testing.assert_array_equal(s.firing.to_numpy(), [1366] * 3)


# --- blocked reductions (relujax.analysis._reduce) ------------------------------------------


@pytest.mark.parametrize(
    ("shape", "rows"),
    [((11, 3), 4), ((12, 3), 4), ((5, 2, 3), 2), ((7, 3), 1), ((9, 3), 8)],  # ragged or exact
)
def test_fold_blocks_of_the_sum_monoid_equals_the_sum(shape, rows):
    x = jnp.arange(math.prod(shape), dtype=jnp.int32).reshape(shape)
    total = fold_blocks(lambda b: b.sum(axis=0), lambda a, b: a + b, [x], axes=1, rows=rows)
    np.testing.assert_array_equal(total, np.asarray(x).sum(axis=0))


@pytest.mark.parametrize(
    ("shape", "block", "want"),
    [
        ((256, 28, 28, 32), 1 << 20, (1, 10)),  # 100 KiB per sample
        ((2, 1024, 64), 1 << 16, (2, 256)),  # a sample is larger than a block: merge 2 axes
        ((256, 64), 1 << 20, None),  # 64 KiB: one pass
        ((3, 1 << 20), 1 << 16, None),  # one unit row exceeds the block: the units never split
        ((3, 1000, 8), 10_000, (2, 312)),  # 32 KB per sample: blocks of 312 positions
        ((3, 10, 8), 400, (1, 1)),
        ((2, 10, 8), 400, None),  # fewer than two blocks
    ],
)
def test_block_plan(shape, block, want):
    assert block_plan(shape, 4, block) == want


def _fast_of_jit(block_bytes=None, **kw):
    return jax.jit(lambda x, y: _fast_of(x, y, block_bytes=block_bytes, **kw))


RELU = dict(nonnegative=True, sign_preserving=True, moments=True)
ANY = dict(nonnegative=False, sign_preserving=False, moments=True)
CHEAP = dict(nonnegative=True, sign_preserving=True, moments=False)


@pytest.mark.parametrize(
    ("dtype", "kw"),
    [
        (jnp.float32, RELU),
        (jnp.float32, ANY),
        (jnp.float32, CHEAP),
        (jnp.float16, RELU),
        (jnp.bfloat16, ANY),
    ],
)
def test_blocked_statistics_equal_unblocked(dtype, kw):
    # 13 samples of 5 x 2 x 3: 240-byte blocks hold 2 samples, so 6 full blocks and a ragged one.
    x = (randn(7, 13, 5, 2, 3) * 2 + 1).astype(dtype)
    y = jax.nn.relu(x) if kw["nonnegative"] else jax.nn.elu(x)
    assert block_plan(x.shape, 4, 240) == (1, 2)
    blocked, ok_b = _fast_of_jit(240, **kw)(x, y)
    whole, ok_w = _fast_of_jit(**kw)(x, y)
    assert bool(ok_b) and bool(ok_w)
    for field in ("count", "firing", "nonfinite"):  # exact
        np.testing.assert_array_equal(
            getattr(blocked, field).to_numpy(), getattr(whole, field).to_numpy()
        )
    chex.assert_trees_all_close(blocked, whole, rtol=2e-5, atol=2e-5)
    np.testing.assert_array_equal(blocked.count.to_numpy(), [13 * 10] * 3)
    if kw["moments"]:
        assert_matches_reference(blocked, x.astype(jnp.float32), y.astype(jnp.float32))


def test_blocked_finiteness_flag_sees_every_block():
    x = randn(8, 9, 4, 3).at[7, 2, 1].set(jnp.nan)  # in the ragged last block
    _, ok = _fast_of_jit(96, nonnegative=False, sign_preserving=False, moments=True)(x, x)
    assert not bool(ok)
    x = randn(8, 9, 4, 3).at[3, 0, 0].set(-jnp.inf)  # in a block of the loop
    _, ok = _fast_of_jit(96, nonnegative=False, sign_preserving=False, moments=False)(x, x)
    assert not bool(ok)


@pytest.mark.parametrize("moments", [True, False])
def test_cpu_blocks_only_the_full_statistics_of_large_activations(monkeypatch, moments):
    monkeypatch.setattr(_reduce, "BLOCK_BYTES", 256)
    x = randn(9, 16, 4, 4)  # 1 KiB per sample: 4 KiB blocks of 4 samples
    y = jax.nn.relu(x)
    kw = dict(nonnegative=True, sign_preserving=True, moments=moments)
    small = jax.jit(lambda x, y: _fast_of(x, y, **kw)).lower(x, y).compile().as_text()
    monkeypatch.setattr(_reduce, "MIN_BYTES", 1024)
    fn = jax.jit(lambda x, y: _fast_of(x, y, **kw))
    large = fn.lower(x, y).compile().as_text()
    assert " while(" not in small
    assert (" while(" in large) == (moments and jax.default_backend() == "cpu")
    chex.assert_trees_all_close(fn(x, y), _fast_of_jit(**kw)(x, y), rtol=2e-5, atol=2e-5)
