"""AGOP per linear layer, the neural feature ansatz, and Deep RFM."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from neuralcollapse.frontier.agop import (
    deep_rfm,
    feature_ansatz,
    kernel_agop,
    layer_agops,
    matrix_correlation,
)
from neuralcollapse.metrics import measure


def test_agop_of_a_linear_model_is_its_gram():
    model = nn.Linear(5, 3).double()
    x = torch.randn(20, 5, dtype=torch.float64)
    (result,) = layer_agops(model, x).values()
    w = model.weight.detach()
    torch.testing.assert_close(result, w.T @ w)


def test_agop_of_two_linear_layers_in_closed_form():
    model = nn.Sequential(nn.Linear(4, 6), nn.Linear(6, 2)).double()
    w1, w2 = model[0].weight.detach(), model[1].weight.detach()
    result = layer_agops(model, torch.randn(9, 4, dtype=torch.float64))
    torch.testing.assert_close(result["0"], w1.T @ w2.T @ w2 @ w1)
    torch.testing.assert_close(result["1"], w2.T @ w2)


def test_agop_of_a_relu_network_against_numpy_jacobians_and_batching():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(5, 7), nn.ReLU(), nn.Linear(7, 3)).double()
    x = torch.randn(30, 5, dtype=torch.float64)
    streamed = layer_agops(model, [(x[:11], None), (x[11:], None)])
    w1, w2 = model[0].weight.detach().numpy(), model[2].weight.detach().numpy()
    b1 = model[0].bias.detach().numpy()
    first, second = np.zeros((5, 5)), np.zeros((7, 7))
    for xi in x.numpy():
        mask = (w1 @ xi + b1 > 0).astype(float)
        jac_input = w2 @ (mask[:, None] * w1)  # d f / d x
        first += jac_input.T @ jac_input
        second += w2.T @ w2  # layer 2's input is the ReLU output: d f / d it = W2
    np.testing.assert_allclose(streamed["0"].numpy(), first / 30, atol=1e-12)
    np.testing.assert_allclose(streamed["2"].numpy(), second / 30, atol=1e-12)


def test_ansatz_correlation_is_invariant_to_scaling_and_one_at_the_last_layer():
    torch.manual_seed(1)
    model = nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 3))
    x = torch.randn(25, 4)
    before = feature_ansatz(model, x)
    with torch.no_grad():
        model[2].weight.mul_(3.0)  # scales both W_2^T W_2 and every AGOP by 9
    after = feature_ansatz(model, x)
    for a, b in zip(before, after, strict=True):
        assert a.correlation == pytest.approx(b.correlation, abs=1e-6)
        assert a.correlation_sqrt == pytest.approx(b.correlation_sqrt, abs=1e-6)
    assert after[-1].correlation == pytest.approx(1.0, abs=1e-6)  # last layer: AGOP = W^T W
    a, b = torch.randn(5, 5, dtype=torch.float64), torch.randn(5, 5, dtype=torch.float64)
    assert matrix_correlation(2.5 * a, b) == pytest.approx(matrix_correlation(a, b))
    assert matrix_correlation(a, 4 * a) == pytest.approx(1.0)


def test_agop_leaves_the_model_as_it_was():
    model = nn.Sequential(nn.Linear(3, 4), nn.BatchNorm1d(4), nn.Linear(4, 2))
    model.train()
    state = {k: v.clone() for k, v in model.state_dict().items()}
    layer_agops(model, torch.randn(6, 3))
    assert model.training
    assert all(torch.equal(state[k], v) for k, v in model.state_dict().items())
    assert not model[0]._forward_pre_hooks


def test_a_frozen_submodule_stays_frozen():
    """A training model with a frozen BatchNorm: the AGOP gives each submodule its own mode
    back (model.train(was_training) would unfreeze the BatchNorm), also when it raises."""
    model = nn.Sequential(nn.Linear(3, 4), nn.BatchNorm1d(4), nn.Linear(4, 2))
    model.train()
    model[1].eval()
    feature_ansatz(model, torch.randn(6, 3))
    assert model.training and model[0].training and not model[1].training
    with pytest.raises(ValueError, match="non-empty"):
        layer_agops(model, [torch.randn(0, 3)])
    assert model.training and not model[1].training


def test_kernel_agop_against_autograd():
    generator = torch.Generator().manual_seed(2)
    x = torch.randn(15, 3, generator=generator, dtype=torch.float64)
    alpha = torch.randn(15, 2, generator=generator, dtype=torch.float64)
    bandwidth = 1.3

    def predictor(z):
        kernel = torch.exp(-((x - z) ** 2).sum(1) / (2 * bandwidth**2))
        return kernel @ alpha

    reference = torch.zeros(3, 3, dtype=torch.float64)
    for z in x:
        jac = torch.autograd.functional.jacobian(predictor, z)
        reference += jac.T @ jac
    torch.testing.assert_close(kernel_agop(x, alpha, bandwidth), reference / 15)


def test_deep_rfm_layer_is_the_agop_transform_of_the_previous_one():
    """Layer l+1's NC1 is that of X_l M_l^{1/2} (linear map), computed independently."""
    rng = np.random.default_rng(0)
    centres = rng.standard_normal((3, 5)) * 2
    labels = np.repeat(np.arange(3), 20)
    features = centres[labels] + rng.standard_normal((60, 5))
    layers = deep_rfm(features, labels, depth=2, activation="linear")
    assert len(layers) == 3
    values, vectors = np.linalg.eigh(layers[0].agop.numpy())
    root = vectors @ np.diag(np.sqrt(np.clip(values, 0, None))) @ vectors.T
    expected = measure(features @ root, labels).nc1
    assert layers[1].nc1 == pytest.approx(expected, rel=1e-8)
    assert layers[0].nc1 == pytest.approx(measure(features, labels).nc1, rel=1e-12)
    # the AGOP is symmetric positive semidefinite
    assert values.min() > -1e-12


def test_bad_input_names_the_problem():
    with pytest.raises(ValueError, match="no nn.Linear"):
        layer_agops(nn.ReLU(), torch.randn(3, 2))
    with pytest.raises(ValueError, match="not nn.Linear submodules"):
        layer_agops(nn.Sequential(nn.Linear(2, 2)), torch.randn(3, 2), layers=["7"])
    with pytest.raises(TypeError, match="torch.nn.Module"):
        layer_agops("model", torch.randn(3, 2))
    with pytest.raises(ValueError, match="activation must be"):
        deep_rfm(np.random.default_rng(0).random((10, 2)), np.arange(10) % 2, activation="tanh")
    with pytest.raises(ValueError, match="different shapes"):
        matrix_correlation(torch.eye(2), torch.eye(3))
