"""Born dead: the probability that a freshly initialized deep, narrow ReLU net is constant.

``python -m experiments.born_dead [--quick | --full] [--out DIR] [--seed N]``

Lu, Shin, Su and Karniadakis ("Dying ReLU and Initialization: Theory and Numerical
Examples", 2020) prove that a deep ReLU network of fixed width initialized with a symmetric
distribution (He, Xavier, ...) is *born dead* (a constant function of its input) with a
probability that tends to 1 as the depth grows, and propose randomized asymmetric
initialization (RAI) to lower it. This measures that probability with
:func:`relujax.analysis.born_dead_probability` for widths 2, 3, 4, 5 and 10, depths 2 to 50,
He-normal (zero bias) against RAI (:func:`relujax.init.rai`, joint weight/bias draw), on the
input box [-sqrt(3), sqrt(3)] (one input, as in the paper's examples). A net counts as born
dead when some hidden layer is zero on the whole grid (almost surely the same event as
"constant"; see :func:`~relujax.analysis.born_dead_probability`). Deep RAI nets that are
alive in that sense can still be flat in float32: their input-dependent part falls below
float32 resolution relative to the biases (at depth 50, 79% of 200 RAI nets of width 4 and
73% of width 5 were alive with a last layer varying by less than 2**-24 of its size), and
they are not counted here.

For one input and zero biases there is an exact check. The net is positively homogeneous,
so it is constant iff it is zero on both rays x > 0 and x < 0. On one ray each layer maps a
non-zero non-negative vector to ``relu(v W)``, whose N coordinates are i.i.d. symmetric, so
the ray dies at each layer with probability ``2**-N`` independently of the past: it survives
L layers with probability ``q = (1 - 2**-N)**L``. The net survives if either ray does, so

    1 - 2 q  <=  P(born dead)  <=  1 - q,

bounds that tend to 1 with L at fixed N: the paper's theorem, in closed form. The He
estimates must fall within them (up to Monte-Carlo error); RAI has no such bound.

Outputs: ``results.json``, ``summary.md``, ``born_dead_vs_depth.png``.
"""

from __future__ import annotations

import dataclasses
import math
import time
from collections.abc import Sequence

import jax
import numpy as np

import relujax
from experiments import _common

NAME = "born_dead"
INITS = ("he_normal", "rai")


@dataclasses.dataclass(frozen=True)
class Scale:
    """Sizes of one scale of the experiment."""

    widths: tuple[int, ...]
    depths: tuple[int, ...]
    n_trials: int
    n_points: int


SCALES = {
    "quick": Scale(widths=(2,), depths=(2, 5), n_trials=100, n_points=32),
    "default": Scale(
        widths=(2, 3, 4, 5, 10),
        depths=(2, 3, 4, 5, 6, 8, 10, 12, 15, 20, 25, 30, 40, 50),
        n_trials=1000,
        n_points=256,
    ),
    "full": Scale(
        widths=(2, 3, 4, 5, 10),
        depths=tuple(range(2, 51)),
        n_trials=10000,
        n_points=1024,
    ),
}


def bounds(width: int, depth: int) -> tuple[float, float]:
    """Exact bounds on P(born dead) for one input, zero biases, symmetric weights."""
    q = (1.0 - 2.0**-width) ** depth
    return max(0.0, 1.0 - 2.0 * q), 1.0 - q


def _stderr(p: float, n: int) -> float:
    return math.sqrt(max(p * (1.0 - p), 1.0 / n) / n)


def estimate(scale: Scale, seed: int) -> dict[str, np.ndarray]:
    """P(born dead) for every init x width x depth: arrays ``[inits, widths, depths]``."""
    prob = np.zeros((len(INITS), len(scale.widths), len(scale.depths)))
    started = time.time()
    total = prob.size
    done = 0
    for a, init in enumerate(INITS):
        for b, width in enumerate(scale.widths):
            for c, depth in enumerate(scale.depths):
                # One key per width, shared by the depths (layer l of trial t is the same
                # draw at every depth, so each curve is exactly non-decreasing) and by the
                # inits (paired comparisons).
                key = jax.random.fold_in(jax.random.key(seed), width)
                prob[a, b, c] = float(
                    relujax.analysis.born_dead_probability(
                        key,
                        width=width,
                        depth=depth,
                        n_trials=scale.n_trials,
                        n_points=scale.n_points,
                        init=init,
                    )
                )
                done += 1
            print(
                f"[{NAME}] {init:9s} width {width:2d}: "
                + " ".join(f"{p:.2f}" for p in prob[a, b])
                + f"  ({done}/{total}, {time.time() - started:.0f} s)",
                flush=True,
            )
    lo = np.array([[bounds(w, d)[0] for d in scale.depths] for w in scale.widths])
    hi = np.array([[bounds(w, d)[1] for d in scale.depths] for w in scale.widths])
    return {"probability": prob, "lower": lo, "upper": hi}


def _rows(scale: Scale, res: dict[str, np.ndarray]) -> tuple[list[list], dict[str, object]]:
    prob, lo, hi = res["probability"], res["lower"], res["upper"]
    n = scale.n_trials
    rows = []
    checks: dict[str, object] = {}
    inside = 0
    for b, width in enumerate(scale.widths):
        he, rai = prob[0, b], prob[1, b]
        tol = np.array([3 * _stderr(p, n) for p in he])
        ok = (he >= lo[b] - tol) & (he <= hi[b] + tol)
        inside += int(ok.sum())
        d_last = scale.depths[-1]
        positive = he > 0
        lower_rai = int(np.sum(rai[positive] < he[positive]))
        if he[-1] > 0.9:
            trend = f"He rises to {he[-1]:.2f} at depth {d_last}, on its way to 1"
        else:
            trend = (
                f"He is still {he[-1]:.2f} at depth {d_last}: the limit 1 needs far deeper "
                f"nets at this width (upper bound {hi[b, -1]:.2f})"
            )
        if positive.any():
            rai_text = (
                f"RAI is lower at {lower_rai} of the {int(positive.sum())} depths where He "
                f"nets die ({rai[-1]:.2f} at depth {d_last})"
            )
        else:
            rai_text = f"no He net died in {n} draws, nor did RAI ({rai[-1]:.2f})"
        verdict = f"{trend}; {rai_text}."
        rows.append(
            [
                width,
                f"{he[0]:.3f} / {rai[0]:.3f}",
                f"{he[len(he) // 2]:.3f} / {rai[len(rai) // 2]:.3f}",
                f"{he[-1]:.3f} / {rai[-1]:.3f}",
                f"[{lo[b, -1]:.3f}, {hi[b, -1]:.3f}]",
                f"{int(ok.sum())}/{len(he)}",
                verdict,
            ]
        )
    checks["he_within_bounds"] = f"{inside}/{prob[0].size}"
    he_dies = prob[0] > 0
    checks["rai_lower_fraction"] = (
        float(np.mean(prob[1][he_dies] < prob[0][he_dies])) if he_dies.any() else math.nan
    )
    checks["rai_lower_or_equal_fraction"] = float(np.mean(prob[1] <= prob[0]))
    return rows, checks


def _figure(out, scale: Scale, res: dict[str, np.ndarray]) -> str:
    plt = _common.pyplot()
    fig, ax = plt.subplots(figsize=(7, 4.5))
    depths = np.asarray(scale.depths)
    colors = plt.cm.viridis(np.linspace(0, 0.9, len(scale.widths)))
    for b, width in enumerate(scale.widths):
        c = colors[b]
        ax.fill_between(depths, res["lower"][b], res["upper"][b], color=c, alpha=0.15, lw=0)
        ax.plot(depths, res["probability"][0, b], "-o", ms=3, color=c, label=f"width {width}, He")
        ax.plot(depths, res["probability"][1, b], "--s", ms=3, color=c, label=f"width {width}, RAI")
    ax.set_xlabel("depth (hidden layers)")
    ax.set_ylabel("P(born dead)")
    ax.set_title(
        f"Born-dead probability, {scale.n_trials} nets per point "
        "(band: exact bounds for He, zero bias)",
        fontsize=9,
    )
    ax.set_ylim(-0.02, 1.02)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7, ncol=2)
    fig.tight_layout()
    fig.savefig(out / "born_dead_vs_depth.png", dpi=120)
    plt.close(fig)
    return "born_dead_vs_depth.png"


def main(argv: Sequence[str] | None = None) -> dict:
    """Runs the experiment; returns the payload written to ``results.json``."""
    started = time.time()
    args = _common.parse_args(
        NAME, (__doc__ or "").splitlines()[0], argv, run_time="about 1 minute"
    )
    scale = SCALES[args.scale]
    print(
        f"[{NAME}] {len(INITS)} inits x {len(scale.widths)} widths x {len(scale.depths)} "
        f"depths, {scale.n_trials} nets each"
    )
    res = estimate(scale, args.seed)
    rows, checks = _rows(scale, res)
    figure = _figure(args.out, scale, res)
    payload = {
        "sizes": dataclasses.asdict(scale),
        "inits": list(INITS),
        "probability": {
            init: {str(w): res["probability"][a, b] for b, w in enumerate(scale.widths)}
            for a, init in enumerate(INITS)
        },
        "bounds": {
            str(w): {"lower": res["lower"][b], "upper": res["upper"][b]}
            for b, w in enumerate(scale.widths)
        },
        "checks": checks,
        "figures": [figure],
    }
    _common.write_results(args, payload, started=started)
    d = scale.depths
    text = "\n\n".join(
        [
            f"# {NAME}: P(born dead) vs depth ({args.scale} scale)",
            f"Fully connected ReLU nets with one input on [-sqrt(3), sqrt(3)], depth hidden "
            f"layers of the given width, freshly initialized; a net is born dead when some "
            f"hidden layer is zero on {scale.n_points} grid points of the input interval "
            f"(relujax.analysis.born_dead_probability, {scale.n_trials} nets per point). "
            "He = He normal, zero bias; RAI = randomized asymmetric initialization "
            "(Lu et al. 2020). Bounds: exact, for He (see the module docstring).",
            _common.markdown_table(
                (
                    "width",
                    f"depth {d[0]}: He / RAI",
                    f"depth {d[len(d) // 2]}: He / RAI",
                    f"depth {d[-1]}: He / RAI",
                    f"He bounds at depth {d[-1]}",
                    "He within bounds",
                    "finding",
                ),
                rows,
            ),
            f"He estimates within the exact bounds (3 standard errors): "
            f"{checks['he_within_bounds']}. RAI below He at "
            f"{checks['rai_lower_fraction']:.0%} of the (width, depth) points where He nets "
            f"die, never above at {checks['rai_lower_or_equal_fraction']:.0%} of all points.",
            f"Figure: {figure}. Wall time {time.time() - started:.0f} s.",
        ]
    )
    _common.write_summary(args, text)
    return payload


if __name__ == "__main__":
    _common.cli(main, NAME, resumes=False)
