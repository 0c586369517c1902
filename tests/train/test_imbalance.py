"""Step imbalance of the training split: the requested counts, a balanced test split, and
the balanced default left bit-identical."""

import numpy as np
import pytest
import torch

from neuralcollapse.train.data import load_dataset, step_imbalanced_subset


def test_step_subset_keeps_n_a_over_r_in_the_last_classes():
    labels = np.repeat(np.arange(5), 40)
    keep = step_imbalanced_subset(labels, ratio=8, minority_classes=2, seed=0)
    counts = np.bincount(labels[keep], minlength=5)
    np.testing.assert_array_equal(counts, [40, 40, 40, 5, 5])
    assert np.all(np.diff(keep) > 0)  # sorted, no repeats
    again = step_imbalanced_subset(labels, ratio=8, minority_classes=2, seed=0)
    np.testing.assert_array_equal(keep, again)


def test_ratio_one_keeps_everything_and_large_ratios_keep_one():
    labels = np.repeat(np.arange(3), 10)
    assert len(step_imbalanced_subset(labels, 1, 1)) == 30
    counts = np.bincount(labels[step_imbalanced_subset(labels, 1000, 2)], minlength=3)
    np.testing.assert_array_equal(counts, [10, 1, 1])


def test_load_dataset_imbalances_train_only_and_default_is_unchanged():
    balanced = load_dataset("digits", per_class=50, seed=4)
    again = load_dataset("digits", per_class=50, seed=4)
    assert torch.equal(balanced.train_images, again.train_images)
    imbalanced = load_dataset("digits", per_class=50, seed=4, imbalance=10, minority_classes=3)
    counts = torch.bincount(imbalanced.train_labels, minlength=10).tolist()
    assert counts == [50] * 7 + [5] * 3
    # the test split stays as it was (balanced draws are not disturbed either)
    assert torch.equal(imbalanced.test_labels, balanced.test_labels)
    majority = imbalanced.train_labels < 7
    assert torch.equal(
        imbalanced.train_labels[majority], balanced.train_labels[balanced.train_labels < 7]
    )


@pytest.mark.parametrize(
    "arguments,message",
    [
        (dict(ratio=0.5, minority_classes=1), "must be a finite number >= 1"),
        (dict(ratio=float("nan"), minority_classes=1), "must be a finite number >= 1"),
        (
            dict(ratio=2, minority_classes=0),
            r"minority_classes \(K_B\) must be an integer in \[1, 3\] \(at most K-1 = 3",
        ),
        (dict(ratio=2, minority_classes=4), r"\[1, 3\]"),
    ],
)
def test_bad_ratio_or_group_size_is_rejected(arguments, message):
    with pytest.raises(ValueError, match=message):
        step_imbalanced_subset(np.repeat(np.arange(4), 5), **arguments)


def test_load_dataset_needs_both_options():
    with pytest.raises(ValueError, match="needs both imbalance"):
        load_dataset("digits", imbalance=10)
