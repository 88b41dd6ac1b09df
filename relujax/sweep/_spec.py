"""What a sweep trains: model and optimizer specifications, configurations and grids."""

from __future__ import annotations

import dataclasses
import functools
import inspect
import itertools
import numbers
from collections.abc import Callable, Sequence
from typing import Any

import optax
from flax import nnx

from relujax import _validation
from relujax import schedules as _schedules
from relujax._registry import Registry

Schedule = _schedules.Schedule


@functools.lru_cache(maxsize=8)
def _names(kind: str, names: tuple[str, ...]) -> Registry[str]:
    return Registry(kind, {n: n for n in names})


def activation_name(name: object) -> str:
    """The canonical activation name (``" Leaky-ReLU "`` -> ``"leaky_relu"``), checked."""
    from relujax.activations import activation_names

    return _names("activation", activation_names()).resolve(name, param="activation")


def init_name(name: object, *, param: str = "init") -> str:
    """The canonical initializer name, checked against ``relujax.init.names()``."""
    from relujax import init

    return _names("initializer", init.names()).resolve(name, param=param)


def _positive_ints(name: str, values: Any, *, allow_empty: bool) -> tuple[int, ...]:
    if isinstance(values, (int, str)) or not isinstance(values, Sequence):
        raise TypeError(f"{name} must be a sequence of positive ints, got {values!r}.")
    out = tuple(values)
    if not allow_empty and not out:
        raise ValueError(f"{name} must not be empty.")
    for v in out:
        if not isinstance(v, numbers.Integral) or isinstance(v, bool) or v < 1:
            raise ValueError(f"{name} must hold positive ints, got {values!r}.")
    return tuple(int(v) for v in out)


@dataclasses.dataclass(frozen=True)
class MLPSpec:
    """A :class:`relujax.nn.MLP` without its activation, initializer and sizes of the data.

    The sweep builds ``relujax.nn.MLP(d_in, hidden, n_out, activation=..., kernel_init=...)``
    for each configuration, with ``d_in`` and ``n_out`` taken from the dataset.

    Attributes:
      hidden: widths of the hidden layers (each is one activation site).
      bias_init: bias initializer name (None: zeros, or the joint draw of a paired init).

    Examples:
      >>> from relujax import sweep
      >>> sweep.MLPSpec(hidden=(64, 64)).layers
      2
    """

    hidden: tuple[int, ...] = (256, 256, 256)
    bias_init: str | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "hidden", _positive_ints("hidden", self.hidden, allow_empty=False))

    @property
    def layers(self) -> int:
        """Number of activation sites (hidden layers)."""
        return len(self.hidden)

    def check_input(self, input_shape: tuple[int, ...]) -> None:
        """Raises ValueError unless the examples are flat vectors."""
        if len(input_shape) != 1:
            raise ValueError(
                f"MLPSpec needs flat inputs (n, d); the dataset's examples have shape "
                f"{input_shape}. Load it with flatten=True, or use CNNSpec."
            )

    def build(self, input_shape, out_features, *, activation, kernel_init, rngs) -> nnx.Module:
        """The NNX module for one configuration."""
        from relujax.nn import MLP

        return MLP(
            input_shape[-1],
            self.hidden,
            out_features,
            activation=activation,
            kernel_init=kernel_init,
            bias_init=self.bias_init,
            rngs=rngs,
        )

    def to_dict(self) -> dict[str, Any]:
        """JSON-friendly description."""
        return {"kind": "mlp", "hidden": list(self.hidden), "bias_init": self.bias_init}


@dataclasses.dataclass(frozen=True)
class CNNSpec:
    """A :class:`relujax.nn.CNN` without its activation, initializer and sizes of the data.

    Attributes:
      features: output channels of the conv blocks.
      hidden: widths of the dense layers after global average pooling.
      kernel_size: conv window (an int).
      pool: ``"max"``, ``"avg"`` or None.
      pool_size: pooling window and stride.
      bias_init: bias initializer name (None: zeros).

    Examples:
      >>> from relujax import sweep
      >>> sweep.CNNSpec(features=(8, 16), hidden=(32,)).layers
      3
    """

    features: tuple[int, ...] = (16, 32)
    hidden: tuple[int, ...] = ()
    kernel_size: int = 3
    pool: str | None = "max"
    pool_size: int = 2
    bias_init: str | None = None

    def __post_init__(self) -> None:
        object.__setattr__(
            self, "features", _positive_ints("features", self.features, allow_empty=False)
        )
        object.__setattr__(self, "hidden", _positive_ints("hidden", self.hidden, allow_empty=True))
        if self.pool not in ("max", "avg", None):
            raise ValueError(f"pool must be 'max', 'avg' or None, got {self.pool!r}.")

    @property
    def layers(self) -> int:
        """Number of activation sites (conv blocks plus dense hidden layers)."""
        return len(self.features) + len(self.hidden)

    def check_input(self, input_shape: tuple[int, ...]) -> None:
        """Raises ValueError unless the examples are ``(*spatial, channels)``."""
        if len(input_shape) not in (2, 3, 4):
            raise ValueError(
                f"CNNSpec needs examples of shape (length, channels) or (height, width, "
                f"channels); the dataset's have shape {input_shape}. Load it with flatten=False."
            )

    def build(self, input_shape, out_features, *, activation, kernel_init, rngs) -> nnx.Module:
        """The NNX module for one configuration."""
        from relujax.nn import CNN

        return CNN(
            input_shape[-1],
            self.features,
            out_features,
            hidden=self.hidden,
            spatial_dims=len(input_shape) - 1,
            kernel_size=self.kernel_size,
            pool=self.pool,
            pool_size=self.pool_size,
            activation=activation,
            kernel_init=kernel_init,
            bias_init=self.bias_init,
            rngs=rngs,
        )

    def to_dict(self) -> dict[str, Any]:
        """JSON-friendly description."""
        return {"kind": "cnn", **{f.name: getattr(self, f.name) for f in dataclasses.fields(self)}}


_OPTIMIZERS: Registry[tuple[Callable[..., optax.GradientTransformation], dict[str, Any]]]
_OPTIMIZERS = Registry(
    "optimizer",
    {
        "sgd": (optax.sgd, {}),
        "momentum": (optax.sgd, {"momentum": 0.9, "nesterov": False}),
        "adam": (optax.adam, {"b1": 0.9, "b2": 0.999, "eps": 1e-8}),
        "adamw": (optax.adamw, {"b1": 0.9, "b2": 0.999, "eps": 1e-8, "weight_decay": 1e-4}),
    },
)

#: Optimizer names accepted by :class:`OptimizerSpec` (and ``relujax.sweep.optimizers.get``).
OPTIMIZERS: tuple[str, ...] = _OPTIMIZERS.canonical()


@dataclasses.dataclass(frozen=True, init=False)
class OptimizerSpec:
    """An Optax optimizer by name, with its (static, Python-number) hyperparameters.

    ``build(schedule)`` returns ``optax.<fn>(learning_rate=schedule, **hyperparameters)``,
    the same object a single run would build: the learning rate enters as an Optax schedule
    of a traced peak value, never through ``optax.inject_hyperparams`` (which is not bit
    identical to the plain optimizer, optax #1532).

    ======== =========================================================================
    name     Optax call (defaults)
    ======== =========================================================================
    sgd      ``optax.sgd(lr)``
    momentum ``optax.sgd(lr, momentum=0.9, nesterov=False)``
    adam     ``optax.adam(lr, b1=0.9, b2=0.999, eps=1e-8)``
    adamw    ``optax.adamw(lr, b1=0.9, b2=0.999, eps=1e-8, weight_decay=1e-4)``
    ======== =========================================================================

    Args:
      name: one of :data:`OPTIMIZERS`.
      **hyperparameters: overrides of the defaults, keywords of that Optax function.

    Examples:
      >>> from relujax import sweep
      >>> sweep.OptimizerSpec("adamw", weight_decay=0.01)
      OptimizerSpec('adamw', b1=0.9, b2=0.999, eps=1e-08, weight_decay=0.01)
    """

    name: str
    hyperparameters: tuple[tuple[str, Any], ...]

    def __init__(self, name: str, /, **hyperparameters: Any) -> None:
        name = _OPTIMIZERS.resolve(name, param="optimizer")
        fn, defaults = _OPTIMIZERS[name]
        accepted = [p for p in inspect.signature(fn).parameters if p != "learning_rate"]
        for key, value in hyperparameters.items():
            if key not in accepted:
                raise ValueError(
                    f"optimizer {name!r} got unknown hyperparameter {key!r}; accepted: {accepted}."
                )
            if isinstance(value, bool) or value is None:
                continue
            # Python numbers only: the spec is hashed (it keys compiled programs).
            number = _validation.real(f"optimizer {name!r}: {key}", value)
            is_int = isinstance(value, numbers.Integral)
            hyperparameters[key] = int(value) if is_int else number
        object.__setattr__(self, "name", name)
        object.__setattr__(self, "hyperparameters", tuple({**defaults, **hyperparameters}.items()))

    def __repr__(self) -> str:
        args = "".join(f", {k}={v!r}" for k, v in self.hyperparameters)
        return f"OptimizerSpec({self.name!r}{args})"

    def build(self, learning_rate: optax.ScalarOrSchedule) -> optax.GradientTransformation:
        """``optax.<fn>(learning_rate, **hyperparameters)``."""
        fn, _ = _OPTIMIZERS[self.name]
        return fn(learning_rate, **dict(self.hyperparameters))

    def to_dict(self) -> dict[str, Any]:
        """JSON-friendly description."""
        return {"name": self.name, **dict(self.hyperparameters)}


@functools.lru_cache(maxsize=128)
def abstract_split(
    model: MLPSpec | CNNSpec, input_shape: tuple[int, ...], out_features: int, activation: str
) -> tuple[nnx.GraphDef, Any, Any]:
    """``nnx.split(module, nnx.Param, ...)`` of an abstract build of ``model`` (cached).

    Keyed on hashable specifications, so programs that close over the graph are cached
    across runs (the graph of an eagerly built module holds fresh activation callables, which
    compare by identity). The states hold ``jax.ShapeDtypeStruct`` leaves.
    """

    def build():
        return model.build(
            input_shape,
            out_features,
            activation=activation,
            kernel_init="he_normal",
            rngs=nnx.Rngs(0),
        )

    return nnx.split(nnx.eval_shape(build), nnx.Param, ...)


def _schedule(value: Any) -> Schedule:
    if isinstance(value, Schedule):
        return value
    if isinstance(value, str):
        return _schedules.get(value)
    raise TypeError(f"a schedule must be a relujax.schedules.Schedule or a name, got {value!r}.")


@dataclasses.dataclass(frozen=True)
class Config:
    """One training run of a sweep: schedule, peak learning rate, activation, init and seed.

    Attributes:
      schedule: a :class:`relujax.schedules.Schedule` (a family name is converted).
      peak_lr: peak learning rate (the schedule's scale), a positive float.
      activation: an activation name (``relujax.activation_names()``, or ``"prelu"``).
      init: a kernel initializer name (``relujax.init.names()``).
      seed: the run's seed: parameters are drawn with ``fold_in(PRNGKey(seed), 0)`` and the
        minibatches with ``fold_in(PRNGKey(seed), 1)``.

    Examples:
      >>> from relujax import sweep
      >>> sweep.Config("cosine_decay", 1e-3, "relu", "he_normal", 0).to_dict()["schedule"]
      {'name': 'cosine_decay'}
    """

    schedule: Schedule
    peak_lr: float
    activation: str = "relu"
    init: str = "he_normal"
    seed: int = 0

    def __post_init__(self) -> None:
        object.__setattr__(self, "schedule", _schedule(self.schedule))
        lr = _validation.real("Config: peak_lr", self.peak_lr, minimum=0.0, strict=True)
        object.__setattr__(self, "peak_lr", lr)
        object.__setattr__(self, "seed", _validation.seed("Config: seed", self.seed))
        object.__setattr__(self, "activation", activation_name(self.activation))
        object.__setattr__(self, "init", init_name(self.init))

    def to_dict(self) -> dict[str, Any]:
        """JSON-friendly description."""
        return {
            "schedule": self.schedule.to_dict(),
            "peak_lr": self.peak_lr,
            "activation": self.activation,
            "init": self.init,
            "seed": self.seed,
        }


@dataclasses.dataclass(frozen=True)
class Grid:
    """The Cartesian product of schedules x peak LRs x activations x inits x seeds.

    :meth:`configs` enumerates it with the *last* axis (seeds) varying fastest.

    Attributes:
      schedules: schedules (or family names).
      peak_lrs: peak learning rates.
      activations: activation names.
      inits: kernel initializer names.
      seeds: seeds.

    Examples:
      >>> from relujax import sweep
      >>> grid = sweep.Grid(["constant", "cosine_decay"], [1e-3, 1e-2], seeds=[0, 1])
      >>> len(grid.configs()), grid.configs()[1].seed
      (8, 1)
    """

    schedules: Sequence[Schedule | str]
    peak_lrs: Sequence[float]
    activations: Sequence[str] = ("relu",)
    inits: Sequence[str] = ("he_normal",)
    seeds: Sequence[int] = (0,)

    def configs(self) -> list[Config]:
        """All configurations, in product order."""
        axes = {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}
        for name, values in axes.items():
            if isinstance(values, (str, bytes)) or not isinstance(values, Sequence):
                raise TypeError(f"Grid.{name} must be a list, got {values!r}.")
            if len(values) == 0:
                raise ValueError(f"Grid.{name} is empty: every axis needs at least one value.")
        return [
            Config(s, lr, a, i, seed)
            for s, lr, a, i, seed in itertools.product(
                [_schedule(s) for s in self.schedules],
                self.peak_lrs,
                self.activations,
                self.inits,
                self.seeds,
            )
        ]
