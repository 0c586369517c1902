"""The ReLU Gaussian moments against Monte Carlo integration."""

from __future__ import annotations

import math

import pytest
import torch

from neuralcollapse.ntk.relu_moments import relu_angle, relu_derivative_moment, relu_moment


@pytest.mark.parametrize(("var_a", "var_b", "correlation"), [(1.0, 1.0, 0.3), (2.0, 0.5, -0.7)])
def test_relu_moments_match_monte_carlo_expectations(var_a, var_b, correlation):
    generator = torch.Generator().manual_seed(0)
    samples = 2_000_000
    cov = correlation * math.sqrt(var_a * var_b)
    chol = torch.linalg.cholesky(torch.tensor([[var_a, cov], [cov, var_b]], dtype=torch.float64))
    pairs = torch.randn(samples, 2, generator=generator, dtype=torch.float64) @ chol.T
    u, v = pairs[:, 0], pairs[:, 1]
    monte_carlo_moment = (torch.relu(u) * torch.relu(v)).mean()
    monte_carlo_derivative = ((u > 0) & (v > 0)).double().mean()
    args = [torch.tensor(value, dtype=torch.float64) for value in (var_a, var_b, cov)]
    # Monte Carlo standard error is about 1e-3 at 2e6 samples
    assert float(relu_moment(*args)) == pytest.approx(float(monte_carlo_moment), abs=4e-3)
    assert float(relu_derivative_moment(*args)) == pytest.approx(
        float(monte_carlo_derivative), abs=2e-3
    )


def test_relu_moments_at_equal_inputs_are_half_variance_and_half():
    var = torch.tensor([0.3, 1.0, 7.0], dtype=torch.float64)
    assert torch.allclose(relu_moment(var, var, var), var / 2)
    assert torch.allclose(relu_derivative_moment(var, var, var), torch.full_like(var, 0.5))


def test_relu_angle_clamps_rounding_beyond_unit_cosine():
    one = torch.tensor(1.0, dtype=torch.float64)
    angle = relu_angle(one, one, torch.tensor(1.0 + 1e-15, dtype=torch.float64))
    assert float(angle) == 0.0
    assert float(relu_moment(one, one, -one)) == pytest.approx(0.0, abs=1e-15)
