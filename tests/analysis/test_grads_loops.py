"""with_site_grads inside scan loops: per-iteration |dL/dz| against hand-unrolled probes."""

import functools

import chex
import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from relujax import analysis

LAYERS, N, W = 3, 5, 4
RNG = np.random.default_rng(0)
X = jnp.asarray(RNG.normal(size=(N, W)), jnp.float32)
WS = 0.3 * jnp.asarray(RNG.normal(size=(LAYERS, W, W)), jnp.float32) + jnp.eye(W)[None]
BS = jnp.full((LAYERS, W), 0.5).at[1, 2].set(-100.0)
DEAD = (1, 2)  # layer 2 (index 1), unit 2: z < -90 on every sample, dead in that layer only


def scan_loss(ws, bs, x):
    body = lambda h, wb: (jax.nn.relu(h @ wb[0] + wb[1][None]), None)
    h = jax.lax.scan(body, x, (ws, bs))[0]
    return 0.5 * jnp.sum(jnp.square(h - 1.0)) / x.shape[0]


def unrolled_loss(ws, bs, x, d):
    """The same loss as a Python loop over the layers, with an explicit probe d[i] per layer."""
    h = x
    for i in range(LAYERS):
        h = jax.nn.relu(h @ ws[i] + bs[i][None] + d[i])
    return 0.5 * jnp.sum(jnp.square(h - 1.0)) / x.shape[0]


def probe_grads(ws, bs, x):
    return jax.grad(functools.partial(unrolled_loss, ws, bs, x))(jnp.zeros((LAYERS, N, W)))


def test_lax_scan_per_layer_equals_unrolled_probes_and_pooled_is_the_sum():
    z1 = jax.nn.relu(X @ WS[0] + BS[0][None]) @ WS[1] + BS[1][None]
    assert (z1[:, DEAD[1]] < -90.0).all()
    value, grads, arg_grads = jax.jit(analysis.with_site_grads(scan_loss, argnums=(0, 1)))(
        WS, BS, X
    )
    names = [f"relu_0[{i}]" for i in range(LAYERS)]
    assert list(grads) == names == [s.name for s in analysis.find_sites(scan_loss, WS, BS, X)]
    d = probe_grads(WS, BS, X)
    for i, name in enumerate(names):
        np.testing.assert_allclose(grads[name].abs_sum, jnp.abs(d[i]).sum(0), rtol=1e-5, atol=1e-7)
        assert grads[name].samples.to_numpy().tolist() == [N] * W
    assert grads["relu_0[1]"].abs_mean[DEAD[1]] == 0.0  # exactly: relu' = 0 on every sample
    alive = [(i, j) for i in range(LAYERS) for j in range(W) if (i, j) != DEAD]
    assert all(grads[names[i]].abs_mean[j] > 0.0 for i, j in alive)
    assert analysis.gradient_dormant(grads["relu_0[1]"], tau=0.0).tolist() == [0, 0, 1, 0]
    # value and argnums gradients are jax.value_and_grad's
    want_value, want_args = jax.value_and_grad(scan_loss, argnums=(0, 1))(WS, BS, X)
    np.testing.assert_allclose(value, want_value, rtol=1e-6)
    chex.assert_trees_all_close(arg_grads, want_args, rtol=1e-5, atol=1e-6)
    # pooled: one GradStats per site, abs sums and counts added over the iterations
    _, pooled = jax.jit(analysis.with_site_grads(scan_loss, loops="pooled"))(WS, BS, X)
    assert list(pooled) == ["relu_0"]
    np.testing.assert_allclose(pooled["relu_0"].abs_sum, jnp.abs(d).sum((0, 1)), rtol=1e-5)
    assert pooled["relu_0"].samples.to_numpy().tolist() == [LAYERS * N] * W
    summed = functools.reduce(analysis.GradStats.merge, [grads[n] for n in names])
    chex.assert_trees_all_close(pooled["relu_0"], summed, rtol=1e-6)
    assert pooled["relu_0"].abs_mean[DEAD[1]] > 0.0  # alive in layers 1 and 3


class _Block(nn.Module):
    @nn.compact
    def __call__(self, h, _):
        return nn.relu(nn.Dense(W)(h)), None


class _ScanMLP(nn.Module):
    @nn.compact
    def __call__(self, x):
        layers = nn.scan(
            _Block, variable_axes={"params": 0}, split_rngs={"params": True}, length=LAYERS
        )
        return nn.Dense(1)(layers(name="layers")(x, None)[0])


def test_linen_scan_mlp_names_match_with_stats():
    model = _ScanMLP()
    variables = model.init(jax.random.key(0), X)
    head = variables["params"]["Dense_0"]
    layers = variables["params"]["layers"]
    assert jax.tree.map(jnp.shape, layers) == {"Dense_0": {"kernel": WS.shape, "bias": BS.shape}}
    kernel, bias = WS, BS
    params = {"Dense_0": head, "layers": {"Dense_0": {"kernel": kernel, "bias": bias}}}

    def loss(params, x):
        return jnp.mean(jnp.square(model.apply({"params": params}, x)))

    _, grads = jax.jit(analysis.with_site_grads(loss))(params, X)
    names = [f"_ScanMLP/layers[{i}]/relu_0" for i in range(LAYERS)]
    assert list(grads) == names == list(jax.jit(analysis.with_stats(loss))(params, X)[1])

    def explicit(d):
        h = X
        for i in range(LAYERS):
            h = jax.nn.relu(h @ kernel[i] + bias[i][None] + d[i])
        return jnp.mean(jnp.square(h @ head["kernel"] + head["bias"][None]))

    d = jax.grad(explicit)(jnp.zeros((LAYERS, N, W)))
    for i, name in enumerate(names):
        np.testing.assert_allclose(grads[name].abs_mean, jnp.abs(d[i]).mean(0), rtol=1e-5)
    assert grads[names[1]].abs_mean[DEAD[1]] == 0.0 and grads[names[0]].abs_mean[DEAD[1]] > 0.0


def test_nested_reverse_scans_and_vmap_over_models():
    """Outer scan over 2 blocks, inner reverse scan over 2 layers; vmap over 2 models."""
    ws = jnp.asarray(RNG.normal(size=(2, 2, 2, W, W)), jnp.float32)  # (model, block, layer)

    def loss(ws, x):
        def outer(h, w2):
            inner = lambda g, w: (jax.nn.relu(g @ w - 0.3), None)
            return jax.lax.scan(inner, h, w2, reverse=True)[0], None

        return jnp.sum(jnp.sin(jax.lax.scan(outer, x, ws)[0]))

    def explicit(ws, d):
        h = X
        for i in range(2):
            for j in (1, 0):  # reverse: the inner scan reads w[1] first; xs index j kept
                h = jax.nn.relu(h @ ws[i, j] - 0.3 + d[i, j])
        return jnp.sum(jnp.sin(h))

    grads = jax.jit(jax.vmap(lambda w: analysis.with_site_grads(loss)(w, X)[1]))(ws)
    names = [f"relu_0[{i}][{j}]" for i in range(2) for j in range(2)]
    assert list(grads) == names == [s.name for s in analysis.find_sites(loss, ws[0], X)]
    for m in range(2):
        d = jax.grad(functools.partial(explicit, ws[m]))(jnp.zeros((2, 2, N, W)))
        for i in range(2):
            for j in range(2):
                got = grads[f"relu_0[{i}][{j}]"].abs_mean[m]
                np.testing.assert_allclose(got, jnp.abs(d[i, j]).mean(0), rtol=1e-5, atol=1e-7)


def test_scan_over_data_pools_by_default_and_while_loops_raise():
    """A scan over time steps (xs only) pools by default; per_iteration keeps each step."""
    xs = X.reshape(N, 1, W)

    def loss(xs):
        step = lambda c, x: (c + jnp.sum(jax.nn.relu(x - 0.2) ** 2), None)
        return jax.lax.scan(step, 0.0, xs)[0]

    want = 2.0 * jax.nn.relu(xs - 0.2)  # dL/dz per step: 2 relu(z)
    _, pooled = analysis.with_site_grads(loss)(xs)
    np.testing.assert_allclose(pooled["relu_0"].abs_mean, want.mean((0, 1)), rtol=1e-6)
    _, per = analysis.with_site_grads(loss, loops="per_iteration", sites="relu_0[3]")(xs)
    assert list(per) == ["relu_0[3]"]
    np.testing.assert_allclose(per["relu_0[3]"].abs_sum, want[3, 0], rtol=1e-6)
    with pytest.raises(ValueError, match="loops must be one of"):
        analysis.with_site_grads(loss, loops="unrolled")(xs)

    def looped(x):
        body = lambda c: (c[0] + 1, jax.nn.relu(c[1]) - 0.5)
        return jnp.sum(jax.lax.while_loop(lambda c: c[0] < 2, body, (0, x))[1])

    with pytest.raises(ValueError, match="inside a while loop"):
        analysis.with_site_grads(looped)(X)
