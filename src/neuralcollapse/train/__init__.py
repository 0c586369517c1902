"""Terminal-phase training of real networks with neural-collapse tracking.

- :mod:`~neuralcollapse.train.data`: datasets by name (digits, mnist5k, fashion-mnist, and
  torchvision's when installed), class-balanced subsampling, normalisation;
- :mod:`~neuralcollapse.train.nets`: MLP, small CNN, VGG, ResNet exposing penultimate
  features before and after the final ReLU and named intermediate layers;
- :mod:`~neuralcollapse.train.probe`: feature capture at chosen layers;
- :mod:`~neuralcollapse.train.loop`: the training loop with NC tracking, checkpoint/resume
  and torch.distributed (torchrun);
- :mod:`~neuralcollapse.train.config`: the flat configuration and its TOML/JSON files.
"""

from typing import TYPE_CHECKING

from neuralcollapse.lazy import lazy_exports

__all__ = [
    "ARCHITECTURES",
    "DATASETS",
    "CollapseNet",
    "Dataset",
    "FeatureProbe",
    "TrainConfig",
    "TrainResult",
    "TrainingDiverged",
    "balanced_subset",
    "build_config",
    "build_net",
    "load_dataset",
    "read_idx",
    "tracking_epochs",
    "train",
    "write_idx",
]

#: export -> the module that defines it
_EXPORTS = {
    "TrainConfig": "neuralcollapse.train.config",
    "build_config": "neuralcollapse.train.config",
    "DATASETS": "neuralcollapse.train.data",
    "Dataset": "neuralcollapse.train.data",
    "balanced_subset": "neuralcollapse.train.data",
    "load_dataset": "neuralcollapse.train.data",
    "read_idx": "neuralcollapse.train.idx",
    "write_idx": "neuralcollapse.train.idx",
    "TrainingDiverged": "neuralcollapse.train.loop",
    "TrainResult": "neuralcollapse.train.loop",
    "tracking_epochs": "neuralcollapse.train.loop",
    "train": "neuralcollapse.train.loop",
    "ARCHITECTURES": "neuralcollapse.train.nets",
    "CollapseNet": "neuralcollapse.train.nets",
    "build_net": "neuralcollapse.train.nets",
    "FeatureProbe": "neuralcollapse.train.probe",
}


if TYPE_CHECKING:  # the lazy exports, visible to type checkers and IDEs
    from neuralcollapse.train.config import TrainConfig, build_config
    from neuralcollapse.train.data import DATASETS, Dataset, balanced_subset, load_dataset
    from neuralcollapse.train.idx import read_idx, write_idx
    from neuralcollapse.train.loop import TrainingDiverged, TrainResult, tracking_epochs, train
    from neuralcollapse.train.nets import ARCHITECTURES, CollapseNet, build_net
    from neuralcollapse.train.probe import FeatureProbe


__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS, globals())
