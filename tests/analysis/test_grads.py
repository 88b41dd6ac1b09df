"""with_site_grads: per-unit mean |dL/dz| against closed forms and explicit perturbations."""

import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

import relujax
from relujax import analysis

RNG = np.random.default_rng(0)
N, D, H, K = 6, 3, 4, 2  # samples, inputs, hidden units, outputs
X = RNG.normal(size=(N, D)).astype(np.float32)
Y = RNG.normal(size=(N, K)).astype(np.float32)
W1 = RNG.normal(size=(D, H)).astype(np.float32)
B1 = np.array([0.1, -0.2, -100.0, 0.3], np.float32)  # unit 2: z < 0 on every sample
W2 = RNG.normal(size=(H, K)).astype(np.float32)
B2 = np.zeros(K, np.float32)
SLOPE = 0.1


def mlp_loss(act, w1, b1, w2, b2, x, y):
    out = act(x @ w1 + b1[None]) @ w2 + b2[None]
    return 0.5 * jnp.sum(jnp.square(out - y)) / x.shape[0]


def closed_form(slope):
    """dL/dz = ((out - y) / N) W2^T * f'(z), f' = 1 for z > 0 else slope (NumPy, float64)."""
    x, w1, b1, w2 = (a.astype(np.float64) for a in (X, W1, B1, W2))
    z = x @ w1 + b1
    h = np.where(z > 0, z, slope * z)
    d_out = (h @ w2 + B2 - Y) / N
    d_z = (d_out @ w2.T) * np.where(z > 0, 1.0, slope)
    return np.abs(d_z).mean(axis=0), z


@pytest.mark.parametrize(
    ("name", "act", "slope"),
    [
        ("relu_0", relujax.relu, 0.0),
        ("leaky_relu_0", lambda z: relujax.leaky_relu(z, SLOPE), SLOPE),
    ],
)
def test_closed_form_mlp_dead_vs_leaky(name, act, slope):
    want, z = closed_form(slope)
    assert (z[:, 2] < 0).all()  # unit 2 never fires
    value, grads, arg_grads = jax.jit(
        analysis.with_site_grads(lambda *a: mlp_loss(act, *a), argnums=(0, 1))
    )(W1, B1, W2, B2, X, Y)
    assert list(grads) == [name]
    g = grads[name]
    np.testing.assert_allclose(g.abs_mean, want, rtol=1e-5, atol=1e-7)
    assert g.samples.to_numpy().tolist() == [N] * H
    np.testing.assert_allclose(value, mlp_loss(act, W1, B1, W2, B2, X, Y), rtol=1e-6)
    # The parameter gradients come from the same backward pass and equal jax.grad's.
    want_args = jax.grad(lambda *a: mlp_loss(act, *a), argnums=(0, 1))(W1, B1, W2, B2, X, Y)
    chex.assert_trees_all_close(arg_grads, want_args, rtol=1e-5, atol=1e-7)
    dormant = analysis.gradient_dormant(g, tau=0.0)
    if slope == 0.0:
        assert g.abs_mean[2] == 0.0  # exactly: relu's derivative is 0 on every sample
        assert dormant.tolist() == [False, False, True, False]
        assert analysis.gradient_dormant_fraction(g, tau=0.0) == 0.25
    else:
        assert g.abs_mean[2] > 0.0  # slope * dL/dh reaches the never-firing unit
        assert not dormant.any()
        assert analysis.gradient_dormant_fraction(g, tau=0.0) == 0.0


def test_equals_grad_of_explicit_perturbation_two_layers():
    """Reference: the model written with an explicit perturbation d_i added to each z_i."""
    w_mid = RNG.normal(size=(H, H)).astype(np.float32)

    def model(w1, w_mid, w2, x, y, d1=0.0, d2=0.0):
        h1 = jax.nn.relu(x @ w1 + B1[None] + d1)
        h2 = jax.nn.gelu(h1 @ w_mid + d2)
        return jnp.mean(jnp.square(h2 @ w2 - y))

    _, grads = jax.jit(analysis.with_site_grads(model))(W1, w_mid, W2, X, Y)
    zeros = (jnp.zeros((N, H)), jnp.zeros((N, H)))
    d1, d2 = jax.grad(lambda d: model(W1, w_mid, W2, X, Y, *d))(zeros)
    assert list(grads) == ["relu_0", "gelu_0"]
    np.testing.assert_allclose(grads["relu_0"].abs_mean, jnp.abs(d1).mean(0), rtol=1e-5)
    np.testing.assert_allclose(grads["gelu_0"].abs_mean, jnp.abs(d2).mean(0), rtol=1e-5)
    # ReDo's normalisation is the activation score's, applied to g.
    chex.assert_trees_all_equal(
        analysis.gradient_dormant(grads["relu_0"], tau=0.5),
        analysis.dormant(grads["relu_0"].abs_mean, 0.5),
    )


def test_total_derivative_when_z_has_other_uses():
    """z feeds relu and a skip connection: dL/dz = f'(z) + 1 for L = sum(relu(z) + z)."""
    z = jnp.array([[-1.0, 2.0], [-3.0, 1.0]])
    _, grads = analysis.with_site_grads(lambda z: jnp.sum(relujax.relu(z) + z))(z)
    np.testing.assert_array_equal(grads["relu_0"].abs_mean, [1.0, 2.0])
    # A tagged array is probed where it is: d/dh sum(h^2) = 2h, h = 3z.
    _, grads = analysis.with_site_grads(lambda z: jnp.sum(analysis.tag(3.0 * z, "h") ** 2))(z)
    np.testing.assert_array_equal(grads["h"].abs_mean, [12.0, 9.0])


def test_conv_channels_are_units_and_vmap_over_models():
    """Channels-first conv: pooled over samples and positions; vmap of two models == each."""
    x = jnp.asarray(RNG.normal(size=(2, 1, 5, 5)), jnp.float32)
    ws = jnp.asarray(RNG.normal(size=(2, 3, 1, 3, 3)), jnp.float32)  # 2 models, 3 channels

    def loss(w, x, d=0.0):
        z = jax.lax.conv_general_dilated(x, w, (1, 1), "VALID") - 0.5 + d  # (N, C, H, W)
        return jnp.sum(jnp.square(relujax.relu(z)))

    grads = jax.jit(jax.vmap(lambda w: analysis.with_site_grads(loss)(w, x)[1]))(ws)
    for k in range(2):
        d = jax.grad(lambda d, w=ws[k]: loss(w, x, d))(jnp.zeros((2, 3, 3, 3)))
        want = jnp.abs(d).mean(axis=(0, 2, 3))
        np.testing.assert_allclose(grads["relu_0"].abs_mean[k], want, rtol=1e-5)
    assert grads["relu_0"].samples.to_numpy()[0].tolist() == [18, 18, 18]


def test_nnx_mlp_from_relujax_nn():
    model = relujax.nn.MLP(D, [5, 4], K, activation="leaky_relu", rngs=nnx.Rngs(0))
    model.layers[0].bias[...] = model.layers[0].bias[...].at[1].set(-100.0)

    def loss(model, x, y):
        return jnp.mean(jnp.square(model(x) - y))

    _, grads = jax.jit(analysis.with_site_grads(loss))(model, X, Y)
    names = list(grads)
    assert len(names) == 2 and all(n.endswith("leaky_relu_0") or "leaky" in n for n in names)

    def explicit(d):  # the same network, written out with its parameters
        h = X
        for i in range(2):
            layer = model.layers[i]
            h = relujax.leaky_relu(h @ layer.kernel[...] + layer.bias[...][None] + d[i])
        out = h @ model.layers[2].kernel[...] + model.layers[2].bias[...][None]
        return jnp.mean(jnp.square(out - Y))

    d = jax.grad(explicit)([jnp.zeros((N, 5)), jnp.zeros((N, 4))])
    for name, want in zip(names, d, strict=True):
        np.testing.assert_allclose(grads[name].abs_mean, jnp.abs(want).mean(0), rtol=1e-5)
    # The unit with bias -100 never fires, yet leaky_relu passes it 0.01 of the gradient.
    assert not analysis.gradient_dormant(grads[names[0]], tau=0.0).any()


def test_merge_is_concatenation():
    loss = lambda x: jnp.sum(relujax.relu(x) ** 2)
    a, b = jnp.array([[1.0, -1.0]]), jnp.array([[3.0, 2.0], [-1.0, 4.0]])
    f = analysis.with_site_grads(loss)
    merged = f(a)[1].merge(f(b)[1])["relu_0"]
    # dL/dz = 2 relu(z): |.| summed per unit: [2 + 6 + 0, 0 + 4 + 8] over 3 samples.
    np.testing.assert_allclose(merged.abs_mean, [8.0 / 3.0, 12.0 / 3.0], rtol=1e-6)


def test_errors():
    x = jnp.ones((2, 3))
    with pytest.raises(ValueError, match="real scalar"):
        analysis.with_site_grads(relujax.relu)(x)
    with pytest.raises(ValueError, match="found no activation site"):
        analysis.with_site_grads(jnp.sum)(x)

    def looped(x):  # a while loop has no static trip count to stack a probe along
        body = lambda c: (c[0] + 1, relujax.relu(c[1]))
        h = jax.lax.while_loop(lambda c: c[0] < 2, body, (0, x))[1]
        return jnp.sum(h) + jnp.sum(jax.nn.relu(2.0 * x))

    with pytest.raises(ValueError, match="inside a while loop"):
        analysis.with_site_grads(looped)(x)
    _, grads = analysis.with_site_grads(looped, sites="relu_1")(x)  # the site outside
    np.testing.assert_array_equal(grads["relu_1"].abs_mean, [1.0, 1.0, 1.0])

    @jax.custom_jvp
    def block(x):
        return 2.0 * relujax.relu(x)

    block.defjvp(lambda p, t: (block(p[0]), 2.0 * t[0]))
    with pytest.raises(ValueError, match="custom_jvp_call"):
        analysis.with_site_grads(lambda x: jnp.sum(block(x)))(x)
    with pytest.raises(ValueError, match="argnums 2 is out of range"):
        analysis.with_site_grads(lambda x: jnp.sum(relujax.relu(x)), argnums=2)(x)
    with pytest.raises(TypeError, match="argnums must be ints"):
        analysis.with_site_grads(jnp.sum, argnums="0")


def test_site_inside_jit_checkpoint_and_cond():
    x = jnp.array([[1.0, -2.0, 3.0], [-1.0, 0.5, 2.0]])

    def block(x, d):
        return jnp.sin(relujax.relu(x * 2.0 - 1.0 + d))

    def loss(x, d=0.0):
        inner = jax.checkpoint(jax.jit(lambda x: block(x, d)))
        return jnp.sum(jax.lax.cond(jnp.sum(x) > 0, inner, lambda x: 0.0 * x, x) ** 2)

    _, grads = jax.jit(analysis.with_site_grads(loss))(x)
    want = jnp.abs(jax.grad(lambda d: loss(x, d))(jnp.zeros_like(x))).mean(0)
    np.testing.assert_allclose(grads["relu_0"].abs_mean, want, rtol=1e-6)
    assert grads["relu_0"].abs_mean[1] == 0.0  # z = 2x - 1 < 0 on both samples
