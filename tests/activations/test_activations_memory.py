"""The backward-pass memory goals, from ``memory_analysis()`` (deterministic, no execution).

Setting of issue 3: ``jit(grad(loss))`` of a 16-layer bias-free MLP, batch 4096, width 256,
float32, stacked weights; extra temporary memory per layer over the identity activation, in
activation tensors. Compile time does not depend on the batch, so the real sizes are used.
``benchmarks/activations.py`` measures every function and jax.nn beside it.
"""

import functools

import chex
import jax
import jax.extend
import jax.numpy as jnp
import pytest
from activation_cases import FAST_COMPILE
from jax import lax

import relujax

BATCH, WIDTH, DEPTH = 4096, 256, 16
UNIT = BATCH * WIDTH * 4

# From jax/jaxlib 0.11 on (measured on 0.12.0.1), XLA keeps the ReLU family's boolean
# mask of y > 0 per layer in the loop layout (0.19 tensors per layer; 0.10.2 fused it away,
# -0.05). Computing the mask from y inside the checkpointed rule avoids that in the loop
# but stacks y itself under lax.scan (1.06 instead of 0.31, more than jax.nn's 0.31), so
# the mask stays. jax.nn keeps 0.82 in the loop on both versions.
NEW_XLA = tuple(int(p) for p in jax.__version__.split(".")[:2]) >= (0, 11)
RELU_LOOP_GOAL = 0.2 if NEW_XLA else 0.05
# Smooth ones keep x only; 0.12's XLA keeps one more tensor in all (0.88 per layer at depth 16).
SMOOTH_LOOP_GOAL = 0.9 if NEW_XLA else 0.85


@functools.cache
def temp_bytes(act, layout):
    def loss(ws, x):
        if layout == "loop":
            h = x
            for i in range(DEPTH):
                h = act(h @ ws[i])
        else:
            h, _ = lax.scan(lambda h, w: (act(h @ w), None), x, ws)
        return jnp.mean(h)

    ws = jax.ShapeDtypeStruct((DEPTH, WIDTH, WIDTH), jnp.float32)
    x = jax.ShapeDtypeStruct((BATCH, WIDTH), jnp.float32)
    compiled = jax.jit(jax.grad(loss)).lower(ws, x).compile(compiler_options=FAST_COMPILE)
    return compiled.memory_analysis().temp_size_in_bytes


def _identity(z):
    return z


def extra_per_layer(act, layout):
    return (temp_bytes(act, layout) - temp_bytes(_identity, layout)) / (DEPTH * UNIT)


@pytest.mark.parametrize(
    ("name", "layout", "goal"),
    [
        # ReLU and ELU families: the derivative is read off the output, kept anyway.
        ("relu", "loop", RELU_LOOP_GOAL),
        ("leaky_relu", "loop", RELU_LOOP_GOAL),
        ("hard_tanh", "loop", RELU_LOOP_GOAL),
        ("elu", "loop", 0.05),
        ("selu", "loop", 0.05),
        # Smooth ones keep x only (jax.nn: 1.76 gelu and silu, 2.70 mish).
        ("gelu", "loop", SMOOTH_LOOP_GOAL),
        ("mish", "loop", SMOOTH_LOOP_GOAL),
        # lax.scan stacks per-layer residuals: a boolean mask for the ReLU family, one tensor
        # for the others (jax.nn: relu 0.31, elu 1.62, gelu 5.06, silu 3.06).
        ("relu", "scan", 0.31),
        ("hard_tanh", "scan", 0.31),
        ("elu", "scan", 1.06),
        ("celu", "scan", 1.06),
        ("gelu", "scan", 1.06),
        ("silu", "scan", 1.06),
        ("softplus", "scan", 1.06),
        ("hard_swish", "scan", 1.06),
    ],
)
def test_backward_pass_memory_goals(name, layout, goal):
    extra = extra_per_layer(getattr(relujax, name), layout)
    assert extra <= goal, f"{name} ({layout}): {extra:.3f} activation tensors per layer > {goal}"


@pytest.mark.parametrize(
    ("name", "layout"),
    [("relu", "loop"), ("relu", "scan"), ("gelu", "loop"), ("mish", "loop"), ("softplus", "scan")],
)
def test_never_more_than_jax_nn_on_any_version(name, layout):
    ours = extra_per_layer(getattr(relujax, name), layout)
    theirs = extra_per_layer(getattr(jax.nn, name), layout)
    assert ours <= theirs + 1e-3, f"{name} ({layout}): {ours:.3f} > jax.nn's {theirs:.3f}"
    if (name, layout) == ("relu", "loop"):  # measured: 0.82 - 0.19 (0.12), 0.82 + 0.05 (0.10)
        assert ours < theirs - 0.6


def _primitives(jaxpr) -> set[str]:
    """Names of every primitive in ``jaxpr``, inner jaxprs (jit, custom_jvp) included."""
    names = set()
    for eqn in jaxpr.eqns:
        names.add(eqn.primitive.name)
        for sub in jax.extend.core.jaxprs_in_params(eqn.params):
            names |= _primitives(sub)
    return names


@pytest.mark.parametrize("name", ["relu", "shifted_relu"])
def test_undifferentiated_relu_is_a_plain_max_and_its_rule_a_select(name):
    # The forward pass alone runs `max`, which XLA:CPU fuses into its YNNPACK conv/pool
    # kernels; the derivative rule keeps the `select` form that saves backward-pass memory.
    act = getattr(relujax, name)
    x = jnp.linspace(-2.0, 2.0, 8)
    forward = _primitives(jax.make_jaxpr(act)(x).jaxpr)
    assert "max" in forward
    assert "select_n" not in forward
    linearized = _primitives(jax.make_jaxpr(lambda x: jax.jvp(act, (x,), (x,)))(x).jaxpr)
    assert "select_n" in linearized
    chex.assert_trees_all_equal(jax.jvp(act, (x,), (x,))[0], act(x))


def _learned_slope_extra(act):
    """Per-layer extra memory of jit(grad) of a loop MLP with a learned slope per unit."""

    def loss(params, x):
        ws, slopes = params
        h = x
        for i in range(DEPTH):
            h = act(h @ ws[i], slopes[i])
        return jnp.mean(h)

    params = (
        jax.ShapeDtypeStruct((DEPTH, WIDTH, WIDTH), jnp.float32),
        jax.ShapeDtypeStruct((DEPTH, WIDTH), jnp.float32),
    )
    x = jax.ShapeDtypeStruct((BATCH, WIDTH), jnp.float32)
    compiled = jax.jit(jax.grad(loss)).lower(params, x).compile(compiler_options=FAST_COMPILE)
    return compiled.memory_analysis().temp_size_in_bytes


def test_prelu_with_learned_slopes_keeps_no_more_than_a_where_prelu():
    # Measured: 0.94 tensors per layer on jax 0.10.2 and 0.12.0.1 (a custom rule reading the
    # same values kept 1.88 on 0.10.2).
    def where_prelu(z, a):
        return jnp.where(z > 0, z, jnp.broadcast_to(a, z.shape) * z)

    base = _learned_slope_extra(lambda z, a: z)
    ours = (_learned_slope_extra(relujax.prelu) - base) / (DEPTH * UNIT)
    ref = (_learned_slope_extra(where_prelu) - base) / (DEPTH * UNIT)
    assert ours <= ref + 1e-3 and ours < 1.0, (ours, ref)
