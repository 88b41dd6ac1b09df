r"""Small datasets for dead-unit experiments, generated or shipped: nothing is downloaded.

Every loader returns a :class:`Dataset` of host (NumPy) arrays:

* inputs ``float32``, standardized feature by feature with the *training* split's mean and
  standard deviation (:math:`x \mapsto (x - \mu_{\text{train}}) / \sigma_{\text{train}}`;
  features with :math:`\sigma = 0` are only centered), so no test statistic leaks in;
* classification labels ``int32`` of shape ``[n]``; regression targets ``float32`` of shape
  ``[n, d_out]``, standardized the same way.

Loaders:

* :func:`teacher_student` — regression on the outputs of a random teacher MLP.
* :func:`gaussian_mixture` — classification of Gaussian clusters, with an input mean shift
  added *after* standardization: skewed inputs are one of the causes of dead ReLUs (Lu et
  al., 2020, "Dying ReLU and Initialization").
* :func:`digits` — scikit-learn's 8x8 handwritten digits (shipped inside scikit-learn).
* :func:`mnist1d` — MNIST-1D (Greydanus, 2020) generated procedurally by the ``mnist1d``
  package's generator (its templates are in code) and cached on disk.
"""

from __future__ import annotations

import hashlib
import itertools
import json
import os
import pathlib
import random
import tempfile
from collections.abc import Callable
from typing import Any, NamedTuple

import numpy as np

from relujax import _optional, _validation
from relujax._registry import Registry

__all__ = [
    "NAMES",
    "Dataset",
    "digits",
    "gaussian_mixture",
    "get",
    "load",
    "mnist1d",
    "names",
    "teacher_student",
]


class Dataset(NamedTuple):
    """Train/test arrays of one dataset (host NumPy arrays; a pytree, so ``jax.device_put`` works).

    Attributes:
      x_train: ``float32[n_train, *input_shape]``, standardized with training statistics.
      y_train: ``int32[n_train]`` class labels, or ``float32[n_train, d_out]`` regression
        targets.
      x_test: ``float32[n_test, *input_shape]``, standardized with the *training* statistics.
      y_test: ``int32[n_test]`` or ``float32[n_test, d_out]``.
    """

    x_train: np.ndarray
    y_train: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray

    @property
    def is_classification(self) -> bool:
        """True when the targets are integer class labels."""
        return np.issubdtype(self.y_train.dtype, np.integer)

    @property
    def num_classes(self) -> int | None:
        """Number of classes (``max label + 1``), or None for regression."""
        if not self.is_classification:
            return None
        return int(max(self.y_train.max(), self.y_test.max())) + 1

    @property
    def input_shape(self) -> tuple[int, ...]:
        """Shape of one input example."""
        return tuple(self.x_train.shape[1:])

    @property
    def output_dim(self) -> int:
        """Width of a model's output layer: the number of classes or of regression targets."""
        n = self.num_classes
        return n if n is not None else int(self.y_train.shape[-1])


def _standardize(train: np.ndarray, test: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    mean = train.mean(axis=0, dtype=np.float64)
    std = train.std(axis=0, dtype=np.float64)
    std = np.where(std > 0, std, 1.0)
    return (
        ((train - mean) / std).astype(np.float32),
        ((test - mean) / std).astype(np.float32),
    )


def teacher_student(
    *,
    n_train: int = 4096,
    n_test: int = 1024,
    d_in: int = 16,
    d_out: int = 1,
    teacher_width: int = 32,
    teacher_depth: int = 1,
    activation: str = "relu",
    noise: float = 0.0,
    seed: int = 0,
) -> Dataset:
    r"""Teacher-student regression: targets are a random teacher MLP's outputs.

    .. math:: x \sim \mathcal N(0, I_{d_{in}}),\quad
       y = W_{L+1}\,\phi(W_L \cdots \phi(W_1 x + b_1) \cdots + b_L) + \sigma\,\varepsilon

    with :math:`L` = ``teacher_depth`` hidden layers of width ``teacher_width``, He-normal
    weights :math:`W_l \sim \mathcal N(0, 2/\text{fan\_in})`, biases
    :math:`b_l \sim \mathcal N(0, 0.1^2)`, :math:`\phi` = ``relujax.get_activation(activation)``
    and :math:`\varepsilon \sim \mathcal N(0, 1)`. Inputs and targets are then standardized
    with training statistics.

    Args:
      n_train: number of training examples.
      n_test: number of test examples.
      d_in: input dimension.
      d_out: number of regression targets.
      teacher_width: width of the teacher's hidden layers.
      teacher_depth: number of teacher hidden layers (>= 1).
      activation: name of the teacher's activation (see ``relujax.activation_names()``).
      noise: standard deviation :math:`\sigma` of the label noise (before standardization).
      seed: NumPy seed; the same seed gives the same arrays on every platform.

    Returns:
      A :class:`Dataset` with ``x: float32[n, d_in]`` and ``y: float32[n, d_out]``.

    Examples:
      >>> import relujax
      >>> ds = relujax.data.teacher_student(n_train=256, n_test=64, d_in=8, d_out=2)
      >>> ds.x_train.shape, ds.y_train.shape, ds.y_train.dtype, ds.num_classes
      ((256, 8), (256, 2), dtype('float32'), None)
      >>> print(f"{ds.y_train.mean():.3f} {ds.y_train.std():.3f}")
      0.000 1.000
    """
    n_train = _validation.integer("n_train", n_train, minimum=1)
    n_test = _validation.integer("n_test", n_test, minimum=1)
    d_in = _validation.integer("d_in", d_in, minimum=1)
    d_out = _validation.integer("d_out", d_out, minimum=1)
    width = _validation.integer("teacher_width", teacher_width, minimum=1)
    depth = _validation.integer("teacher_depth", teacher_depth, minimum=1)
    noise = _validation.real("noise", noise, minimum=0.0)
    from relujax.activations import get_activation

    phi = get_activation(activation)
    rng = np.random.default_rng(_validation.seed("seed", seed))
    sizes = [d_in] + [width] * depth + [d_out]
    layers = [
        (
            rng.normal(0.0, np.sqrt(2.0 / a), size=(a, b)),
            rng.normal(0.0, 0.1, size=(b,)),
        )
        for a, b in itertools.pairwise(sizes)
    ]
    x = rng.normal(size=(n_train + n_test, d_in)).astype(np.float32)
    h = x
    for i, (w, b) in enumerate(layers):
        h = h @ w.astype(np.float32) + b.astype(np.float32)
        if i < len(layers) - 1:
            h = np.asarray(phi(h), dtype=np.float32)
    y = h + noise * rng.normal(size=h.shape)
    x_train, x_test = _standardize(x[:n_train], x[n_train:])
    y_train, y_test = _standardize(y[:n_train], y[n_train:])
    return Dataset(x_train, y_train, x_test, y_test)


def gaussian_mixture(
    *,
    n_train: int = 4096,
    n_test: int = 1024,
    dim: int = 16,
    num_classes: int = 4,
    separation: float = 3.0,
    mean_shift: float = 0.0,
    seed: int = 0,
) -> Dataset:
    r"""Gaussian-mixture classification with a controllable input mean shift.

    Class :math:`c` (uniform) has mean :math:`\mu_c = s\,u_c` with :math:`u_c` a random unit
    vector and :math:`s` = ``separation``; :math:`x = \mu_c + \varepsilon`,
    :math:`\varepsilon \sim \mathcal N(0, I)`. Inputs are standardized with training
    statistics, then every coordinate is shifted by ``mean_shift``:

    .. math:: \tilde x = \frac{x - \mu_{\text{train}}}{\sigma_{\text{train}}} + m\,\mathbf 1

    so the inputs have mean :math:`m` per coordinate. A large :math:`|m|` skews the
    pre-activations :math:`w^\top \tilde x + b` of every first-layer unit by
    :math:`m\sum_i w_i`: units with the wrong sign are silenced, the input-distribution cause
    of dead ReLUs.

    Args:
      n_train: number of training examples.
      n_test: number of test examples.
      dim: input dimension.
      num_classes: number of mixture components (= classes), >= 2.
      separation: distance of each class mean from the origin, in noise standard deviations.
      mean_shift: :math:`m`, added to every input coordinate after standardization.
      seed: NumPy seed.

    Returns:
      A :class:`Dataset` with ``x: float32[n, dim]`` and ``y: int32[n]``.

    Examples:
      >>> import relujax
      >>> ds = relujax.data.gaussian_mixture(n_train=512, n_test=128, mean_shift=2.0)
      >>> ds.x_train.shape, ds.y_train.dtype, ds.num_classes
      ((512, 16), dtype('int32'), 4)
      >>> print(f"{ds.x_train.mean():.2f} {ds.x_train.std(axis=0).mean():.2f}")
      2.00 1.00
    """
    n_train = _validation.integer("n_train", n_train, minimum=1)
    n_test = _validation.integer("n_test", n_test, minimum=1)
    dim = _validation.integer("dim", dim, minimum=1)
    num_classes = _validation.integer("num_classes", num_classes, minimum=2)
    separation = _validation.real("separation", separation, minimum=0.0)
    mean_shift = _validation.real("mean_shift", mean_shift)
    rng = np.random.default_rng(_validation.seed("seed", seed))
    u = rng.normal(size=(num_classes, dim))
    means = separation * u / np.linalg.norm(u, axis=1, keepdims=True)
    y = rng.integers(0, num_classes, size=n_train + n_test).astype(np.int32)
    x = means[y] + rng.normal(size=(n_train + n_test, dim))
    x_train, x_test = _standardize(x[:n_train], x[n_train:])
    shift = np.float32(mean_shift)
    return Dataset(x_train + shift, y[:n_train], x_test + shift, y[n_train:])


def _split(n: int, labels: np.ndarray, test_fraction: float, seed: int) -> tuple:
    """Stratified split: ``round(test_fraction * n_c)`` examples of each class go to test."""
    rng = np.random.default_rng(seed)
    test = []
    for c in np.unique(labels):
        idx = rng.permutation(np.flatnonzero(labels == c))
        test.append(idx[: round(test_fraction * idx.size)])
    test_idx = np.sort(np.concatenate(test))
    train_idx = np.setdiff1d(np.arange(n), test_idx)
    return rng.permutation(train_idx), rng.permutation(test_idx)


def digits(*, test_fraction: float = 0.2, flatten: bool = True, seed: int = 0) -> Dataset:
    """scikit-learn's handwritten digits: 1797 grayscale 8x8 images of 0-9 (shipped, offline).

    ``sklearn.datasets.load_digits`` reads a file inside the scikit-learn package. The split is
    stratified: ``round(test_fraction * n_c)`` images of each class go to the test set.

    Args:
      test_fraction: fraction of each class held out, in (0, 1).
      flatten: inputs of shape ``[n, 64]`` if True, else ``[n, 8, 8, 1]`` (NHWC) for
        convolutions.
      seed: NumPy seed of the split.

    Returns:
      A :class:`Dataset` with ``x: float32[n, 64]`` (or ``[n, 8, 8, 1]``) and ``y: int32[n]``;
      1438 training and 359 test images for the default fraction.

    Examples:
      >>> import relujax
      >>> ds = relujax.data.digits()
      >>> ds.x_train.shape, ds.x_test.shape, ds.num_classes
      ((1438, 64), (359, 64), 10)
      >>> relujax.data.digits(flatten=False).x_train.shape
      (1438, 8, 8, 1)
    """
    test_fraction = _validation.real("test_fraction", test_fraction)
    flatten = _validation.boolean("flatten", flatten)
    if not 0.0 < test_fraction < 1.0:
        raise ValueError(f"test_fraction must be in (0, 1), got {test_fraction}.")
    sklearn_datasets = _optional.require(
        "sklearn.datasets", package="scikit-learn", purpose="relujax.data.digits()"
    )
    bunch = sklearn_datasets.load_digits()
    x = bunch.data.astype(np.float64)
    y = bunch.target.astype(np.int32)
    train, test = _split(len(y), y, test_fraction, _validation.seed("seed", seed))
    x_train, x_test = _standardize(x[train], x[test])
    if not flatten:
        x_train, x_test = x_train.reshape(-1, 8, 8, 1), x_test.reshape(-1, 8, 8, 1)
    return Dataset(x_train, y[train], x_test, y[test])


def _cache_dir(cache_dir: str | os.PathLike | None) -> pathlib.Path:
    if cache_dir is not None:
        return pathlib.Path(cache_dir)
    if "RELUJAX_CACHE" in os.environ:
        return pathlib.Path(os.environ["RELUJAX_CACHE"])
    base = os.environ.get("XDG_CACHE_HOME", os.path.join(os.path.expanduser("~"), ".cache"))
    return pathlib.Path(base) / "relujax"


def _generate_mnist1d(args: dict[str, Any]) -> dict[str, np.ndarray]:
    """Run mnist1d's procedural generator (no download) without touching global RNG state."""
    mnist1d_data = _optional.require(
        "mnist1d.data", package="mnist1d", purpose="relujax.data.mnist1d()"
    )
    get_dataset_args, make_dataset = mnist1d_data.get_dataset_args, mnist1d_data.make_dataset
    full = get_dataset_args(as_dict=True)
    full.update(args)
    np_state, py_state = np.random.get_state(), random.getstate()  # noqa: NPY002
    try:
        # make_dataset builds the templates in code and seeds the *global* NumPy and Python
        # generators; get_dataset (which may download a pickle) is never called.
        data = make_dataset(_ObjectView(full))
    finally:
        np.random.set_state(np_state)  # noqa: NPY002
        random.setstate(py_state)
    return {k: np.asarray(data[k]) for k in ("x", "y", "x_test", "y_test")}


class _ObjectView:
    def __init__(self, d: dict[str, Any]) -> None:
        self.__dict__ = d


def mnist1d(
    *,
    num_samples: int = 5000,
    train_split: float = 0.8,
    seed: int = 42,
    flatten: bool = True,
    cache_dir: str | os.PathLike | None = None,
) -> Dataset:
    """MNIST-1D (Greydanus, 2020): 1-D signals of length 40 for the ten digits, generated.

    The ``mnist1d`` package's ``make_dataset`` builds each example procedurally from ten
    templates defined in its code (padding, shear, translation, correlated and iid noise, then
    downsampling to 40 points); its ``get_dataset``, which downloads a pickle, is never
    called. The generated arrays are cached as ``mnist1d-<hash of the arguments>.npz`` in
    ``cache_dir`` (default ``$RELUJAX_CACHE``, else ``$XDG_CACHE_HOME/relujax``, else
    ``~/.cache/relujax``), written atomically; the global NumPy/Python RNG states are restored
    after generation.

    Args:
      num_samples: total number of examples (split into train and test).
      train_split: fraction of examples in the training set.
      seed: the generator's seed (42 reproduces the published MNIST-1D).
      flatten: inputs of shape ``[n, 40]`` if True, else ``[n, 40, 1]`` (length, channel) for
        1-D convolutions.
      cache_dir: directory of the on-disk cache.

    Returns:
      A :class:`Dataset` with ``x: float32[n, 40]`` (or ``[n, 40, 1]``) and ``y: int32[n]``;
      4000 training and 1000 test examples by default.

    Examples:
      >>> import tempfile, relujax
      >>> ds = relujax.data.mnist1d(num_samples=200, cache_dir=tempfile.mkdtemp())
      >>> ds.x_train.shape, ds.x_test.shape, ds.y_train.dtype
      ((160, 40), (40, 40), dtype('int32'))
    """
    num_samples = _validation.integer("num_samples", num_samples, minimum=10)
    train_split = _validation.real("train_split", train_split)
    flatten = _validation.boolean("flatten", flatten)
    if not 0.0 < train_split < 1.0:
        raise ValueError(f"train_split must be in (0, 1), got {train_split}.")
    args = {
        "num_samples": num_samples,
        "train_split": train_split,
        "seed": _validation.seed("seed", seed),
    }
    key = hashlib.sha256(json.dumps(args, sort_keys=True).encode()).hexdigest()[:16]
    directory = _cache_dir(cache_dir)
    path = directory / f"mnist1d-{key}.npz"
    raw = None
    if path.exists():
        try:
            with np.load(path) as f:
                raw = {k: f[k] for k in ("x", "y", "x_test", "y_test")}
        except (OSError, ValueError, KeyError):  # a corrupt cache file is regenerated
            raw = None
    if raw is None:
        raw = _generate_mnist1d(args)
        directory.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=directory, suffix=".npz.tmp")
        try:
            with os.fdopen(fd, "wb") as f:
                np.savez(f, x=raw["x"], y=raw["y"], x_test=raw["x_test"], y_test=raw["y_test"])
            os.replace(tmp, path)
        except BaseException:
            if os.path.exists(tmp):
                os.unlink(tmp)
            raise
    x_train, x_test = _standardize(raw["x"], raw["x_test"])
    if not flatten:
        x_train, x_test = x_train[..., None], x_test[..., None]
    return Dataset(x_train, raw["y"].astype(np.int32), x_test, raw["y_test"].astype(np.int32))


_LOADERS: Registry[Callable[..., Dataset]] = Registry(
    "data set",
    {
        "teacher_student": teacher_student,
        "gaussian_mixture": gaussian_mixture,
        "digits": digits,
        "mnist1d": mnist1d,
    },
)

#: Names accepted by :func:`get` (and :func:`load`), in registration order.
NAMES: tuple[str, ...] = _LOADERS.canonical()


def names() -> tuple[str, ...]:
    """The data set names :func:`get` accepts, sorted.

    Returns:
      A sorted tuple of names.

    Examples:
      >>> import relujax
      >>> relujax.data.names()
      ('digits', 'gaussian_mixture', 'mnist1d', 'teacher_student')
    """
    return _LOADERS.names()


def get(name: str, /, **params: Any) -> Dataset:
    """Load a data set by name: ``get("digits", seed=1)`` is ``digits(seed=1)``.

    Names are normalized as everywhere in relujax (``"Gaussian-Mixture"`` is
    ``"gaussian_mixture"``).

    Args:
      name: one of :func:`names`.
      **params: keyword arguments of that loader.

    Returns:
      A :class:`Dataset`.

    Raises:
      TypeError: ``name`` is not a string.
      ValueError: an unknown name (the closest names are suggested) or keyword.

    Examples:
      >>> import relujax
      >>> relujax.data.get("gaussian_mixture", n_train=8, n_test=4).x_train.shape
      (8, 16)
      >>> relujax.data.get("cifar10")
      Traceback (most recent call last):
      ...
      ValueError: unknown data set 'cifar10' for name; accepted: digits, ...
    """
    loader = _LOADERS.entry(name)
    import inspect

    accepted = list(inspect.signature(loader).parameters)
    unknown = sorted(set(params) - set(accepted))
    if unknown:
        raise ValueError(
            f"data set {_LOADERS.resolve(name)!r} got unknown arguments {unknown}; "
            f"accepted: {accepted}."
        )
    return loader(**params)


def load(name: str, **kwargs: Any) -> Dataset:
    """The same as :func:`get` (kept for existing code).

    Args:
      name: one of :func:`names`.
      **kwargs: keyword arguments of that loader.

    Returns:
      A :class:`Dataset`.

    Examples:
      >>> import relujax
      >>> relujax.data.load("gaussian_mixture", n_train=8, n_test=4).x_train.shape
      (8, 16)
    """
    return get(name, **kwargs)
