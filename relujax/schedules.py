r"""Learning-rate schedules by name, with traceable (batchable) numeric parameters.

Every family is a *unit-peak* schedule :math:`u(t)` built from Optax's own schedule functions
and scaled by the peak learning rate, :math:`\eta(t) = \eta_{\text{peak}}\,u(t)`. Two kinds of
parameter:

* **step parameters** (``warmup_steps`` / ``warmup_fraction``, boundaries, cycle counts, ...)
  fix the *structure* of the schedule. They must be Python numbers: Optax needs step counts to
  be static. A ``*_fraction`` is turned into steps as ``round(fraction * total_steps)``.
* **numeric parameters** (``peak_value``, ``init_ratio``, ``end_ratio``, ``decay_rate``,
  ``exponent``, ``power``, ...) may be traced, ``vmap``-ed or given as arrays that broadcast, so
  one compiled program can hold many configurations. Ratios are relative to the peak.

Optax 0.2.8 pitfalls handled here (each one tested): ``warmup_cosine_decay_schedule`` and
``sgdr_schedule`` compare ``peak_value == 0.0`` in Python, ``exponential_decay`` compares
``decay_rate`` in Python, and the one-cycle / piecewise schedules check ``scale >= 0`` in Python,
so all of them raise ``TracerBoolConversionError`` when those values are traced. relujax builds
unit-peak Optax schedules (``peak_value=1.0``) and scales them, and composes the remaining
pieces from traceable Optax parts (``linear_schedule``, ``cosine_decay_schedule``,
``polynomial_schedule``, ``join_schedules``).

:func:`stack` puts schedules of different families into one ``vmap``-able function: each
distinct structure becomes a branch of :func:`jax.lax.switch`, numeric parameters become arrays.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import jax
import jax.core
import jax.numpy as jnp
import numpy as np
import optax
from jax.typing import ArrayLike

from relujax import _validation
from relujax._registry import Registry

__all__ = [
    "NAMES",
    "Schedule",
    "ScheduleBatch",
    "get",
    "make",
    "names",
    "stack",
]

Array = jax.Array
_Unit = optax.Schedule


@dataclasses.dataclass(frozen=True)
class _Family:
    """A schedule family: static (step) parameters, numeric parameters and a unit builder."""

    build: Callable[[dict[str, Any], dict[str, Array], int], _Unit]
    static: Mapping[str, Any]
    numeric: Mapping[str, float]
    summary: str


# Step parameters that may be given either in steps or as a fraction of total_steps.
_STEP_PARAMS = ("warmup", "transition", "transition_begin")
# The same for tuples of steps: <name>_steps or <name>_fractions.
_STEP_TUPLES = ("boundary",)


def _warmup(init_ratio: Array, warmup_steps: int) -> _Unit:
    return optax.linear_schedule(
        init_value=init_ratio, end_value=1.0, transition_steps=warmup_steps
    )


def _exponential(
    rate: Array, end_ratio: Array, *, transition_steps: int, begin: int, staircase: bool
) -> _Unit:
    # optax.exponential_decay evaluates `decay_rate == 0` and `decay_rate < 1` in Python; this
    # is its formula with the branch on the rate moved into jnp.where.
    def unit(count):
        elapsed = count - begin
        p = jnp.maximum(elapsed, 0) / transition_steps
        if staircase:
            p = jnp.floor(p)
        value = jnp.where(elapsed <= 0, 1.0, jnp.power(rate, p))
        clipped = jnp.where(
            rate < 1.0, jnp.maximum(value, end_ratio), jnp.minimum(value, end_ratio)
        )
        return jnp.where(end_ratio > 0.0, clipped, value)

    return unit


def _constant(s, n, total):
    del s, n, total
    return lambda count: jnp.ones_like(count, dtype=jnp.float32)


def _warmup_constant(s, n, total):
    del total
    return _warmup(n["init_ratio"], s["warmup_steps"])


def _piecewise_constant(s, n, total):
    del total
    bounds = s["boundary_steps"]
    factor = n["decay_factor"]
    pieces = [optax.constant_schedule(factor**i) for i in range(len(bounds) + 1)]
    return optax.join_schedules(pieces, list(bounds))


def _exponential_decay(s, n, total):
    del total
    return _exponential(
        n["decay_rate"],
        n["end_ratio"],
        transition_steps=s["transition_steps"],
        begin=s["transition_begin_steps"],
        staircase=s["staircase"],
    )


def _cosine_decay(s, n, total):
    del s
    return optax.cosine_decay_schedule(
        init_value=1.0, decay_steps=total, alpha=n["end_ratio"], exponent=n["exponent"]
    )


def _warmup_cosine(s, n, total):
    # Unit peak: optax computes `alpha = end_value / peak_value` after testing `peak_value == 0`
    # in Python, which a traced peak cannot answer.
    return optax.warmup_cosine_decay_schedule(
        init_value=n["init_ratio"],
        peak_value=1.0,
        warmup_steps=s["warmup_steps"],
        decay_steps=total,
        end_value=n["end_ratio"],
        exponent=n["exponent"],
    )


def _warmup_exponential(s, n, total):
    del total
    warm = s["warmup_steps"]
    decay = _exponential(
        n["decay_rate"],
        n["end_ratio"],
        transition_steps=s["transition_steps"],
        begin=s["transition_begin_steps"],
        staircase=s["staircase"],
    )
    return optax.join_schedules([_warmup(n["init_ratio"], warm), decay], [warm])


def _linear_onecycle(s, n, total):
    # optax.linear_onecycle_schedule: peak/div -> peak -> peak/div -> peak/(div * final_div),
    # linear pieces between int(pct_start*T), int(pct_final*T) and T.
    b1, b2 = int(s["pct_start"] * total), int(s["pct_final"] * total)
    low = 1.0 / n["div_factor"]
    last = low / n["final_div_factor"]
    pieces = [
        optax.linear_schedule(low, 1.0, b1),
        optax.linear_schedule(1.0, low, b2 - b1),
        optax.linear_schedule(low, last, total - b2),
    ]
    return optax.join_schedules(pieces, [b1, b2])


def _cosine_onecycle(s, n, total):
    # optax.cosine_onecycle_schedule: cosine interpolation peak/div -> peak -> peak/(div*final).
    b1 = int(s["pct_start"] * total)
    low = 1.0 / n["div_factor"]
    last = low / n["final_div_factor"]

    def interp(start, end, steps):
        def unit(count):
            pct = jnp.clip(count, 0, steps) / max(steps, 1)
            return end + (start - end) / 2.0 * (jnp.cos(jnp.pi * pct) + 1)

        return unit

    return optax.join_schedules([interp(low, 1.0, b1), interp(1.0, last, total - b1)], [b1])


def _sgdr(s, n, total):
    lengths = s["cycle_lengths"]
    pieces, bounds, start = [], [], 0
    for i, length in enumerate(lengths):
        cycle = optax.warmup_cosine_decay_schedule(
            init_value=n["init_ratio"],
            peak_value=1.0,
            warmup_steps=round(s["warmup_fraction"] * length),
            decay_steps=length,
            end_value=n["end_ratio"],
        )
        scale = n["cycle_decay"] ** i
        pieces.append(lambda count, cycle=cycle, scale=scale: scale * cycle(count))
        start += length
        bounds.append(start)
    return optax.join_schedules(pieces, bounds[:-1])


def _polynomial(s, n, total):
    del total
    return optax.polynomial_schedule(
        init_value=1.0,
        end_value=n["end_ratio"],
        power=n["power"],
        transition_steps=s["transition_steps"],
        transition_begin=s["transition_begin_steps"],
    )


def _inverse_sqrt(s, n, total):
    del total
    warm = s["warmup_steps"]
    decay = lambda count: jnp.sqrt(warm / (jnp.maximum(count, 0) + warm))
    return optax.join_schedules([_warmup(n["init_ratio"], warm), decay], [warm])


_FAMILIES_BY_NAME: dict[str, _Family] = {
    "constant": _Family(_constant, {}, {}, "u(t) = 1"),
    "warmup_constant": _Family(
        _warmup_constant,
        {"warmup": 0.1},
        {"init_ratio": 0.0},
        "linear warmup from init_ratio to 1 over the warmup, then 1",
    ),
    "piecewise_constant": _Family(
        _piecewise_constant,
        {"boundary": (0.5, 0.75)},
        {"decay_factor": 0.1},
        "step decay: multiplied by decay_factor at each boundary (fractions of total_steps)",
    ),
    "exponential_decay": _Family(
        _exponential_decay,
        {"transition": 1.0, "transition_begin": 0, "staircase": False},
        {"decay_rate": 0.01, "end_ratio": 0.0},
        "decay_rate ** ((t - begin) / transition), clipped at end_ratio when end_ratio > 0",
    ),
    "cosine_decay": _Family(
        _cosine_decay,
        {},
        {"end_ratio": 0.0, "exponent": 1.0},
        "end + (1 - end) * (0.5 * (1 + cos(pi t / T))) ** exponent",
    ),
    "warmup_cosine": _Family(
        _warmup_cosine,
        {"warmup": 0.1},
        {"init_ratio": 0.0, "end_ratio": 0.0, "exponent": 1.0},
        "linear warmup, then cosine decay to end_ratio at total_steps",
    ),
    "warmup_exponential": _Family(
        _warmup_exponential,
        {"warmup": 0.1, "transition": None, "transition_begin": 0, "staircase": False},
        {"init_ratio": 0.0, "decay_rate": 0.01, "end_ratio": 0.0},
        "linear warmup, then exponential decay (transition defaults to the remaining steps)",
    ),
    "linear_onecycle": _Family(
        _linear_onecycle,
        {"pct_start": 0.3, "pct_final": 0.85},
        {"div_factor": 25.0, "final_div_factor": 1e4},
        "three linear phases: 1/div -> 1 -> 1/div -> 1/(div * final_div)",
    ),
    "cosine_onecycle": _Family(
        _cosine_onecycle,
        {"pct_start": 0.3},
        {"div_factor": 25.0, "final_div_factor": 1e4},
        "cosine interpolation 1/div -> 1 -> 1/(div * final_div)",
    ),
    "sgdr": _Family(
        _sgdr,
        {"cycles": 4, "cycle_mult": 1.0, "warmup_fraction": 0.0},
        {"init_ratio": 0.0, "end_ratio": 0.0, "cycle_decay": 1.0},
        "cosine warm restarts; cycle i has length L0 * cycle_mult**i and peak cycle_decay**i",
    ),
    "polynomial": _Family(
        _polynomial,
        {"transition": 1.0, "transition_begin": 0},
        {"power": 1.0, "end_ratio": 0.0},
        "(1 - end) * (1 - (t - begin) / transition) ** power + end",
    ),
    "inverse_sqrt": _Family(
        _inverse_sqrt,
        {"warmup": 0.1},
        {"init_ratio": 0.0},
        "linear warmup over W steps, then sqrt(W / t)",
    ),
}

_FAMILIES: Registry[_Family] = Registry("schedule", _FAMILIES_BY_NAME)

#: Names of the schedule families, accepted by :class:`Schedule`, :func:`make` and the sweep.
NAMES: tuple[str, ...] = _FAMILIES.canonical()

# The domain of every numeric parameter: (minimum, whether the minimum is excluded). All must
# be finite; outside these a schedule would give NaN, infinite or negative learning rates.
_DOMAINS: dict[str, tuple[float, bool]] = {
    "init_ratio": (0.0, False),
    "end_ratio": (0.0, False),
    "decay_rate": (0.0, True),
    "exponent": (0.0, True),
    "power": (0.0, True),
    "decay_factor": (0.0, False),
    "div_factor": (0.0, True),
    "final_div_factor": (0.0, True),
    "cycle_decay": (0.0, False),
}


def _check_numeric(name: str, key: str, value: Any) -> None:
    minimum, strict = _DOMAINS[key]
    _validation.number_array(f"schedule {name!r}: {key}", value, minimum=minimum, strict=strict)


def names() -> tuple[str, ...]:
    """The schedule family names :func:`get` accepts, sorted.

    Returns:
      A sorted tuple of names.

    Examples:
      >>> import relujax
      >>> relujax.schedules.names()[:3]
      ('constant', 'cosine_decay', 'cosine_onecycle')
    """
    return _FAMILIES.names()


def get(name: str, /, **params: Any) -> Schedule:
    """The schedule family ``name`` with ``params``: the same as ``Schedule(name, **params)``.

    Names are normalized as everywhere in relujax (``" Warmup-Cosine "`` is
    ``"warmup_cosine"``).

    Args:
      name: one of :func:`names`.
      **params: family parameters (see :class:`Schedule`).

    Returns:
      A :class:`Schedule`.

    Raises:
      TypeError: ``name`` is not a string, or a parameter has the wrong type.
      ValueError: unknown name (the closest names are suggested), unknown parameter, or a
        value outside the parameter's domain.

    Examples:
      >>> import relujax
      >>> relujax.schedules.get("Warmup-Cosine", warmup_fraction=0.2)
      Schedule('warmup_cosine', warmup_fraction=0.2)
    """
    return Schedule(name, **params)


def _accepted(family: _Family) -> list[str]:
    names = []
    for key in family.static:
        if key in _STEP_PARAMS:
            names += [f"{key}_steps", f"{key}_fraction"]
        elif key in _STEP_TUPLES:
            names += [f"{key}_steps", f"{key}_fractions"]
        else:
            names.append(key)
    return sorted(names + list(family.numeric))


def _is_concrete_number(value: Any) -> bool:
    return isinstance(value, (int, float, np.integer, np.floating)) and not isinstance(value, bool)


def _check_static(name: str, key: str, value: Any) -> None:
    if isinstance(value, jax.core.Tracer) or isinstance(value, (jax.Array, np.ndarray)):
        raise TypeError(
            f"schedule {name!r}: {key} must be a Python number (it sets the step structure, "
            f"which Optax needs to be static), got {type(value).__name__}."
        )


@dataclasses.dataclass(frozen=True, init=False)
class Schedule:
    r"""A learning-rate schedule family and its parameters, as a hashable value.

    The schedule's value at step :math:`t` is :math:`\eta_{\text{peak}}\,u(t)` where :math:`u` is
    the family's unit-peak shape (see :data:`NAMES` and the module docstring). Step parameters
    are static; numeric parameters are traceable (see :meth:`build`).

    Families, their parameters and defaults (``*`` = step parameter, given as ``<name>_steps``
    or ``<name>_fraction`` of ``total_steps``):

    - ``constant``: none.
    - ``warmup_constant``: warmup* = 0.1, init_ratio = 0.
    - ``piecewise_constant``: boundary* = (0.5, 0.75) (a tuple: ``boundary_steps`` or
      ``boundary_fractions``), decay_factor = 0.1.
    - ``exponential_decay``: transition* = 1.0, transition_begin* = 0, staircase = False,
      decay_rate = 0.01, end_ratio = 0 (0 disables clipping).
    - ``cosine_decay``: end_ratio = 0, exponent = 1.
    - ``warmup_cosine``: warmup* = 0.1, init_ratio = 0, end_ratio = 0, exponent = 1.
    - ``warmup_exponential``: warmup* = 0.1, transition* = remaining steps, transition_begin* = 0,
      staircase = False, init_ratio = 0, decay_rate = 0.01, end_ratio = 0.
    - ``linear_onecycle``: pct_start = 0.3, pct_final = 0.85, div_factor = 25,
      final_div_factor = 1e4.
    - ``cosine_onecycle``: pct_start = 0.3, div_factor = 25, final_div_factor = 1e4.
    - ``sgdr``: cycles = 4, cycle_mult = 1, warmup_fraction = 0 (of each cycle), init_ratio = 0,
      end_ratio = 0, cycle_decay = 1.
    - ``polynomial``: transition* = 1.0, transition_begin* = 0, power = 1, end_ratio = 0.
    - ``inverse_sqrt``: warmup* = 0.1 (at least one step), init_ratio = 0.

    Args:
      name: one of :data:`NAMES`.
      **params: family parameters; unknown names raise ``ValueError``.

    Examples:
      >>> import jax.numpy as jnp
      >>> import relujax
      >>> s = relujax.schedules.Schedule("warmup_cosine", warmup_fraction=0.25)
      >>> s
      Schedule('warmup_cosine', warmup_fraction=0.25)
      >>> fn = s.build(total_steps=8, peak_value=0.1)
      >>> jnp.stack([fn(t) for t in range(9)])
      Array([0.        , 0.05      , 0.1       , 0.0933, 0.075     ,
             0.05      , 0.025     , 0.0067, 0.        ], dtype=float32)
    """

    name: str
    params: tuple[tuple[str, Any], ...]

    def __init__(self, name: str, /, **params: Any) -> None:
        name = _FAMILIES.resolve(name)
        family = _FAMILIES[name]
        accepted = _accepted(family)
        for key, value in params.items():
            if key not in accepted:
                raise ValueError(
                    f"schedule {name!r} got unknown parameter {key!r}; accepted: {accepted}."
                )
            base = key.removesuffix("_steps").removesuffix("_fractions").removesuffix("_fraction")
            if base in family.static or key in family.static:
                _check_static(name, key, value)
            elif key in family.numeric:
                if not isinstance(value, (jax.Array, np.ndarray)) and not _is_concrete_number(
                    value
                ):
                    raise TypeError(
                        f"schedule {name!r}: {key} must be a number or an array, "
                        f"got {type(value).__name__}."
                    )
                _check_numeric(name, key, value)
        for key in _STEP_PARAMS + _STEP_TUPLES:
            if f"{key}_steps" in params and (
                f"{key}_fraction" in params or f"{key}_fractions" in params
            ):
                raise ValueError(
                    f"schedule {name!r}: give {key}_steps or {key}_fraction, not both."
                )
        object.__setattr__(self, "name", name)
        object.__setattr__(self, "params", tuple(sorted(params.items())))

    def __repr__(self) -> str:
        args = "".join(f", {k}={v!r}" for k, v in self.params)
        return f"Schedule({self.name!r}{args})"

    def to_dict(self) -> dict[str, Any]:
        """JSON-friendly description: ``{"name": ..., **params}`` (arrays become lists)."""
        out: dict[str, Any] = {"name": self.name}
        for key, value in self.params:
            out[key] = np.asarray(value).tolist() if hasattr(value, "shape") else value
        return out

    def structure(self, total_steps: int) -> tuple:
        """The static part (family and resolved step parameters): equal structures share code.

        Args:
          total_steps: number of training steps the schedule spans.

        Returns:
          A hashable tuple ``(name, ((param, value), ...))`` with step parameters in steps.
        """
        return (self.name, tuple(sorted(self._static(total_steps).items())))

    def numeric(self) -> dict[str, Any]:
        """The numeric (traceable) parameters, defaults filled in."""
        family = _FAMILIES[self.name]
        given = dict(self.params)
        return {key: given.get(key, default) for key, default in family.numeric.items()}

    def _static(self, total_steps: int) -> dict[str, Any]:
        _check_total_steps(total_steps)
        family, given, name = _FAMILIES[self.name], dict(self.params), self.name
        out: dict[str, Any] = {}
        for key, default in family.static.items():
            if key in _STEP_PARAMS:
                if f"{key}_steps" in given:
                    steps = given[f"{key}_steps"]
                    if not isinstance(steps, (int, np.integer)) or isinstance(steps, bool):
                        raise TypeError(f"schedule {name!r}: {key}_steps must be an int.")
                elif f"{key}_fraction" in given or default is not None:
                    frac = given.get(f"{key}_fraction", default)
                    if not (_is_concrete_number(frac) and 0.0 <= frac <= 1.0):
                        raise ValueError(
                            f"schedule {name!r}: {key}_fraction must be in [0, 1], got {frac!r}."
                        )
                    steps = round(frac * total_steps)
                else:
                    steps = None
                if steps is not None and not 0 <= steps <= total_steps:
                    raise ValueError(
                        f"schedule {name!r}: {key}_steps must be in [0, total_steps="
                        f"{total_steps}], got {steps}."
                    )
                out[f"{key}_steps"] = None if steps is None else int(steps)
            elif key in _STEP_TUPLES:
                out[f"{key}_steps"] = _step_tuple(name, key, given, default, total_steps)
            else:
                out[key] = given.get(key, default)
        _finish_static(name, out, total_steps)
        return out

    def build(self, *, total_steps: int, peak_value: ArrayLike = 1.0) -> optax.Schedule:
        r"""The schedule as an Optax schedule, ``step -> peak_value * u(step)``.

        Args:
          total_steps: number of training steps (static Python int).
          peak_value: the peak learning rate; may be traced or an array (then numeric
            parameters given as arrays broadcast against it).

        Returns:
          A function of the step count (int or traced int array) returning float32 values.

        Examples:
          >>> import jax.numpy as jnp
          >>> import relujax
          >>> fn = relujax.schedules.Schedule("exponential_decay", decay_rate=0.5).build(
          ...     total_steps=4, peak_value=jnp.array([1.0, 2.0]))
          >>> fn(2)
          Array([0.7071, 1.4142 ], dtype=float32)
        """
        static, numeric = self._static(total_steps), self.numeric()
        _validation.number_array("peak_value", peak_value, minimum=0.0)
        peak = jnp.asarray(peak_value, dtype=_float_dtype(peak_value))

        def schedule(count):
            # Built at call time so that, under jit, every operation on the parameters is
            # staged into the same program as in a stacked (swept) schedule.
            return peak * _unit(self.name, static, _as_arrays(numeric), total_steps)(count)

        return schedule


def _float_dtype(value: Any) -> Any:
    dtype = getattr(value, "dtype", None)
    if dtype is not None and jnp.issubdtype(dtype, jnp.floating):
        return dtype
    return jnp.float32


def _as_arrays(numeric: Mapping[str, Any]) -> dict[str, Array]:
    # Python floats become float32 arrays here so that a schedule built from Python numbers and
    # one built from stacked arrays run the same float32 operations (bit-identical values).
    return {k: jnp.asarray(v, dtype=_float_dtype(v)) for k, v in numeric.items()}


def _check_total_steps(total_steps: Any) -> None:
    if not isinstance(total_steps, (int, np.integer)) or isinstance(total_steps, bool):
        raise TypeError(f"total_steps must be a Python int, got {type(total_steps).__name__}.")
    if total_steps < 1:
        raise ValueError(f"total_steps must be >= 1, got {total_steps}.")


def _step_tuple(name: str, key: str, given: dict, default: tuple, total: int) -> tuple[int, ...]:
    if f"{key}_steps" in given:
        steps = given[f"{key}_steps"]
        if not isinstance(steps, (tuple, list)) or not all(
            isinstance(b, (int, np.integer)) and not isinstance(b, bool) for b in steps
        ):
            raise TypeError(f"schedule {name!r}: {key}_steps must be a tuple of ints.")
    else:
        fracs = given.get(f"{key}_fractions", default)
        if not isinstance(fracs, (tuple, list)) or not all(
            _is_concrete_number(f) and 0.0 <= f <= 1.0 for f in fracs
        ):
            raise ValueError(
                f"schedule {name!r}: {key}_fractions must be a tuple of numbers in [0, 1], "
                f"got {fracs!r}."
            )
        steps = [round(f * total) for f in fracs]
    steps = tuple(int(b) for b in steps)
    if list(steps) != sorted(steps) or (steps and not 0 <= steps[0] <= steps[-1] <= total):
        raise ValueError(
            f"schedule {name!r}: {key} steps must increase within [0, {total}], got {steps}."
        )
    return steps


def _finish_static(name: str, s: dict[str, Any], total: int) -> None:
    """Fill derived step parameters and check structural constraints (clear errors early)."""
    if name in ("exponential_decay", "warmup_exponential"):
        if not isinstance(s["staircase"], bool):
            raise TypeError(f"schedule {name!r}: staircase must be a bool.")
        if s["transition_steps"] is None:
            s["transition_steps"] = total - s["warmup_steps"]
        if s["transition_steps"] < 1:
            raise ValueError(f"schedule {name!r}: the transition must last at least one step.")
    if name == "polynomial" and s["transition_steps"] < 1:
        raise ValueError(f"schedule {name!r}: the transition must last at least one step.")
    if name == "warmup_cosine" and s["warmup_steps"] >= total:
        raise ValueError(
            f"schedule {name!r}: warmup ({s['warmup_steps']} steps) must end before "
            f"total_steps={total} so that the cosine decay has steps to run."
        )
    if name == "inverse_sqrt" and s["warmup_steps"] < 1:
        raise ValueError(f"schedule {name!r}: warmup must be at least one step.")
    if name in ("linear_onecycle", "cosine_onecycle"):
        start = s["pct_start"]
        final = s.get("pct_final", 1.0)
        if not (_is_concrete_number(start) and _is_concrete_number(final)):
            raise TypeError(f"schedule {name!r}: pct_start/pct_final must be Python numbers.")
        if not 0.0 <= start <= final <= 1.0:
            raise ValueError(
                f"schedule {name!r}: need 0 <= pct_start <= pct_final <= 1, got "
                f"pct_start={start}, pct_final={final}."
            )
    if name == "sgdr":
        cycles, mult, warm = s.pop("cycles"), s.pop("cycle_mult"), s.pop("warmup_fraction")
        cycles = _validation.integer(f"schedule {name!r}: cycles", cycles, minimum=1, maximum=total)
        mult = _validation.real(f"schedule {name!r}: cycle_mult", mult, minimum=1.0)
        warm = _validation.real(f"schedule {name!r}: warmup_fraction", warm, minimum=0.0)
        if warm >= 1.0:
            raise ValueError(f"schedule {name!r}: warmup_fraction must be in [0, 1), got {warm}.")
        weights = [mult**i for i in range(cycles)]
        ends = [round(total * sum(weights[: i + 1]) / sum(weights)) for i in range(cycles)]
        lengths = [b - a for a, b in zip([0, *ends[:-1]], ends, strict=True)]
        if min(lengths) < 1 or any(round(warm * n) >= n for n in lengths):
            raise ValueError(
                f"schedule {name!r}: cycles of lengths {lengths} are too short for total_steps="
                f"{total} (each needs at least one decay step)."
            )
        s["cycle_lengths"] = tuple(lengths)
        s["warmup_fraction"] = float(warm)


def _unit(name: str, static: dict[str, Any], numeric: dict[str, Array], total: int) -> _Unit:
    return _FAMILIES[name].build(static, numeric, total)


def make(name: str, *, total_steps: int, peak_value: ArrayLike = 1.0, **params: Any):
    r"""Build a learning-rate schedule by family name: ``step -> peak_value * u(step)``.

    Shorthand for ``Schedule(name, **params).build(total_steps=..., peak_value=...)``. Numeric
    parameters and ``peak_value`` may be traced or arrays (they broadcast); step parameters
    must be Python numbers.

    Args:
      name: one of :data:`NAMES`.
      total_steps: number of training steps the schedule spans (static).
      peak_value: the peak learning rate.
      **params: family parameters (see :class:`Schedule`).

    Returns:
      An Optax schedule (function of the step count returning float32).

    Examples:
      >>> import jax
      >>> import relujax
      >>> sched = relujax.schedules.make("warmup_cosine", total_steps=100, peak_value=1e-3,
      ...                                warmup_steps=10)
      >>> sched(0), sched(10), sched(100)
      (Array(0., dtype=float32), Array(0.001, dtype=float32), Array(0., dtype=float32))
      >>> jax.jit(lambda peak: relujax.schedules.make(
      ...     "sgdr", total_steps=100, peak_value=peak, cycles=2)(60))(0.1)
      Array(0.0905, dtype=float32)
    """
    return Schedule(name, **params).build(total_steps=total_steps, peak_value=peak_value)


@dataclasses.dataclass(frozen=True, eq=False)
class ScheduleBatch:
    r"""K schedules (of any families) as one pure function of per-config arrays.

    Each distinct :meth:`Schedule.structure` is one branch of :func:`jax.lax.switch`; the numeric
    parameters and peak values are arrays with a leading axis of size K, so the batch can be
    ``vmap``-ped, sharded or ``lax.map``-ped over configurations in a single program.

    Attributes:
      schedules: the K schedules, in order.
      total_steps: number of steps every schedule spans.
      params: ``{"branch": int32[K], "peak_value": float32[K], <numeric name>: float32[K]}``
        (numeric parameters of other families hold placeholder ones).
    """

    schedules: tuple[Schedule, ...]
    total_steps: int
    params: dict[str, Array]
    _branches: tuple[tuple, ...]

    def apply(self, params: Mapping[str, Array], count: ArrayLike) -> Array:
        """Learning rate of ONE configuration (params with scalar leaves) at step ``count``."""
        numeric = {k: v for k, v in params.items() if k not in ("branch", "peak_value")}

        def branch_fn(structure):
            name, static = structure[0], dict(structure[1])
            wanted = _FAMILIES[name].numeric
            return lambda c: _unit(name, static, {k: numeric[k] for k in wanted}, self.total_steps)(
                c
            )

        fns = [branch_fn(b) for b in self._branches]
        unit = fns[0](count) if len(fns) == 1 else jax.lax.switch(params["branch"], fns, count)
        return params["peak_value"] * unit

    def select(self, params: Mapping[str, Array]) -> optax.Schedule:
        """The Optax schedule of one configuration, given its (scalar-leaf) params."""
        return lambda count: self.apply(params, count)

    def __call__(self, count: ArrayLike) -> Array:
        """Learning rates of all K configurations at step ``count``: float32[K]."""
        return jax.vmap(self.apply, in_axes=(0, None))(self.params, count)


def stack(
    schedules: Sequence[Schedule], *, total_steps: int, peak_values: ArrayLike | Sequence[float]
) -> ScheduleBatch:
    r"""Stack K schedules, possibly of different families, into one batched schedule.

    Config ``k`` has learning rate ``peak_values[k] * u_k(step)``; its values are bit-identical
    to ``schedules[k].build(total_steps=..., peak_value=peak_values[k])``.

    Args:
      schedules: K :class:`Schedule` values; numeric parameters must be Python numbers.
      total_steps: number of steps (static).
      peak_values: K peak learning rates (or one, broadcast).

    Returns:
      A :class:`ScheduleBatch`.

    Raises:
      ValueError: if ``schedules`` is empty or ``peak_values`` has the wrong length.

    Examples:
      >>> import relujax
      >>> S = relujax.schedules.Schedule
      >>> batch = relujax.schedules.stack(
      ...     [S("constant"), S("cosine_decay"), S("polynomial", power=2.0)],
      ...     total_steps=10, peak_values=[1.0, 0.5, 2.0])
      >>> batch(5)
      Array([1.  , 0.25, 0.5 ], dtype=float32)
    """
    schedules = tuple(schedules)
    if not schedules:
        raise ValueError("stack() needs at least one schedule.")
    _validation.number_array("stack: peak_values", peak_values, minimum=0.0)
    for s in schedules:
        if not isinstance(s, Schedule):
            raise TypeError(f"stack() takes relujax.schedules.Schedule values, got {s!r}.")
    structures = [s.structure(total_steps) for s in schedules]
    branches = tuple(dict.fromkeys(structures))
    peaks = np.broadcast_to(np.asarray(peak_values, dtype=np.float32), (len(schedules),))
    names = sorted({k for s in schedules for k in _FAMILIES[s.name].numeric})
    table = {k: np.ones(len(schedules), np.float32) for k in names}
    for i, s in enumerate(schedules):
        for key, value in s.numeric().items():
            if not _is_concrete_number(value):
                raise TypeError(f"stack(): {s!r} has a non-scalar {key}; use Python numbers.")
            table[key][i] = value
    params = {
        "branch": jnp.asarray([branches.index(st) for st in structures], dtype=jnp.int32),
        "peak_value": jnp.asarray(peaks),
        **{k: jnp.asarray(v) for k, v in table.items()},
    }
    return ScheduleBatch(schedules, total_steps, params, branches)
