"""Finite-width networks and their empirical NTK against full Jacobians and the analytic NTK."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from neuralcollapse.ntk.analytic import mlp_ntk, resnet_ntk
from neuralcollapse.ntk.empirical import (
    empirical_ntk,
    empirical_ntk_jacobian,
    ntk_convergence,
    relative_kernel_error,
)
from neuralcollapse.ntk.models import ReLUMLP, ResidualReLUNet, build_network


@pytest.mark.parametrize(
    "network",
    [ReLUMLP(4, 24, 3, seed=0), ResidualReLUNet(4, 24, 3, alpha=0.7, seed=0)],
    ids=["mlp", "resnet"],
)
def test_layerwise_ntk_equals_full_jacobian_ntk(random_inputs, network):
    other = random_inputs[:3] * -0.5
    reference = empirical_ntk_jacobian(network, random_inputs, other)
    layerwise = empirical_ntk(network, random_inputs, other, batch_size=4)
    assert torch.allclose(layerwise, reference, rtol=1e-11, atol=1e-12)
    gram = empirical_ntk(network, random_inputs)
    assert torch.allclose(gram, empirical_ntk_jacobian(network, random_inputs), rtol=1e-11)
    assert torch.allclose(gram, gram.T, rtol=0, atol=1e-12)


def test_layerwise_ntk_matches_parameter_gradients_directly(random_inputs):
    # Theta(x, x') = <grad_p f(x), grad_p f(x')>, with the gradients from plain autograd
    network = ResidualReLUNet(4, 16, 2, alpha=1.3, seed=5)
    grads = []
    for row in random_inputs[:3]:
        network.zero_grad()
        network(row.unsqueeze(0)).sum().backward()
        grads.append(torch.cat([p.grad.flatten() for p in network.parameters()]))
    stacked = torch.stack(grads)
    assert torch.allclose(empirical_ntk(network, random_inputs[:3]), stacked @ stacked.T)


@pytest.mark.parametrize(
    ("architecture", "alpha", "analytic"),
    [
        ("mlp", None, lambda x: mlp_ntk(x, depth=3)),
        ("resnet", 1.0, lambda x: resnet_ntk(x, depth=3, alpha=1.0)),
    ],
)
def test_empirical_ntk_approaches_analytic_as_width_grows(
    random_inputs, architecture, alpha, analytic
):
    points = random_inputs / random_inputs.norm(dim=1, keepdim=True)
    errors = []
    for width in (32, 1024):
        per_seed = []
        for seed in range(3):
            network = build_network(
                architecture, in_dim=4, width=width, depth=3, alpha=alpha, seed=seed
            )
            per_seed.append(relative_kernel_error(empirical_ntk(network, points), analytic(points)))
        errors.append(sum(per_seed) / len(per_seed))
    # fluctuations scale like 1/sqrt(width): 32x the width should cut the error ~5.7x
    assert errors[1] < 0.4 * errors[0]
    assert errors[1] < 0.15


def test_ntk_convergence_reports_one_point_per_width(random_inputs):
    points = ntk_convergence(
        "resnet", random_inputs, depth=2, widths=[16, 64], alpha=0.5, seeds=[0, 1], progress=False
    )
    assert [p.width for p in points] == [16, 64]
    assert all(p.num_seeds == 2 and p.mean_relative_error > 0 for p in points)
    assert points[0].to_dict()["alpha"] == 0.5


def test_networks_are_reproducible_from_seed(random_inputs):
    first = ResidualReLUNet(4, 8, 2, 0.5, seed=3)(random_inputs)
    second = ResidualReLUNet(4, 8, 2, 0.5, seed=3)(random_inputs)
    third = ResidualReLUNet(4, 8, 2, 0.5, seed=4)(random_inputs)
    assert torch.equal(first, second)
    assert not torch.equal(first, third)


def test_zero_alpha_resnet_is_linear_in_the_input(random_inputs):
    network = ResidualReLUNet(4, 32, 3, 0.0, seed=0)
    assert torch.allclose(network(-random_inputs), -network(random_inputs), rtol=1e-12)


# ---- bad input ---------------------------------------------------------------------------


def test_empirical_ntk_rejects_parameters_outside_ntk_linear(random_inputs):
    class Wrapped(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.body = ReLUMLP(4, 8, 1, seed=0)
            self.extra = nn.Parameter(torch.ones(1, dtype=torch.float64))

        def forward(self, x, taps=None):
            return self.body(x, taps) * self.extra

    with pytest.raises(ValueError, match="'extra' does not. Use empirical_ntk_jacobian"):
        empirical_ntk(Wrapped(), random_inputs)


def test_empirical_ntk_rejects_layers_skipped_in_forward(random_inputs):
    class Skips(ReLUMLP):
        def forward(self, x, taps=None):
            return super().forward(x, None if taps is None else [])

    with pytest.raises(ValueError, match="called its NTKLinear layers 0 times for 3 layers"):
        empirical_ntk(Skips(4, 8, 2, seed=0), random_inputs)


def test_empirical_ntk_rejects_mismatched_input_dimension(random_inputs):
    with pytest.raises(ValueError, match="same input dimension"):
        empirical_ntk(ReLUMLP(4, 8, 1, seed=0), random_inputs, random_inputs[:, :2])


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"architecture": "cnn"}, "architecture must be 'mlp' or 'resnet'; got 'cnn'"),
        ({"architecture": "resnet"}, "needs alpha"),
        ({"architecture": "resnet", "alpha": -1.0}, "alpha .*must be a finite number >= 0"),
        ({"architecture": "mlp", "depth": 0}, "depth must be an integer >= 1"),
        ({"architecture": "mlp", "width": 0}, "width must be an integer >= 1"),
    ],
)
def test_build_network_rejects_bad_hyperparameters(kwargs, message):
    settings = {"in_dim": 3, "width": 8, "depth": 2} | kwargs
    with pytest.raises(ValueError, match=message):
        build_network(**settings)


def test_ntk_convergence_rejects_empty_widths(random_inputs):
    with pytest.raises(ValueError, match="widths must list at least one width"):
        ntk_convergence("mlp", random_inputs, depth=2, widths=[], progress=False)


def test_relative_kernel_error_rejects_shape_mismatch():
    with pytest.raises(ValueError, match=r"kernel shapes differ: empirical \(2, 2\) vs analytic"):
        relative_kernel_error(torch.eye(2), torch.eye(3))
