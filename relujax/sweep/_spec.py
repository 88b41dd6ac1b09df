"""What a sweep trains: model and optimizer specifications, configurations and grids."""

from __future__ import annotations

import dataclasses
import functools
import inspect
import itertools
import numbers
from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

import optax
from flax import nnx

from relujax import _validation
from relujax import remedies as _remedies
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

    def build(
        self, input_shape, out_features, *, activation, kernel_init, rngs, bias_init=None
    ) -> nnx.Module:
        """The NNX module for one configuration (``bias_init`` overrides the spec's)."""
        from relujax.nn import MLP

        return MLP(
            input_shape[-1],
            self.hidden,
            out_features,
            activation=activation,
            kernel_init=kernel_init,
            bias_init=self.bias_init if bias_init is None else bias_init,
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

    def build(
        self, input_shape, out_features, *, activation, kernel_init, rngs, bias_init=None
    ) -> nnx.Module:
        """The NNX module for one configuration (``bias_init`` overrides the spec's)."""
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
            bias_init=self.bias_init if bias_init is None else bias_init,
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
        # Adam with a step count per parameter entry, which recycling remedies reset.
        "adam_per_param": (_remedies.adam, {"b1": 0.9, "b2": 0.999, "eps": 1e-8}),
        "adamw_per_param": (
            _remedies.adamw,
            {"b1": 0.9, "b2": 0.999, "eps": 1e-8, "weight_decay": 1e-4},
        ),
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

    The names, the Optax call each builds and its defaults are tabled once, in the
    ``relujax.sweep.optimizers`` module docstring.

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

    graphdef, params, rest = nnx.split(nnx.eval_shape(build), nnx.Param, ...)
    return graphdef, params, rest


def _schedule(value: Any) -> Schedule:
    if isinstance(value, Schedule):
        return value
    if isinstance(value, str):
        return _schedules.get(value)
    raise TypeError(f"a schedule must be a relujax.schedules.Schedule or a name, got {value!r}.")


def _params(name: str, value: Any) -> tuple[tuple[str, Any], ...]:
    """A mapping of keyword parameters as a sorted tuple of pairs (hashable, comparable)."""
    if isinstance(value, tuple) and all(isinstance(p, tuple) and len(p) == 2 for p in value):
        value = dict(value)
    if not isinstance(value, Mapping):
        raise TypeError(f"{name} must be a dict of keyword parameters, got {value!r}.")
    for key, v in value.items():
        if not isinstance(key, str):
            raise TypeError(f"{name}: parameter names must be str, got {key!r}.")
        try:
            hash(v)
        except TypeError:
            raise TypeError(f"{name}: {key} must be hashable (a number, str or tuple).") from None
    return tuple(sorted(value.items()))


@dataclasses.dataclass(frozen=True)
class Config:
    """One training run of a sweep: schedule, peak learning rate, model details and seed.

    Names are normalized as in every relujax registry (``"Leaky-ReLU"`` is ``"leaky_relu"``).

    Attributes:
      schedule: a :class:`relujax.schedules.Schedule` (a family name is converted).
      peak_lr: peak learning rate (the schedule's scale), a positive float.
      activation: an activation name (``relujax.activation_names()``).
      init: a kernel initializer name (``relujax.init.names()``).
      seed: the run's seed, in ``[0, 2**32)``: parameters are drawn with
        ``fold_in(jax.random.key(seed), 0)``, the minibatches with ``fold_in(.., 1)`` and the
        intervention's randomness with ``fold_in(.., 2)``.
      init_params: keyword parameters of the kernel initializer
        (``relujax.init.get(init, **init_params)``), e.g. ``{"stddev": 0.01}`` for
        ``"normal"``.
      bias_init: a bias initializer name, or None for the model's (zeros, or the joint
        draw of a paired initializer such as RAI).
      bias_init_params: keyword parameters of ``bias_init``, e.g. ``{"value": -1.0}``.
      data: index of the run's data set in the list given to :func:`run` (0 for one).
      intervention: values of the sweep's intervention hyperparameters for this run
        (missing ones take the intervention's defaults), e.g. ``{"every": 200}``.

    Examples:
      >>> from relujax import sweep
      >>> sweep.Config("cosine_decay", 1e-3, "relu", "he_normal", 0).to_dict()["schedule"]
      {'name': 'cosine_decay'}
      >>> c = sweep.Config("constant", 1e-2, init="normal", init_params={"stddev": 0.01},
      ...                  bias_init="constant", bias_init_params={"value": -1.0})
      >>> c.init_params, c.to_dict()["bias_init_params"]
      ((('stddev', 0.01),), {'value': -1.0})
    """

    schedule: Schedule
    peak_lr: float
    activation: str = "relu"
    init: str = "he_normal"
    seed: int = 0
    init_params: Mapping[str, Any] | tuple = ()
    bias_init: str | None = None
    bias_init_params: Mapping[str, Any] | tuple = ()
    data: int = 0
    intervention: Mapping[str, float] | tuple = ()

    if TYPE_CHECKING:  # the constructor also takes a schedule family's name (converted)

        def __init__(
            self,
            schedule: Schedule | str,
            peak_lr: float,
            activation: str = "relu",
            init: str = "he_normal",
            seed: int = 0,
            init_params: Mapping[str, Any] | tuple = (),
            bias_init: str | None = None,
            bias_init_params: Mapping[str, Any] | tuple = (),
            data: int = 0,
            intervention: Mapping[str, float] | tuple = (),
        ) -> None: ...

    def __post_init__(self) -> None:
        object.__setattr__(self, "schedule", _schedule(self.schedule))
        lr = _validation.real("Config: peak_lr", self.peak_lr, minimum=0.0, strict=True)
        object.__setattr__(self, "peak_lr", lr)
        object.__setattr__(self, "seed", _validation.seed("Config: seed", self.seed))
        object.__setattr__(self, "activation", activation_name(self.activation))
        object.__setattr__(self, "init", init_name(self.init))
        object.__setattr__(self, "init_params", _params("Config: init_params", self.init_params))
        if self.bias_init is not None:
            object.__setattr__(self, "bias_init", init_name(self.bias_init, param="bias_init"))
        bias_params = _params("Config: bias_init_params", self.bias_init_params)
        if bias_params and self.bias_init is None:
            raise ValueError("Config: bias_init_params given without a bias_init name.")
        object.__setattr__(self, "bias_init_params", bias_params)
        object.__setattr__(self, "data", _validation.integer("Config: data", self.data, minimum=0))
        hp = _params("Config: intervention", self.intervention)
        hp = tuple((k, _validation.real(f"Config: intervention {k}", v)) for k, v in hp)
        object.__setattr__(self, "intervention", hp)
        self.kernel_initializer()  # unknown or invalid parameters fail here
        self.bias_initializer()

    def kernel_initializer(self) -> Any:
        """``relujax.init.get(init, **init_params)``."""
        from relujax import init

        try:
            return init.get(self.init, **dict(self.init_params))
        except TypeError as e:
            raise TypeError(f"Config: init {self.init!r}: {e}") from None

    def bias_initializer(self) -> Any:
        """``relujax.init.get(bias_init, **bias_init_params)``, or None."""
        from relujax import init

        if self.bias_init is None:
            return None
        try:
            return init.get(self.bias_init, **dict(self.bias_init_params))
        except TypeError as e:
            raise TypeError(f"Config: bias_init {self.bias_init!r}: {e}") from None

    def to_dict(self) -> dict[str, Any]:
        """JSON-friendly description (fields at their defaults after ``seed`` are left out)."""
        out: dict[str, Any] = {
            "schedule": self.schedule.to_dict(),
            "peak_lr": self.peak_lr,
            "activation": self.activation,
            "init": self.init,
            "seed": self.seed,
        }
        for name in ("init_params", "bias_init_params", "intervention"):
            if getattr(self, name):
                out[name] = dict(getattr(self, name))
        if self.bias_init is not None:
            out["bias_init"] = self.bias_init
        if self.data:
            out["data"] = self.data
        return out

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> Config:
        """Inverse of :meth:`to_dict`."""
        d = dict(d)
        sched = dict(d.pop("schedule"))
        name = sched.pop("name")
        sched = {k: tuple(v) if isinstance(v, list) else v for k, v in sched.items()}
        return cls(Schedule(name, **sched), **d)


@dataclasses.dataclass(frozen=True)
class Grid:
    """The Cartesian product schedules x peak LRs x activations x inits x data x interventions
    x seeds.

    :meth:`configs` enumerates it with the *last* axis (seeds) varying fastest.

    Attributes:
      schedules: schedules (or family names).
      peak_lrs: peak learning rates.
      activations: activation names.
      inits: kernel initializer names.
      data: indices of data sets (see :attr:`Config.data`).
      interventions: intervention hyperparameter dicts (see :attr:`Config.intervention`).
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
    data: Sequence[int] = (0,)
    interventions: Sequence[Mapping[str, float]] = ({},)
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
            Config(s, lr, a, i, seed, data=d, intervention=hp)
            for s, lr, a, i, d, hp, seed in itertools.product(
                [_schedule(s) for s in self.schedules],
                self.peak_lrs,
                self.activations,
                self.inits,
                self.data,
                self.interventions,
                self.seeds,
            )
        ]
