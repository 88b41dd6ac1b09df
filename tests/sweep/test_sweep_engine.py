"""The one training engine: interventions, several data sets, initializer parameters, stages.

Invariants: an intervention inside the compiled loop equals the same intervention in a hand
loop; configurations of several data sets and initializers equal the independent reference;
the four stages equal ``run``; a remedy of ``relujax.remedies`` plugs in, and a config that
never triggers it trains as without it.
"""

import dataclasses

import chex
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from flax import nnx

import relujax
from relujax import data, remedies, sweep

ref = pytest.importorskip("reference")  # tests/sweep/reference.py

DS = data.gaussian_mixture(n_train=64, n_test=16, dim=4, num_classes=3, seed=0)
SHIFTED = data.gaussian_mixture(n_train=64, n_test=16, dim=4, num_classes=3, seed=1, mean_shift=2)
MODEL = sweep.MLPSpec((8,))
KW = dict(steps=6, model=MODEL, batch_size=8, eval_every=2, probe_size=32, strategy="map")


@dataclasses.dataclass(frozen=True)
class ZeroFirstKernel(sweep.Intervention):
    """Zeroes the first layer's kernel after every ``every``-th update; counts how often."""

    name = "zero_first_kernel"
    hyperparameters = {"every": 0.0}  # noqa: RUF012

    def init(self, params):
        return jnp.zeros((), jnp.int32)

    def apply(self, ctx, params, opt_state, state):
        every = ctx.hparams["every"].astype(jnp.int32)
        act = (every > 0) & ((ctx.step + 1) % jnp.maximum(every, 1) == 0)

        def zero(path, leaf):
            keys = [getattr(k, "key", None) for k in path]
            hit = keys[:3] == ["layers", 0, "kernel"]
            return jnp.where(act, jnp.zeros_like(leaf), leaf) if hit else leaf

        params = jax.tree_util.tree_map_with_path(zero, params)
        return params, opt_state, state + act.astype(jnp.int32)

    def metrics(self, state):
        return {"zeroed": state.astype(jnp.float32)}


def _hand_loop(config, every, steps):
    """The same training with the zeroing written out in a Python loop."""
    key = jax.random.key(config.seed)
    net = relujax.nn.MLP(4, [8], 3, rngs=nnx.Rngs(jax.random.fold_in(key, 0)))
    graphdef, params = nnx.split(net, nnx.Param)
    tx = optax.adam(config.peak_lr)
    opt_state = tx.init(params)
    x_all, y_all = jnp.asarray(DS.x_train), jnp.asarray(DS.y_train)

    @jax.jit
    def step(params, opt_state, t):
        idx = jax.random.randint(jax.random.fold_in(jax.random.fold_in(key, 1), t), (8,), 0, 64)

        def objective(p):
            logits = nnx.merge(graphdef, p)(x_all[idx])
            return optax.softmax_cross_entropy_with_integer_labels(logits, y_all[idx]).mean()

        grads = jax.grad(objective)(params)
        updates, opt_state = tx.update(grads, opt_state, params)
        return optax.apply_updates(params, updates), opt_state

    for t in range(steps):
        params, opt_state = step(params, opt_state, jnp.int32(t))
        if every and (t + 1) % every == 0:
            kernel = params["layers"][0]["kernel"]
            kernel[...] = jnp.zeros_like(kernel[...])
    return jax.device_get(params)


def test_intervention_equals_a_hand_loop_and_configs_differ_in_one_program():
    configs = [
        sweep.Config("constant", 1e-2, seed=3),
        sweep.Config("constant", 1e-2, seed=3, intervention={"every": 3}),
    ]
    r = sweep.run(configs, DS, intervention=ZeroFirstKernel(), **KW)
    np.testing.assert_array_equal(r.metrics["zeroed"], [[0, 0, 0, 0], [0, 0, 1, 2]])
    # After update 6 (a multiple of 3) the second run's first kernel is exactly zero.
    assert not np.asarray(r.final_params[1]["layers"][0]["kernel"]).any()
    for k, every in enumerate((0, 3)):
        chex.assert_trees_all_close(
            r.final_params[k], _hand_loop(configs[k], every, 6), rtol=1e-5, atol=1e-6
        )
    assert r.meta["intervention"] == {
        "name": "zero_first_kernel",
        "type": "ZeroFirstKernel",
        "every": 0.0,
    }


CONFIGS = [
    sweep.Config("constant", 1e-2, seed=0),
    sweep.Config("constant", 1e-2, activation="hard_tanh", seed=0, data=1),
    sweep.Config(
        "constant",
        1e-2,
        init="normal",
        init_params={"stddev": 0.01},
        bias_init="constant",
        bias_init_params={"value": -1.0},
        seed=1,
    ),
]


@pytest.fixture(scope="module")
def two_datasets():
    return sweep.run(CONFIGS, [DS, SHIFTED], chunk_steps=2, **KW)


def test_several_datasets_and_init_parameters_match_the_reference(two_datasets):
    r = two_datasets
    kw = dict(KW, hidden=MODEL.hidden)
    del kw["model"], kw["strategy"]
    metrics, diverged, finals = ref.run(CONFIGS, [DS, SHIFTED], **kw)
    np.testing.assert_array_equal(r.diverged_step, diverged)
    for name, values in metrics.items():
        np.testing.assert_allclose(r.metrics[name], values, rtol=2e-4, atol=1e-5, err_msg=name)
    chex.assert_trees_all_close(r.final_params, finals, rtol=1e-3, atol=1e-5)
    # The same seed on another data set trains differently; tiny weights and bias -1 start
    # with every unit dead.
    assert not np.allclose(r.metrics["test_loss"][0], r.metrics["test_loss"][1])
    assert r.metrics["dead_fraction"][2, 0, 0] == 1.0
    assert len(r.meta["dataset"]) == 2
    # Weight metrics by their definitions: no distance at step 0, the final kernel's norm.
    np.testing.assert_array_equal(r.metrics["init_distance"][:, 0], 0.0)
    for k in range(3):
        kernel = np.asarray(r.final_params[k]["layers"][0]["kernel"], np.float64)
        np.testing.assert_allclose(r.metrics["weight_norm"][k, -1, 0], np.linalg.norm(kernel), 1e-6)
    assert (r.metrics["grad_norm"][:2] > 0).all() and (r.metrics["init_distance"][:2, 1:] > 0).all()
    # A layer dead from the start gets no gradient: its kernel never moves.
    assert (r.metrics["dead_fraction"][2] == 1.0).all()
    np.testing.assert_array_equal(r.metrics["grad_norm"][2], 0.0)
    np.testing.assert_array_equal(r.metrics["init_distance"][2], 0.0)
    # ... and is dead in the gradient sense too; the bounded hard_tanh run saturates, the
    # unbounded ReLU runs have no saturated fraction (NaN, not applicable).
    np.testing.assert_array_equal(r.metrics["grad_dormant_fraction"][2], 1.0)
    assert (r.metrics["saturated_fraction"][1] > 0).any()
    assert np.isnan(r.metrics["saturated_fraction"][[0, 2]]).all()


def test_stages_equal_run(two_datasets):
    options = sweep.Options(chunk_steps=2, **KW)
    p = sweep.plan(CONFIGS, [DS, SHIFTED], options)
    assert (p.chunks, p.evaluations) == (3, 4)
    state = sweep.initial_state(p)
    seconds = []
    while state.chunks_done < p.chunks:
        state, s = sweep.train_chunk(p, state)
        seconds.append(s)
    staged = sweep.result(p, state)
    assert len(seconds) == 3
    for name, values in two_datasets.metrics.items():
        np.testing.assert_array_equal(staged.metrics[name], values, err_msg=name)
    chex.assert_trees_all_equal(staged.final_params, two_datasets.final_params)
    with pytest.raises(ValueError, match="all 3 chunks are done"):
        sweep.train_chunk(p, state)
    with pytest.raises(TypeError, match="not both"):
        sweep.run(CONFIGS, [DS, SHIFTED], options=options, steps=6)


def test_options_are_validated_and_frozen():
    o = sweep.Options(steps=10, eval_every=5, optimizer=" Adam ")
    assert (o.chunk_steps, o.optimizer.name) == (10, "adam")
    with pytest.raises(dataclasses.FrozenInstanceError):
        o.steps = 3
    with pytest.raises(ValueError, match="eval_every=3 must divide chunk_steps=10"):
        sweep.Options(steps=10, eval_every=3)
    with pytest.raises(TypeError, match=r"intervention must be a relujax\.sweep\.Intervention"):
        sweep.Options(steps=10, intervention=lambda *a: a)
    with pytest.raises(ValueError, match="rename one"):
        sweep.Chain(ZeroFirstKernel(), ZeroFirstKernel())


def test_a_remedy_plugs_in_and_is_inert_where_it_never_fires():
    """ReDo of relujax.remedies as a sweep intervention, with the per-entry Adam counts."""
    abstract = nnx.eval_shape(
        lambda: MODEL.build((4,), 3, activation="relu", kernel_init="he_normal", rngs=nnx.Rngs(0))
    )
    redo = sweep.Remedy(
        "redo", traced={"every": 0, "tau": 0.1}, layout=remedies.layout_of(abstract)
    )
    assert redo.needs_stats and redo.hyperparameters == {"every": 0.0, "tau": 0.1}
    configs = [
        sweep.Config("constant", 3e-2, seed=2),
        sweep.Config("constant", 3e-2, seed=2, intervention={"every": 2, "tau": 0.5}),
    ]
    kw = dict(KW, optimizer="adam_per_param")
    with_redo = sweep.run(configs, DS, intervention=redo, **kw)
    plain = sweep.run(configs[:1], DS, **kw)
    for name, values in plain.metrics.items():
        np.testing.assert_allclose(with_redo.metrics[name][:1], values, rtol=1e-5, err_msg=name)
    chex.assert_trees_all_close(with_redo.final_params[0], plain.final_params[0], rtol=1e-5)
    # tau = 0.5 recycles units every other step: the two runs part.
    assert not np.allclose(
        with_redo.final_params[1]["layers"][0]["kernel"],
        plain.final_params[0]["layers"][0]["kernel"],
    )
