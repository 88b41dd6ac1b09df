"""The kink table of the package docstring: first and second derivatives exactly at kinks."""

import jax
import jax.numpy as jnp
import pytest

import relujax

LAMBDA_ALPHA = 1.0507009873554804934193349852946 * 1.6732632423543772848170429916717

# (id, f, kink, f'(kink), f''(kink)), as stated in relujax.activations' docstring.
TABLE = [
    ("relu", relujax.relu, 0.0, 0.0, 0.0),
    ("relu6@0", relujax.relu6, 0.0, 0.0, 0.0),
    ("relu6@6", relujax.relu6, 6.0, 0.0, 0.0),
    ("capped_relu@2", lambda x: relujax.capped_relu(x, 2.0), 2.0, 0.0, 0.0),
    ("shifted_relu", relujax.shifted_relu, -1.0, 0.0, 0.0),
    ("squared_relu", relujax.squared_relu, 0.0, 0.0, 0.0),
    ("threshold", lambda x: relujax.threshold(x, 0.5, -2.0), 0.5, 0.0, 0.0),
    ("leaky_relu", relujax.leaky_relu, 0.0, 0.01, 0.0),
    ("prelu", lambda x: relujax.prelu(x, -0.3), 0.0, -0.3, 0.0),
    ("rrelu_eval", lambda x: relujax.rrelu(x, None, 0.2, 0.4), 0.0, 0.3, 0.0),
    ("elu", lambda x: relujax.elu(x, 0.5), 0.0, 0.5, 0.5),
    ("elu_negative_alpha", lambda x: relujax.elu(x, -0.5), 0.0, -0.5, -0.5),
    ("selu", relujax.selu, 0.0, LAMBDA_ALPHA, LAMBDA_ALPHA),
    ("celu", lambda x: relujax.celu(x, 2.0), 0.0, 1.0, 0.5),
    ("hard_tanh@-1", relujax.hard_tanh, -1.0, 0.0, 0.0),
    ("hard_tanh@1", relujax.hard_tanh, 1.0, 0.0, 0.0),
    ("hard_sigmoid@-3", relujax.hard_sigmoid, -3.0, 0.0, 0.0),
    ("hard_sigmoid@3", relujax.hard_sigmoid, 3.0, 0.0, 0.0),
    ("hard_swish@-3", relujax.hard_swish, -3.0, 0.0, 0.0),
    ("hard_swish@3", relujax.hard_swish, 3.0, 1.0, 0.0),
    ("gelu", relujax.gelu, 0.0, 0.5, (2 / jnp.pi) ** 0.5),
    ("silu", relujax.silu, 0.0, 0.5, 0.5),
    ("mish", relujax.mish, 0.0, 0.6, 0.64),
    ("softplus", relujax.softplus, 0.0, 0.5, 0.25),
]


@pytest.mark.parametrize(("f", "x", "d1", "d2"), [t[1:] for t in TABLE], ids=[t[0] for t in TABLE])
def test_first_and_second_derivative_at_each_kink(f, x, d1, d2):
    g1 = jax.grad(f)(jnp.float32(x))
    g2 = jax.grad(jax.grad(f))(jnp.float32(x))
    g2_fwd = jax.jacfwd(jax.jacfwd(f))(jnp.float32(x))
    assert float(g1) == pytest.approx(d1, rel=1e-6, abs=1e-7)
    assert float(g2) == pytest.approx(d2, rel=1e-5, abs=1e-7)
    assert float(g2_fwd) == pytest.approx(float(g2), rel=1e-6, abs=1e-7)


def test_the_table_covers_every_activation():
    covered = {t[0].split("@")[0] for t in TABLE} | {"crelu"}  # crelu: relu on each half
    covered = {c.removesuffix("_eval").removesuffix("_negative_alpha") for c in covered}
    assert covered == {d.name for d in relujax.activations._catalog.DESCRIPTORS}
