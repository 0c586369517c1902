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
