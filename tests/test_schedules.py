"""Tests for relujax.schedules: values against Optax, tracing, batching, pitfalls, errors."""

import chex
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from relujax import schedules

T = 40
PEAK = 0.3
STEPS = jnp.arange(T + 6)


def _sgdr_ref(peak, init, end, decay, cycles):
    length = T // cycles
    return optax.sgdr_schedule(
        [
            dict(
                init_value=peak * init * decay**i,
                peak_value=peak * decay**i,
                warmup_steps=round(0.25 * length),
                decay_steps=length,
                end_value=peak * end * decay**i,
            )
            for i in range(cycles)
        ]
    )


def _inverse_sqrt_ref(peak, init, warm):
    def ref(t):
        t = jnp.asarray(t, jnp.float32)
        ramp = peak * (init + (1 - init) * t / warm)
        return jnp.where(t < warm, ramp, peak * jnp.sqrt(warm / jnp.maximum(t, warm)))

    return ref


# (name, relujax params, the same schedule written with Optax's own functions)
CASES = [
    ("constant", {}, optax.constant_schedule(PEAK)),
    (
        "warmup_constant",
        {"warmup_steps": 8, "init_ratio": 0.1},
        optax.warmup_constant_schedule(PEAK * 0.1, PEAK, 8),
    ),
    (
        "piecewise_constant",
        {"boundary_steps": (10, 25), "decay_factor": 0.2},
        optax.piecewise_constant_schedule(PEAK, {10: 0.2, 25: 0.2}),
    ),
    (
        "piecewise_constant",
        {"boundary_fractions": (0.5, 0.75)},
        optax.piecewise_constant_schedule(PEAK, {20: 0.1, 30: 0.1}),
    ),
    (
        "exponential_decay",
        {"decay_rate": 0.5, "transition_steps": 10, "transition_begin_steps": 4},
        optax.exponential_decay(PEAK, 10, 0.5, transition_begin=4),
    ),
    (
        "exponential_decay",
        {"decay_rate": 0.5, "transition_steps": 7, "staircase": True, "end_ratio": 0.1},
        optax.exponential_decay(PEAK, 7, 0.5, staircase=True, end_value=PEAK * 0.1),
    ),
    (
        "exponential_decay",
        {"decay_rate": 2.0, "transition_steps": 20, "end_ratio": 3.0},
        optax.exponential_decay(PEAK, 20, 2.0, end_value=PEAK * 3.0),
    ),
    (
        "cosine_decay",
        {"end_ratio": 0.1, "exponent": 2.0},
        optax.cosine_decay_schedule(PEAK, T, alpha=0.1, exponent=2.0),
    ),
    (
        "warmup_cosine",
        {"warmup_fraction": 0.25, "init_ratio": 0.1, "end_ratio": 0.01},
        optax.warmup_cosine_decay_schedule(PEAK * 0.1, PEAK, 10, T, PEAK * 0.01),
    ),
    (
        "warmup_exponential",
        {"warmup_steps": 5, "decay_rate": 0.1, "end_ratio": 0.05},
        optax.warmup_exponential_decay_schedule(0.0, PEAK, 5, 35, 0.1, end_value=PEAK * 0.05),
    ),
    (
        "linear_onecycle",
        {"pct_start": 0.25, "pct_final": 0.8, "div_factor": 10.0, "final_div_factor": 100.0},
        optax.linear_onecycle_schedule(T, PEAK, 0.25, 0.8, 10.0, 100.0),
    ),
    (
        "cosine_onecycle",
        {"pct_start": 0.2, "div_factor": 10.0, "final_div_factor": 100.0},
        optax.cosine_onecycle_schedule(T, PEAK, 0.2, 10.0, 100.0),
    ),
    (
        "sgdr",
        {
            "cycles": 4,
            "warmup_fraction": 0.25,
            "init_ratio": 0.1,
            "end_ratio": 0.05,
            "cycle_decay": 0.5,
        },
        _sgdr_ref(PEAK, 0.1, 0.05, 0.5, 4),
    ),
    (
        "polynomial",
        {"power": 2.0, "end_ratio": 0.1, "transition_steps": 30, "transition_begin_steps": 5},
        optax.polynomial_schedule(PEAK, PEAK * 0.1, 2.0, 30, 5),
    ),
    (
        "inverse_sqrt",
        {"warmup_steps": 8, "init_ratio": 0.1},
        _inverse_sqrt_ref(PEAK, 0.1, 8),
    ),
]
IDS = [f"{name}-{i}" for i, (name, _, _) in enumerate(CASES)]


def test_every_family_has_a_reference_case():
    assert {name for name, _, _ in CASES} == set(schedules.NAMES)


@pytest.mark.parametrize(("name", "params", "ref"), CASES, ids=IDS)
def test_matches_optax(name, params, ref):
    ours = schedules.make(name, total_steps=T, peak_value=PEAK, **params)
    got = ours(STEPS)
    want = jax.vmap(lambda t: jnp.asarray(ref(t), jnp.float32))(STEPS)
    chex.assert_type(got, jnp.float32)
    chex.assert_trees_all_close(got, want, rtol=2e-6, atol=1e-8)


@pytest.mark.parametrize(("name", "params", "ref"), CASES, ids=IDS)
def test_jit_vmap_grad(name, params, ref):
    """Peak and every numeric parameter may be traced, vmapped and differentiated."""
    del ref
    numeric = schedules.Schedule(name, **params).numeric()
    static = {k: v for k, v in params.items() if k not in numeric}
    peaks = jnp.array([0.1, 0.3, 1.0])
    probe = jnp.array([0, 7, 23, T])

    def sched(peak, numeric, steps):
        return schedules.make(name, total_steps=T, peak_value=peak, **static, **numeric)(steps)

    @jax.jit
    def everything(numeric):
        return (
            sched(PEAK, numeric, STEPS),
            jax.vmap(jax.grad(sched), in_axes=(None, None, 0))(PEAK, numeric, probe),
            jax.grad(lambda n: jnp.sum(sched(PEAK, n, STEPS)))(numeric),
            jax.vmap(sched, in_axes=(0, None, None))(peaks, numeric, 11),
        )

    values, d_peak, d_numeric, batched = everything(numeric)
    concrete = schedules.make(name, total_steps=T, peak_value=PEAK, **params)
    chex.assert_trees_all_close(values, concrete(STEPS), rtol=1e-6, atol=1e-7)
    unit = schedules.make(name, total_steps=T, peak_value=1.0, **params)
    chex.assert_trees_all_close(d_peak, unit(probe), rtol=1e-6)  # d lr / d peak = u(t)
    chex.assert_tree_all_finite(d_numeric)
    want = jnp.stack([concrete(11) / PEAK * p for p in peaks])
    chex.assert_trees_all_close(batched, want, rtol=1e-5)
    # Array parameters broadcast without vmap.
    chex.assert_trees_all_close(sched(peaks, numeric, 11), want, rtol=1e-5)


def test_numeric_arrays_broadcast():
    sched = schedules.make(
        "cosine_decay", total_steps=10, peak_value=jnp.array([1.0, 2.0]), end_ratio=0.5
    )
    chex.assert_trees_all_close(sched(10), jnp.array([0.5, 1.0]))
    sched = schedules.make(
        "exponential_decay", total_steps=2, decay_rate=jnp.array([0.25, 4.0, 1.0])
    )
    chex.assert_trees_all_close(sched(1), jnp.array([0.5, 2.0, 1.0]))


@pytest.mark.parametrize(
    "make_optax",
    [
        lambda x: optax.warmup_cosine_decay_schedule(0.0, x, 10, T),
        lambda x: optax.sgdr_schedule(
            [dict(init_value=0.0, peak_value=x, warmup_steps=2, decay_steps=T)]
        ),
        lambda x: optax.exponential_decay(1.0, 10, x),
        lambda x: optax.linear_onecycle_schedule(T, 1.0, div_factor=x),
    ],
    ids=["warmup_cosine", "sgdr", "exponential_decay", "onecycle"],
)
def test_optax_pitfall_is_real(make_optax):
    """The traced-parameter failures that relujax works around exist in the pinned Optax."""
    with pytest.raises(jax.errors.TracerBoolConversionError):
        jax.jit(lambda x: make_optax(x)(3))(0.5)


@pytest.mark.parametrize(
    ("name", "params"),
    [
        ("warmup_cosine", {"end_ratio": 0.1}),
        ("sgdr", {"cycle_decay": 0.5}),
        ("exponential_decay", {"decay_rate": 0.5}),
        ("linear_onecycle", {"div_factor": 0.5}),
    ],
)
def test_pitfalls_handled(name, params):
    ((key, value),) = params.items()
    f = jax.jit(
        lambda peak, v: schedules.make(name, total_steps=T, peak_value=peak, **{key: v})(13)
    )
    want = schedules.make(name, total_steps=T, peak_value=0.2, **params)(13)
    chex.assert_trees_all_close(f(0.2, value), want, rtol=1e-6)


def test_stack_mixes_families_and_matches_single_schedules():
    specs = [schedules.Schedule(name, **params) for name, params, _ in CASES]
    peaks = np.linspace(0.01, 1.0, len(specs)).astype(np.float32)
    batch = schedules.stack(specs, total_steps=T, peak_values=peaks)
    assert len(batch._branches) == len(specs)  # one switch branch per distinct structure
    batched = jax.jit(jax.vmap(batch))(STEPS)
    chex.assert_shape(batched, (len(STEPS), len(specs)))
    unbatched = jax.jit(jax.vmap(batch.apply, in_axes=(None, 0)))
    for k, (spec, peak) in enumerate(zip(specs, peaks, strict=True)):
        single = jax.jit(spec.build(total_steps=T, peak_value=peak))(STEPS)
        params_k = jax.tree.map(lambda x: x[k], batch.params)  # noqa: B023
        # Unbatched over configs, the stacked schedule runs the same float32 operations as the
        # single schedule: bit-identical.
        chex.assert_trees_all_equal(unbatched(params_k, STEPS), single)
        # Batched over configs (vmap) it may differ in the last ulp (vectorized fusion).
        chex.assert_trees_all_close(batched[:, k], single, rtol=1e-6, atol=1e-9)


def test_stack_under_jit_vmap_and_shared_structures():
    S = schedules.Schedule
    specs = [S("constant"), S("warmup_cosine"), S("warmup_cosine", end_ratio=0.5), S("constant")]
    batch = schedules.stack(specs, total_steps=20, peak_values=[1.0, 1.0, 2.0, 3.0])
    assert len(batch._branches) == 2  # numeric differences share a branch
    chex.assert_trees_all_close(jax.jit(batch)(20), jnp.array([1.0, 0.0, 1.0, 3.0]))
    # d lr / d peak = u(t): the stacked schedule with unit peaks.
    floats = {k: v for k, v in batch.params.items() if k != "branch"}

    def total(floats):
        return jnp.sum(
            jax.vmap(batch.apply, (0, None))(floats | {"branch": batch.params["branch"]}, 5)
        )

    unit = jax.vmap(batch.apply, (0, None))(batch.params | {"peak_value": jnp.ones(4)}, 5)
    chex.assert_trees_all_close(jax.grad(total)(floats)["peak_value"], unit)


def test_schedule_value_semantics():
    a = schedules.Schedule("warmup_cosine", warmup_steps=5, end_ratio=0.1)
    b = schedules.Schedule("warmup_cosine", end_ratio=0.1, warmup_steps=5)
    assert a == b and hash(a) == hash(b)
    assert a.to_dict() == {"name": "warmup_cosine", "end_ratio": 0.1, "warmup_steps": 5}
    assert a.structure(50) == b.structure(50)
    assert a.numeric() == {"init_ratio": 0.0, "end_ratio": 0.1, "exponent": 1.0}


def test_sgdr_cycle_lengths():
    s = schedules.Schedule("sgdr", cycles=3, cycle_mult=2.0)
    assert dict(s.structure(70)[1])["cycle_lengths"] == (10, 20, 40)
    sched = s.build(total_steps=70)
    chex.assert_trees_all_close(
        jnp.stack([sched(t) for t in (0, 10, 30, 50)]), jnp.array([1.0, 1.0, 1.0, 0.5]), atol=1e-6
    )


@pytest.mark.parametrize(
    ("call", "error", "match"),
    [
        (lambda: schedules.Schedule("cosine"), ValueError, "did you mean .cosine_decay"),
        (lambda: schedules.Schedule("cosine_decay", alpha=0.1), ValueError, "end_ratio"),
        (
            lambda: schedules.Schedule("warmup_cosine", warmup_steps=jnp.array(3)),
            TypeError,
            "static",
        ),
        (
            lambda: schedules.Schedule("warmup_cosine", warmup_steps=2, warmup_fraction=0.1),
            ValueError,
            "not both",
        ),
        (
            lambda: schedules.make("warmup_cosine", total_steps=10, warmup_fraction=1.5),
            ValueError,
            "warmup_fraction",
        ),
        (
            lambda: schedules.make("warmup_cosine", total_steps=10, warmup_steps=10),
            ValueError,
            "must end before",
        ),
        (lambda: schedules.make("constant", total_steps=10.0), TypeError, "total_steps"),
        (lambda: schedules.make("constant", total_steps=0), ValueError, "total_steps"),
        (
            lambda: schedules.make("linear_onecycle", total_steps=10, pct_start=0.9),
            ValueError,
            "pct_start",
        ),
        (lambda: schedules.make("sgdr", total_steps=3, cycles=5), ValueError, "cycles"),
        (
            lambda: schedules.make("inverse_sqrt", total_steps=10, warmup_steps=0),
            ValueError,
            "at least one step",
        ),
        (
            lambda: schedules.make("piecewise_constant", total_steps=10, boundary_steps=(5, 2)),
            ValueError,
            "increase",
        ),
        (
            lambda: schedules.make("cosine_decay", total_steps=10, end_ratio="x"),
            TypeError,
            "end_ratio",
        ),
        (lambda: schedules.stack([], total_steps=10, peak_values=[]), ValueError, "at least"),
        (
            lambda: schedules.stack(["constant"], total_steps=10, peak_values=[1.0]),
            TypeError,
            "Schedule",
        ),
    ],
)
def test_bad_input(call, error, match):
    with pytest.raises(error, match=match):
        call()


def test_optimizer_with_schedule_of_traced_peak_matches_plain_adam():
    """optax #1532: inject_hyperparams(adam) is not bit-identical to adam; ours is."""
    params = {"w": jnp.linspace(-1.0, 1.0, 64).reshape(8, 8)}
    grads = [jax.tree.map(lambda p, i=i: jnp.sin(p * (i + 1)), params) for i in range(20)]

    def run(update, state):
        p = params
        for g in grads:
            u, state = update(g, state, p)
            p = optax.apply_updates(p, u)
        return p

    plain_opt = optax.adam(1e-2)
    plain = run(jax.jit(plain_opt.update), plain_opt.init(params))

    def swept_opt(lr):
        return optax.adam(schedules.make("constant", total_steps=20, peak_value=lr))

    update = jax.jit(lambda g, s, p, lr: swept_opt(lr).update(g, s, p))
    lr = jnp.float32(1e-2)
    swept = run(lambda g, s, p: update(g, s, p, lr), swept_opt(lr).init(params))
    chex.assert_trees_all_equal(swept, plain)

    injected_opt = optax.inject_hyperparams(optax.adam)(learning_rate=1e-2)
    injected = run(jax.jit(injected_opt.update), injected_opt.init(params))
    assert not np.array_equal(injected["w"], plain["w"])  # the pitfall is real
    chex.assert_trees_all_close(injected, plain, rtol=1e-4)


# --- issue 11: parameters outside their domain fail instead of giving NaN or negative rates ---

BAD_DOMAIN = [
    ("exponential_decay", "decay_rate", float("nan")),
    ("exponential_decay", "decay_rate", -0.5),
    ("exponential_decay", "decay_rate", 0.0),
    ("exponential_decay", "end_ratio", -0.1),
    ("warmup_exponential", "decay_rate", float("inf")),
    ("warmup_constant", "init_ratio", -1.0),
    ("warmup_cosine", "init_ratio", float("nan")),
    ("cosine_decay", "exponent", -1.0),
    ("cosine_decay", "exponent", 0.0),
    ("cosine_decay", "end_ratio", jnp.array([0.1, -0.1])),  # concrete arrays are checked too
    ("polynomial", "power", -2.0),
    ("piecewise_constant", "decay_factor", -0.1),
    ("linear_onecycle", "div_factor", 0.0),
    ("cosine_onecycle", "final_div_factor", -1e4),
    ("sgdr", "cycle_decay", -0.5),
    ("sgdr", "end_ratio", float("-inf")),
    ("inverse_sqrt", "init_ratio", np.float32("nan")),
]


@pytest.mark.parametrize(("name", "key", "value"), BAD_DOMAIN)
def test_numeric_parameter_outside_its_domain_is_an_error(name, key, value):
    with pytest.raises(ValueError, match=f"schedule '{name}': {key} must be"):
        schedules.Schedule(name, **{key: value})


@pytest.mark.parametrize("peak", [-1e-3, float("nan"), float("inf"), jnp.array([1e-3, -1.0])])
def test_negative_or_non_finite_peak_is_an_error(peak):
    with pytest.raises(ValueError, match="peak_value"):
        schedules.make("constant", total_steps=10, peak_value=peak)
    with pytest.raises(ValueError, match="peak_values"):
        schedules.stack([schedules.Schedule("constant")], total_steps=10, peak_values=peak)


def test_every_default_learning_rate_is_finite_and_non_negative():
    """The domain checks admit every default (and boundary) value: no family rejects its own."""
    for name in schedules.names():
        lr = schedules.make(name, total_steps=T, peak_value=PEAK)(STEPS)
        assert np.isfinite(lr).all() and (lr >= 0).all(), name
    # Boundary values that stay legal: zero ratios and factors, rates above one.
    legal = schedules.make("exponential_decay", total_steps=T, decay_rate=2.0, end_ratio=0.0)
    assert np.isfinite(legal(STEPS)).all()
    zero = schedules.make("piecewise_constant", total_steps=T, decay_factor=0.0)
    assert float(zero(T)) == 0.0


def test_traced_parameters_are_not_checked_and_still_trace():
    f = jax.jit(lambda r: schedules.make("exponential_decay", total_steps=T, decay_rate=r)(T))
    chex.assert_trees_all_close(f(0.5), 0.5, rtol=1e-6)


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        (dict(cycles=2, cycle_mult=float("inf")), ValueError, "cycle_mult"),
        (dict(cycles=True), TypeError, "cycles"),
        (dict(cycles=2, warmup_fraction=float("nan")), ValueError, "warmup_fraction"),
    ],
)
def test_bad_step_parameters(kwargs, error, match):
    with pytest.raises(error, match=match):
        schedules.make("sgdr", total_steps=T, **kwargs)


# --- the registry convention: get(name, **params), names(), normalized names ---


def test_registry_convention():
    assert schedules.names() == tuple(sorted(schedules.NAMES))
    s = schedules.get(" Warmup-Cosine ", warmup_fraction=0.25)
    assert s == schedules.Schedule("warmup_cosine", warmup_fraction=0.25)
    assert s.name == "warmup_cosine"
    assert schedules.Schedule("Cosine Decay") == schedules.Schedule("cosine_decay")
    with pytest.raises(ValueError, match="did you mean 'cosine_decay'"):
        schedules.get("cosine_decy")
    with pytest.raises(TypeError, match="schedule"):
        schedules.get(3)
