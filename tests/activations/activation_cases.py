"""The table of activation cases shared by the activation tests.

Each case binds parameters, names a reference implementation (jax.nn's where it has the
function, else the closed form in jnp) and lists the derivative expected exactly at each kink.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable

import jax
import jax.numpy as jnp
import numpy as np

import relujax

SELU_ALPHA = 1.6732632423543772848170429916717
SELU_SCALE = 1.0507009873554804934193349852946

# Points at least 0.05 away from every kink of every case (for finite differences).
AWAY = np.array([-4.1, -2.3, -0.7, 0.45, 1.3, 2.6, 4.2, 7.3])


@dataclasses.dataclass(frozen=True)
class Case:
    """One activation with bound parameters."""

    id: str
    f: Callable
    ref: Callable
    kinks: dict[float, float]
    nonnegative: bool = False  # outputs are never negative
    limits: tuple[float, float] = (0.0, 1.0)  # f'(x) as x -> -inf, +inf
    exp_tail: bool = False  # derivative read off y: absolute error ~eps far left
    variant: bool = False  # same code as another case with other parameters

    def __repr__(self) -> str:
        return self.id


def _softplus_ref(beta, threshold):
    def ref(x):
        z = beta * x
        return jnp.where(z > threshold, x, jnp.logaddexp(z, 0.0) / beta)

    return ref


CASES = [
    Case("relu", relujax.relu, jax.nn.relu, {0.0: 0.0}, nonnegative=True),
    Case("relu6", relujax.relu6, jax.nn.relu6, {0.0: 0.0, 6.0: 0.0}, True, (0.0, 0.0)),
    Case(
        "capped_relu",
        lambda x: relujax.capped_relu(x, 2.0),
        lambda x: jnp.clip(x, 0.0, 2.0),
        {0.0: 0.0, 2.0: 0.0},
        True,
        (0.0, 0.0),
    ),
    Case(
        "shifted_relu",
        relujax.shifted_relu,
        lambda x: jnp.maximum(x, -1.0),
        {-1.0: 0.0},
    ),
    Case(
        "squared_relu",
        relujax.squared_relu,
        lambda x: jnp.maximum(x, 0.0) ** 2,
        {0.0: 0.0},
        nonnegative=True,
        limits=(0.0, np.inf),
    ),
    Case(
        "threshold",
        lambda x: relujax.threshold(x, 0.5, -2.0),
        lambda x: jnp.where(x > 0.5, x, -2.0),
        {0.5: 0.0},
    ),
    Case("leaky_relu", relujax.leaky_relu, jax.nn.leaky_relu, {0.0: 0.01}, limits=(0.01, 1.0)),
    Case(
        "leaky_relu_0.2",
        lambda x: relujax.leaky_relu(x, 0.2),
        lambda x: jax.nn.leaky_relu(x, 0.2),
        {0.0: 0.2},
        limits=(0.2, 1.0),
        variant=True,
    ),
    Case(
        "prelu",
        lambda x: relujax.prelu(x, 0.25),
        lambda x: jnp.where(x > 0, x, 0.25 * x),
        {0.0: 0.25},
        limits=(0.25, 1.0),
    ),
    Case(
        "rrelu_eval",
        relujax.rrelu,
        lambda x: jnp.where(x > 0, x, (1 / 8 + 1 / 3) / 2 * x),
        {0.0: (1 / 8 + 1 / 3) / 2},
        limits=((1 / 8 + 1 / 3) / 2, 1.0),
    ),
    Case("elu", relujax.elu, jax.nn.elu, {0.0: 1.0}, exp_tail=True),
    Case(
        "elu_0.5",
        lambda x: relujax.elu(x, 0.5),
        lambda x: jax.nn.elu(x, 0.5),
        {0.0: 0.5},
        exp_tail=True,
        variant=True,
    ),
    Case(
        "selu",
        relujax.selu,
        jax.nn.selu,
        {0.0: SELU_SCALE * SELU_ALPHA},
        limits=(0.0, SELU_SCALE),
        exp_tail=True,
    ),
    Case(
        "celu_2",
        lambda x: relujax.celu(x, 2.0),
        lambda x: jax.nn.celu(x, 2.0),
        {0.0: 1.0},
        exp_tail=True,
    ),
    Case("hard_tanh", relujax.hard_tanh, jax.nn.hard_tanh, {-1.0: 0.0, 1.0: 0.0}, limits=(0, 0)),
    Case(
        "hard_sigmoid",
        relujax.hard_sigmoid,
        jax.nn.hard_sigmoid,
        {-3.0: 0.0, 3.0: 0.0},
        nonnegative=True,
        limits=(0.0, 0.0),
    ),
    Case("hard_swish", relujax.hard_swish, jax.nn.hard_swish, {-3.0: 0.0, 3.0: 1.0}),
    Case("gelu", relujax.gelu, jax.nn.gelu, {0.0: 0.5}),
    Case(
        "gelu_erf",
        lambda x: relujax.gelu(x, approximate=False),
        lambda x: jax.nn.gelu(x, approximate=False),
        {0.0: 0.5},
    ),
    Case("silu", relujax.silu, jax.nn.silu, {0.0: 0.5}),
    Case(
        "silu_beta2",
        lambda x: relujax.silu(x, beta=2.0),
        lambda x: x * jax.nn.sigmoid(2.0 * x),
        {0.0: 0.5},
        variant=True,
    ),
    Case("mish", relujax.mish, jax.nn.mish, {0.0: 0.6}),
    Case("softplus", relujax.softplus, jax.nn.softplus, {0.0: 0.5}, nonnegative=True),
    Case(
        "softplus_beta2",
        lambda x: relujax.softplus(x, beta=2.0, threshold=5.0),
        _softplus_ref(2.0, 5.0),
        {0.0: 0.5},
        nonnegative=True,
        variant=True,
    ),
]

IDS = [c.id for c in CASES]
# One case per implementation, for the most expensive tests.
BASE = [c for c in CASES if not c.variant]
BASE_IDS = [c.id for c in BASE]

# Tests compile a few large functions; LLVM's optimisations do not change their results (XLA's
# HLO passes, which decide fusion and memory, still run) but double the compile time.
FAST_COMPILE = {"xla_backend_optimization_level": 0, "xla_llvm_disable_expensive_passes": True}


def run(fn, *args):
    """``jax.jit(fn)(*args)``, compiled with :data:`FAST_COMPILE`."""
    return jax.jit(fn).lower(*args).compile(compiler_options=FAST_COMPILE)(*args)


def each(fn, cases=CASES):
    """A function of ``x`` returning ``{case id: fn(case, x)}`` over ``cases``."""
    return lambda x: {c.id: fn(c, x) for c in cases}
