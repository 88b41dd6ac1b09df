"""The value a sweep returns: metrics per configuration and evaluation step, with provenance."""

from __future__ import annotations

import dataclasses
import json
import math
import os
import tempfile
from collections.abc import Sequence
from typing import Any

import numpy as np

from relujax.sweep._spec import Config


def versions() -> dict[str, str]:
    """Versions of the libraries a result depends on, and the backend it ran on.

    Returns:
      ``{"relujax", "jax", "jaxlib", "flax", "optax", "numpy", "python", "backend",
      "device_count", "process_count"}`` mapped to strings.

    Examples:
      >>> from relujax.sweep._result import versions
      >>> sorted(versions())[:4]
      ['backend', 'device_count', 'flax', 'jax']
    """
    import platform

    import flax
    import jax
    import jaxlib.version
    import optax

    import relujax

    return {
        "relujax": relujax.__version__,
        "jax": jax.__version__,
        "jaxlib": jaxlib.version.__version__,
        "flax": flax.__version__,
        "optax": optax.__version__,
        "numpy": np.__version__,
        "python": platform.python_version(),
        "backend": jax.default_backend(),
        "device_count": str(jax.device_count()),
        "process_count": str(jax.process_count()),
    }


#: Strict JSON has no NaN or infinities: NaN is written as null, +-inf as these strings
#: (the spellings of JavaScript and of Python's non-strict ``json``).
_INF = {"Infinity": math.inf, "-Infinity": -math.inf}


def _jsonable(x: Any) -> Any:
    if isinstance(x, np.ndarray):
        return _jsonable(x.tolist())
    if isinstance(x, (list, tuple)):
        return [_jsonable(v) for v in x]
    if isinstance(x, dict):
        return {k: _jsonable(v) for k, v in x.items()}
    if isinstance(x, (np.floating, np.integer, np.bool_)):
        return _jsonable(x.item())
    if isinstance(x, float) and not math.isfinite(x):
        if math.isnan(x):
            return None
        return "Infinity" if x > 0 else "-Infinity"
    return x


def _from_json(x: Any) -> Any:
    """Inverse of :func:`_jsonable` outside the metric arrays: the infinities come back."""
    if isinstance(x, list):
        return [_from_json(v) for v in x]
    if isinstance(x, dict):
        return {k: _from_json(v) for k, v in x.items()}
    if isinstance(x, str) and x in _INF:
        return _INF[x]
    return x


def _numbers(v: Any) -> Any:
    """A metric series read back: null is NaN, the infinity strings are +-inf."""
    if v is None:
        return math.nan
    if isinstance(v, list):
        return [_numbers(x) for x in v]
    if isinstance(v, str):
        return _INF[v]
    return v


def write_text_atomically(path: str | os.PathLike, text: str) -> None:
    """Write ``text`` to ``path`` through a unique temporary file in the same directory.

    The temporary file is flushed to disk and renamed over ``path`` (``os.replace``, atomic
    on POSIX and Windows): a reader sees the old or the new file, never a partial one, and
    two writers never share a temporary name.
    """
    path = os.fspath(path)
    directory = os.path.dirname(os.path.abspath(path))
    fd, tmp = tempfile.mkstemp(dir=directory, prefix=f".{os.path.basename(path)}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


@dataclasses.dataclass(frozen=True, eq=False)
class SweepResult:
    """Metrics of every configuration at every evaluation step.

    ``metrics[name]`` has shape ``[K, E]`` for the scalars ``train_loss`` (loss on the fixed
    probe set of training examples), ``test_loss``, ``test_accuracy`` (classification only)
    and ``lr`` (the learning rate the next update uses), and ``[K, E, L]`` for the per-layer
    ``dead_fraction`` (units that never fired on the probe set), ``dormant_fraction`` (ReDo
    score :math:`E|h_i| / \\overline{E|h|} \\le \\tau`), ``firing_rate`` (mean over units of
    the fraction of probe examples with pre-activation > 0), ``weight_norm`` (Frobenius norm
    :math:`\\|W_l\\|` of the kernel into layer :math:`l`), ``init_distance``
    (:math:`\\|W_l - W_l^{(0)}\\|`), ``grad_norm`` (:math:`\\|\\nabla_{W_l} L_{probe}\\|`),
    ``grad_dormant_fraction`` (units whose pre-activation gradient on the probe set is exactly
    0, :func:`relujax.analysis.gradient_dormant` at ``tau=0``: a dead ReLU counts, a leaky
    unit that never fires does not) and ``saturated_fraction`` (mean over units of the
    fraction of probe examples flat at a bound, :func:`relujax.analysis.saturated_fraction`;
    NaN for unbounded activations, i.e. all but hard_tanh, hard_sigmoid, relu6, capped_relu),
    plus one ``[K, E]`` series per metric of the sweep's intervention; a sweep on a
    :class:`~relujax.sweep.Stream` adds ``online_loss`` (the mean minibatch loss of the
    updates since the previous evaluation, each before its update; NaN at step 0) and, for
    classification, ``online_accuracy``; ``Options(feature_rank=True)`` adds the per-layer
    ``effective_rank`` of the probe activations. ``K`` =
    configurations, ``E`` = evaluations at ``steps``, ``L`` = activation layers. Values at
    or after a configuration's ``diverged_step`` are NaN.

    Attributes:
      configs: the K configurations, in order.
      steps: ``int[E]``, the step of each evaluation (0, eval_every, ..., total steps).
      metrics: name -> array, as above.
      diverged_step: ``int[K]``, the step whose training loss was first non-finite, or -1.
      layer_sites: per configuration, the names of its activation sites (``relu_0``, ...).
      meta: settings of the sweep (model, optimizer, dataset shapes, steps, batch size, ...),
        the strategy used, and the versions of relujax, JAX and the other libraries.
      final_params: per configuration, its trained ``nnx.Param`` state as NumPy arrays (None
        for results loaded from JSON).

    Examples:
      >>> import numpy as np
      >>> from relujax import sweep
      >>> r = sweep.SweepResult(
      ...     configs=(sweep.Config("constant", 0.1),), steps=np.array([0, 10]),
      ...     metrics={"test_loss": np.array([[2.5, np.nan]], np.float32)},
      ...     diverged_step=np.array([10]), layer_sites=(("relu_0",),), meta={})
      >>> r.diverged, r.to_dict()["runs"][0]["metrics"]
      (array([ True]), {'test_loss': [2.5, None]})
      >>> r.records()[1]["diverged"]
      True
    """

    configs: tuple[Config, ...]
    steps: np.ndarray
    metrics: dict[str, np.ndarray]
    diverged_step: np.ndarray
    layer_sites: tuple[tuple[str, ...], ...]
    meta: dict[str, Any]
    final_params: Sequence[Any] | None = None

    def __len__(self) -> int:
        return len(self.configs)

    @property
    def diverged(self) -> np.ndarray:
        """``bool[K]``: whether each configuration diverged."""
        return self.diverged_step >= 0

    def final(self, name: str) -> np.ndarray:
        """The last evaluation of metric ``name`` per configuration (NaN if diverged)."""
        return self.metrics[name][:, -1]

    def to_dict(self) -> dict[str, Any]:
        """A strict-JSON dict, one entry per run with its full config.

        NaN becomes None (null) and +-inf the strings ``"Infinity"`` and
        ``"-Infinity"``; :meth:`from_dict` reads all three back into the metric arrays
        (outside them, in ``meta``, None stays None and the strings become infinities).

        Each run holds its ``config`` (schedule with parameters, peak LR, activation, init,
        seed), ``diverged_step``, ``layer_sites`` and its metric series; ``meta`` holds the
        shared settings and library versions.
        """
        runs = []
        for k, cfg in enumerate(self.configs):
            runs.append(
                {
                    "config": cfg.to_dict(),
                    "diverged_step": int(self.diverged_step[k]),
                    "layer_sites": list(self.layer_sites[k]),
                    "metrics": {name: _jsonable(v[k]) for name, v in self.metrics.items()},
                }
            )
        return {"steps": _jsonable(self.steps), "meta": _jsonable(self.meta), "runs": runs}

    def to_json(self, path: str | os.PathLike | None = None, **kwargs: Any) -> str:
        """``json.dumps(self.to_dict(), allow_nan=False)``, also written to ``path`` if given.

        The file is written atomically (a unique temporary file in the same directory, then
        ``os.replace``): a crash or a concurrent writer never leaves a partial file.
        """
        text = json.dumps(self.to_dict(), allow_nan=False, **kwargs)
        if path is not None:
            write_text_atomically(path, text)
        return text

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> SweepResult:
        """Inverse of :meth:`to_dict` (without ``final_params``)."""
        runs = d["runs"]
        names = list(runs[0]["metrics"]) if runs else []

        metrics = {
            n: np.stack([np.asarray(_numbers(r["metrics"][n]), np.float32) for r in runs])
            for n in names
        }
        return cls(
            configs=tuple(Config.from_dict(r["config"]) for r in runs),
            steps=np.asarray(d["steps"], np.int64),
            metrics=metrics,
            diverged_step=np.asarray([r["diverged_step"] for r in runs], np.int64),
            layer_sites=tuple(tuple(r["layer_sites"]) for r in runs),
            meta=_from_json(d["meta"]),
        )

    @classmethod
    def from_json(cls, text_or_path: str | os.PathLike) -> SweepResult:
        """Load a result written by :meth:`to_json` (a JSON string or a file path)."""
        text = os.fspath(text_or_path)
        if not text.lstrip().startswith("{"):
            with open(text) as f:
                text = f.read()
        return cls.from_dict(json.loads(text))

    def records(self) -> list[dict[str, Any]]:
        """One flat dict per (configuration, evaluation): ``pandas.DataFrame(records)``.

        Columns: ``run``, ``schedule``, ``schedule.<param>``, ``peak_lr``, ``activation``,
        ``init``, ``seed``, ``step``, ``diverged`` (bool: at or after divergence), every scalar
        metric, ``<layer metric>/<layer index>`` per layer, and ``version.<library>``.
        """
        out = []
        vers = {f"version.{k}": v for k, v in self.meta.get("versions", {}).items()}
        for k, cfg in enumerate(self.configs):
            base = {
                "run": k,
                "schedule": cfg.schedule.name,
                **{f"schedule.{p}": v for p, v in cfg.schedule.params},
                "peak_lr": cfg.peak_lr,
                "activation": cfg.activation,
                "init": cfg.init,
                "seed": cfg.seed,
            }
            d = int(self.diverged_step[k])
            for e, step in enumerate(self.steps):
                row: dict[str, Any] = dict(base, step=int(step), diverged=bool(0 <= d <= step))
                for name, values in self.metrics.items():
                    v = values[k, e]
                    if np.ndim(v) == 0:
                        row[name] = float(v)
                    else:
                        for layer, x in enumerate(v):
                            row[f"{name}/{layer}"] = float(x)
                row.update(vers)
                out.append(row)
        return out
