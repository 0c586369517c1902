"""Issue 13: the array measures share measure's front door and check their arrays once."""

import numpy as np
import pytest
import torch

from neuralcollapse.measures import (
    OODScorer,
    feature_statistics,
    feature_statistics_batches,
    mse_decomposition,
    separation_fuzziness,
    separation_fuzziness_batches,
)
from neuralcollapse.metrics.validation import check_batch
from tests.metrics.test_checked_once import CHECKS, count_calls


def _data(seed=0, k=4, d=6, n=120):
    generator = torch.Generator().manual_seed(seed)
    labels = torch.arange(n) % k
    features = 3 * torch.randn(k, d, generator=generator)[labels]
    features += torch.randn(n, d, generator=generator)
    weights = torch.randn(k, d, generator=generator)
    return features, labels, weights, torch.randn(k, generator=generator)


@pytest.fixture
def calls(monkeypatch):
    return {name: count_calls(monkeypatch, name) for name in CHECKS}


@pytest.mark.parametrize(
    "entry,classifier",
    [
        (lambda h, y, w, b: separation_fuzziness(h, y), 0),
        (lambda h, y, w, b: separation_fuzziness(h, y, weighting="classes", batch_size=7), 0),
        (lambda h, y, w, b: feature_statistics(h, y, num_classes=4), 0),
        (lambda h, y, w, b: mse_decomposition(h, y, w, b, ridge=1e-2), 1),
        (lambda h, y, w, b: OODScorer.fit(h, y, w, b), 1),
    ],
)
def test_each_array_entry_point_checks_its_arrays_once(calls, entry, classifier):
    entry(*_data())
    counts = {name: len(log) for name, log in calls.items()}
    assert counts == {"check_features": 1, "check_labels": 1, "check_classifier": classifier}


def test_streams_check_each_yielded_batch_once_per_pass(calls):
    features, labels, _, _ = _data(1)
    batches = [(features[start : start + 40], labels[start : start + 40]) for start in (0, 40, 80)]
    separation_fuzziness_batches(lambda: batches, num_classes=4)
    feature_statistics_batches(lambda: batches, num_classes=4)
    assert len(calls["check_labels"]) == 2 * 2 * 3  # two functions, two passes, three batches


@pytest.mark.parametrize(
    "entry",
    [separation_fuzziness, feature_statistics, mse_decomposition, OODScorer.fit],
)
def test_the_shared_door_gives_measures_messages(entry):
    features, labels, _, _ = _data(2)
    with pytest.raises(ValueError, match="labels must be >= 0; got -1 at index 0"):
        entry(features, labels - 1)
    with pytest.raises(ValueError, match="labels .*contain NaN"):
        entry(np.eye(3), np.array([0.0, 1.0, np.nan]))
    with pytest.raises(ValueError, match="largest label is 1099511627776.*remap"):
        entry(np.zeros((4, 3)), np.array([0, 1, 2, 2**40]))
    with pytest.raises(ValueError, match="labels is empty; nothing to measure"):
        entry(features, labels[:0])
    bad = features.clone()
    bad[5, 1] = float("inf")
    with pytest.raises(
        ValueError, match=r"NaN or inf \(1 row\(s\) in this batch, first at index 5\)"
    ):
        entry(bad, labels)


@pytest.mark.parametrize("entry", [separation_fuzziness, feature_statistics])
def test_batch_size_is_checked_with_one_message(entry):
    features, labels, _, _ = _data(3)
    for bad in (0, 2.5, True):
        with pytest.raises(
            ValueError, match=r"batch_size \(rows per chunk\) must be an integer >= 1"
        ):
            entry(features, labels, batch_size=bad)
    assert entry(features, labels, batch_size=np.int64(16)) is not None


def test_a_checked_batch_streams_like_its_arrays():
    features, labels, _, _ = _data(4)
    batch = check_batch(features, labels)
    assert separation_fuzziness_batches(batch, num_classes=4) == separation_fuzziness(
        features, labels
    )
    streamed = feature_statistics_batches(batch, num_classes=4)
    direct = feature_statistics(features, labels)
    assert torch.equal(streamed.within, direct.within)
