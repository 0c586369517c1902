"""Issue 13: each input is validated once per call, at the outermost public door.

A counting wrapper replaces a check in every module of the package that imported it, so
a call counts every run of that check wherever it happens; the public inner doors
(``ClassStats.update``, ``CentredStats``) must still refuse bad input when called directly.
"""

import sys

import pytest
import torch

from neuralcollapse.metrics import compute_metrics, measure, measure_batches, validation
from neuralcollapse.metrics.stats import CentredStats, ClassStats, MeanGeometry
from neuralcollapse.metrics.validation import check_batch

from .test_collapse import random_problem

CHECKS = ("check_features", "check_labels", "check_classifier")


def count_calls(monkeypatch, name):
    """Replace ``validation.<name>`` wherever the package imported it; return the call log."""
    original = getattr(validation, name)
    calls = []

    def counting(*args, **kwargs):
        calls.append((args, kwargs))
        return original(*args, **kwargs)

    for module_name, module in list(sys.modules.items()):
        if module_name.startswith("neuralcollapse") and getattr(module, name, None) is original:
            monkeypatch.setattr(module, name, counting)
    return calls


@pytest.fixture
def calls(monkeypatch):
    """The call logs of the three array checks, by name."""
    return {name: count_calls(monkeypatch, name) for name in CHECKS}


def _counts(calls):
    return {name: len(log) for name, log in calls.items()}


def test_measure_checks_features_labels_and_classifier_once(calls):
    h, y, w, b = random_problem(0)
    measure(h, y, w, b)
    assert _counts(calls) == {"check_features": 1, "check_labels": 1, "check_classifier": 1}


def test_measure_with_num_classes_and_float_labels_checks_once(calls):
    h, y, w, _ = random_problem(1)
    measure(h.double(), y.double(), w, num_classes=7, batch_size=64)
    assert _counts(calls) == {"check_features": 1, "check_labels": 1, "check_classifier": 1}


def test_measure_checks_the_ood_features_once(calls):
    h, y, _, _ = random_problem(2)
    measure(h, y, ood_features=h[:40] + 1.0)
    ood_calls = [args for args, _ in calls["check_features"] if "ood_features" in args[1:]]
    assert len(ood_calls) == 1 and len(calls["check_features"]) == 2


def test_measure_batches_checks_each_yielded_batch_once_and_the_classifier_once(calls):
    h, y, w, b = random_problem(3)
    batches = [(h[start : start + 100], y[start : start + 100]) for start in range(0, 500, 100)]
    measure_batches(lambda: batches, num_classes=7, weights=w, bias=b)
    # a stream yields its batches afresh on each of the two passes: each is checked once,
    # where it enters the statistics (ClassStats.update, then CentredStats.update)
    assert _counts(calls) == {"check_features": 10, "check_labels": 10, "check_classifier": 1}


def test_compute_metrics_checks_a_classifier_only_without_pass_two(calls):
    h, y, w, b = random_problem(4)
    class_stats = ClassStats(7).update(h, y)
    compute_metrics(class_stats, weights=w, bias=b)
    assert len(calls["check_classifier"]) == 1
    centred = CentredStats(MeanGeometry.from_means(class_stats.means()), w, b).update(h, y)
    compute_metrics(class_stats, centred)
    assert len(calls["check_classifier"]) == 2  # CentredStats' own, none in compute_metrics


@pytest.mark.parametrize(
    "labels,message",
    [
        (torch.full((8,), 3), r"labels must lie in \[0, 3\); got 3 at index 0"),
        (torch.arange(8) - 1, "labels must be >= 0; got -1 at index 0"),
        (torch.zeros(8, 2), "1-D array of class indices"),
        (torch.full((8,), 0.5), "integer class indices"),
    ],
)
def test_the_inner_public_doors_still_refuse_bad_labels(labels, message):
    features = torch.randn(8, 4)
    with pytest.raises(ValueError, match=message):
        ClassStats(3).update(features, labels)
    geometry = MeanGeometry.from_means(torch.eye(3, 4, dtype=torch.float64))
    with pytest.raises(ValueError, match=message):
        CentredStats(geometry).update(features, labels)


def test_centred_stats_still_refuses_a_bad_classifier():
    geometry = MeanGeometry.from_means(torch.eye(3, 4, dtype=torch.float64))
    with pytest.raises(ValueError, match="transposed"):
        CentredStats(geometry, torch.randn(4, 3))
    with pytest.raises(ValueError, match="bias was given without weights"):
        CentredStats(geometry, None, torch.randn(3))


def test_a_checked_batch_of_more_classes_is_checked_again():
    # its labels were checked against its own K: statistics of fewer classes check them anew
    batch = check_batch(torch.randn(6, 4), torch.tensor([0, 1, 2, 0, 1, 2]))
    assert batch.num_classes == 3
    with pytest.raises(ValueError, match=r"labels must lie in \[0, 2\); got 2 at index 2"):
        ClassStats(2).update_from(batch)
    assert ClassStats(5).update_from(batch).num_samples == 6


def test_measure_of_a_checked_batch_equals_measure_of_the_arrays():
    h, y, w, b = random_problem(5)
    direct = measure(h, y, w, b).to_dict()
    streamed = measure_batches(check_batch(h, y), num_classes=7, weights=w, bias=b).to_dict()
    plain = measure_batches(lambda: [(h, y)], num_classes=7, weights=w, bias=b).to_dict()
    assert direct == streamed == plain


def test_a_non_finite_classifier_is_named_with_the_classifier_fix():
    generator = torch.Generator().manual_seed(0)
    features, labels = torch.randn(12, 4, generator=generator), torch.arange(12) % 3
    weights, bias = torch.randn(3, 4, generator=generator), torch.zeros(3)
    weights[1, 2] = float("nan")
    with pytest.raises(ValueError, match=r"^weights contains NaN or inf .*network diverged"):
        measure(features, labels, weights=weights, bias=bias)
    weights[1, 2], bias[2] = 0.0, float("inf")
    with pytest.raises(ValueError, match=r"^bias contains NaN or inf .*network diverged"):
        measure(features, labels, weights=weights, bias=bias)
