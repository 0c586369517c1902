"""Entry points for the `neuralcollapse probe` tests (``tests.integrations.factories:...``)."""

import torch
from torch import nn


def digits_mlp() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(
        nn.Flatten(), nn.Linear(64, 32), nn.ReLU(), nn.Linear(32, 16), nn.ReLU(), nn.Linear(16, 10)
    )


def not_a_model():
    return "not a model"


#: a module instance, not a factory: probe uses it as it is
digits_mlp_instance = digits_mlp()


class NeedsArguments(nn.Module):
    """A model class whose constructor needs arguments: not a factory."""

    def __init__(self, width: int) -> None:
        super().__init__()
        self.fc = nn.Linear(64, width)


def other_architecture() -> nn.Module:
    """A model whose parameter shapes differ from digits_mlp's."""
    return nn.Sequential(nn.Flatten(), nn.Linear(64, 8), nn.ReLU(), nn.Linear(8, 10))


def regressor() -> nn.Module:
    torch.manual_seed(1)
    return nn.Sequential(nn.Linear(5, 12), nn.ReLU(), nn.Linear(12, 6), nn.ReLU(), nn.Linear(6, 2))


def regression_batches():
    """(inputs, float targets (B, 2)) batches for `probe --regression --data`."""
    generator = torch.Generator().manual_seed(2)
    inputs = torch.randn(96, 5, generator=generator)
    targets = torch.stack([inputs[:, 0] - inputs[:, 1], 0.5 * inputs[:, 2]], dim=1)
    return [(inputs[i : i + 32], targets[i : i + 32]) for i in range(0, 96, 32)]
