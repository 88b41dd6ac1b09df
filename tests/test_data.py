"""Tests for relujax.data: shapes, dtypes, standardization, determinism, offline generation."""

import random

import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from relujax import data

SMALL = {
    "teacher_student": dict(n_train=300, n_test=100, d_in=5, d_out=2),
    "gaussian_mixture": dict(n_train=300, n_test=100, dim=6, num_classes=3),
    "digits": dict(),
    "mnist1d": dict(num_samples=100),
}
SHAPES = {  # (x_train, y_train, x_test, y_test)
    "teacher_student": ((300, 5), (300, 2), (100, 5), (100, 2)),
    "gaussian_mixture": ((300, 6), (300,), (100, 6), (100,)),
    "digits": ((1438, 64), (1438,), (359, 64), (359,)),
    "mnist1d": ((80, 40), (80,), (20, 40), (20,)),
}


@pytest.fixture
def offline(monkeypatch, tmp_path):
    """No network and a fresh cache directory."""

    def refuse(*args, **kwargs):
        raise AssertionError("relujax.data tried to use the network")

    import socket
    import urllib.request

    import requests

    monkeypatch.setattr(requests, "get", refuse)
    monkeypatch.setattr(urllib.request, "urlopen", refuse)
    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setenv("RELUJAX_CACHE", str(tmp_path))
    return tmp_path


@pytest.mark.parametrize("name", data.NAMES)
def test_shapes_dtypes_and_standardization(name, offline):
    ds = data.load(name, **SMALL[name])
    for array, shape in zip(ds, SHAPES[name], strict=True):
        chex.assert_shape(array, shape)
    chex.assert_type([ds.x_train, ds.x_test], np.float32)
    if name == "teacher_student":
        chex.assert_type([ds.y_train, ds.y_test], np.float32)
        assert ds.num_classes is None and ds.output_dim == 2
        np.testing.assert_allclose(ds.y_train.mean(0), 0.0, atol=1e-5)
        np.testing.assert_allclose(ds.y_train.std(0), 1.0, atol=1e-5)
    else:
        chex.assert_type([ds.y_train, ds.y_test], np.int32)
        assert ds.num_classes == ds.output_dim == (3 if name == "gaussian_mixture" else 10)
    # Standardized with training statistics: every non-constant feature has mean 0, std 1.
    std = ds.x_train.std(0, dtype=np.float64)
    varying = std > 0
    np.testing.assert_allclose(ds.x_train.mean(0), 0.0, atol=1e-5)
    np.testing.assert_allclose(std[varying], 1.0, atol=1e-5)
    np.testing.assert_array_equal(ds.x_test[:, ~varying], 0.0)
    assert np.all(np.isfinite(ds.x_test))


def test_standardize_uses_train_statistics():
    train = np.array([[1.0, 5.0], [3.0, 5.0]])
    test = np.array([[5.0, 6.0]])
    got_train, got_test = data._standardize(train, test)
    np.testing.assert_array_equal(got_train, [[-1.0, 0.0], [1.0, 0.0]])
    np.testing.assert_array_equal(got_test, [[3.0, 1.0]])  # constant feature: only centered


@pytest.mark.parametrize("name", ["teacher_student", "gaussian_mixture", "digits"])
def test_seeded_and_deterministic(name):
    a = data.load(name, **SMALL[name], seed=1)
    b = data.load(name, **SMALL[name], seed=1)
    c = data.load(name, **SMALL[name], seed=2)
    chex.assert_trees_all_equal(a, b)
    assert not np.array_equal(a.x_train, c.x_train)


def test_teacher_student_noise_changes_only_targets():
    clean = data.teacher_student(n_train=200, n_test=50, noise=0.0)
    noisy = data.teacher_student(n_train=200, n_test=50, noise=1.0)
    np.testing.assert_array_equal(clean.x_train, noisy.x_train)
    corr = np.corrcoef(clean.y_train[:, 0], noisy.y_train[:, 0])[0, 1]
    assert 0.2 < corr < 0.999


def test_teacher_student_is_a_function_of_x():
    """The teacher is deterministic: duplicating inputs by seed gives identical targets."""
    a = data.teacher_student(n_train=64, n_test=8, d_in=3, seed=5, activation="leaky_relu")
    b = data.teacher_student(n_train=64, n_test=8, d_in=3, seed=5, activation="relu")
    np.testing.assert_array_equal(a.x_train, b.x_train)
    assert not np.array_equal(a.y_train, b.y_train)


@pytest.mark.parametrize("shift", [-3.0, 0.0, 2.5])
def test_gaussian_mixture_mean_shift(shift):
    ds = data.gaussian_mixture(n_train=400, n_test=100, mean_shift=shift)
    base = data.gaussian_mixture(n_train=400, n_test=100)
    np.testing.assert_allclose(ds.x_train, base.x_train + np.float32(shift), atol=1e-6)
    np.testing.assert_allclose(ds.x_test, base.x_test + np.float32(shift), atol=1e-6)
    np.testing.assert_allclose(ds.x_train.mean(0), shift, atol=1e-5)
    np.testing.assert_array_equal(ds.y_train, base.y_train)


def test_mean_shift_silences_relu_units():
    """The §2.2 mechanism: skewed inputs leave more first-layer ReLUs never active."""
    rng = np.random.default_rng(0)
    w = rng.normal(0, np.sqrt(2 / 16), size=(16, 512)).astype(np.float32)

    def never_active(shift):
        x = data.gaussian_mixture(n_train=2000, n_test=10, mean_shift=shift).x_train
        return np.mean(np.all(x @ w <= 0, axis=0))

    fractions = [never_active(m) for m in (0.0, 4.0, 8.0)]
    assert fractions[0] == 0.0
    assert fractions[0] < fractions[1] < fractions[2]


def test_gaussian_mixture_separation_controls_difficulty():
    """Nearest-class-mean accuracy rises with separation (chance is 1/4)."""

    def ncm_accuracy(sep):
        ds = data.gaussian_mixture(n_train=2000, n_test=1000, separation=sep)
        means = np.stack([ds.x_train[ds.y_train == c].mean(0) for c in range(4)])
        pred = np.argmin(((ds.x_test[:, None] - means[None]) ** 2).sum(-1), axis=1)
        return np.mean(pred == ds.y_test)

    low, high = ncm_accuracy(0.5), ncm_accuracy(4.0)
    assert 0.2 < low < 0.6 < 0.95 < high


def test_digits_split_is_stratified_and_reshapes():
    ds = data.digits(test_fraction=0.25, seed=3)
    _, counts = np.unique(np.concatenate([ds.y_train, ds.y_test]), return_counts=True)
    _, test_counts = np.unique(ds.y_test, return_counts=True)
    np.testing.assert_array_equal(test_counts, np.round(0.25 * counts))
    assert len(ds.y_train) + len(ds.y_test) == 1797
    image = data.digits(test_fraction=0.25, seed=3, flatten=False)
    chex.assert_shape(image.x_train, (len(ds.y_train), 8, 8, 1))
    np.testing.assert_array_equal(image.x_train.reshape(-1, 64), ds.x_train)


def test_mnist1d_generated_offline_cached_and_rng_neutral(offline, monkeypatch):
    np.random.seed(123)  # noqa: NPY002
    random.seed(123)
    before = (np.random.random(), random.random())  # noqa: NPY002
    np.random.seed(123)  # noqa: NPY002
    random.seed(123)
    first = data.mnist1d(num_samples=100)
    # The generator seeds global RNGs; relujax restores them.
    assert (np.random.random(), random.random()) == before  # noqa: NPY002
    files = list(offline.glob("mnist1d-*.npz"))
    assert len(files) == 1

    def no_regeneration(args):
        raise AssertionError("cache was not used")

    monkeypatch.setattr(data, "_generate_mnist1d", no_regeneration)
    chex.assert_trees_all_equal(data.mnist1d(num_samples=100), first)
    seq = data.mnist1d(num_samples=100, flatten=False)
    chex.assert_shape(seq.x_train, (80, 40, 1))
    # Different arguments use a different cache entry.
    with pytest.raises(AssertionError, match="cache was not used"):
        data.mnist1d(num_samples=100, seed=1)


def test_mnist1d_matches_the_package_generator(offline):
    from mnist1d.data import get_dataset_args, make_dataset

    args = get_dataset_args()
    args.num_samples = 100
    state = np.random.get_state()  # noqa: NPY002
    ref = make_dataset(args)
    np.random.set_state(state)  # noqa: NPY002
    ds = data.mnist1d(num_samples=100)
    want_train, want_test = data._standardize(ref["x"], ref["x_test"])
    np.testing.assert_array_equal(ds.x_train, want_train)
    np.testing.assert_array_equal(ds.x_test, want_test)
    np.testing.assert_array_equal(ds.y_train, ref["y"])
    # Classes are balanced: num_samples // 10 per class in total.
    _, counts = np.unique(np.concatenate([ds.y_train, ds.y_test]), return_counts=True)
    np.testing.assert_array_equal(counts, 10)


def test_mnist1d_corrupt_cache_is_regenerated(offline):
    first = data.mnist1d(num_samples=100)
    (path,) = offline.glob("mnist1d-*.npz")
    path.write_bytes(b"not a zip file")
    chex.assert_trees_all_equal(data.mnist1d(num_samples=100), first)


def test_dataset_is_a_pytree_usable_under_jit_vmap_and_grad():
    ds = data.gaussian_mixture(n_train=32, n_test=8, dim=4)
    dev = jax.device_put(ds)
    assert isinstance(dev, data.Dataset)

    @jax.jit
    def loss(w, ds):
        logits = ds.x_train @ w
        return -jnp.mean(jax.nn.log_softmax(logits)[jnp.arange(32), ds.y_train])

    w = jnp.zeros((4, 4))
    chex.assert_trees_all_close(loss(w, dev), jnp.log(4.0), rtol=1e-6)
    g = jax.grad(loss)(w, dev)
    chex.assert_shape(g, (4, 4))
    rows = jax.vmap(lambda x: x @ w)(dev.x_train)
    chex.assert_shape(rows, (32, 4))


@pytest.mark.parametrize(
    ("call", "match"),
    [
        (lambda: data.load("cifar10"), "accepted"),
        (lambda: data.load("digits", n_train=5), "unknown arguments"),
        (lambda: data.teacher_student(n_train=0), "n_train"),
        (lambda: data.teacher_student(activation="rleu"), "rleu"),
        (lambda: data.teacher_student(noise=-1.0), "noise"),
        (lambda: data.gaussian_mixture(num_classes=1), "num_classes"),
        (lambda: data.gaussian_mixture(mean_shift=float("nan")), "mean_shift"),
        (lambda: data.digits(test_fraction=1.0), "test_fraction"),
        (lambda: data.mnist1d(train_split=0.0), "train_split"),
        (lambda: data.teacher_student(seed=2**32), "seed"),
        (lambda: data.gaussian_mixture(seed=-1), "seed"),
        (lambda: data.digits(seed=2**32), "seed"),
        (lambda: data.mnist1d(seed=2**40), "seed"),
    ],
)
def test_bad_input(call, match):
    with pytest.raises(ValueError, match=match):
        call()


@pytest.mark.parametrize(
    ("call", "match"),
    [
        (lambda: data.mnist1d(num_samples=2.5), "num_samples"),
        (lambda: data.teacher_student(seed=1.0), "seed"),
        (lambda: data.gaussian_mixture(dim=True), "dim"),
        (lambda: data.gaussian_mixture(separation="3"), "separation"),
        (lambda: data.get(3), "data set"),
    ],
)
def test_wrong_type_is_a_type_error(call, match):
    with pytest.raises(TypeError, match=match):
        call()


def test_largest_seed_is_accepted_and_distinct():
    """Seeds are [0, 2**32): the last one works and is not seed 0 (no silent wrap-around)."""
    a = data.gaussian_mixture(n_train=8, n_test=4, seed=2**32 - 1)
    b = data.gaussian_mixture(n_train=8, n_test=4, seed=0)
    assert not np.array_equal(a.x_train, b.x_train)


def test_registry_convention():
    assert data.names() == tuple(sorted(data.NAMES))
    a = data.get(" Gaussian-Mixture ", n_train=8, n_test=4)
    b = data.load("gaussian_mixture", n_train=8, n_test=4)
    chex.assert_trees_all_equal(tuple(a), tuple(b))
    with pytest.raises(ValueError, match="did you mean 'digits'"):
        data.get("digit")


@pytest.mark.parametrize(
    ("call", "module"),
    [
        (lambda: data.digits(), "sklearn"),
        (lambda: data.mnist1d(num_samples=100, cache_dir="/nonexistent/relujax"), "mnist1d"),
    ],
)
def test_missing_optional_package_names_the_extra(call, module, monkeypatch):
    """Without the optional package the error says which extra to install."""
    import sys

    for name in list(sys.modules):
        if name == module or name.startswith(module + "."):
            monkeypatch.setitem(sys.modules, name, None)
    monkeypatch.setitem(sys.modules, module, None)
    with pytest.raises(ModuleNotFoundError, match=r'pip install "relujax\[experiments\]"'):
        call()
