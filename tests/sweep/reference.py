"""An independent single-run training loop that the sweep engine is tested against.

Written as the Flax/Optax tutorials do: one jitted train step called from Python per step,
one configuration after another. It imports nothing from :mod:`relujax.sweep`: the loss,
the Optax chains, the key derivation, the minibatch draws and the per-layer unit metrics
are written here from their definitions (the documented conventions of ``sweep.run``). It
takes the models from :mod:`relujax.nn`, the initializers from :mod:`relujax.init` and the
learning-rate values from :mod:`relujax.schedules` (each tested on its own); configurations
are read by attribute only.

Supports MLPs with stateless activations, the optimizers sgd, momentum, adam and adamw.
"""

from __future__ import annotations

import functools
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import optax
from flax import nnx

import relujax
from relujax import init as relujax_init


def loss(outputs, targets):
    """Softmax cross-entropy for integer labels, squared error for float targets (means)."""
    if jnp.issubdtype(targets.dtype, jnp.integer):
        logp = jax.nn.log_softmax(outputs, axis=-1)
        return -jnp.mean(jnp.take_along_axis(logp, targets[:, None], axis=-1))
    return jnp.mean((outputs - targets) ** 2)


def optimizer(name: str, hyper: dict[str, Any], lr) -> optax.GradientTransformation:
    """The Optax chains behind the sweep's optimizer names, spelled out."""
    if name == "sgd":
        return optax.chain(optax.scale_by_learning_rate(lr))
    if name == "momentum":
        return optax.chain(
            optax.trace(decay=hyper.get("momentum", 0.9), nesterov=hyper.get("nesterov", False)),
            optax.scale_by_learning_rate(lr),
        )
    adam = optax.scale_by_adam(
        b1=hyper.get("b1", 0.9), b2=hyper.get("b2", 0.999), eps=hyper.get("eps", 1e-8)
    )
    if name == "adam":
        return optax.chain(adam, optax.scale_by_learning_rate(lr))
    if name == "adamw":
        decay = optax.add_decayed_weights(hyper.get("weight_decay", 1e-4))
        return optax.chain(adam, decay, optax.scale_by_learning_rate(lr))
    raise NotImplementedError(name)


def layer_metrics(params, activation, x, tau):
    """Dead fraction, ReDo-dormant fraction and firing rate per hidden layer of an MLP."""
    phi = relujax.get_activation(activation)
    layers = params["layers"]
    dead, dormant, firing = [], [], []
    h = x
    for i in range(len(layers) - 1):
        z = h @ layers[i]["kernel"][...] + layers[i]["bias"][...][None, :]
        h = phi(z)
        fired = z > 0
        dead.append(jnp.mean(~jnp.any(fired, axis=0)))
        firing.append(jnp.mean(fired))
        score = jnp.mean(jnp.abs(h), axis=0)
        mean = jnp.mean(score)
        is_dormant = jnp.where(mean > 0, score / jnp.where(mean > 0, mean, 1.0) <= tau, True)
        dormant.append(jnp.mean(is_dormant))
    return {
        "dead_fraction": jnp.stack(dead).astype(jnp.float32),
        "dormant_fraction": jnp.stack(dormant).astype(jnp.float32),
        "firing_rate": jnp.stack(firing).astype(jnp.float32),
    }


#: Where each bounded activation is flat at a bound (written out here, independently of the
#: descriptors): lower, upper; the kinks count (the derivative is 0 there).
BOUNDS = {
    "hard_tanh": (-1.0, 1.0),
    "hard_sigmoid": (-3.0, 3.0),
    "relu6": (None, 6.0),
    "capped_relu": (None, 6.0),  # its default cap, which a sweep's model uses
}


def site_gradient_metrics(params, activation, x, y):
    """Per hidden layer of an MLP: the fraction of units whose pre-activation gradient is 0
    on every probe example (a zero probe added to each z, differentiated), and the mean over
    units of the fraction of probe examples flat at a bound (NaN for unbounded ones)."""
    phi = relujax.get_activation(activation)
    layers = params["layers"]
    n = len(layers) - 1

    def forward(probes):
        h, zs = x, []
        for i in range(n):
            z = h @ layers[i]["kernel"][...] + layers[i]["bias"][...][None, :] + probes[i]
            zs.append(z)
            h = phi(z)
        return loss(h @ layers[n]["kernel"][...] + layers[n]["bias"][...][None, :], y), zs

    shapes = [(x.shape[0], layers[i]["bias"][...].shape[0]) for i in range(n)]
    grads, zs = jax.grad(forward, has_aux=True)([jnp.zeros(s) for s in shapes])
    dormant = [jnp.mean(jnp.all(g == 0, axis=0)) for g in grads]
    if activation in BOUNDS:
        lo, hi = BOUNDS[activation]
        flat = [(z >= hi) | ((z <= lo) if lo is not None else False) for z in zs]
        saturated = [jnp.mean(f) for f in flat]
    else:
        saturated = [jnp.nan] * n
    return {
        "grad_dormant_fraction": jnp.stack(dormant).astype(jnp.float32),
        "saturated_fraction": jnp.stack(saturated).astype(jnp.float32),
    }


@functools.lru_cache(maxsize=32)
def _programs(graphdef, opt_name, hyper, schedule, steps, batch_size, tau, classification):
    def tx(peak):
        sched = schedule.build(total_steps=steps, peak_value=peak)
        return optimizer(opt_name, dict(hyper), sched), sched

    @jax.jit
    def train_step(params, opt_state, peak, data_key, step, x_train, y_train):
        idx = jax.random.randint(
            jax.random.fold_in(data_key, step), (batch_size,), 0, x_train.shape[0]
        )
        x, y = x_train[idx], y_train[idx]

        def objective(p):
            return loss(nnx.merge(graphdef, p)(x), y)

        value, grads = jax.value_and_grad(objective)(params)
        updates, opt_state = tx(peak)[0].update(grads, opt_state, params)
        return optax.apply_updates(params, updates), opt_state, value

    @functools.partial(jax.jit, static_argnames="activation")
    def evaluate(params, initial, peak, step, x_probe, y_probe, x_test, y_test, activation):
        model = nnx.merge(graphdef, params)
        test_out = model(x_test)
        out = {
            "train_loss": loss(model(x_probe), y_probe),
            "test_loss": loss(test_out, y_test),
            "lr": tx(peak)[1](step).astype(jnp.float32),
        }
        if classification:
            out["test_accuracy"] = jnp.mean(jnp.argmax(test_out, -1) == y_test).astype(jnp.float32)
        out.update(layer_metrics(params, activation, x_probe, tau))
        out.update(site_gradient_metrics(params, activation, x_probe, y_probe))
        grads = jax.grad(lambda p: loss(nnx.merge(graphdef, p)(x_probe), y_probe))(params)
        hidden = range(len(params["layers"]) - 1)

        def norms(get):
            return jnp.stack([jnp.linalg.norm(get(i).reshape(-1)) for i in hidden])

        out["weight_norm"] = norms(lambda i: params["layers"][i]["kernel"][...])
        out["init_distance"] = norms(
            lambda i: params["layers"][i]["kernel"][...] - initial["layers"][i]["kernel"][...]
        )
        out["grad_norm"] = norms(lambda i: grads["layers"][i]["kernel"][...])
        return out

    return train_step, evaluate


def run(
    configs,
    datasets,
    *,
    steps,
    hidden,
    optimizer_name="adam",
    hyper=(),
    batch_size,
    eval_every,
    probe_size,
    dormant_tau=0.025,
):
    """Train each configuration alone; returns ``(metrics, diverged_step, final_params)``.

    ``metrics[name]`` is ``[K, E]`` or ``[K, E, L]`` with NaN at and after divergence, as
    the sweep documents.
    """
    datasets = [datasets] if hasattr(datasets, "x_train") else list(datasets)
    classification = np.issubdtype(datasets[0].y_train.dtype, np.integer)
    out_dim = (
        max(int(max(d.y_train.max(), d.y_test.max())) + 1 for d in datasets)
        if classification
        else datasets[0].y_train.shape[-1]
    )
    n_evals = steps // eval_every + 1
    eval_steps = np.arange(n_evals) * eval_every
    metrics: dict[str, list] = {}
    diverged, finals = [], []
    for c in configs:
        ds = datasets[c.data]
        y_dtype = jnp.int32 if classification else jnp.float32
        x_train = jnp.asarray(ds.x_train, jnp.float32)
        y_train = jnp.asarray(ds.y_train, y_dtype)
        x_test, y_test = jnp.asarray(ds.x_test, jnp.float32), jnp.asarray(ds.y_test, y_dtype)
        p = min(probe_size, len(ds.x_train))
        x_probe, y_probe = x_train[:p], y_train[:p]
        key = jax.random.key(c.seed)
        init_key, data_key = jax.random.fold_in(key, 0), jax.random.fold_in(key, 1)
        bias = None
        if c.bias_init is not None:
            bias = relujax_init.get(c.bias_init, **dict(c.bias_init_params))
        net = relujax.nn.MLP(
            ds.x_train.shape[1],
            hidden,
            out_dim,
            activation=c.activation,
            kernel_init=relujax_init.get(c.init, **dict(c.init_params)),
            bias_init=bias,
            rngs=nnx.Rngs(init_key),
        )
        graphdef, params = nnx.split(net, nnx.Param)
        initial = jax.tree.map(jnp.copy, params)
        train_step, evaluate = _programs(
            graphdef,
            optimizer_name,
            tuple(hyper),
            c.schedule,
            steps,
            batch_size,
            float(dormant_tau),
            bool(classification),
        )
        peak = jnp.float32(c.peak_lr)
        opt_state = optimizer(optimizer_name, dict(hyper), lambda count: 1.0).init(params)
        records, losses, first_bad = [], [], -1
        for step in range(steps + 1):
            if step % eval_every == 0:
                finite = np.isfinite(np.asarray(losses)) if losses else np.ones(0, bool)
                if not finite.all():
                    first_bad = step - len(losses) + int(np.argmin(finite))
                    break
                records.append(
                    evaluate(
                        params, initial, peak, step, x_probe, y_probe, x_test, y_test, c.activation
                    )
                )
                losses = []
            if step == steps:
                break
            params, opt_state, value = train_step(
                params, opt_state, peak, data_key, jnp.int32(step), x_train, y_train
            )
            losses.append(float(value))
        host = jax.device_get(records)
        for name in host[0]:
            values = np.full((n_evals, *np.shape(host[0][name])), np.nan, np.float32)
            for e, r in enumerate(host):
                values[e] = r[name]
            if first_bad >= 0:
                values[eval_steps >= first_bad] = np.nan
            metrics.setdefault(name, []).append(values)
        diverged.append(first_bad)
        finals.append(jax.device_get(params))
    return (
        {n: np.stack(v) for n, v in metrics.items()},
        np.asarray(diverged, np.int64),
        finals,
    )
