"""Every bad input gets a ValueError that names the problem (and the fix)."""

import numpy as np
import pytest
import torch

from neuralcollapse.metrics import measure

H = torch.randn(12, 5, generator=torch.Generator().manual_seed(0))
Y = torch.arange(3).repeat(4)


@pytest.mark.parametrize(
    "features,labels,kwargs,message",
    [
        (H[0], Y, {}, r"2-D array of shape \(num_samples, dim\); got shape \(5,\)"),
        (H.reshape(12, 5, 1), Y, {}, "flatten per-sample features"),
        (H, Y[:-1], {}, "labels has 11 entries but features has 12 rows"),
        (H, Y.reshape(3, 4), {}, "1-D array of class indices"),
        (H, Y + 0.5, {}, "integer class indices"),
        (H, torch.where(Y == 2, -1, Y), {}, "labels must be >= 0; got -1 at index 2"),
        (
            H,
            Y,
            {"num_classes": 2},
            r"labels must lie in \[0, 2\); got 2 at index 2 .* num_classes=3",
        ),
        (H, torch.zeros(12, dtype=torch.long), {}, "at least 2 classes; got num_classes=1"),
        (H, Y, {"num_classes": 5}, r"2 of 5 classes have no samples \(class 3, 4\)"),
        (H[:0], Y[:0], {"num_classes": 3}, "empty"),
        (torch.zeros(12, 5), Y, {}, "all class means coincide"),
        (
            H,
            Y,
            {"weights": torch.randn(3, 4)},
            r"weights must have shape .* \(3, 5\); got \(3, 4\)",
        ),
        (H, Y, {"weights": torch.randn(5, 3)}, "transposed"),
        (H, Y, {"weights": torch.randn(3, 5), "bias": torch.randn(4)}, r"bias must have shape"),
        (H, Y, {"bias": torch.randn(3)}, "bias was given without weights"),
        (H, Y, {"weights": torch.zeros(3, 5)}, "weights are all zero"),
        (H, Y, {"weights": torch.full((3, 5), float("nan"))}, "weights contains NaN"),
        (H, Y, {"batch_size": 0}, "batch_size .* must be an integer >= 1"),
    ],
)
def test_bad_input_names_the_problem(features, labels, kwargs, message):
    with pytest.raises(ValueError, match=message):
        measure(features, labels, **kwargs)


@pytest.mark.parametrize("bad", [float("nan"), float("inf"), float("-inf")])
def test_non_finite_features_name_the_first_bad_row(bad):
    features = H.clone()
    features[7, 2] = bad
    with pytest.raises(
        ValueError, match=r"NaN or inf \(1 row\(s\) in this batch, first at index 7\)"
    ):
        measure(features, Y)


def test_string_features_are_rejected():
    with pytest.raises(ValueError, match="features"):
        measure(np.array([["a", "b"], ["c", "d"]]), np.array([0, 1]))


@pytest.mark.parametrize("bad", [float("nan"), float("inf"), float("-inf")])
def test_one_non_finite_classifier_entry_is_found_and_named(bad):
    weights = torch.randn(3, 5)
    weights[2, 4] = bad
    with pytest.raises(
        ValueError, match=r"weights contains NaN or inf \(1 row\(s\), first at index 2\)"
    ):
        measure(H, Y, weights)


def test_large_finite_half_precision_weights_are_not_mistaken_for_inf():
    # their float16 sum would overflow; the check sums in float64
    weights = torch.full((3, 5), 60000.0, dtype=torch.float16)
    weights[0, 0] = 50000.0  # not all rows equal, so the classifier geometry is defined
    assert measure(H, Y, weights).accuracy is not None


def test_arrays_that_cannot_be_tiled_are_checked_against_free_memory(monkeypatch):
    from neuralcollapse.metrics import memory

    monkeypatch.setattr(memory, "available_bytes", lambda device: 1000)
    with pytest.raises(ValueError, match=r"cannot be tiled .*classifier W in float64"):
        measure(H, Y, torch.randn(3, 5))
    monkeypatch.setattr(memory, "available_bytes", lambda device: None)  # unknown: no check
    assert measure(H, Y, torch.randn(3, 5)).accuracy is not None


def test_a_reference_that_is_not_class_statistics_is_rejected():
    with pytest.raises(ValueError, match=r"reference must be a ClassStats .* got Tensor"):
        measure(H, Y, reference=H)


def test_ood_features_with_zero_mean_are_rejected():
    ood = torch.cat([torch.ones(4, 5), -torch.ones(4, 5)])
    with pytest.raises(ValueError, match="out-of-distribution features have mean 0 .exactly"):
        measure(H, Y, ood_features=ood)
