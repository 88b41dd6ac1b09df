"""Sites inside loops: scan parameters of both JAX ends, per-layer statistics, loud failures."""

import functools

import chex
import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

import relujax
from relujax import analysis
from relujax.analysis import _capture, _primitives


def randn(seed, *shape):
    return jnp.asarray(np.random.default_rng(seed).normal(size=shape), jnp.float32)


LAYERS, WIDTH = 8, 4
X = randn(0, 16, WIDTH)


def _weights():
    """Stacked layers; unit 1 is dead in layer 3 (bias -100) and alive in layer 7."""
    ws = 0.5 * randn(1, LAYERS, WIDTH, WIDTH) + jnp.eye(WIDTH)[None]
    bs = jnp.zeros((LAYERS, WIDTH)).at[3, 1].set(-100.0).at[7, 1].set(100.0)
    return ws, bs


def _close(got, want):
    """Counts exactly; float32 moments to a tolerance (a bias of -100 costs digits in M2)."""
    for field in ("count", "firing", "nonfinite"):
        np.testing.assert_array_equal(
            getattr(got, field).to_numpy(), getattr(want, field).to_numpy()
        )
    chex.assert_trees_all_close(got, want, rtol=1e-2, atol=1e-4)


def _hand(x, ws, bs):
    """Per-layer statistics by a plain Python loop over the layers."""
    out, h = [], x
    for w, b in zip(ws, bs, strict=True):
        pre = h @ w + b[None]
        h = jax.nn.relu(pre)
        out.append(analysis.UnitStats.from_batch(pre, h))
    return out


def _scan_net(params, x):
    ws, bs = params
    return jax.lax.scan(lambda h, wb: (jax.nn.relu(h @ wb[0] + wb[1][None]), None), x, (ws, bs))[0]


def test_lax_scan_over_stacked_weights_is_reported_per_layer():
    ws, bs = _weights()
    stats = analysis.collect(functools.partial(_scan_net, (ws, bs)), X[None])
    assert list(stats) == [f"relu_0[{i}]" for i in range(LAYERS)]
    for i, want in enumerate(_hand(X, ws, bs)):
        _close(stats[f"relu_0[{i}]"], want)
    report = analysis.diagnose(stats)
    assert report["relu_0[3]"].dead[1] and not report["relu_0[7]"].dead[1]
    # pooled on request: one site, a unit dead in one layer but alive in another is alive
    pooled = analysis.collect(functools.partial(_scan_net, (ws, bs)), X[None], loops="pooled")
    assert list(pooled) == ["relu_0"]
    np.testing.assert_array_equal(pooled["relu_0"].count.to_numpy(), [LAYERS * 16] * WIDTH)
    assert not analysis.diagnose(pooled)["relu_0"].dead[1]


class _Block(nn.Module):
    @nn.compact
    def __call__(self, h, _):
        return nn.relu(nn.Dense(WIDTH)(h)), None


class _ScanMLP(nn.Module):
    @nn.compact
    def __call__(self, x):
        layers = nn.scan(
            _Block, variable_axes={"params": 0}, split_rngs={"params": True}, length=LAYERS
        )
        return layers(name="layers")(x, None)[0]


def test_linen_scan_mlp_against_the_hand_computation():
    model = _ScanMLP()
    variables = model.init(jax.random.key(0), X)
    ws, bs = _weights()
    dense = variables["params"]["layers"]["Dense_0"]
    variables = {"params": {"layers": {"Dense_0": {"kernel": ws, "bias": bs}}}}
    assert jax.tree.map(jnp.shape, dense) == {"kernel": ws.shape, "bias": bs.shape}
    fn = functools.partial(model.apply, variables)
    names = [f"_ScanMLP/layers[{i}]/relu_0" for i in range(LAYERS)]
    sites = analysis.find_sites(fn, X)
    assert [(s.name, s.iteration, s.units) for s in sites] == [
        (n, (i,), WIDTH) for i, n in enumerate(names)
    ]
    stats = analysis.collect(fn, [X[:8], X[8:]])
    for name, want in zip(names, _hand(X, ws, bs), strict=True):
        _close(stats[name], want)
    assert analysis.diagnose(stats)[names[3]].dead[1]
    # a name with brackets selects exactly that layer
    _, one = jax.jit(analysis.with_stats(fn, sites=names[3]))(X)
    assert list(one) == [names[3]]


class _NNXBlock(nnx.Module):
    def __init__(self, rngs):
        self.linear = nnx.Linear(WIDTH, WIDTH, rngs=rngs)

    def __call__(self, h):
        return nnx.relu(self.linear(h))


class _NNXStack(nnx.Module):
    """NNX's scan-over-layers pattern: vmapped construction, scanned call."""

    def __init__(self, layers, rngs):
        @nnx.split_rngs(splits=layers)
        @nnx.vmap(in_axes=(0,), out_axes=0)
        def make(rngs):
            return _NNXBlock(rngs)

        self.blocks = make(rngs)

    def __call__(self, x):
        @nnx.scan(in_axes=(nnx.Carry, 0), out_axes=nnx.Carry)
        def body(h, block):
            return block(h)

        return body(x, self.blocks)


def test_nnx_scan_over_layers_is_per_layer():
    model = _NNXStack(3, nnx.Rngs(0))
    sites = analysis.find_sites(model, X)
    assert [s.iteration for s in sites] == [(0,), (1,), (2,)]
    stats = analysis.collect(model, X[None])
    h = X
    for k, site in enumerate(sites):
        pre = h @ model.blocks.linear.kernel[k] + model.blocks.linear.bias[k][None]
        h = jax.nn.relu(pre)
        _close(stats[site.name], analysis.UnitStats.from_batch(pre, h))


def test_nested_scans_give_one_axis_per_loop_and_per_iteration_mode():
    ws = randn(2, 2, 3, WIDTH, WIDTH)

    def f(x):
        def outer(h, w3):
            return jax.lax.scan(lambda g, w: (jax.nn.relu(g @ w), None), h, w3)[0], None

        return jax.lax.scan(outer, x, ws)[0]

    stats = jax.jit(analysis.with_stats(f))(X)[1]
    assert list(stats) == [f"relu_0[{i}][{j}]" for i in range(2) for j in range(3)]
    h = X
    for i in range(2):
        for j in range(3):
            want = analysis.UnitStats.from_batch(h @ ws[i, j], jax.nn.relu(h @ ws[i, j]))
            h = jax.nn.relu(h @ ws[i, j])
            chex.assert_trees_all_close(stats[f"relu_0[{i}][{j}]"], want, rtol=1e-4, atol=1e-5)
    # a scan over data (xs only) pools by default, keeps iterations with "per_iteration"
    g = lambda x: jax.lax.scan(lambda c, r: (c, jax.nn.relu(r)), 0.0, x)[1]
    assert [s.name for s in analysis.find_sites(g, X[:3])] == ["relu_0"]
    per = analysis.find_sites(g, X[:3], loops="per_iteration")
    assert [s.name for s in per] == ["relu_0[0]", "relu_0[1]", "relu_0[2]"]
    with pytest.raises(ValueError, match="loops must be one of"):
        analysis.find_sites(g, X, loops="unrolled")


def test_per_layer_stats_merge_across_batches_and_resume():
    ws, bs = _weights()
    fn = functools.partial(_scan_net, (ws, bs))
    whole = analysis.collect(fn, X[None])
    first = analysis.collect(fn, X[None, :8])
    resumed = analysis.collect(fn, [X[8:]], init=first)
    for name in whole:
        _close(resumed[name], whole[name])


def _with_params(eqn, **params):
    return eqn.replace(params={**eqn.params, **params})


def _scan_jaxpr():
    ws, bs = _weights()
    return jax.make_jaxpr(functools.partial(_scan_net, (ws, bs)))(X)


def test_unknown_scan_parameters_fail_loudly_naming_primitive_and_version():
    closed = _scan_jaxpr()
    (i,) = [k for k, e in enumerate(closed.jaxpr.eqns) if e.primitive.name == "scan"]
    eqns = list(closed.jaxpr.eqns)
    eqns[i] = _with_params(eqns[i], mystery_flag=True)
    jaxpr = closed.jaxpr.replace(eqns=eqns)
    ctx = _capture._Context(acts=analysis.default_activations())
    with pytest.raises(_primitives.UnsupportedPrimitiveError) as info:
        _capture.build_plan(jaxpr, closed.consts, ctx)
    message = str(info.value)
    assert "`scan`" in message and "mystery_flag" in message
    assert f"jax {jax.__version__}" in message


def test_missing_scan_layout_fails_loudly():
    closed = _scan_jaxpr()
    (eqn,) = [e for e in closed.jaxpr.eqns if e.primitive.name == "scan"]
    stripped = eqn.replace(
        params={k: v for k, v in eqn.params.items() if k not in ("num_consts", "ft_in")}
    )
    with pytest.raises(_primitives.UnsupportedPrimitiveError, match=r"scan.*jax "):
        _primitives.scan_spec(stripped)


def test_scan_layout_is_read_on_this_jax():
    closed = _scan_jaxpr()
    (eqn,) = [e for e in closed.jaxpr.eqns if e.primitive.name == "scan"]
    spec = _primitives.scan_spec(eqn)
    assert (spec.num_consts, spec.num_carry, spec.length) == (0, 1, LAYERS)


def test_an_equation_without_sites_is_bound_unchanged_whatever_its_parameters():
    def f(x):
        y = jax.lax.scan(lambda c, r: (c + r, None), jnp.zeros(WIDTH), x)[0]
        return jax.nn.relu(x + y[None])

    closed = jax.make_jaxpr(f)(X)
    eqns = [
        _with_params(e, mystery_flag=True) if e.primitive.name == "scan" else e
        for e in closed.jaxpr.eqns
    ]
    ctx = _capture._Context(acts=analysis.default_activations())
    plan = _capture.build_plan(closed.jaxpr.replace(eqns=eqns), closed.consts, ctx)
    assert [s.name for s in plan.sites] == ["relu_0"]


def test_gradients_through_a_per_layer_scan_are_unchanged():
    ws, bs = _weights()
    loss = lambda p, x: jnp.sum(_scan_net(p, x) ** 2)
    want = jax.grad(loss)((ws, bs), X)
    got, stats = jax.jit(jax.grad(analysis.with_stats(loss), has_aux=True))((ws, bs), X)
    chex.assert_trees_all_close(got, want, rtol=1e-5, atol=1e-5)
    assert len(stats) == LAYERS


@pytest.mark.parametrize("loops", ["auto", "per_iteration", "pooled"])
def test_a_loop_of_no_iterations_is_one_site_with_no_samples(loops):
    # A stack of 0 layers (lax.scan of length 0): no iteration to keep apart, so the site pools
    # them, with count 0 and NaN rates, instead of failing to name its first iteration.
    ws = jnp.zeros((0, 3, 3))

    def net(h):
        return jax.lax.scan(lambda h, w: (relujax.relu(h @ w), None), h, ws)[0]

    x = jnp.ones((4, 3))
    (site,) = analysis.find_sites(net, x, loops=loops)
    assert (site.name, site.iteration, site.in_loop) == ("relu_0", (), True)
    out, stats = jax.jit(analysis.with_stats(net, loops=loops))(x)
    np.testing.assert_array_equal(out, x)  # the scan returns its carry untouched
    np.testing.assert_array_equal(stats["relu_0"].count.to_numpy(), [0, 0, 0])
    assert np.isnan(stats["relu_0"].firing_rate).all()
    _, grads = analysis.with_site_grads(lambda x: jnp.sum(net(x)), loops=loops)(x)
    np.testing.assert_array_equal(grads["relu_0"].samples.to_numpy(), [0, 0, 0])
