"""The columns the training loop adds beside the NC metrics."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from neuralcollapse.geometry import simplex_etf
from neuralcollapse.schema import NOT_COMPUTED
from neuralcollapse.train.epoch_measures import (
    group_columns,
    minority_columns,
    mse_columns,
    robustness_columns,
)


def test_group_accuracy_is_the_mean_over_each_groups_classes():
    correct = torch.tensor([10, 9, 8, 2, 0])
    counts = torch.tensor([10, 10, 10, 10, 10])
    columns = group_columns(correct, counts, minority_classes=2)
    assert columns["accuracy_majority"] == pytest.approx(0.9)
    assert columns["accuracy_minority"] == pytest.approx(0.1)


def test_minority_cosine_of_an_etf_and_of_merged_minority_rows():
    from neuralcollapse.metrics import ClassStats

    etf = simplex_etf(6, 8, seed=0)
    labels = torch.arange(6).repeat(2)
    stats = ClassStats(6).update(etf[labels], labels)
    columns = minority_columns(etf, stats, minority_classes=3)
    assert columns["minority_cosine_weights"] == pytest.approx(-1 / 5)
    assert columns["minority_cosine_means"] == pytest.approx(-1 / 5)
    merged = etf.clone()
    merged[3:] = merged[3]  # the three minority rows point the same way
    assert minority_columns(merged, stats, 3)["minority_cosine_weights"] == pytest.approx(1.0)


def test_a_vanished_minority_row_is_recorded_not_raised():
    from neuralcollapse.metrics import ClassStats

    weights = simplex_etf(4, 5, seed=1)
    weights[3] = 0
    labels = torch.arange(4).repeat(2)
    stats = ClassStats(4).update(simplex_etf(4, 5, seed=1)[labels], labels)
    columns = minority_columns(weights, stats, 2)
    assert columns["minority_cosine_weights"] is None
    assert "zero row" in columns[NOT_COMPUTED]["minority_cosine_weights"]


def test_mse_columns_sum_to_the_least_squares_loss():
    generator = np.random.default_rng(0)
    labels = np.repeat(np.arange(3), 20)
    features = generator.normal(size=(60, 5)) + 2 * np.eye(3, 5)[labels]
    weights = torch.tensor(generator.normal(size=(3, 5)))
    batches = lambda: [(torch.tensor(features), torch.tensor(labels))]  # noqa: E731
    columns = mse_columns(
        batches,
        num_classes=3,
        weights=weights,
        bias=None,
        ridge=1e-3,
        target_scale=1.0,
        label_smoothing=0.0,
        distributed=False,
    )
    assert columns["mse_loss_ls"] == pytest.approx(columns["mse_nc1"] + columns["mse_nc2_3"])
    assert columns["mse_ls_perp"] >= 0


def test_robustness_columns_are_absent_when_off_and_empty_between_tracked_epochs():
    net = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(4, 3))
    images, labels = torch.randn(6, 1, 2, 2), torch.arange(6) % 3
    assert robustness_columns(net, images, labels, subset=0, seed=0, measure_now=True) == {}
    idle = robustness_columns(net, images, labels, subset=4, seed=0, measure_now=False)
    assert idle and all(value is None for value in idle.values())
    measured = robustness_columns(net, images, labels, subset=4, seed=0, measure_now=True)
    assert measured["deepfool_count"] == 4 and measured["deepfool_ratio"] > 0
