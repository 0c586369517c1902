"""Neural-collapse metrics: NC1-NC4 and related measures, streaming and mergeable.

``measure(features, labels, weights, bias)`` is the one-call front door;
``measure_batches`` takes a stream; :class:`ClassStats` / :class:`CentredStats` are the
mergeable sufficient statistics underneath. Definitions: :mod:`.collapse` and docs/metrics.md.
"""

from typing import TYPE_CHECKING

from neuralcollapse.lazy import lazy_exports

__all__ = [
    "CentredStats",
    "ClassStats",
    "CollapseMetrics",
    "MeanGeometry",
    "compute_metrics",
    "measure",
    "measure_batches",
]

#: export -> the module that defines it
_EXPORTS = {
    "CollapseMetrics": "neuralcollapse.metrics.collapse",
    "compute_metrics": "neuralcollapse.metrics.collapse",
    "measure": "neuralcollapse.metrics.measuring",
    "measure_batches": "neuralcollapse.metrics.measuring",
    "CentredStats": "neuralcollapse.metrics.stats",
    "ClassStats": "neuralcollapse.metrics.stats",
    "MeanGeometry": "neuralcollapse.metrics.stats",
}


if TYPE_CHECKING:  # the lazy exports, visible to type checkers and IDEs
    from neuralcollapse.metrics.collapse import CollapseMetrics, compute_metrics
    from neuralcollapse.metrics.measuring import measure, measure_batches
    from neuralcollapse.metrics.stats import CentredStats, ClassStats, MeanGeometry


__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS, globals())
