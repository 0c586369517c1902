"""Shared fixtures for the NTK tests."""

from __future__ import annotations

import pytest
import torch


@pytest.fixture
def random_inputs() -> torch.Tensor:
    """Seven generic inputs in R^4 with different norms (float64)."""
    generator = torch.Generator().manual_seed(1234)
    return torch.randn(7, 4, generator=generator, dtype=torch.float64) * torch.linspace(
        0.5, 2.0, 7, dtype=torch.float64
    ).unsqueeze(1)
