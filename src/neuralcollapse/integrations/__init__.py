"""Neural collapse in any PyTorch model and in the training loops people already use.

- :func:`measure_model`: metrics at named layers of any ``nn.Module`` (forward hooks, two
  streaming passes, no feature matrix held);
- :class:`CollapseTracker`: called once per epoch in a hand-written loop, it appends to a
  run directory in the format ``neuralcollapse train`` writes (so ``neuralcollapse report``
  reads it);
- ``neuralcollapse.integrations.lightning.NeuralCollapseCallback`` and
  ``neuralcollapse.integrations.huggingface.NeuralCollapseCallback``: the same inside a
  PyTorch Lightning ``Trainer`` or a Hugging Face ``Trainer`` (optional extras
  ``lightning`` / ``transformers``; imported only from those modules).

docs/integrations.md has a runnable example of each.
"""

from neuralcollapse.integrations.capture import ModelBatch, split_batch
from neuralcollapse.integrations.features import IGNORE_INDEX
from neuralcollapse.integrations.model_metrics import ModelCollapse, measure_model
from neuralcollapse.integrations.tracker import CollapseTracker

__all__ = [
    "IGNORE_INDEX",
    "CollapseTracker",
    "ModelBatch",
    "ModelCollapse",
    "measure_model",
    "split_batch",
]
