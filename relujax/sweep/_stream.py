r"""Online data streams: training data that are a pure function of (key, step).

A :class:`Stream` replaces a fixed :class:`relujax.data.Dataset` in :func:`relujax.sweep.run`
when the data change while the network trains (continual learning). It is a frozen dataclass
registered as a pytree: its tables (the task sequence, a target network, a base data set),
precomputed on the host, are its leaves and travel to the devices like any array; its sizes
(the task period, the probe size) are static. Two pure, jittable methods define it:

- ``batch(key, step, batch_size) -> (x, y)``: the minibatch of update ``step``, drawn from
  ``fold_in(key, step)`` (``key`` is the configuration's data key), so a resumed run draws
  exactly the batches an uninterrupted one would;
- ``evaluation(step) -> (x_probe, y_probe, x_test, y_test)``: the evaluation sets after
  ``step`` updates, those of the task of the last update (task ``(step - 1) // period``;
  task 0 at step 0).

Streams of a sweep: one, or a list of streams of one kind and equal sizes (stacked on a
leading axis like data sets; :attr:`relujax.sweep.Config.data` indexes it), e.g. one task
sequence per seed. A sweep on a stream records, besides the usual metrics, the *online
loss*: the mean training loss of the minibatches of each evaluation interval, each measured
before the update that uses it (and the online accuracy for classification).

Two streams are provided: :func:`bit_flipping` (the slowly-changing regression problem of
Dohare et al., 2024) and :func:`permuted` (a classification data set under a new input
permutation per task).
"""

from __future__ import annotations

import dataclasses
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from jax import Array

from relujax import _validation
from relujax.data import Dataset

__all__ = ["BitFlipping", "Permuted", "Stream", "bit_flipping", "permuted"]


@dataclasses.dataclass(frozen=True)
class Stream:
    """Base class of online data streams (subclass as a frozen dataclass, register a pytree).

    Its arrays are JAX arrays (the builders convert the host tables), so the methods also
    work outside a sweep, under ``jit`` with a traced step. Subclasses define :meth:`batch`,
    :meth:`evaluation`, the properties :attr:`input_shape`, :attr:`output_dim`,
    :attr:`is_classification` and :attr:`horizon`, and :meth:`describe`.

    Attributes:
      period: updates per task.

    Examples:
      >>> from relujax import sweep
      >>> s = sweep.bit_flipping(0, tasks=2, period=10, probe_size=4, test_size=4)
      >>> int(s.task(10)), int(s.evaluated_task(10)), int(s.evaluated_task(11))
      (1, 0, 1)
    """

    period: int

    def task(self, step: Array | int) -> Array:
        """The task of update ``step`` (0-based): ``step // period``."""
        return jnp.asarray(step, jnp.int32) // self.period

    def evaluated_task(self, step: Array | int) -> Array:
        """The task evaluated after ``step`` updates: that of the last one, ``(step - 1) //
        period`` (0 at step 0)."""
        return self.task(jnp.maximum(jnp.asarray(step, jnp.int32) - 1, 0))

    def batch(self, key: Array, step: Array, batch_size: int) -> tuple[Array, Array]:
        """The minibatch ``(x, y)`` of update ``step``, drawn from ``fold_in(key, step)``."""
        raise NotImplementedError

    def evaluation(self, step: Array) -> tuple[Array, Array, Array, Array]:
        """``(x_probe, y_probe, x_test, y_test)`` of the task evaluated after ``step``."""
        raise NotImplementedError

    @property
    def input_shape(self) -> tuple[int, ...]:
        """Shape of one input example."""
        raise NotImplementedError

    @property
    def output_dim(self) -> int:
        """Number of classes, or of regression targets."""
        raise NotImplementedError

    @property
    def is_classification(self) -> bool:
        """Whether targets are class labels."""
        raise NotImplementedError

    @property
    def horizon(self) -> int:
        """Updates the stream's tables cover (a sweep may not train longer)."""
        raise NotImplementedError

    def describe(self) -> dict[str, Any]:
        """JSON description of the static settings (the arrays are fingerprinted apart)."""
        raise NotImplementedError


def _register(cls: type, data: list[str], meta: list[str]) -> type:
    jax.tree_util.register_dataclass(cls, data_fields=data, meta_fields=meta)
    return cls


@dataclasses.dataclass(frozen=True)
class BitFlipping(Stream):
    r"""The slowly-changing regression (bit-flipping) problem of Dohare et al. (2024).

    An input is :math:`m` bits: the first :math:`f` are the *flipping bits*, constant within
    a task (every ``period`` updates one of them, chosen at random, flips), the other
    :math:`m - f` are drawn uniformly at random for each example. The target is a fixed
    network of linear threshold units (LTUs):

    .. math:: y = w_2^\top \mathbb{1}[W_1^\top x + b_1 > \tau] + b_2,\qquad
       \tau_j = \beta (m + 1) - S_j,\quad S_j = \tfrac12\big(m - \textstyle\sum_i W_{1,ij}
       + b_{1,j}\big)

    with every weight and bias in :math:`\{-1, +1\}` (``lop/nets/fix_ltu_net.py`` of the
    paper's code). Build it with :func:`bit_flipping`.

    Attributes:
      period: updates per task (the paper's :math:`T`).
      flips: ``float32[tasks, f]``, the flipping bits of each task.
      w1, b1, tau, w2, b2: the target network (``[m, h]``, ``[h]``, ``[h]``, ``[h, 1]``,
        ``[1]``).
      probe_bits: ``float32[n_probe, m - f]``, the random bits of the probe set (the
        current task's flipping bits complete it).
      test_bits: ``float32[n_test, m - f]``, those of the test set.

    Examples:
      >>> import jax.numpy as jnp
      >>> from relujax import sweep
      >>> s = sweep.bit_flipping(1, tasks=1, period=5, probe_size=3, test_size=2)
      >>> x_probe, y_probe, x_test, y_test = s.evaluation(jnp.int32(0))
      >>> x_probe.shape, y_test.shape, s.input_shape, s.is_classification
      ((3, 20), (2, 1), (20,), False)
    """

    flips: Array
    w1: Array
    b1: Array
    tau: Array
    w2: Array
    b2: Array
    probe_bits: Array
    test_bits: Array

    def target(self, x: Array) -> Array:
        """The target network's output ``[n, 1]`` on bits ``x`` ``[n, m]``."""
        features = (x @ self.w1 + self.b1[None, :] > self.tau[None, :]).astype(jnp.float32)
        return features @ self.w2 + self.b2[None, :]

    def _inputs(self, task: Array, random_bits: Array) -> Array:
        flips = jnp.broadcast_to(self.flips[task], (random_bits.shape[0], self.flips.shape[1]))
        return jnp.concatenate([flips, random_bits], axis=1)

    def batch(self, key: Array, step: Array, batch_size: int) -> tuple[Array, Array]:
        """Random bits ``bernoulli(fold_in(key, step), 0.5, (B, m - f))`` after the task's
        flipping bits; targets from :meth:`target`."""
        shape = (batch_size, self.probe_bits.shape[1])
        bits = jax.random.bernoulli(jax.random.fold_in(key, step), 0.5, shape)
        x = self._inputs(self.task(step), bits.astype(jnp.float32))
        return x, self.target(x)

    def evaluation(self, step: Array) -> tuple[Array, Array, Array, Array]:
        """Probe and test inputs of the evaluated task with their targets."""
        task = self.evaluated_task(step)
        xp, xt = self._inputs(task, self.probe_bits), self._inputs(task, self.test_bits)
        return xp, self.target(xp), xt, self.target(xt)

    @property
    def input_shape(self) -> tuple[int, ...]:
        """``(m,)``."""
        return (self.w1.shape[0],)

    @property
    def output_dim(self) -> int:
        """1."""
        return 1

    @property
    def is_classification(self) -> bool:
        """False: squared error."""
        return False

    @property
    def horizon(self) -> int:
        """``tasks * period``."""
        return self.flips.shape[-2] * self.period

    def describe(self) -> dict[str, Any]:
        """Kind, sizes and period."""
        m, h = self.w1.shape[-2:]
        return {
            "kind": "bit_flipping",
            "inputs": m,
            "flipping_bits": self.flips.shape[-1],
            "target_hidden": h,
            "period": self.period,
            "tasks": self.flips.shape[-2],
            "probe_size": self.probe_bits.shape[-2],
            "test_size": self.test_bits.shape[-2],
        }


_register(
    BitFlipping, ["flips", "w1", "b1", "tau", "w2", "b2", "probe_bits", "test_bits"], ["period"]
)


def bit_flipping(
    seed: int,
    *,
    tasks: int,
    period: int = 10_000,
    inputs: int = 20,
    flipping_bits: int = 15,
    target_hidden: int = 100,
    beta: float = 0.7,
    probe_size: int = 1000,
    test_size: int = 1000,
) -> BitFlipping:
    r"""The bit-flipping stream of Dohare et al. (2024) with its tables drawn from ``seed``.

    Defaults are the paper's (``lop/slowly_changing_regression/cfg``): :math:`m = 20` bits,
    :math:`f = 15` flipping bits, a target of 100 LTUs with :math:`\beta = 0.7`, one flipping
    bit flipped every :math:`T = 10^4` examples (``flip_one``). NumPy's
    ``default_rng(seed)`` draws the target's :math:`\pm 1` weights, the first task's
    flipping bits, which bit flips at each later task, and the random bits of the probe and
    test sets, in that order.

    Args:
      seed: NumPy seed of the tables.
      tasks: number of tasks (the stream covers ``tasks * period`` updates).
      period: updates per task.
      inputs: :math:`m`.
      flipping_bits: :math:`f < m`.
      target_hidden: LTUs of the target network.
      beta: :math:`\beta` of the LTU thresholds.
      probe_size: examples of the probe set (dead units, probe loss).
      test_size: examples of the test set.

    Returns:
      A :class:`BitFlipping`.

    Examples:
      >>> import jax
      >>> from relujax import sweep
      >>> s = sweep.bit_flipping(0, tasks=3, period=5, probe_size=4, test_size=4)
      >>> x, y = s.batch(jax.random.key(0), 7, 2)  # update 7: task 1
      >>> x.shape, y.shape, bool((x[:, :15] == s.flips[1][None, :]).all())
      ((2, 20), (2, 1), True)
      >>> int((s.flips[1] != s.flips[0]).sum()), s.horizon
      (1, 15)
    """
    seed = _validation.seed("bit_flipping: seed", seed)
    tasks = _validation.integer("bit_flipping: tasks", tasks, minimum=1)
    period = _validation.integer("bit_flipping: period", period, minimum=1)
    inputs = _validation.integer("bit_flipping: inputs", inputs, minimum=2)
    f = _validation.integer("bit_flipping: flipping_bits", flipping_bits, minimum=1)
    if f >= inputs:
        raise ValueError(f"bit_flipping: flipping_bits must be < inputs = {inputs}, got {f}.")
    h = _validation.integer("bit_flipping: target_hidden", target_hidden, minimum=1)
    beta = _validation.real("bit_flipping: beta", beta)
    probe_size = _validation.integer("bit_flipping: probe_size", probe_size, minimum=1)
    test_size = _validation.integer("bit_flipping: test_size", test_size, minimum=1)
    rng = np.random.default_rng(seed)

    def signs(*shape: int) -> np.ndarray:
        return (rng.integers(0, 2, shape) * 2 - 1).astype(np.float32)

    w1, b1, w2, b2 = signs(inputs, h), signs(h), signs(h, 1), signs(1)
    s = (inputs - w1.sum(axis=0) + b1) / 2
    tau = (beta * (inputs + 1) - s).astype(np.float32)
    flips = np.empty((tasks, f), np.float32)
    flips[0] = rng.integers(0, 2, f)
    for t in range(1, tasks):
        flips[t] = flips[t - 1]
        i = rng.integers(0, f)
        flips[t, i] = 1.0 - flips[t, i]

    def bits(n: int) -> np.ndarray:
        return rng.integers(0, 2, (n, inputs - f)).astype(np.float32)

    tables = (flips, w1, b1, tau, w2, b2, bits(probe_size), bits(test_size))
    return BitFlipping(period, *(jnp.asarray(a) for a in tables))


@dataclasses.dataclass(frozen=True)
class Permuted(Stream):
    """A classification data set under a new input permutation per task (permuted MNIST).

    Update ``t`` trains on ``batch_size`` examples drawn uniformly with replacement,
    ``randint(fold_in(key, t), (B,), 0, n)``, with the features of task ``t // period``'s
    permutation: ``x[:, perms[task]]``. The probe set is the first ``probe_size`` training
    examples, the test set the data set's, both under the evaluated task's permutation.
    Build it with :func:`permuted`.

    Attributes:
      period: updates per task.
      probe_size: examples of the probe set.
      x_train, y_train, x_test, y_test: the base data set (flat inputs).
      perms: ``int32[tasks, d]``, the permutation of each task.

    Examples:
      >>> from relujax import data, sweep
      >>> ds = data.gaussian_mixture(n_train=16, n_test=4, dim=3, num_classes=2)
      >>> s = sweep.permuted(ds, 0, tasks=4, period=5, probe_size=8)
      >>> s.horizon, s.input_shape, s.describe()["tasks"]
      (20, (3,), 4)
    """

    probe_size: int
    x_train: Array
    y_train: Array
    x_test: Array
    y_test: Array
    perms: Array

    def batch(self, key: Array, step: Array, batch_size: int) -> tuple[Array, Array]:
        """Examples ``randint(fold_in(key, step), (B,), 0, n)``, permuted."""
        n = self.x_train.shape[0]
        idx = jax.random.randint(jax.random.fold_in(key, step), (batch_size,), 0, n)
        perm = self.perms[self.task(step)]
        return jnp.take(self.x_train[idx], perm, axis=1), self.y_train[idx]

    def evaluation(self, step: Array) -> tuple[Array, Array, Array, Array]:
        """Probe (first training examples) and test set under the evaluated permutation."""
        perm = self.perms[self.evaluated_task(step)]
        xp = jnp.take(self.x_train[: self.probe_size], perm, axis=1)
        xt = jnp.take(self.x_test, perm, axis=1)
        return xp, self.y_train[: self.probe_size], xt, self.y_test

    @property
    def input_shape(self) -> tuple[int, ...]:
        """``(d,)``."""
        return (self.x_train.shape[-1],)

    @property
    def output_dim(self) -> int:
        """Number of classes (largest label + 1)."""
        return int(max(np.max(self.y_train), np.max(self.y_test))) + 1

    @property
    def is_classification(self) -> bool:
        """True: softmax cross-entropy."""
        return True

    @property
    def horizon(self) -> int:
        """``tasks * period``."""
        return self.perms.shape[-2] * self.period

    def describe(self) -> dict[str, Any]:
        """Kind, sizes and period."""
        return {
            "kind": "permuted",
            "period": self.period,
            "tasks": self.perms.shape[-2],
            "probe_size": self.probe_size,
            "n_train": self.x_train.shape[-2],
            "n_test": self.x_test.shape[-2],
            "features": self.x_train.shape[-1],
        }


_register(Permuted, ["x_train", "y_train", "x_test", "y_test", "perms"], ["period", "probe_size"])


def permuted(
    dataset: Dataset,
    seed: int,
    *,
    tasks: int,
    period: int,
    probe_size: int = 1024,
    first_identity: bool = False,
) -> Permuted:
    """A :class:`Permuted` stream of ``dataset`` with ``tasks`` permutations drawn from ``seed``.

    Args:
      dataset: a classification :class:`relujax.data.Dataset` with flat inputs ``[n, d]``.
      seed: NumPy seed: ``default_rng(seed).permutation(d)`` per task, in order.
      tasks: number of tasks.
      period: updates per task.
      probe_size: examples of the probe set (capped at the training set size).
      first_identity: whether task 0 sees the unpermuted inputs.

    Returns:
      A :class:`Permuted`.

    Examples:
      >>> import jax, numpy as np
      >>> from relujax import data, sweep
      >>> ds = data.gaussian_mixture(n_train=32, n_test=8, dim=4, num_classes=2)
      >>> s = sweep.permuted(ds, 0, tasks=2, period=3, probe_size=8)
      >>> x, y = s.batch(jax.random.key(0), 4, 5)  # update 4: task 1
      >>> x.shape, s.output_dim, sorted(np.asarray(s.perms[1]).tolist())
      ((5, 4), 2, [0, 1, 2, 3])
    """
    if not isinstance(dataset, Dataset):
        raise TypeError(f"permuted: dataset must be a relujax.data.Dataset, got {dataset!r}.")
    if not dataset.is_classification or np.ndim(dataset.x_train) != 2:
        raise ValueError(
            "permuted: dataset must be a classification data set with flat inputs [n, d]."
        )
    seed = _validation.seed("permuted: seed", seed)
    tasks = _validation.integer("permuted: tasks", tasks, minimum=1)
    period = _validation.integer("permuted: period", period, minimum=1)
    probe_size = _validation.integer("permuted: probe_size", probe_size, minimum=1)
    first_identity = _validation.boolean("permuted: first_identity", first_identity)
    d = dataset.x_train.shape[1]
    rng = np.random.default_rng(seed)
    perms = np.stack([rng.permutation(d) for _ in range(tasks)]).astype(np.int32)
    if first_identity:
        perms[0] = np.arange(d)
    return Permuted(
        period,
        min(probe_size, len(dataset.x_train)),
        jnp.asarray(dataset.x_train, jnp.float32),
        jnp.asarray(dataset.y_train, jnp.int32),
        jnp.asarray(dataset.x_test, jnp.float32),
        jnp.asarray(dataset.y_test, jnp.int32),
        jnp.asarray(perms),
    )


def as_streams(data: Any) -> tuple[Stream, ...] | None:
    """``data`` as a checked tuple of streams, or None when it holds no stream.

    Streams of one sweep must be of one kind with equal static settings and array shapes
    (they are stacked).
    """
    items = [data] if isinstance(data, Stream) else data
    if not isinstance(items, (list, tuple)) or not any(isinstance(s, Stream) for s in items):
        return None
    streams = tuple(items)
    for i, s in enumerate(streams):
        if not isinstance(s, Stream):
            raise TypeError(
                f"data[{i}] is a {type(s).__name__}; a sweep's streams must all be Streams."
            )
    first = jax.tree.structure(streams[0])
    shapes = [np.shape(a) for a in jax.tree.leaves(streams[0])]
    for i, s in enumerate(streams):
        if i and (
            jax.tree.structure(s) != first or [np.shape(a) for a in jax.tree.leaves(s)] != shapes
        ):
            raise ValueError(
                f"data[{i}] differs from data[0] in kind, static settings or array shapes: the "
                "streams of one sweep are stacked."
            )
        if not all(np.isfinite(np.asarray(a)).all() for a in jax.tree.leaves(s)):
            raise ValueError(f"data[{i}]: a stream's arrays must be finite.")
    return streams


def stack(streams: tuple[Stream, ...]) -> Stream:
    """The streams stacked on a leading axis (host arrays): what a sweep puts on the devices."""
    return jax.tree.map(lambda *xs: np.stack([np.asarray(x) for x in xs]), *streams)


def select(streams: Stream, index: Array) -> Stream:
    """Stream ``index`` of stacked streams (traced index)."""
    return jax.tree.map(lambda a: a[index], streams)
