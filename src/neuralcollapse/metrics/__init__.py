"""Neural-collapse metrics: NC1-NC4 and related measures, streaming and mergeable.

``measure(features, labels, weights, bias)`` is the one-call front door;
``measure_batches`` takes a stream; :class:`ClassStats` / :class:`CentredStats` are the
mergeable sufficient statistics underneath. Definitions: :mod:`.collapse` and docs/metrics.md.
"""

from neuralcollapse.metrics.collapse import CollapseMetrics, compute_metrics
from neuralcollapse.metrics.measuring import measure, measure_batches
from neuralcollapse.metrics.stats import CentredStats, ClassStats, MeanGeometry

__all__ = [
    "CentredStats",
    "ClassStats",
    "CollapseMetrics",
    "MeanGeometry",
    "compute_metrics",
    "measure",
    "measure_batches",
]
