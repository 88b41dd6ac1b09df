"""collect(sub_batch=...): blocks of a batch merge to the whole batch's statistics, and a
batch-coupled model (batch statistics, per-batch random draws, the batch size as a number) is
refused, never silently blocked."""

import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

import relujax
from relujax import analysis
from relujax.analysis import _blocks, _collect


def randn(seed, *shape):
    return jnp.asarray(np.random.default_rng(seed).normal(size=shape), jnp.float32)


K = randn(1, 3, 3, 1, 4)  # HWIO: 4 channels
W = randn(2, 4 * 3 * 3, 5)
XS = randn(3, 3, 8, 6, 6, 1)  # 3 batches of 8 images 6x6x1


def cnn(x):
    """conv -> bias -> relu -> 2x2 max pool -> flatten -> dense -> leaky relu: per-sample."""
    h = jax.lax.conv_general_dilated(
        x, K, (1, 1), "SAME", dimension_numbers=("NHWC", "HWIO", "NHWC")
    )
    h = jax.nn.relu(h - 0.1)
    h = jax.lax.reduce_window(h, -jnp.inf, jax.lax.max, (1, 2, 2, 1), (1, 2, 2, 1), "VALID")
    return relujax.leaky_relu(h.reshape(h.shape[0], -1) @ W, 0.1)


def reference(xs):
    """float64 NumPy statistics of both sites over all samples, written out by hand."""
    x = np.asarray(xs, np.float64).reshape(-1, 6, 6, 1)
    pad = np.pad(x, ((0, 0), (1, 1), (1, 1), (0, 0)))
    k = np.asarray(K, np.float64)
    pre0 = sum(pad[:, i : i + 6, j : j + 6, :] @ k[i, j] for i in range(3) for j in range(3)) - 0.1
    out0 = np.maximum(pre0, 0.0)
    pooled = out0.reshape(-1, 3, 2, 3, 2, 4).max(axis=(2, 4))
    pre1 = pooled.reshape(len(x), -1) @ np.asarray(W, np.float64)
    out1 = np.where(pre1 > 0, pre1, 0.1 * pre1)
    return {"relu_0": (pre0.reshape(-1, 4), out0.reshape(-1, 4)), "leaky_relu_0": (pre1, out1)}


REF = reference(XS)


def assert_matches_reference(stats, *, moments):
    assert list(stats) == ["relu_0", "leaky_relu_0"]
    for name, (pre, out) in REF.items():
        s = stats[name]
        np.testing.assert_array_equal(s.count.to_numpy(), len(pre))
        np.testing.assert_array_equal(s.firing.to_numpy(), (pre > 0).sum(0))
        np.testing.assert_allclose(s.abs_mean, np.abs(out).mean(0), rtol=1e-5, atol=1e-6)
        if moments:
            np.testing.assert_allclose(s.pre_mean, pre.mean(0), rtol=1e-4, atol=1e-5)
            np.testing.assert_allclose(s.pre_std, pre.std(0), rtol=1e-4, atol=1e-5)
            np.testing.assert_allclose(s.std, out.std(0), rtol=1e-4, atol=1e-5)
            np.testing.assert_allclose(s.pre_min, pre.min(0), rtol=1e-5, atol=1e-6)
            np.testing.assert_allclose(s.pre_max, pre.max(0), rtol=1e-5, atol=1e-6)
        else:
            assert np.isnan(np.asarray(s.pre_mean)).all()


def test_blocks_equal_whole_batches_and_reference():
    whole = analysis.collect(cnn, list(XS), sub_batch=None)
    blocked = analysis.collect(cnn, list(XS), sub_batch=2)
    assert_matches_reference(blocked, moments=True)
    for name in whole:  # counts exact, the rest to float32 rounding
        assert blocked[name].count.to_numpy().tolist() == whole[name].count.to_numpy().tolist()
        assert blocked[name].firing.to_numpy().tolist() == whole[name].firing.to_numpy().tolist()
        chex.assert_trees_all_close(blocked[name], whole[name], rtol=1e-4, atol=1e-5)


def spy(monkeypatch):
    """Records what collect's sub-batch decision returned: None or (traced, block size)."""
    seen = []
    real = _collect._sub_batch

    def recorded(*args):
        seen.append(real(*args))
        return seen[-1]

    monkeypatch.setattr(_collect, "_sub_batch", recorded)
    return seen


def test_stacked_blocks_and_auto(monkeypatch):
    seen = spy(monkeypatch)
    stacked = analysis.collect(cnn, XS, moments=False, sub_batch=4)
    assert_matches_reference(stacked, moments=False)
    assert seen.pop()[1] == 4
    monkeypatch.setattr(_collect, "AUTO_MIN_BYTES", 0)  # the test's sites are small
    assert_matches_reference(analysis.collect(cnn, XS, moments=False), moments=False)
    assert seen.pop()[1] == 4  # the largest divisor of 8 below the block size, 2 blocks
    monkeypatch.setattr(_collect, "AUTO_MIN_BYTES", 1 << 40)
    analysis.collect(cnn, XS[:1], moments=False)
    assert seen.pop() is None


@pytest.mark.skipif(jax.default_backend() != "cpu", reason="auto blocks on CPU only")
def test_auto_blocks_hold_at_most_two_mib_of_the_largest_site(monkeypatch):
    # 100 KB per sample (the benchmark CNN's first conv site), 6.4 MB per batch of 64: blocks
    # of 16 samples (1.6 MB; the largest divisor of 64 within 2 MiB), measured faster on CPU
    # than blocks of 8 within a 1 MiB L2 (benchmarks/README.md).
    seen = spy(monkeypatch)
    xs = randn(5, 2, 64, 25_000)
    stats = analysis.collect(jax.nn.relu, list(xs), moments=False)
    assert seen.pop()[1] == 16
    firing = (np.asarray(xs) > 0).sum((0, 1))
    np.testing.assert_array_equal(stats["relu_0"].firing.to_numpy(), firing)
    assert _blocks.choose(64, 25_000 * 4, _collect.AUTO_BLOCK_BYTES) == 16


def test_auto_never_blocks_a_batch_coupled_model(monkeypatch):
    seen = spy(monkeypatch)
    monkeypatch.setattr(_collect, "AUTO_MIN_BYTES", 0)

    def centred(x):  # a mean over the batch: blocks would centre each block on its own mean
        return jax.nn.relu(x - jnp.mean(x, axis=0, keepdims=True))

    xs = randn(4, 2, 8, 3) + jnp.arange(8.0)[None, :, None]
    auto = analysis.collect(centred, list(xs))
    assert seen.pop() is None
    c = np.asarray(xs) - np.asarray(xs).mean(axis=1, keepdims=True)
    np.testing.assert_array_equal(auto["relu_0"].firing.to_numpy(), (c > 0).sum((0, 1)))
    with pytest.raises(ValueError, match=r"sub_batch=4 needs a per-sample model.*reduce_sum"):
        analysis.collect(centred, list(xs), sub_batch=4)


class BNNet(nnx.Module):
    def __init__(self, *, train: bool, dropout: float = 0.0):
        self.linear = nnx.Linear(3, 4, rngs=nnx.Rngs(0))
        self.bn = nnx.BatchNorm(4, use_running_average=not train, rngs=nnx.Rngs(0))
        self.drop = nnx.Dropout(dropout, rngs=nnx.Rngs(1))

    def __call__(self, x):
        return jax.nn.relu(self.drop(self.bn(self.linear(x))))


def test_nnx_module_blocked_when_per_sample_refused_when_batch_coupled():
    xs = randn(5, 2, 8, 3)
    frozen = BNNet(train=False)  # running averages: per-sample
    chex.assert_trees_all_close(
        analysis.collect(frozen, xs, sub_batch=2)["relu_0"],
        analysis.collect(frozen, xs, sub_batch=None)["relu_0"],
        rtol=1e-5,
        atol=1e-6,
    )
    with pytest.raises(ValueError, match="reduces the batch axis"):
        analysis.collect(BNNet(train=True), xs, sub_batch=2)
    with pytest.raises(ValueError, match="random_bits makes a batch-sized array"):
        analysis.collect(BNNet(train=False, dropout=0.5), xs, sub_batch=2)


@pytest.mark.parametrize(
    ("fn", "reason"),
    [
        (lambda x: jax.nn.relu(x / x.shape[0]), "depends on the batch size"),
        (lambda x: jax.nn.relu(x + jnp.arange(x.shape[0])[:, None]), "iota makes a batch-sized"),
        (lambda x: jax.nn.relu(x @ x.T), "contracts batched operands across samples"),
        (lambda x: jax.nn.relu(x.reshape(-1, 6)), "reshape merges samples"),
        (lambda x: jax.nn.relu(jnp.sort(x, axis=0)), "sort is not known to keep samples apart"),
        (lambda x: jax.nn.relu(jnp.roll(x, 1, axis=0)), "depends on the batch size"),
        (lambda x: jax.nn.relu(x[1:]), "slice cuts the batch axis"),
    ],
)
def test_unproved_names_the_obstacle(fn, reason):
    def traced(n):
        closed = jax.make_jaxpr(fn)(jnp.ones((n, 3)))
        return closed.jaxpr, closed.consts

    (a, ca), (b, cb) = traced(8), traced(2)
    assert reason in _blocks.unproved(a, b, ca, cb, batched=[0], batch=8, block=2)


def test_unproved_accepts_per_sample_operations():
    w = randn(6, 3, 3)

    def fn(x):  # layer norm, a per-sample matmul, transposes, a constant key's scalar draw
        h = nnx.LayerNorm(3, rngs=nnx.Rngs(0))(x) @ w
        att = jnp.einsum("bij,bkj->bik", h, h)
        noise = jax.random.normal(jax.random.key(0), ())
        # jnp.std holds a NaN literal (its where for a zero divisor), equal in both traces
        h = (att - att.mean(-1, keepdims=True)) / att.std(-1, keepdims=True)
        h = jax.checkpoint(lambda a: jnp.where(a > 5.0, jnp.nan, a))(h)
        return jax.nn.gelu(jnp.swapaxes(h, 1, 2) + noise)[:, 1:]

    def traced(n):
        closed = jax.make_jaxpr(fn)(jnp.ones((n, 4, 3)))
        return closed.jaxpr, closed.consts

    (a, ca), (b, cb) = traced(8), traced(2)
    assert _blocks.unproved(a, b, ca, cb, batched=[0], batch=8, block=2) is None


def test_sub_batch_validation():
    with pytest.raises(ValueError, match="sub_batch must divide the batch size 8, got 3"):
        analysis.collect(cnn, XS, sub_batch=3)
    with pytest.raises(ValueError, match="sub_batch must be an int >= 1"):
        analysis.collect(cnn, XS, sub_batch=0)
    with pytest.raises(ValueError, match="sub_batch"):
        analysis.collect(cnn, XS, sub_batch="fast")
    with pytest.raises(TypeError, match="sub_batch must be an int"):
        analysis.collect(cnn, XS, sub_batch=2.0)
    with pytest.raises(ValueError, match="share one"):  # leading sizes 8 and 4
        analysis.collect(lambda b: cnn(b[0]) + b[1].sum(), [(XS[0], XS[0, :4])], sub_batch=2)


def test_nnx_program_reused_across_calls_sees_new_parameters():
    """collect traces an NNX module once per graph; a second call after the weights change
    must use the new weights (they are arguments of the cached step, not constants)."""
    model = relujax.nn.MLP(3, [4], 2, rngs=nnx.Rngs(0))
    xs = randn(7, 2, 8, 3)
    first = analysis.collect(model, xs)
    kernel = model.layers[0].kernel
    kernel[...] = -kernel[...]  # every pre-activation of the first layer changes sign
    second = analysis.collect(model, xs)
    pre = np.asarray(xs).reshape(-1, 3) @ np.asarray(kernel[...]) + np.asarray(
        model.layers[0].bias[...]
    )
    name = next(iter(second))
    np.testing.assert_array_equal(second[name].firing.to_numpy(), (pre > 0).sum(0))
    np.testing.assert_allclose(second[name].pre_mean, pre.mean(0), rtol=1e-5, atol=1e-6)
    assert not np.allclose(first[name].pre_mean, second[name].pre_mean)


@pytest.mark.parametrize(
    "name, fn",
    [
        ("literal reshape", lambda x: jax.nn.relu(x.reshape(8, 3, 2).reshape(8, 6) - 0.5)),
        ("batch-sized constant", lambda x: jax.nn.relu(x + jnp.arange(8.0)[:, None])),
        ("slice of a literal size", lambda x: jax.nn.relu(jax.lax.slice_in_dim(x, 0, 8, axis=0))),
    ],
)
def test_a_model_that_only_runs_at_its_batch_size_is_reduced_whole(monkeypatch, name, fn):
    """A model written for one batch size fails to trace on a block: "auto" must then reduce
    the batch whole (as sub_batch=None does), and an explicit sub_batch must say why."""
    seen = spy(monkeypatch)
    monkeypatch.setattr(_collect, "AUTO_MIN_BYTES", 0)  # the test's sites are small
    xs = randn(5, 2, 8, 6)
    auto = analysis.collect(fn, list(xs))
    assert seen.pop() is None
    h = np.stack([np.asarray(fn(x)) for x in xs])  # relu output: fires where > 0
    np.testing.assert_array_equal(auto["relu_0"].firing.to_numpy(), (h > 0).sum((0, 1)))
    chex.assert_trees_all_close(auto, analysis.collect(fn, list(xs), sub_batch=None))
    with pytest.raises(ValueError, match=r"sub_batch=4: the model does not run on a block of 4"):
        analysis.collect(fn, list(xs), sub_batch=4)
