"""Tables, findings, figures and docs block of ``experiments.initialization``.

:func:`shallow_rows` and :func:`deep_rows` turn the two parts' sweeps into table rows (mean
over seeds with a 95% t-interval, and a finding in words) and per-initializer summaries;
:func:`draw` draws the three figures; :func:`readme_block` renders the docs' block from
``summary.json`` alone, so ``python -m experiments.render_readme`` can regenerate it.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import TYPE_CHECKING

import numpy as np

from experiments import _common, _figures, _stats, _sweeps
from experiments._stats import Interval

if TYPE_CHECKING:
    from experiments.initialization import Scale

LN10 = math.log(10.0)


def _iv(values: np.ndarray, *, fraction: bool = True) -> Interval:
    """Mean over seeds and its 95% t-interval."""
    return _stats.t_interval(values, within=(0, 1) if fraction else None)


def shallow_rows(arms, res, hidden, inits: Sequence[str]) -> tuple[list[list], dict[str, dict]]:
    """Part 1's table rows and per-initializer summary, one row per label of ``inits``.

    Dead fractions at init and after training and the final test accuracy, each as the mean
    over seeds with its 95% t-interval, and a finding in words against He normal's accuracy.
    """
    dead = _sweeps.unit_fraction(res["dead"], hidden)  # [K, E]
    labels = np.array([a.label for a in arms])
    he = labels == "He normal"
    he_acc = _iv(res["test_accuracy"][he, -1]).mean
    rows, per = [], {}
    for label in inits:
        sel = labels == label
        d0 = _iv(dead[sel, 0])
        d1 = _iv(dead[sel, -1])
        acc = _iv(res["test_accuracy"][sel, -1])
        per_layer0 = np.nanmean(res["dead"][sel, 0], axis=0)
        per[label] = {
            "dead_init": d0.to_dict(),
            "dead_final": d1.to_dict(),
            "accuracy": acc.to_dict(),
            "dead_init_per_layer": per_layer0,
        }
        if d0.mean > 0.02:
            born = f"kills {d0.mean:.1%} of the units before any training step"
            if per_layer0[-1] > per_layer0[0] + 0.05:
                born += " (more in deeper layers)"
        else:
            born = f"kills almost no unit at initialization ({d0.mean:.1%})"
        if d1.mean > d0.mean + 0.02:
            train = f"training kills more ({d1.mean:.1%})"
        elif d1.mean < d0.mean - 0.02:
            train = f"training revives some ({d1.mean:.1%} left)"
        else:
            train = f"training leaves it at {d1.mean:.1%}"
        if acc.mean < he_acc - 0.05:
            outcome = f"and accuracy falls short of He's ({acc.mean:.3f} vs {he_acc:.3f})"
        else:
            outcome = f"with accuracy on par with He's ({acc.mean:.3f} vs {he_acc:.3f})"
        rows.append(
            [
                label,
                d0.pct(),
                d1.pct(),
                acc.num(),
                f"It {born}; {train}, {outcome}.",
            ]
        )
    return rows, per


def deep_rows(arms, res, scale: Scale) -> tuple[list[list], dict[str, dict]]:
    """Part 2's table rows and summary, He vs Xavier on the plain deep net.

    A seed *stalls* when its final test loss is above ln 10 - 0.05 (ln 10: chance on 10
    classes) and its lowest test loss is less than 0.05 below the first evaluation's.
    """
    hidden = (scale.deep_width,) * scale.deep_depth
    dead = _sweeps.unit_fraction(res["dead"], hidden)
    labels = np.array([a.label for a in arms])
    rows, per = [], {}
    for label in ("He normal", "Xavier normal"):
        sel = labels == label
        loss = _iv(res["test_loss"][sel, -1], fraction=False)
        acc = _iv(res["test_accuracy"][sel, -1])
        curves = res["test_loss"][sel]  # [seeds, E]
        moved = curves[:, 0] - np.nanmin(curves, axis=1)
        stalled_seeds = (curves[:, -1] > LN10 - 0.05) & (moved < 0.05)
        n_stalled, n = int(stalled_seeds.sum()), int(sel.sum())
        stalled = n_stalled == n
        d0, d1 = _iv(dead[sel, 0]), _iv(dead[sel, -1])
        per[label] = {
            "loss": loss.to_dict(),
            "accuracy": acc.to_dict(),
            "stalled_seeds": n_stalled,
            "seeds": n,
        }
        if stalled:
            verdict = (
                f"Stalls in every seed: the test loss stays at ln 10 = {LN10:.2f} (chance) for "
                f"{scale.deep_steps} steps, as He et al. report for Xavier."
            )
        elif n_stalled:
            verdict = (
                f"Stalls at ln 10 = {LN10:.2f} (chance) in {n_stalled} of {n} seeds and trains "
                "in the others."
            )
        else:
            verdict = f"Trains in every seed: the test loss falls to {loss.mean:.2f}."
        rows.append(
            [
                label,
                loss.num(),
                acc.num(),
                d0.pct(),
                d1.pct(),
                verdict,
            ]
        )
    return rows, per


def draw(out, scale: Scale, shallow, deep, inits: Sequence[str]) -> list[str]:
    """Draws the three figures into ``out``; returns their file names."""
    plt = _common.pyplot()
    arms, res = shallow
    labels = np.array([a.label for a in arms])
    dead = _sweeps.unit_fraction(res["dead"], scale.hidden)
    names = list(inits)
    x = np.arange(len(names))
    fig, ax = plt.subplots(figsize=(8, 4))
    for offset, (e, what) in zip(
        (-0.2, 0.2), ((0, "at init"), (-1, "after training")), strict=True
    ):
        ivs = [_iv(dead[labels == n, e]) for n in names]
        means = np.asarray([iv.mean for iv in ivs])
        err = np.nan_to_num(np.asarray([[iv.mean - iv.lo, iv.hi - iv.mean] for iv in ivs]).T)
        ax.bar(x + offset, 100 * means, 0.4, yerr=100 * err, capsize=3, label=what)
    ax.set_xticks(x, names, rotation=20, ha="right", fontsize=8)
    ax.set_ylabel("dead hidden units (%, 95% interval)")
    ax.set_title(f"ReLU MLP {scale.hidden}, MNIST-1D, SGD+momentum, {scale.steps} steps")
    ax.legend()
    ax.grid(axis="y", alpha=0.3)
    fig.tight_layout()
    fig.savefig(out / "dead_by_init.png", dpi=120)
    plt.close(fig)

    fig, ax = plt.subplots(figsize=(7, 4))
    series = {}
    for n in names:
        acc = res["test_accuracy"][labels == n]
        ivs = [_iv(acc[:, e]) for e in range(acc.shape[1])]
        series[n] = tuple(np.array([getattr(iv, k) for iv in ivs]) for k in ("mean", "lo", "hi"))
    _figures.curves(ax, res["steps"], series)
    ax.set_xlabel("step")
    ax.set_ylabel("test accuracy")
    ax.grid(alpha=0.3)
    _figures.legend_right(fig, ax, title=f"mean, 95% band, {len(scale.seeds)} seeds")
    _figures.save(fig, out / "accuracy_by_init.png")

    arms_d, res_d = deep
    labels_d = np.array([a.label for a in arms_d])
    fig, axes = plt.subplots(1, 2, figsize=(10, 4))
    for i, (n, color) in enumerate((("He normal", "C0"), ("Xavier normal", "C3"))):
        sel = labels_d == n
        for j, k in enumerate(np.flatnonzero(sel)):  # every seed: stalls show one by one
            kw = _figures.style(i, len(res_d["steps"])) | {"color": color, "alpha": 0.8}
            axes[0].plot(res_d["steps"], res_d["test_loss"][k], label=n if j == 0 else None, **kw)
        acc = res_d["test_accuracy"][sel]
        ivs = [_iv(acc[:, e]) for e in range(acc.shape[1])]
        mean, lo, hi = (np.array([getattr(iv, a) for iv in ivs]) for a in ("mean", "lo", "hi"))
        axes[1].plot(
            res_d["steps"], mean, label=n, **_figures.style(i, len(mean)) | {"color": color}
        )
        axes[1].fill_between(res_d["steps"], lo, hi, color=color, alpha=0.12, lw=0)
    axes[0].axhline(LN10, color="gray", ls=":", label="ln 10 (chance)")
    axes[0].set_ylabel("test loss (each seed)")
    axes[1].set_ylabel("test accuracy (mean, 95% band)")
    for ax in axes:
        ax.set_xlabel("step")
        ax.grid(alpha=0.3)
    _figures.legend_right(fig, axes[1])
    axes[0].legend(fontsize=8)
    fig.suptitle(
        f"Plain {scale.deep_depth}-layer ReLU MLP (width {scale.deep_width}), SGD+momentum"
    )
    fig.tight_layout()
    _figures.save(fig, out / "deep_plain_net.png")
    return ["dead_by_init.png", "accuracy_by_init.png", "deep_plain_net.png"]


def readme_block(summary: dict) -> str:
    """The docs' generated block: both parts' settings and tables, from the summary."""
    sz = summary["sizes"]
    return "\n\n".join(
        [
            f"Part 1: ReLU MLP {tuple(sz['hidden'])} on MNIST-1D, SGD + momentum 0.9, lr "
            f"{sz['lr']:g}, batch {sz['batch_size']}, {sz['steps']} steps, {len(sz['seeds'])} "
            "seeds: mean [95% t-interval over seeds]. Dead = pre-activation never positive on "
            "1024 training examples, as a fraction of all hidden units.",
            _common.markdown_table(
                ("init", "dead at init", "dead after training", "test acc", "finding"),
                summary["shallow_rows"],
            ),
            f"Part 2: plain {sz['deep_depth']}-layer ReLU MLP (width {sz['deep_width']}), SGD "
            f"+ momentum 0.9, lr {sz['deep_lr']:g}, {sz['deep_steps']} steps, "
            f"{len(sz['deep_seeds'])} seeds; He et al. (2015): He converges, Xavier stalls.",
            _common.markdown_table(
                ("init", "final test loss", "test acc", "dead at init", "dead after", "finding"),
                summary["deep_rows"],
            ),
        ]
    )
