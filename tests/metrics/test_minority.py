"""minority_cosine against a direct computation, its limits, and its input checks."""

import itertools
import math

import numpy as np
import pytest
import torch

from neuralcollapse.geometry import simplex_etf
from neuralcollapse.metrics import ClassStats
from neuralcollapse.metrics.minority import minority_cosine


def _direct(rows: np.ndarray, group) -> float:
    pairs = list(itertools.permutations(group, 2))
    cos = [
        rows[a] @ rows[b] / (np.linalg.norm(rows[a]) * np.linalg.norm(rows[b])) for a, b in pairs
    ]
    return float(np.mean(cos))


def test_matches_a_direct_computation_on_random_rows():
    rows = np.random.default_rng(0).normal(size=(7, 5))
    for group in ([0, 1], [2, 4, 6], range(7)):
        assert minority_cosine(rows, group) == pytest.approx(_direct(rows, list(group)), abs=1e-14)
    centred = rows - rows.mean(axis=0)
    assert minority_cosine(torch.from_numpy(rows), [1, 3, 5], centred=True) == pytest.approx(
        _direct(centred, [1, 3, 5]), abs=1e-14
    )


def test_simplex_etf_gives_minus_one_over_k_minus_one_and_collapse_gives_one():
    etf = simplex_etf(6, 8, seed=3)  # (K, d) rows
    assert minority_cosine(etf, [3, 4, 5]) == pytest.approx(-1 / 5, abs=1e-12)
    merged = np.vstack([np.eye(4)[:2], np.tile([0.0, 0.0, 1.0, 1.0], (2, 1))])
    assert minority_cosine(merged, [2, 3]) == pytest.approx(1.0)


def test_class_stats_use_the_centred_class_means():
    rng = np.random.default_rng(1)
    labels = np.repeat(np.arange(4), 5)
    features = rng.normal(size=(20, 3)) + 4 * rng.normal(size=(4, 3))[labels]
    stats = ClassStats(num_classes=4).update(features, labels)
    means = stats.means().numpy()
    assert minority_cosine(stats, [0, 2, 3]) == pytest.approx(
        _direct(means - means.mean(axis=0), [0, 2, 3]), abs=1e-13
    )
    assert minority_cosine(stats, [0, 2, 3], centred=False) == pytest.approx(
        _direct(means, [0, 2, 3]), abs=1e-13
    )


@pytest.mark.parametrize(
    "group,message",
    [
        ([1], "at least 2 classes"),
        ([], "at least 2 classes"),
        ([0, 0], "lists a class twice"),
        ([0, 9], r"outside \[0, 4\)"),
        ([0, 1.5], "integer class indices"),
    ],
)
def test_bad_groups_are_rejected_with_the_fix(group, message):
    with pytest.raises(ValueError, match=message):
        minority_cosine(np.eye(4), group)


def test_zero_rows_and_bad_matrices_are_rejected():
    rows = np.eye(4)
    rows[2] = 0
    with pytest.raises(ValueError, match=r"class\(es\) \[2\] have a zero row"):
        minority_cosine(rows, [1, 2])
    with pytest.raises(ValueError, match=r"\(K, d\) matrix"):
        minority_cosine(np.ones(4), [0, 1])
    with pytest.raises(ValueError, match="NaN or inf"):
        minority_cosine(np.full((3, 2), math.nan), [0, 1])


def test_per_class_group_summary_averages_each_column_over_majority_and_minority():
    import numpy as np

    from neuralcollapse.metrics import measure

    generator = np.random.default_rng(0)
    sizes = [30, 30, 30, 3, 3]
    labels = np.repeat(np.arange(5), sizes)
    features = generator.normal(size=(len(labels), 6)) + 4 * np.eye(5, 6)[labels]
    weights = generator.normal(size=(5, 6))
    table = measure(features, labels, weights).per_class
    summary = table.group_summary({"majority": range(3), "minority": [3, 4]})
    assert summary["minority"]["count"] == 3 and summary["majority"]["count"] == 30
    for column in ("within_variance", "mean_norm", "weight_norm", "duality", "cdnv"):
        values = getattr(table, column)
        assert summary["majority"][column] == pytest.approx(values[:3].mean())
        assert summary["minority"][column] == pytest.approx(values[3:].mean())
    with pytest.raises(ValueError, match="more than one group"):
        table.group_summary({"a": [0, 1], "b": [1, 2]})
    with pytest.raises(ValueError, match="outside \\[0, 5\\)"):
        table.group_summary({"a": [7]})
