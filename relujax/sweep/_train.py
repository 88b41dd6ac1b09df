"""Pure per-configuration training and evaluation: the body a sweep vmaps or maps."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, NamedTuple, cast

import jax
import jax.numpy as jnp
import optax
from flax import nnx
from jax import Array, lax

from relujax import analysis
from relujax.schedules import ScheduleBatch
from relujax.sweep._intervention import Intervention, StepContext
from relujax.sweep._spec import OptimizerSpec
from relujax.sweep._stream import Stream, select

#: Per-evaluation scalar metrics (classification adds ``test_accuracy``).
SCALARS = ("train_loss", "test_loss", "test_accuracy", "lr")
#: Scalars of a sweep on a :class:`~relujax.sweep.Stream`: the mean minibatch loss (and
#: accuracy, classification only) of the updates of each evaluation interval, NaN at step 0.
ONLINE = ("online_loss", "online_accuracy")
#: Per-layer metrics recorded with ``Options(feature_rank=True)``, shape ``[layers]``.
RANKS = ("effective_rank",)
#: Per-evaluation, per-layer metrics, shape ``[layers]``.
LAYERED = (
    "dead_fraction",
    "dormant_fraction",
    "firing_rate",
    "weight_norm",
    "init_distance",
    "grad_norm",
    "grad_dormant_fraction",
    "saturated_fraction",
)


def hidden_kernels(params: Any, layers: int) -> list[Array]:
    """The kernels of ``params["layers"][i]``, ``i < layers``: the weights into each site."""
    found: dict[int, Array] = {}
    for path, leaf in jax.tree_util.tree_flatten_with_path(params)[0]:
        keys: list[Any] = [getattr(k, "key", getattr(k, "idx", None)) for k in path]
        if len(keys) >= 3 and keys[0] == "layers" and keys[2] == "kernel" and keys[1] < layers:
            found[int(keys[1])] = leaf
    return [found[i] for i in range(layers)]


def weight_metrics(params: Any, initial: Any, grads: Any, layers: int) -> dict[str, Array]:
    """Per layer: Frobenius norms of the kernel, of its distance from the initial kernel and
    of the probe loss's gradient with respect to it."""

    def norms(tree):
        return jnp.stack([jnp.sqrt(jnp.sum(jnp.square(k))) for k in hidden_kernels(tree, layers)])

    moved = jax.tree.map(jnp.subtract, params, initial)
    return {
        "weight_norm": norms(params),
        "init_distance": norms(moved),
        "grad_norm": norms(grads),
    }


class Data(NamedTuple):
    """Device arrays a sweep trains and evaluates on (replicated), for D data sets.

    Attributes:
      x_train: training inputs ``[D, n_train, *input_shape]``.
      y_train: labels ``int32[D, n_train]`` or targets ``float32[D, n_train, d_out]``.
      x_probe: the fixed probe sets (the first ``probe_size`` training examples of each).
      y_probe: their labels or targets.
      x_test: test inputs ``[D, n_test, *input_shape]``.
      y_test: test labels or targets.
    """

    x_train: Array
    y_train: Array
    x_probe: Array
    y_probe: Array
    x_test: Array
    y_test: Array


class Keys(NamedTuple):
    """A configuration's typed PRNG keys for its minibatches and its intervention."""

    data: Array
    intervention: Array


class RunState(NamedTuple):
    """Training state of one configuration (leaves gain a leading config axis in a sweep).

    Attributes:
      params: ``nnx.Param`` state of the model.
      rest: the model's other state (RNG streams of RReLU; usually empty).
      opt_state: the Optax state.
      diverged_at: ``int32``, the step whose loss was first non-finite, or -1.
      intervention: the intervention's state (``()`` without one).
      initial: the initial parameters (for the distance from initialization).
    """

    params: Any
    rest: Any
    opt_state: Any
    diverged_at: Array
    intervention: Any = ()
    initial: Any = ()


def config_keys(seed: int) -> tuple[Array, Array, Array]:
    """``(init, data, intervention)`` keys of a run: ``fold_in(jax.random.key(seed), i)``."""
    key = jax.random.key(seed)
    return tuple(jax.random.fold_in(key, i) for i in range(3))  # type: ignore[return-value]


def sample_batch(data_key: Array, step: Array | int, n: int, batch_size: int) -> Array:
    """Minibatch indices of ``step``: ``randint(fold_in(data_key, step), (B,), 0, n)``.

    i.i.d. uniform draws with replacement, a pure function of the key and the step, so a
    resumed run draws exactly the batches an uninterrupted one would.
    """
    return jax.random.randint(jax.random.fold_in(data_key, step), (batch_size,), 0, n)


def loss_fn(outputs: Array, targets: Array) -> Array:
    """Mean softmax cross-entropy for integer labels, mean squared error for float targets."""
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


def layer_metrics(stats: analysis.ModelStats, dormant_tau: float) -> dict[str, Array]:
    """Per-layer dead fraction, ReDo-dormant fraction and mean firing rate, ``[layers]`` each."""
    from relujax.remedies import dormant_units

    dead, dormant, firing = [], [], []
    for site in stats.values():
        dead.append(jnp.mean(site.dead.astype(jnp.float32)))
        dormant.append(jnp.mean(dormant_units(site, tau=dormant_tau).astype(jnp.float32)))
        firing.append(jnp.mean(site.firing_rate))
    return {
        "dead_fraction": jnp.stack(dead),
        "dormant_fraction": jnp.stack(dormant),
        "firing_rate": jnp.stack(firing),
    }


class Trainer(NamedTuple):
    """The pure functions of one activation group (static: model graph, optimizer, schedules).

    A configuration's per-config arrays ``hp`` are ``{"schedule": {...}, "data": int32,
    "intervention": {name: float32}}``.

    Attributes:
      graphdef: the NNX graph of the group's models.
      optimizer: the optimizer specification.
      schedules: the sweep's stacked schedules; a config's ``hp["schedule"]`` selects its own.
      batch_size: minibatch size.
      eval_every: steps between evaluations.
      chunk_steps: steps per compiled chunk.
      dormant_tau: ReDo threshold of the dormant fraction.
      classification: whether targets are labels.
      intervention: the per-step intervention, or None.
      layers: number of activation sites (hidden layers).
      feature_rank: whether to record the effective rank of each layer's probe features.
      bounded: whether the activation has bounds where it saturates (its descriptor's
        ``saturation``: hard_tanh, hard_sigmoid, relu6, capped_relu); the saturated fraction is NaN
        (not applicable) otherwise.

    ``data`` is a :class:`Data` of fixed arrays or stacked :class:`Stream` s (then
    ``hp["data"]`` selects the configuration's stream and the online metrics are recorded).
    """

    graphdef: nnx.GraphDef
    optimizer: OptimizerSpec
    schedules: ScheduleBatch
    batch_size: int
    eval_every: int
    chunk_steps: int
    dormant_tau: float
    classification: bool
    intervention: Intervention | None = None
    layers: int = 1
    feature_rank: bool = False
    bounded: bool = False

    def optax(self, hp: dict[str, Any]) -> optax.GradientTransformation:
        """The configuration's optimizer: ``optimizer.build(its schedule)``."""
        return self.optimizer.build(self.schedules.select(hp["schedule"]))

    def train_step(self, state: RunState, step: Array, hp, keys: Keys, data: Data | Stream):
        """One update (and the intervention); a non-finite loss freezes the configuration.

        Returns the new state and ``(loss, accuracy)`` of the step's minibatch before the
        update (accuracy NaN for regression and on fixed data, where no online metric uses it).
        """
        apply = make_apply(self.graphdef)
        d = hp["data"]
        if isinstance(data, Data):
            idx = sample_batch(keys.data, step, data.x_train.shape[1], self.batch_size)
            x, y = data.x_train[d, idx], data.y_train[d, idx]
        else:
            x, y = select(data, d).batch(keys.data, step, self.batch_size)
        stats_needed = self.intervention is not None and self.intervention.needs_stats

        def objective(params):
            if stats_needed:
                (out, new_rest), stats = analysis.with_stats(apply)(params, state.rest, x)
            else:
                (out, new_rest), stats = apply(params, state.rest, x), None
            return loss_fn(out, y), (new_rest, stats, out)

        (loss, (new_rest, stats, outputs)), grads = jax.value_and_grad(objective, has_aux=True)(
            state.params
        )
        if self.classification and not isinstance(data, Data):
            accuracy = jnp.mean((jnp.argmax(outputs, axis=-1) == y).astype(jnp.float32))
        else:
            accuracy = jnp.float32(jnp.nan)
        updates, new_opt = self.optax(hp).update(grads, state.opt_state, state.params)
        new_params = optax.apply_updates(state.params, updates)
        new_istate = state.intervention
        if self.intervention is not None:
            ctx = StepContext(
                step=step,
                key=jax.random.fold_in(keys.intervention, step),
                x=x,
                y=y,
                stats=stats,
                hparams=hp["intervention"],
                apply=lambda p, inputs: apply(p, state.rest, inputs)[0],
                initial_params=state.initial,
            )
            new_params, new_opt, new_istate = self.intervention.apply(
                ctx, new_params, new_opt, state.intervention
            )
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
            keep(new_istate, state.intervention),
            state.initial,
        )
        return new_state, (loss, accuracy)

    def saturated_fraction(self, apply, state: RunState, x: Array) -> Array:
        """Per layer, the mean fraction of probe samples a unit spends flat at a bound, or
        NaN for an unbounded activation (``[layers]``)."""
        if not self.bounded:
            return jnp.full((self.layers,), jnp.nan, jnp.float32)
        _, sat = analysis.with_saturation(apply)(state.params, state.rest, x)
        return jnp.stack([analysis.saturated_fraction(cast(Any, s)) for s in sat.values()])

    def evaluate(self, state: RunState, step: Array, hp, data: Data | Stream) -> dict[str, Array]:
        """Metrics at ``step``: probe loss and unit statistics, test loss/accuracy, LR."""
        apply = make_apply(self.graphdef)
        d = hp["data"]
        if isinstance(data, Data):
            x_probe, y_probe, x_test, y_test = (
                a[d] for a in (data.x_probe, data.y_probe, data.x_test, data.y_test)
            )
        else:
            x_probe, y_probe, x_test, y_test = select(data, d).evaluation(step)
        (probe_out, _), stats = analysis.with_stats(apply)(state.params, state.rest, x_probe)
        test_out, _ = apply(state.params, state.rest, x_test)

        def probe_loss(params):
            return loss_fn(apply(params, state.rest, x_probe)[0], y_probe)

        # One backward pass gives the parameter gradients (grad_norm) and dL/dz at every site.
        _, site_grads, grads = analysis.with_site_grads(probe_loss, argnums=0)(state.params)
        out = {
            "train_loss": loss_fn(probe_out, y_probe),
            "test_loss": loss_fn(test_out, y_test),
            "lr": self.schedules.apply(hp["schedule"], step).astype(jnp.float32),
        }
        if self.classification:
            hits = jnp.argmax(test_out, axis=-1) == y_test
            out["test_accuracy"] = jnp.mean(hits.astype(jnp.float32))
        out.update(layer_metrics(stats, self.dormant_tau))
        out.update(weight_metrics(state.params, state.initial, grads, self.layers))
        out["grad_dormant_fraction"] = jnp.stack(
            [analysis.gradient_dormant_fraction(g, tau=0.0) for g in site_grads.values()]
        )
        out["saturated_fraction"] = self.saturated_fraction(apply, state, x_probe)
        if self.feature_rank:
            out.update(rank_metrics(apply, state.params, state.rest, x_probe))
        if self.intervention is not None:
            for name, value in self.intervention.metrics(state.intervention).items():
                out[name] = jnp.asarray(value, jnp.float32)
        return out

    def chunk(self, state: RunState, hp, keys: Keys, start: Array, data: Data | Stream):
        """``chunk_steps`` steps from ``start`` with an evaluation every ``eval_every``.

        Returns the new state and metrics with a leading axis of ``chunk_steps / eval_every
        + 1`` evaluations: at ``start`` (computed only when ``start == 0``, NaN otherwise),
        then after each interval. On a stream the online metrics of each interval join its
        evaluation (NaN for the one at ``start``, which follows no interval of this chunk).
        """
        n_intervals = self.chunk_steps // self.eval_every
        online = not isinstance(data, Data)

        def initial():
            out = self.evaluate(state, start, hp, data)
            if online:
                nan = jnp.full((1,), jnp.nan, jnp.float32)
                out.update(self._online((nan, nan)))
            return out

        shapes = jax.eval_shape(initial)
        first = lax.cond(
            start == 0,
            initial,
            lambda: jax.tree.map(lambda s: jnp.full(s.shape, jnp.nan, s.dtype), shapes),
        )

        def interval(carry, j):
            begin = start + j * self.eval_every

            def step(c, i):
                return self.train_step(c, begin + i, hp, keys, data)

            carry, per_step = lax.scan(step, carry, jnp.arange(self.eval_every, dtype=jnp.int32))
            out = self.evaluate(carry, begin + self.eval_every, hp, data)
            if online:
                out.update(self._online(per_step))
            return carry, out

        state, later = lax.scan(interval, state, jnp.arange(n_intervals, dtype=jnp.int32))
        metrics = jax.tree.map(lambda a, b: jnp.concatenate([a[None], b]), first, later)
        return state, metrics

    def _online(self, per_step: tuple[Array, Array]) -> dict[str, Array]:
        """``online_loss`` (and ``online_accuracy``): means over an interval's updates."""
        loss, accuracy = per_step
        out = {"online_loss": jnp.mean(loss)}
        if self.classification:
            out["online_accuracy"] = jnp.mean(accuracy)
        return out


#: Probe examples (the first ones) whose activations the effective rank is computed on.
RANK_ROWS = 256


def rank_metrics(apply: Callable, params: Any, rest: Any, x_probe: Array) -> dict[str, Array]:
    """Per layer, :func:`relujax.analysis.effective_rank` of the ``(examples, units)`` matrix
    of the layer's activations on the first :data:`RANK_ROWS` probe examples, ``[layers]``."""
    feats = analysis.features(lambda x: apply(params, rest, x)[0], x_probe[:RANK_ROWS])
    return {"effective_rank": jnp.stack([_effective_rank(f) for f in feats.values()])}


@jax.custom_batching.custom_vmap
def _effective_rank(features: Array) -> Array:
    """:func:`relujax.analysis.effective_rank`; under ``vmap`` on CPU, one SVD per matrix.

    A batched CPU SVD deadlocks a sweep on several CPU devices with jaxlib < 0.12 (see
    :mod:`relujax.sweep._lapack`, which refuses such programs); a batch of one (``lax.map``)
    is not split over the thread pool. Other platforms keep the batched call. Metrics only:
    no derivative rule (``custom_vmap`` has none).
    """
    return analysis.effective_rank(features)


@_effective_rank.def_vmap
def _effective_rank_vmap(axis_size: int, in_batched: Any, features: Array) -> tuple[Array, bool]:
    del axis_size, in_batched  # one argument, batched along axis 0 (else this is not called)
    ranks = lax.platform_dependent(
        features,
        cpu=lambda f: lax.map(_effective_rank, f),
        default=jax.vmap(analysis.effective_rank),
    )
    return ranks, True
