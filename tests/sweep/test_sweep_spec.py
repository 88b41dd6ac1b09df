"""Tests for the sweep's specifications: configs, grids, optimizers, models, strategies."""

import chex
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from relujax import remedies, schedules, sweep
from relujax.sweep._strategy import choose_strategy
from relujax.sweep._train import config_keys, loss_fn, sample_batch


def test_grid_product_order_and_conversion():
    grid = sweep.Grid(
        ["constant", schedules.Schedule("cosine_decay", end_ratio=0.1)],
        [1e-3, 1e-2],
        activations=["relu", "leaky_relu"],
        inits=["he_normal"],
        seeds=[0, 1],
    )
    configs = grid.configs()
    assert len(configs) == 2 * 2 * 2 * 1 * 2
    assert configs[0] == sweep.Config(schedules.Schedule("constant"), 1e-3, "relu", "he_normal", 0)
    assert configs[1].seed == 1 and configs[2].activation == "leaky_relu"
    assert configs[4].peak_lr == 1e-2 and configs[8].schedule.name == "cosine_decay"
    assert configs[-1].to_dict() == {
        "schedule": {"name": "cosine_decay", "end_ratio": 0.1},
        "peak_lr": 1e-2,
        "activation": "leaky_relu",
        "init": "he_normal",
        "seed": 1,
    }


@pytest.mark.parametrize(
    ("call", "error", "match"),
    [
        (lambda: sweep.Grid([], [1e-3]).configs(), ValueError, "schedules is empty"),
        (lambda: sweep.Grid(["constant"], []).configs(), ValueError, "peak_lrs is empty"),
        (lambda: sweep.Grid(["constant"], [1e-3], seeds=[]).configs(), ValueError, "seeds"),
        (lambda: sweep.Grid(["constant"], 1e-3).configs(), TypeError, "peak_lrs"),
        (lambda: sweep.Grid(["cosine"], [1e-3]).configs(), ValueError, "did you mean"),
        (lambda: sweep.Config("constant", 0.0), ValueError, "peak_lr"),
        (lambda: sweep.Config("constant", float("nan")), ValueError, "peak_lr"),
        (lambda: sweep.Config("constant", 1e-3, seed=-1), ValueError, "seed"),
        (lambda: sweep.Config("constant", 1e-3, activation=None), TypeError, "activation"),
        (lambda: sweep.Config(3, 1e-3), TypeError, "schedule"),
        (lambda: sweep.OptimizerSpec("rmsprop"), ValueError, "accepted"),
        (lambda: sweep.OptimizerSpec("adam", beta1=0.9), ValueError, "b1"),
        (lambda: sweep.OptimizerSpec("adam", b1="0.9"), TypeError, "b1"),
        (lambda: sweep.OptimizerSpec("adam", eps=float("inf")), ValueError, "eps"),
        (lambda: sweep.MLPSpec(hidden=()), ValueError, "hidden"),
        (lambda: sweep.MLPSpec(hidden=(16, 0)), ValueError, "hidden"),
        (lambda: sweep.CNNSpec(pool="min"), ValueError, "pool"),
    ],
)
def test_bad_specs(call, error, match):
    with pytest.raises(error, match=match):
        call()


@pytest.mark.parametrize("name", sweep.OPTIMIZERS)
def test_optimizer_build_is_the_plain_optax_optimizer(name):
    """build(schedule of a traced peak) updates bit-identically to optax.<fn>(float lr)."""
    spec = sweep.OptimizerSpec(name)
    params = {"w": jnp.linspace(-1.0, 1.0, 12).reshape(3, 4)}
    grads = [jax.tree.map(lambda p, i=i: jnp.cos(p * (i + 2)), params) for i in range(6)]
    plain = {
        "sgd": optax.sgd(0.05),
        "momentum": optax.sgd(0.05, momentum=0.9),
        "adam": optax.adam(0.05),
        "adamw": optax.adamw(0.05, weight_decay=1e-4),
        "adam_per_param": remedies.adam(0.05),
        "adamw_per_param": remedies.adamw(0.05, weight_decay=1e-4),
    }[name]

    def run(update, state):
        p = params
        for g in grads:
            u, state = update(g, state, p)
            p = optax.apply_updates(p, u)
        return p

    want = run(jax.jit(plain.update), plain.init(params))

    def swept(peak):
        return spec.build(schedules.make("constant", total_steps=6, peak_value=peak))

    update = jax.jit(lambda g, s, p, peak: swept(peak).update(g, s, p))
    peak = jnp.float32(0.05)
    got = run(lambda g, s, p: update(g, s, p, peak), swept(peak).init(params))
    chex.assert_trees_all_equal(got, want)


def test_optimizer_spec_values():
    spec = sweep.OptimizerSpec("momentum", momentum=0.5)
    assert spec.to_dict() == {"name": "momentum", "momentum": 0.5, "nesterov": False}
    assert spec == sweep.OptimizerSpec("momentum", momentum=0.5)
    assert hash(spec) == hash(sweep.OptimizerSpec("momentum", momentum=0.5))


def test_model_specs_build_relujax_modules():
    from flax import nnx

    import relujax

    mlp = sweep.MLPSpec((16,)).build(
        (8,), 3, activation="leaky_relu", kernel_init="he_normal", rngs=nnx.Rngs(0)
    )
    assert isinstance(mlp, relujax.nn.MLP)
    assert [layer.kernel.shape for layer in mlp.layers] == [(8, 16), (16, 3)]
    assert sweep.CNNSpec(features=(4, 8), hidden=(6,)).layers == 3
    assert sweep.CNNSpec(features=(4,)).to_dict()["kind"] == "cnn"
    with pytest.raises(ValueError, match="flat inputs"):
        sweep.MLPSpec().check_input((8, 8, 1))
    with pytest.raises(ValueError, match="flatten=False"):
        sweep.CNNSpec().check_input((64,))


def test_flops_per_example():
    from relujax.sweep._strategy import flops_per_example

    assert flops_per_example(sweep.MLPSpec((256, 256, 256)), (40,), 10) == 2 * (
        40 * 256 + 256 * 256 * 2 + 256 * 10
    )
    # conv: 40 positions x 3 taps x 1 -> 4 channels, pooled to 20, then 4 -> 10 dense.
    assert flops_per_example(sweep.CNNSpec(features=(4,)), (40, 1), 10) == 2 * (
        40 * 3 * 1 * 4 + 4 * 10
    )


@pytest.mark.parametrize(
    ("strategy", "hidden", "backend", "configs", "devices", "want"),
    [
        ("auto", (256, 256, 256), "cpu", 64, 1, "map"),
        ("auto", (256, 256, 256), "cpu", 64, 2, "map"),
        ("auto", (32, 32, 32), "cpu", 64, 1, "vmap"),
        ("auto", (32, 32, 32), "cpu", 64, 2, "map"),
        ("auto", (16, 16, 16), "cpu", 64, 2, "vmap"),
        ("auto", (8, 8, 8), "cpu", 64, 2, "vmap"),
        ("auto", (256, 256, 256), "gpu", 64, 1, "vmap"),
        ("auto", (256, 256, 256), "cpu", 1, 1, "vmap"),
        ("auto", (256, 256, 256), "cpu", 8, 8, "vmap"),
        ("vmap", (256, 256, 256), "cpu", 64, 1, "vmap"),
        ("map", (32,), "gpu", 64, 1, "map"),
    ],
)
def test_choose_strategy(strategy, hidden, backend, configs, devices, want):
    got = choose_strategy(
        strategy,
        model=sweep.MLPSpec(hidden),
        input_shape=(40,),
        out_features=10,
        batch_size=128,
        configs=configs,
        devices=devices,
        backend=backend,
    )
    assert got == want


def test_config_keys_and_sample_batch_are_pure():
    """Typed keys fold_in(key(seed), i): the same bits as the legacy PRNGKey spelling."""
    init_key, data_key, intervention_key = config_keys(3)
    legacy = jax.random.PRNGKey(3)
    for i, k in enumerate((init_key, data_key, intervention_key)):
        np.testing.assert_array_equal(jax.random.key_data(k), jax.random.fold_in(legacy, i))
    assert not np.array_equal(jax.random.key_data(init_key), jax.random.key_data(data_key))
    steps = jnp.arange(4)
    batched = jax.jit(jax.vmap(lambda s: sample_batch(data_key, s, 100, 32)))(steps)
    single = jax.jit(sample_batch, static_argnums=(2, 3))(data_key, 1, 100, 32)
    chex.assert_trees_all_equal(batched[1], single)
    chex.assert_shape(batched, (4, 32))
    assert not np.array_equal(batched[0], batched[1])
    assert batched.min() >= 0 and batched.max() < 100


def test_loss_fn_closed_forms_and_grad():
    logits = jnp.array([[2.0, 0.0], [0.0, 0.0]])
    labels = jnp.array([0, 1])
    pred, target = jnp.array([[1.0, 2.0]]), jnp.array([[0.0, 0.0]])

    @jax.jit
    def everything():
        return (
            jax.value_and_grad(loss_fn)(logits, labels),
            jax.value_and_grad(loss_fn)(pred, target),
            jax.vmap(loss_fn)(logits[:, None], labels[:, None]),
        )

    (ce, ce_grad), (mse, mse_grad), batched = everything()
    want = (np.log1p(np.exp(-2.0)) + np.log(2.0)) / 2
    chex.assert_trees_all_close(ce, want, rtol=1e-6)
    softmax = np.exp(logits) / np.exp(logits).sum(1, keepdims=True)
    chex.assert_trees_all_close(ce_grad, (softmax - np.eye(2)[labels]) / 2, rtol=1e-5)
    chex.assert_trees_all_close(mse, 2.5)
    chex.assert_trees_all_close(mse_grad, pred)
    chex.assert_trees_all_close(batched, jnp.array([np.log1p(np.exp(-2.0)), np.log(2.0)]))


def test_result_round_trips_configs_with_tuple_parameters():
    configs = (
        sweep.Config(schedules.Schedule("piecewise_constant", boundary_steps=(3, 6)), 0.1),
        sweep.Config(schedules.Schedule("sgdr", cycles=2), 0.2, "leaky_relu", "rai", 7),
    )
    metrics = {
        "test_loss": np.array([[1.0, np.nan], [2.0, 3.0]], np.float32),
        "dead_fraction": np.array([[[0.0], [np.nan]], [[0.5], [1.0]]], np.float32),
    }
    r = sweep.SweepResult(
        configs=configs,
        steps=np.array([0, 5]),
        metrics=metrics,
        diverged_step=np.array([5, -1]),
        layer_sites=(("relu_0",), ("leaky_relu_0",)),
        meta={"versions": {"jax": jax.__version__}},
    )
    back = sweep.SweepResult.from_json(r.to_json())
    assert back.configs == configs
    for name, values in metrics.items():
        np.testing.assert_array_equal(back.metrics[name], values)
    np.testing.assert_array_equal(back.diverged_step, [5, -1])
    assert back.final("test_loss").tolist()[1] == 3.0
    rows = back.records()
    assert rows[0]["schedule.boundary_steps"] == (3, 6) and rows[1]["diverged"]
    assert rows[3]["dead_fraction/0"] == 1.0 and rows[3]["version.jax"] == jax.__version__
