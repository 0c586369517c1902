"""Neural collapse in any PyTorch model and in the training loops people already use.

- :func:`measure_model`: metrics at named layers of any ``nn.Module`` (forward hooks, two
  streaming passes, no feature matrix held);
- :class:`CollapseTracker`: called once per epoch in a hand-written loop, it appends to a
  run directory in the format ``neuralcollapse train`` writes (so ``neuralcollapse report``
  reads it);
- ``neuralcollapse.integrations.lightning.NeuralCollapseCallback`` and
  ``neuralcollapse.integrations.huggingface.NeuralCollapseCallback``: the same inside a
  PyTorch Lightning ``Trainer`` or a Hugging Face ``Trainer`` (optional extras
  ``lightning`` / ``transformers``; imported only from those modules);
- :class:`CollapseMetric`: a ``torchmetrics.Metric`` (``update(features, labels)``,
  ``compute()``, ``reset()``, DDP sync through torchmetrics) with one-pass statistics.

docs/integrations.md has a runnable example of each.
"""

from typing import TYPE_CHECKING

from neuralcollapse.lazy import lazy_exports

__all__ = [
    "IGNORE_INDEX",
    "CollapseMetric",
    "CollapseTracker",
    "ModelBatch",
    "ModelCollapse",
    "RegressionResults",
    "measure_model",
    "measure_regression",
    "split_batch",
]

#: export -> the module that defines it
_EXPORTS = {
    "CollapseMetric": "neuralcollapse.integrations.collapse_metric",
    "ModelBatch": "neuralcollapse.metrics.capture",
    "split_batch": "neuralcollapse.metrics.capture",
    "IGNORE_INDEX": "neuralcollapse.metrics.capture",
    "ModelCollapse": "neuralcollapse.integrations.model_metrics",
    "measure_model": "neuralcollapse.integrations.model_metrics",
    "RegressionResults": "neuralcollapse.integrations.regression",
    "measure_regression": "neuralcollapse.integrations.regression",
    "CollapseTracker": "neuralcollapse.integrations.tracker",
}


if TYPE_CHECKING:  # the lazy exports, visible to type checkers and IDEs
    from neuralcollapse.integrations.collapse_metric import CollapseMetric
    from neuralcollapse.integrations.model_metrics import ModelCollapse, measure_model
    from neuralcollapse.integrations.regression import RegressionResults, measure_regression
    from neuralcollapse.integrations.tracker import CollapseTracker
    from neuralcollapse.metrics.capture import IGNORE_INDEX, ModelBatch, split_batch


__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS, globals())
