"""neuralcollapse: measure, simulate and explain neural collapse.

Papyan, Han & Donoho (PNAS 2020) observed that deep classifiers trained past zero
training error show *neural collapse*; Tirer & Bruna (ICML 2022) explain it with the
(extended) unconstrained features model. This package provides

- :mod:`neuralcollapse.metrics`: NC1-NC4 and related measures, streaming and mergeable;
- :mod:`neuralcollapse.ufm`: unconstrained features models, closed forms and solvers;
- :mod:`neuralcollapse.train`: terminal-phase training with NC tracking;
- :mod:`neuralcollapse.ntk`: residual vs MLP neural tangent kernels;
- :mod:`neuralcollapse.viz`: figures and the HTML report.
"""

from neuralcollapse.metrics import ClassStats, CollapseMetrics, measure, measure_batches

__all__ = ["ClassStats", "CollapseMetrics", "measure", "measure_batches", "__version__"]
__version__ = "0.1.0"
