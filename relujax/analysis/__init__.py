"""Per-unit activity statistics and a dead-unit diagnosis of a user's unmodified model.

:func:`collect` traces a model once, finds its activation sites (calls of relujax's
activations, jax.nn's ReLU family and their Flax re-exports, or :func:`tag`-ged arrays), and
reduces each site to per-unit :class:`UnitStats` inside the same jitted forward pass, over any
number of batches. :func:`with_stats` does the same for one call inside a user's own train
step. :func:`diagnose` turns statistics into a :class:`Report` (dead, dormant, rarely firing
and always-active units, per site and overall); :func:`dormancy_score` and :func:`dormant`
are ReDo's score and threshold, the one definition that the sweeps and remedies share.
:func:`with_site_grads` measures the loss gradient reaching each unit's pre-activation
(:func:`gradient_dormant`: dead in the gradient sense) and :func:`with_saturation` how often
units of bounded activations sit flat at a bound. :func:`born_dead_probability` estimates
how often a freshly initialized ReLU net is a constant function.
"""

from relujax.analysis._born_dead import born_dead_probability as born_dead_probability
from relujax.analysis._capture import JAX_NN_ACTIVATIONS as JAX_NN_ACTIVATIONS
from relujax.analysis._capture import Site as Site
from relujax.analysis._capture import default_activations as default_activations
from relujax.analysis._collect import collect as collect
from relujax.analysis._collect import features as features
from relujax.analysis._collect import find_sites as find_sites
from relujax.analysis._collect import with_stats as with_stats
from relujax.analysis._count import Count as Count
from relujax.analysis._diagnose import DEFAULT_TAUS as DEFAULT_TAUS
from relujax.analysis._diagnose import diagnose as diagnose
from relujax.analysis._dormancy import dormancy_score as dormancy_score
from relujax.analysis._dormancy import dormant as dormant
from relujax.analysis._grads import GradStats as GradStats
from relujax.analysis._grads import gradient_dormant as gradient_dormant
from relujax.analysis._grads import gradient_dormant_fraction as gradient_dormant_fraction
from relujax.analysis._grads import with_site_grads as with_site_grads
from relujax.analysis._io import load_stats as load_stats
from relujax.analysis._io import save_stats as save_stats
from relujax.analysis._model_stats import ModelStats as ModelStats
from relujax.analysis._plots import firing_rate_histograms as firing_rate_histograms
from relujax.analysis._plots import plot_dead as plot_dead
from relujax.analysis._plots import plot_firing_heatmap as plot_firing_heatmap
from relujax.analysis._plots import plot_firing_rates as plot_firing_rates
from relujax.analysis._rank import approximate_rank as approximate_rank
from relujax.analysis._rank import effective_rank as effective_rank
from relujax.analysis._report import Report as Report
from relujax.analysis._report import SiteReport as SiteReport
from relujax.analysis._saturation import SATURATION as SATURATION
from relujax.analysis._saturation import SaturationStats as SaturationStats
from relujax.analysis._saturation import always_saturated_fraction as always_saturated_fraction
from relujax.analysis._saturation import saturated_fraction as saturated_fraction
from relujax.analysis._saturation import with_saturation as with_saturation
from relujax.analysis._stats import UnitStats as UnitStats
from relujax.analysis._tag import tag as tag

__all__ = [
    "DEFAULT_TAUS",
    "JAX_NN_ACTIVATIONS",
    "SATURATION",
    "Count",
    "GradStats",
    "ModelStats",
    "Report",
    "SaturationStats",
    "Site",
    "SiteReport",
    "UnitStats",
    "always_saturated_fraction",
    "approximate_rank",
    "born_dead_probability",
    "collect",
    "default_activations",
    "diagnose",
    "dormancy_score",
    "dormant",
    "effective_rank",
    "features",
    "find_sites",
    "firing_rate_histograms",
    "gradient_dormant",
    "gradient_dormant_fraction",
    "load_stats",
    "plot_dead",
    "plot_firing_heatmap",
    "plot_firing_rates",
    "saturated_fraction",
    "save_stats",
    "tag",
    "with_saturation",
    "with_site_grads",
    "with_stats",
]
