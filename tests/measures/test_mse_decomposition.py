"""Han, Papyan & Donoho's MSE decomposition against least squares solved on the raw features."""

import numpy as np
import pytest
import torch

from neuralcollapse.geometry import simplex_etf
from neuralcollapse.measures import mse_decomposition, mse_decomposition_batches
from neuralcollapse.train.config import TrainConfig
from neuralcollapse.train.loop import per_sample_loss


def _data(seed=0, k=4, d=7, counts=(30, 30, 30, 43)):
    rng = np.random.default_rng(seed)
    labels = np.repeat(np.arange(k), counts)
    features = rng.normal(size=(k, d))[labels] * 2 + rng.normal(size=(labels.size, d))
    return features, labels


def _ridge_solution(features, targets, ridge, fit_bias):
    """Ridge least squares on the raw (N x d) features with numpy (bias unpenalised)."""
    n, d = features.shape
    design = np.hstack([features, np.ones((n, 1))]) if fit_bias else features
    penalty = np.diag([ridge] * d + ([0.0] if fit_bias else []))
    solution = np.linalg.solve(design.T @ design / n + penalty, design.T @ targets / n)
    weights = solution[:d].T
    bias = solution[d] if fit_bias else np.zeros(targets.shape[1])
    return weights, bias


def _loss(features, targets, weights, bias, ridge):
    residual = features @ weights.T + bias - targets
    return 0.5 * np.mean(np.sum(residual**2, axis=1)) + 0.5 * ridge * np.sum(weights**2)


@pytest.mark.parametrize("fit_bias", [True, False])
@pytest.mark.parametrize("ridge", [0.0, 1e-2])
def test_terms_sum_to_the_least_squares_loss(fit_bias, ridge):
    features, labels = _data()
    targets = np.eye(4)[labels]
    w_ls, b_ls = _ridge_solution(features, targets, ridge, fit_bias)
    expected = _loss(features, targets, w_ls, b_ls, ridge)
    result = mse_decomposition(features, labels, ridge=ridge, fit_bias=fit_bias)
    assert result.nc1 + result.nc2_3 + result.ls_perp == pytest.approx(expected, abs=1e-10)
    assert result.loss == pytest.approx(expected, abs=1e-10) and result.ls_perp == 0.0
    # the LS classifier passed explicitly: nothing is left for the third term
    passed = mse_decomposition(
        features, labels, w_ls, b_ls if fit_bias else None, ridge=ridge, fit_bias=fit_bias
    )
    assert abs(passed.ls_perp) < 1e-10
    assert passed.loss == pytest.approx(expected, abs=1e-10)


@pytest.mark.parametrize("fit_bias", [True, False])
def test_terms_sum_to_the_loss_of_any_classifier(fit_bias):
    features, labels = _data(seed=1)
    rng = np.random.default_rng(2)
    weights = 0.3 * rng.normal(size=(4, 7))
    bias = rng.normal(size=4) if fit_bias else None
    scale, smoothing, ridge = 2.0, 0.1, 5e-3
    targets = scale * ((1 - smoothing) * np.eye(4) + smoothing / 4)[labels]
    expected = _loss(features, targets, weights, 0.0 if bias is None else bias, ridge)
    result = mse_decomposition(
        features, labels, weights, bias, ridge=ridge, target_scale=scale, label_smoothing=smoothing
    )
    assert result.fit_bias is fit_bias
    total = result.nc1 + result.nc2_3 + result.ls_perp
    assert total == pytest.approx(expected, abs=1e-10)
    assert result.loss == pytest.approx(expected, abs=1e-10)
    w_ls, b_ls = _ridge_solution(features, targets, ridge, fit_bias)
    assert result.loss_ls == pytest.approx(_loss(features, targets, w_ls, b_ls, ridge), abs=1e-10)
    assert result.ls_perp > 0


def test_loss_is_the_training_harness_mse_loss():
    features, labels = _data(seed=3)
    weights, bias = np.random.default_rng(4).normal(size=(4, 7)), np.zeros(4)
    config = TrainConfig(loss="mse", mse_scale=3.0, label_smoothing=0.2)
    logits = torch.as_tensor(features @ weights.T + bias)
    harness = float(per_sample_loss(logits, torch.as_tensor(labels), config, 4).mean())
    result = mse_decomposition(
        features, labels, weights, bias, target_scale=3.0, label_smoothing=0.2
    )
    assert result.loss == pytest.approx(harness, rel=1e-12)


def test_every_term_vanishes_on_an_exactly_collapsed_configuration():
    k, d, n = 5, 8, 6
    means = 2.0 * simplex_etf(k, d).numpy()
    labels = np.repeat(np.arange(k), n)
    features = means[labels]  # every sample on its class mean: Sigma_W = 0
    # an interpolating classifier: W mu_c + b = e_c for every class
    gram = means @ means.T
    weights = (np.linalg.pinv(gram) @ (np.eye(k) - 1 / k)).T @ means
    bias = np.full(k, 1 / k)
    assert np.allclose(means @ weights.T + bias, np.eye(k), atol=1e-12)
    result = mse_decomposition(features, labels, weights, bias)
    for term in (result.nc1, result.nc2_3, result.ls_perp, result.loss):
        assert abs(term) < 1e-12
    without = mse_decomposition(features, labels)  # the pseudo-inverse route (Sigma_T singular)
    assert abs(without.nc1) < 1e-12 and abs(without.nc2_3) < 1e-12


def test_collapse_with_a_ridge_leaves_only_the_fit_terms():
    k, d = 4, 6
    means = simplex_etf(k, d).numpy()
    labels = np.repeat(np.arange(k), 3)
    result = mse_decomposition(means[labels], labels, ridge=0.1)
    # Sigma_W = 0 but lambda > 0 shrinks the classifier: NC1's term is the penalty alone
    assert result.nc1 > 0 and result.nc2_3 > 0
    assert result.nc1 + result.nc2_3 == pytest.approx(result.loss)


def test_streamed_equals_in_memory():
    features, labels = _data(seed=5)
    tensor = torch.as_tensor(features, dtype=torch.float64)
    batches = lambda: [(tensor[i : i + 20], labels[i : i + 20]) for i in range(0, len(labels), 20)]  # noqa: E731
    weights = np.random.default_rng(6).normal(size=(4, 7))
    streamed = mse_decomposition_batches(
        batches, num_classes=4, weights=weights, ridge=1e-3, batch_size=8
    )
    whole = mse_decomposition(features, labels, weights, ridge=1e-3)
    for key, value in whole.to_dict().items():
        assert streamed.to_dict()[key] == pytest.approx(value, rel=1e-10, abs=1e-14)
    assert set(whole.to_dict(prefix="mse_")) >= {"mse_nc1", "mse_nc2_3", "mse_ls_perp"}


def test_error_messages():
    features, labels = _data()
    with pytest.raises(ValueError, match="ridge \\(lambda\\) must be a finite number >= 0.*use 0"):
        mse_decomposition(features, labels, ridge=-1e-3)
    with pytest.raises(ValueError, match="fit_bias=False"):
        mse_decomposition(features, labels, np.ones((4, 7)), np.ones(4), fit_bias=False)
    with pytest.raises(ValueError, match=r"label_smoothing must be a finite number in \[0, 1\)"):
        mse_decomposition(features, labels, label_smoothing=1.0)
    with pytest.raises(ValueError, match="target_scale must be a finite number > 0"):
        mse_decomposition(features, labels, target_scale=0.0)
    with pytest.raises(ValueError, match="transposed"):
        mse_decomposition(features, labels, np.ones((7, 4)))
