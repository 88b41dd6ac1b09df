"""Validation of a sweep's arguments: everything here runs before anything is compiled."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from typing import Any

import jax
import numpy as np

from relujax import _validation
from relujax.data import Dataset
from relujax.sweep._spec import CNNSpec, Config, Grid, MLPSpec


def check_devices(devices: Any) -> list[jax.Device]:  # pyright: ignore[reportInvalidTypeForm]
    """``devices`` as a non-empty list of distinct ``jax.Device`` (None: all of them)."""
    if devices is None:
        return list(jax.devices())
    if isinstance(devices, (str, bytes, jax.Device)) or not isinstance(devices, Sequence):
        raise TypeError(
            f"devices must be a list of jax.Device (e.g. jax.devices()[:2]) or None, got "
            f"{devices!r}."
        )
    out = list(devices)
    if not out:
        raise ValueError("devices must not be empty: give at least one jax.Device, or None.")
    for d in out:
        if not isinstance(d, jax.Device):
            raise TypeError(f"devices must hold jax.Device values (jax.devices()), got {d!r}.")
    if len(set(out)) != len(out):
        raise ValueError(f"devices lists a device more than once: {out}.")
    return out


def check_activation(name: str) -> None:
    from relujax import activations

    try:
        if activations.get_descriptor(name).needs_module:
            return  # built per layer by the model; needs no parameters here
        activations.get(name)
    except (ValueError, TypeError) as e:
        raise ValueError(
            f"config activation {name!r} is not usable: {e} Accepted: {list(activations.names())}."
        ) from None


def as_configs(configs: Grid | Sequence[Config]) -> tuple[Config, ...]:
    if isinstance(configs, Grid):
        out = configs.configs()
    elif isinstance(configs, Sequence) and not isinstance(configs, (str, bytes)):
        out = list(configs)
        for c in out:
            if not isinstance(c, Config):
                raise TypeError(f"configs must hold relujax.sweep.Config values, got {c!r}.")
    else:
        raise TypeError(
            f"configs must be a relujax.sweep.Grid or a list of Config, got {configs!r}."
        )
    if not out:
        raise ValueError("configs is empty: give at least one configuration.")
    return tuple(out)


def as_datasets(data: Any, model: MLPSpec | CNNSpec) -> tuple[Dataset, ...]:
    """``data`` (one Dataset or a list of them with equal shapes and dtypes) as a checked tuple."""
    if isinstance(data, Dataset):
        datasets: tuple[Dataset, ...] = (data,)
    elif isinstance(data, list) or (
        isinstance(data, tuple) and all(isinstance(d, Dataset) for d in data)
    ):
        datasets = tuple(data)
        if not datasets:
            raise ValueError("data is empty: give a relujax.data.Dataset or a list of them.")
    else:
        raise TypeError(
            f"data must be a relujax.data.Dataset or a list of them, got {type(data).__name__}."
        )
    for i, d in enumerate(datasets):
        check_dataset(d, model, name="dataset" if len(datasets) == 1 else f"data[{i}]")
    first = [(np.shape(a), np.asarray(a).dtype) for a in datasets[0]]
    for i, d in enumerate(datasets[1:], 1):
        if [(np.shape(a), np.asarray(a).dtype) for a in d] != first:
            shapes = [(np.shape(a), str(np.asarray(a).dtype)) for a in d]
            raise ValueError(
                f"data[{i}] has arrays of shapes/dtypes {shapes}, data[0] has "
                f"{[(s, str(t)) for s, t in first]}: the data sets of one sweep must have "
                "equal shapes and dtypes (they are stacked)."
            )
    return datasets


def check_dataset(dataset: Dataset, model: MLPSpec | CNNSpec, *, name: str = "dataset") -> None:
    if not isinstance(dataset, Dataset):
        raise TypeError(f"{name} must be a relujax.data.Dataset, got {type(dataset).__name__}.")
    x_tr, y_tr, x_te, y_te = (np.asarray(a) for a in dataset)
    if x_tr.shape[1:] != x_te.shape[1:]:
        raise ValueError(
            f"{name}: x_train examples have shape {x_tr.shape[1:]} but x_test examples have "
            f"{x_te.shape[1:]}."
        )
    if len(x_tr) != len(y_tr) or len(x_te) != len(y_te):
        raise ValueError(
            f"{name}: {len(x_tr)} training inputs for {len(y_tr)} targets, {len(x_te)} test "
            f"inputs for {len(y_te)} targets."
        )
    if len(x_tr) == 0 or len(x_te) == 0:
        raise ValueError(f"{name}: the training and test sets must not be empty.")
    if y_tr.dtype != y_te.dtype or y_tr.shape[1:] != y_te.shape[1:]:
        raise ValueError(
            f"{name}: y_train is {y_tr.dtype}{y_tr.shape[1:]} but y_test is "
            f"{y_te.dtype}{y_te.shape[1:]}."
        )
    if not np.issubdtype(x_tr.dtype, np.floating):
        raise ValueError(f"{name}: inputs must be floating point, got {x_tr.dtype}.")
    # NaN or inf would train as a "diverged" run: fail now, naming the first bad row.
    where = name
    for field, array in (("x_train", x_tr), ("y_train", y_tr), ("x_test", x_te), ("y_test", y_te)):
        _validation.finite_rows(f"{where}: {field}", array)
    if np.issubdtype(y_tr.dtype, np.integer):
        if y_tr.ndim != 1:
            raise ValueError(f"{name}: class labels must be 1-D, got shape {y_tr.shape}.")
        if min(y_tr.min(), y_te.min()) < 0:
            raise ValueError(f"{name}: class labels must be >= 0.")
    elif y_tr.ndim != 2:
        raise ValueError(
            f"{name}: regression targets must have shape (n, d_out), got {y_tr.shape}."
        )
    model.check_input(x_tr.shape[1:])


def fingerprint(settings: dict[str, Any], datasets: Sequence[Dataset]) -> str:
    h = hashlib.sha256(json.dumps(settings, sort_keys=True, default=str).encode())
    for dataset in datasets:
        for a in dataset:
            a = np.ascontiguousarray(a)
            h.update(str((a.shape, a.dtype.str)).encode())
            h.update(a.tobytes())
    return h.hexdigest()
