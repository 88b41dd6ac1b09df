"""Issue 11 for the sweep: inputs that must fail early and clearly instead of training wrong.

Seeds outside [0, 2**32), non-finite data, bad devices, missing optional packages, names in
any spelling, and a JSON round trip that keeps inf, -inf, NaN and None apart. Nothing here
compiles a training program except the few runs that check a normalized name trains.
"""

import json
import math
import sys

import jax
import numpy as np
import pytest

from relujax import data, sweep
from relujax.sweep import _plan, _run

DS = data.gaussian_mixture(n_train=64, n_test=16, dim=4, num_classes=3)
KW = dict(steps=4, model=sweep.MLPSpec((4,)), batch_size=8, eval_every=2, probe_size=16)


@pytest.fixture
def no_compile(monkeypatch):
    def refuse(*args, **kwargs):
        raise AssertionError("compiled before validating")

    monkeypatch.setattr(_plan, "_program", refuse)
    monkeypatch.setattr(_run, "_init_group", refuse)


@pytest.mark.parametrize("seed", [2**32, 2**32 + 1, -1])
def test_seed_outside_uint32_is_rejected(seed):
    """seed 2**32 would silently run seed 0 (jax.random.key keeps the low 32 bits)."""
    with pytest.raises(ValueError, match=r"seed must be an int in \[0, 4294967295\]"):
        sweep.Config("constant", 1e-3, seed=seed)
    with pytest.raises(ValueError, match="seed"):
        sweep.Grid(["constant"], [1e-3], seeds=[0, seed]).configs()


def test_seed_type_and_largest_seed():
    with pytest.raises(TypeError, match="seed"):
        sweep.Config("constant", 1e-3, seed=1.0)
    assert sweep.Config("constant", 1e-3, seed=np.uint32(2**32 - 1)).seed == 2**32 - 1


@pytest.mark.parametrize(
    ("field", "row", "value"),
    [
        ("x_train", 5, np.nan),
        ("x_train", 0, np.inf),
        ("x_test", 11, -np.inf),
    ],
)
def test_non_finite_data_fails_before_training_with_the_row(field, row, value, no_compile):
    arrays = DS._asdict()
    bad = arrays[field].copy()
    bad[row, 2] = value
    arrays[field] = bad
    with pytest.raises(ValueError, match=f"{field} has non-finite values.*first at row {row}"):
        sweep.run([sweep.Config("constant", 1e-3)], data.Dataset(**arrays), **KW)


def test_non_finite_regression_targets_fail(no_compile):
    ds = data.teacher_student(n_train=16, n_test=8, d_in=4)
    y = ds.y_test.copy()
    y[3, 0] = np.nan
    with pytest.raises(ValueError, match=r"y_test has non-finite values.*first at row 3"):
        sweep.run([sweep.Config("constant", 1e-3)], ds._replace(y_test=y), **KW)


@pytest.mark.parametrize(
    ("devices", "error", "match"),
    [
        ([], ValueError, "devices must not be empty"),
        (["cpu"], TypeError, "jax.Device"),
        ("cpu", TypeError, "devices"),
        (jax.devices()[:1] * 2, ValueError, "more than once"),
    ],
)
def test_bad_devices(devices, error, match, no_compile):
    with pytest.raises(error, match=match):
        sweep.run([sweep.Config("constant", 1e-3)], DS, devices=devices, **KW)


@pytest.mark.parametrize(
    ("module", "kwargs"),
    [("tqdm", dict(progress=True)), ("orbax", dict(checkpoint_dir="/nonexistent/ckpt"))],
)
def test_missing_optional_package_names_the_extra(module, kwargs, monkeypatch, no_compile):
    for name in list(sys.modules):
        if name == module or name.startswith(module + "."):
            monkeypatch.setitem(sys.modules, name, None)
    monkeypatch.setitem(sys.modules, module, None)
    with pytest.raises(ModuleNotFoundError, match=r'pip install "relujax\[experiments\]"'):
        sweep.run([sweep.Config("constant", 1e-3)], DS, **KW, **kwargs)


def test_names_are_normalized_like_every_registry():
    c = sweep.Config(" Cosine-Decay ", 1e-3, activation="Leaky-ReLU", init=" He-Normal ")
    assert (c.schedule.name, c.activation, c.init) == ("cosine_decay", "leaky_relu", "he_normal")
    assert c == sweep.Config("cosine_decay", 1e-3, "leaky_relu", "he_normal")
    assert sweep.Config("constant", 1e-3, activation="PReLU").activation == "prelu"
    with pytest.raises(ValueError, match="did you mean 'leaky_relu'"):
        sweep.Config("constant", 1e-3, activation="leaky_rel")
    with pytest.raises(ValueError, match="did you mean 'he_normal'"):
        sweep.Config("constant", 1e-3, init="he_norml")


def test_optimizer_registry_convention():
    assert sweep.optimizers.names() == (
        "adam",
        "adam_per_param",
        "adamw",
        "adamw_per_param",
        "momentum",
        "sgd",
    )
    spec = sweep.optimizers.get(" AdamW ", weight_decay=0.01)
    assert spec == sweep.OptimizerSpec("adamw", weight_decay=0.01)
    assert spec.name == "adamw"
    with pytest.raises(ValueError, match="did you mean 'adam'"):
        sweep.optimizers.get("adma")
    with pytest.raises(ValueError, match="b1 must be"):
        sweep.optimizers.get("adam", b1=float("nan"))


def test_json_round_trip_keeps_inf_nan_and_none_apart(tmp_path):
    values = np.array([[1.5, np.inf, -np.inf, np.nan]], np.float32)
    r = sweep.SweepResult(
        configs=(sweep.Config("constant", 0.1),),
        steps=np.arange(4),
        metrics={"test_loss": values, "dead_fraction": values[..., None]},
        diverged_step=np.array([-1]),
        layer_sites=(("relu_0",),),
        meta={"note": None, "threshold": math.inf, "low": -math.inf, "unset": math.nan},
    )
    text = r.to_json(tmp_path / "r.json")
    json.loads(text, parse_constant=lambda c: pytest.fail(f"non-standard JSON {c}"))
    back = sweep.SweepResult.from_json(tmp_path / "r.json")
    for name in r.metrics:
        np.testing.assert_array_equal(back.metrics[name], r.metrics[name])
    assert back.meta["note"] is None
    assert back.meta["threshold"] == math.inf and back.meta["low"] == -math.inf
    assert back.meta["unset"] is None  # documented: outside the metric arrays NaN reads as null
    assert r.to_dict()["runs"][0]["metrics"]["test_loss"] == [1.5, "Infinity", "-Infinity", None]
