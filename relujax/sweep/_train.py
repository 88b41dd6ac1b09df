"""Pure per-configuration training and evaluation: the body a sweep vmaps or maps."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import optax
from flax import nnx
from jax import Array, lax

from relujax import analysis
from relujax.schedules import ScheduleBatch
from relujax.sweep._spec import OptimizerSpec

#: Per-evaluation scalar metrics (classification adds ``test_accuracy``).
SCALARS = ("train_loss", "test_loss", "test_accuracy", "lr")
#: Per-evaluation, per-layer metrics, shape ``[layers]``.
LAYERED = ("dead_fraction", "dormant_fraction", "firing_rate")


class Data(NamedTuple):
    """Device arrays a sweep trains and evaluates on (replicated on every device).

    Attributes:
      x_train: training inputs ``[n_train, *input_shape]``.
      y_train: training labels ``int32[n_train]`` or targets ``float32[n_train, d_out]``.
      x_probe: the fixed probe set (the first ``probe_size`` training examples).
      y_probe: its labels or targets.
      x_test: test inputs.
      y_test: test labels or targets.
    """

    x_train: Array
    y_train: Array
    x_probe: Array
    y_probe: Array
    x_test: Array
    y_test: Array


class RunState(NamedTuple):
    """Training state of one configuration (leaves gain a leading config axis in a sweep).

    Attributes:
      params: ``nnx.Param`` state of the model.
      rest: the model's other state (RNG streams of RReLU; usually empty).
      opt_state: the Optax state.
      diverged_at: ``int32``, the step whose loss was first non-finite, or -1.
    """

    params: Any
    rest: Any
    opt_state: Any
    diverged_at: Array


def config_keys(seed: int) -> tuple[Array, Array]:
    """``(init_key, data_key)`` of a run: ``fold_in(PRNGKey(seed), 0)`` and ``(.., 1)``.

    Args:
      seed: the configuration's seed.

    Returns:
      Two raw ``uint32[2]`` keys: parameters are drawn from the first, minibatches from the
      second, so runs that share a seed share their data order whatever their other settings.

    Examples:
      >>> from relujax import sweep
      >>> init_key, data_key = sweep.config_keys(0)
      >>> init_key.shape, data_key.dtype
      ((2,), dtype('uint32'))
    """
    key = jax.random.PRNGKey(seed)
    return jax.random.fold_in(key, 0), jax.random.fold_in(key, 1)


def sample_batch(data_key: Array, step: Array | int, n: int, batch_size: int) -> Array:
    """Indices of the minibatch of ``step``: i.i.d. uniform draws, with replacement.

    ``randint(fold_in(data_key, step), (batch_size,), 0, n)``: a pure function of the key and
    the step, so a resumed run draws exactly the batches an uninterrupted one would.

    Args:
      data_key: the run's data key (see :func:`config_keys`).
      step: the global step (traced or not).
      n: number of training examples.
      batch_size: minibatch size.

    Returns:
      ``int32[batch_size]`` indices into the training set.

    Examples:
      >>> from relujax import sweep
      >>> idx = sweep.sample_batch(sweep.config_keys(0)[1], 3, n=100, batch_size=4)
      >>> idx.shape, bool((idx >= 0).all() & (idx < 100).all())
      ((4,), True)
    """
    return jax.random.randint(jax.random.fold_in(data_key, step), (batch_size,), 0, n)


def loss_fn(outputs: Array, targets: Array) -> Array:
    """Mean softmax cross-entropy for integer labels, mean squared error for float targets.

    Args:
      outputs: logits ``[n, classes]`` or predictions ``[n, d_out]``.
      targets: ``int[n]`` labels or ``float[n, d_out]`` targets.

    Returns:
      A float32 scalar.

    Examples:
      >>> import jax.numpy as jnp
      >>> from relujax import sweep
      >>> sweep.loss_fn(jnp.zeros((2, 4)), jnp.array([0, 3]))  # log 4
      Array(1.3862944, dtype=float32)
      >>> sweep.loss_fn(jnp.ones((2, 1)), jnp.zeros((2, 1)))
      Array(1., dtype=float32)
    """
    if jnp.issubdtype(targets.dtype, jnp.integer):
        return optax.softmax_cross_entropy_with_integer_labels(outputs, targets).mean()
    return jnp.mean(jnp.square(outputs - targets))


def make_apply(graphdef: nnx.GraphDef) -> Callable[[Any, Any, Array], tuple[Array, Any]]:
    """``apply(params, rest, x) -> (outputs, new_rest)`` for a model split into (Param, rest)."""

    def apply(params, rest, x):
        model = nnx.merge(graphdef, params, rest)
        out = model(x)
        _, _, new_rest = nnx.split(model, nnx.Param, ...)
        return out, new_rest

    return apply


def _layer_metrics(stats: analysis.ModelStats, dormant_tau: float) -> dict[str, Array]:
    dead, dormant, firing = [], [], []
    for site in stats.values():
        abs_mean = site.abs_mean
        layer_mean = jnp.mean(abs_mean)
        safe = jnp.where(layer_mean > 0, layer_mean, 1.0)
        # ReDo's score E|h_i| / mean_j E|h_j| <= tau; a layer with no output is all dormant.
        is_dormant = jnp.where(layer_mean > 0, abs_mean / safe <= dormant_tau, True)
        dead.append(jnp.mean(site.dead.astype(jnp.float32)))
        dormant.append(jnp.mean(is_dormant.astype(jnp.float32)))
        firing.append(jnp.mean(site.firing_rate))
    return {
        "dead_fraction": jnp.stack(dead),
        "dormant_fraction": jnp.stack(dormant),
        "firing_rate": jnp.stack(firing),
    }


class Trainer(NamedTuple):
    """The pure functions of one activation group (static: model graph, optimizer, schedules).

    Attributes:
      graphdef: the NNX graph of the group's models.
      optimizer: the optimizer specification.
      schedules: the sweep's stacked schedules; a config's ``hp`` selects its own.
      batch_size: minibatch size.
      eval_every: steps between evaluations.
      chunk_steps: steps per compiled chunk.
      dormant_tau: ReDo threshold of the dormant fraction.
      classification: whether targets are labels.
    """

    graphdef: nnx.GraphDef
    optimizer: OptimizerSpec
    schedules: ScheduleBatch
    batch_size: int
    eval_every: int
    chunk_steps: int
    dormant_tau: float
    classification: bool

    def optax(self, hp: dict[str, Array]) -> optax.GradientTransformation:
        """The configuration's optimizer: ``optimizer.build(its schedule)``."""
        return self.optimizer.build(self.schedules.select(hp))

    def train_step(self, state: RunState, step: Array, hp, data_key, data: Data):
        """One SGD step; a non-finite loss marks the run diverged and freezes its state."""
        apply = make_apply(self.graphdef)
        idx = sample_batch(data_key, step, data.x_train.shape[0], self.batch_size)
        x, y = data.x_train[idx], data.y_train[idx]

        def objective(params):
            out, new_rest = apply(params, state.rest, x)
            return loss_fn(out, y), new_rest

        (loss, new_rest), grads = jax.value_and_grad(objective, has_aux=True)(state.params)
        updates, new_opt = self.optax(hp).update(grads, state.opt_state, state.params)
        new_params = optax.apply_updates(state.params, updates)
        first_bad = (state.diverged_at < 0) & ~jnp.isfinite(loss)
        diverged_at = jnp.where(first_bad, step, state.diverged_at).astype(jnp.int32)
        frozen = diverged_at >= 0

        def keep(new, old):
            return jax.tree.map(lambda n, o: jnp.where(frozen, o, n), new, old)

        new_state = RunState(
            keep(new_params, state.params),
            keep(new_rest, state.rest),
            keep(new_opt, state.opt_state),
            diverged_at,
        )
        return new_state, loss

    def evaluate(self, state: RunState, step: Array, hp, data: Data) -> dict[str, Array]:
        """Metrics at ``step``: probe loss and unit statistics, test loss/accuracy, LR."""
        apply = make_apply(self.graphdef)
        (probe_out, _), stats = analysis.with_stats(apply)(state.params, state.rest, data.x_probe)
        test_out, _ = apply(state.params, state.rest, data.x_test)
        out = {
            "train_loss": loss_fn(probe_out, data.y_probe),
            "test_loss": loss_fn(test_out, data.y_test),
            "lr": self.schedules.apply(hp, step).astype(jnp.float32),
        }
        if self.classification:
            hits = jnp.argmax(test_out, axis=-1) == data.y_test
            out["test_accuracy"] = jnp.mean(hits.astype(jnp.float32))
        out.update(_layer_metrics(stats, self.dormant_tau))
        return out

    def chunk(self, state: RunState, hp, data_key, start: Array, data: Data):
        """``chunk_steps`` steps from ``start`` with an evaluation every ``eval_every``.

        Returns the new state and metrics with a leading axis of ``chunk_steps / eval_every
        + 1`` evaluations: at ``start`` (computed only when ``start == 0``, NaN otherwise),
        then after each interval.
        """
        n_intervals = self.chunk_steps // self.eval_every

        def initial():
            return self.evaluate(state, start, hp, data)

        shapes = jax.eval_shape(initial)
        first = lax.cond(
            start == 0,
            initial,
            lambda: jax.tree.map(lambda s: jnp.full(s.shape, jnp.nan, s.dtype), shapes),
        )

        def interval(carry, j):
            begin = start + j * self.eval_every

            def step(c, i):
                return self.train_step(c, begin + i, hp, data_key, data)

            carry, _ = lax.scan(step, carry, jnp.arange(self.eval_every, dtype=jnp.int32))
            return carry, self.evaluate(carry, begin + self.eval_every, hp, data)

        state, later = lax.scan(interval, state, jnp.arange(n_intervals, dtype=jnp.int32))
        metrics = jax.tree.map(lambda a, b: jnp.concatenate([a[None], b]), first, later)
        return state, metrics
