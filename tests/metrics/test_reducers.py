"""The tile reducers of the pairwise pass, and pass-1 statistics handed to measure_batches."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from neuralcollapse.metrics import ClassStats, measure, measure_batches
from neuralcollapse.metrics.pairwise import (
    ClassDistanceVariance,
    CosineMoments,
    EtfGap,
    OfGap,
    reduce_frame,
)


def _frame(k=9, d=6, seed=0):
    return torch.randn(k, d, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)


@pytest.mark.parametrize("tile_size", [1, 2, 4, 1024])
def test_reducers_equal_dense_formulas_for_any_tiling(tile_size):
    frame = _frame()
    k = frame.shape[0]
    variances = torch.rand(k, dtype=torch.float64, generator=torch.Generator().manual_seed(1))
    offset = torch.randn(frame.shape[1], dtype=torch.float64)
    angles, etf, of, cdnv = (
        CosineMoments(),
        EtfGap(),
        OfGap(offset=offset),
        ClassDistanceVariance(variances),
    )
    norms = reduce_frame(frame, [angles, etf, of, cdnv], tile_size=tile_size)

    unit = frame / frame.norm(dim=1, keepdim=True)
    cosines = (unit @ unit.T)[~torch.eye(k, dtype=torch.bool)]
    assert angles.equiangular == pytest.approx(float(cosines.std()), rel=1e-12)
    assert angles.maxangle == pytest.approx(float((cosines + 1 / (k - 1)).abs().mean()), rel=1e-12)
    gram = frame @ frame.T
    etf_target = torch.eye(k, dtype=torch.float64) - 1 / k
    expected = torch.linalg.matrix_norm(
        gram / torch.linalg.matrix_norm(gram) - etf_target / math.sqrt(k - 1)
    )
    assert etf.value == pytest.approx(float(expected), rel=1e-12)
    shifted = frame + offset
    g = shifted @ shifted.T
    identity = torch.eye(k, dtype=torch.float64)
    expected_of = torch.linalg.matrix_norm(g / torch.linalg.matrix_norm(g) - identity / k**0.5)
    assert of.value == pytest.approx(float(expected_of), rel=1e-12)
    assert torch.allclose(of.offset_norms, shifted.norm(dim=1))
    distances = torch.cdist(frame, frame) ** 2
    pairs = (variances[:, None] + variances[None, :]) / (2 * distances)
    off = ~torch.eye(k, dtype=torch.bool)
    assert cdnv.value == pytest.approx(float(pairs[off].mean()), rel=1e-12)
    assert norms.equinorm == pytest.approx(
        float(frame.norm(dim=1).std() / frame.norm(dim=1).mean())
    )


def test_measure_batches_reuses_pass_one_statistics_and_reads_the_data_once():
    generator = np.random.default_rng(0)
    labels = np.repeat(np.arange(4), 10)
    features = generator.normal(size=(40, 5)) + 3 * np.eye(4, 5)[labels]
    stats = ClassStats(4).update(features, labels)
    before = stats.sums.clone()
    calls = []

    def batches():
        calls.append(1)
        return [(features, labels)]

    reused = measure_batches(batches, num_classes=4, class_stats=stats)
    assert len(calls) == 1  # pass 2 only
    assert torch.equal(stats.sums, before)  # the caller's statistics are left as they were
    assert reused.to_dict() == measure(features, labels).to_dict()


def test_pass_one_statistics_of_other_samples_are_refused():
    generator = np.random.default_rng(1)
    labels = np.repeat(np.arange(3), 6)
    features = generator.normal(size=(18, 4)) + np.eye(3, 4)[labels]
    partial = ClassStats(3).update(features[::2], labels[::2])  # every class, half the samples
    with pytest.raises(ValueError, match="different samples|counts"):
        measure_batches(lambda: [(features, labels)], num_classes=3, class_stats=partial)
    with pytest.raises(ValueError, match="ClassStats"):
        measure_batches(lambda: [(features, labels)], num_classes=3, class_stats="stats")
