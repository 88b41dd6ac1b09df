"""Plots of a report (matplotlib is an optional dependency, imported on first use)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from relujax import _validation
from relujax.analysis._report import Report


def _pyplot() -> Any:
    try:
        import matplotlib.pyplot as plt
    except ImportError as e:  # pragma: no cover - depends on the environment
        raise ImportError("relujax.analysis plots need matplotlib: pip install matplotlib") from e
    return plt


def _axes(ax: Any) -> Any:
    if ax is not None:
        return ax
    return _pyplot().subplots(figsize=(7, 3.5))[1]


def plot_dead(report: Report, *, ax: Any = None) -> Any:
    """Bar chart per site: dead %, dormant % at each tau, and low-firing %.

    Args:
      report: from :func:`diagnose`.
      ax: matplotlib Axes to draw on (a new figure when None).

    Returns:
      The Axes; bar containers are in ``ax.containers`` in legend order (dead, one per tau,
      low firing), heights in percent.

    Examples:
      >>> import matplotlib
      >>> matplotlib.use("Agg")
      >>> import jax, jax.numpy as jnp
      >>> from relujax import analysis
      >>> x = jnp.linspace(-1.0, 1.0, 8).reshape(1, 8, 1)
      >>> rep = analysis.diagnose(analysis.collect(lambda x: jax.nn.relu(x @ jnp.ones((1, 2))), x))
      >>> ax = analysis.plot_dead(rep)
      >>> [float(b.get_height()) for b in ax.containers[0]]  # dead % per site
      [0.0]
    """
    ax = _axes(ax)
    names = list(report.sites)
    series = [("dead", [report[n].dead_fraction for n in names])]
    series += [
        (f"dormant (tau={t:g})", [report[n].dormant_fraction(t) for n in names])
        for t in report.taus
    ]
    series.append((f"firing < {report.low_rate:g}", [report[n].low_firing_fraction for n in names]))
    x = np.arange(len(names))
    width = 0.8 / len(series)
    for i, (label, values) in enumerate(series):
        ax.bar(
            x + (i - (len(series) - 1) / 2) * width, 100 * np.asarray(values), width, label=label
        )
    ax.set_xticks(x, names, rotation=30, ha="right")
    ax.set_ylabel("% of units")
    ax.set_title(f"dead and dormant units ({report.units} units)")
    ax.legend(fontsize="small")
    return ax


def plot_firing_rates(
    report: Report, *, sites: Sequence[str] | None = None, bins: int = 20, ax: Any = None
) -> Any:
    """Histogram of unit firing rates, one stacked colour per site.

    Args:
      report: from :func:`diagnose`.
      sites: sites to include (default: all).
      bins: number of equal bins on [0, 1].
      ax: Axes to draw on (a new figure when None).

    Returns:
      The Axes. Units without finite samples are left out.

    Examples:
      >>> import matplotlib
      >>> matplotlib.use("Agg")
      >>> import jax, jax.numpy as jnp
      >>> from relujax import analysis
      >>> x = jnp.linspace(-1.0, 1.0, 8).reshape(1, 8, 1)
      >>> rep = analysis.diagnose(analysis.collect(lambda x: jax.nn.relu(x @ jnp.ones((1, 2))), x))
      >>> ax = analysis.plot_firing_rates(rep, bins=2)
      >>> [float(p.get_height()) for p in ax.patches]  # both units fire half the time
      [0.0, 2.0]
    """
    ax = _axes(ax)
    names = list(report.sites) if sites is None else list(sites)
    rates = []
    for n in names:
        r = report[n].firing_rate
        rates.append(r[~np.isnan(r)])
    ax.hist(rates, bins=np.linspace(0.0, 1.0, bins + 1), stacked=True, label=names)
    ax.set_xlabel("firing rate")
    ax.set_ylabel("units")
    ax.set_xlim(0.0, 1.0)
    if len(names) > 1:
        ax.legend(fontsize="small")
    return ax


def firing_rate_histograms(reports: Sequence[Report], *, site: str, bins: int = 20) -> np.ndarray:
    """Fraction of a site's units in each firing-rate bin, per report: ``(bins, len(reports))``.

    Args:
      reports: reports over training, in order.
      site: the site to follow.
      bins: number of equal bins on [0, 1] (a rate of exactly 1 goes in the last bin).

    Returns:
      A float array whose column ``t`` sums to 1 (over units with samples) for report ``t``.

    Examples:
      >>> import jax, jax.numpy as jnp
      >>> from relujax import analysis
      >>> x = jnp.linspace(-1.0, 1.0, 8).reshape(1, 8, 1)
      >>> rep = analysis.diagnose(analysis.collect(lambda x: jax.nn.relu(x @ jnp.ones((1, 2))), x))
      >>> analysis.firing_rate_histograms([rep, rep], site="relu_0", bins=2)
      array([[0., 0.],
             [1., 1.]])
    """
    if not reports:
        raise ValueError("reports is empty.")
    bins = _validation.integer("firing_rate_histograms: bins", bins, minimum=1)
    edges = np.linspace(0.0, 1.0, bins + 1)
    out = np.zeros((bins, len(reports)))
    for t, rep in enumerate(reports):
        if site not in rep.sites:
            raise ValueError(f"report {t} has no site {site!r}; its sites are {list(rep)}.")
        r = rep[site].firing_rate
        r = r[~np.isnan(r)]
        counts, _ = np.histogram(r, bins=edges)
        out[:, t] = counts / max(r.size, 1)
    return out


def plot_firing_heatmap(
    reports: Sequence[Report],
    *,
    site: str,
    steps: Sequence[float] | None = None,
    bins: int = 20,
    ax: Any = None,
) -> Any:
    """Per-unit firing-rate distribution of one site over training, as a heatmap.

    Column ``t`` is the histogram of the site's unit firing rates in ``reports[t]`` (the
    fraction of units per bin; :func:`firing_rate_histograms`): fastai's "colorful
    dimension", per unit rather than per activation value. A band collapsing onto rate 0
    is units dying; onto rate 1, units linearizing.

    Args:
      reports: reports over training, in order.
      site: the site to show.
      steps: x-axis values (training steps) of the reports (default 0, 1, ...).
      bins: number of firing-rate bins.
      ax: Axes to draw on (a new figure when None).

    Returns:
      The Axes; the image is ``ax.images[0]`` with the histogram array as data.

    Examples:
      >>> import matplotlib
      >>> matplotlib.use("Agg")
      >>> import jax, jax.numpy as jnp
      >>> from relujax import analysis
      >>> x = jnp.linspace(-1.0, 1.0, 8).reshape(1, 8, 1)
      >>> rep = analysis.diagnose(analysis.collect(lambda x: jax.nn.relu(x @ jnp.ones((1, 2))), x))
      >>> ax = analysis.plot_firing_heatmap([rep, rep, rep], site="relu_0", bins=4)
      >>> ax.images[0].get_array().shape
      (4, 3)
    """
    data = firing_rate_histograms(reports, site=site, bins=bins)
    steps_a = np.arange(len(reports)) if steps is None else np.asarray(steps, float)
    if steps_a.shape != (len(reports),):
        raise ValueError(f"steps must have one value per report ({len(reports)}).")
    ax = _axes(ax)
    lo, hi = (steps_a[0], steps_a[-1]) if len(steps_a) > 1 else (steps_a[0] - 0.5, steps_a[0] + 0.5)
    image = ax.imshow(
        data,
        origin="lower",
        aspect="auto",
        extent=(lo, hi, 0.0, 1.0),
        cmap="viridis",
        vmin=0.0,
        interpolation="nearest",
    )
    ax.figure.colorbar(image, ax=ax, label="fraction of units")
    ax.set_xlabel("step")
    ax.set_ylabel("firing rate")
    ax.set_title(site)
    return ax
