"""neuralcollapse: measure, simulate and explain neural collapse.

Papyan, Han & Donoho (PNAS 2020) observed that deep classifiers trained past zero
training error show *neural collapse*; Tirer & Bruna (ICML 2022) explain it with the
(extended) unconstrained features model. This package provides

- :mod:`neuralcollapse.metrics`: NC1-NC4 and related measures, streaming and mergeable;
- :mod:`neuralcollapse.ufm`: unconstrained features models, closed forms and solvers;
- :mod:`neuralcollapse.train`: terminal-phase training with NC tracking;
- :mod:`neuralcollapse.ntk`: residual vs MLP neural tangent kernels;
- :mod:`neuralcollapse.viz`: figures and the HTML report;
- :mod:`neuralcollapse.integrations`: ``measure_model`` for any ``nn.Module``, a tracker for
  hand-written loops, Lightning and Hugging Face callbacks.
"""

from typing import TYPE_CHECKING

from neuralcollapse.lazy import lazy_exports

__all__ = [
    "ClassStats",
    "CollapseMetrics",
    "measure",
    "measure_batches",
    "measure_model",
    "__version__",
]
__version__ = "0.1.0"


#: where each top-level name lives; imported on first use, so that `neuralcollapse --help`
#: and `import neuralcollapse.schema` do not pay for torch
_EXPORTS = {
    "ClassStats": "neuralcollapse.metrics",
    "CollapseMetrics": "neuralcollapse.metrics",
    "measure": "neuralcollapse.metrics",
    "measure_batches": "neuralcollapse.metrics",
    "measure_model": "neuralcollapse.integrations",
}


if TYPE_CHECKING:  # the lazy exports, visible to type checkers and IDEs
    from neuralcollapse.integrations import measure_model
    from neuralcollapse.metrics import ClassStats, CollapseMetrics, measure, measure_batches


__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS, globals())
