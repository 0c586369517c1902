"""Singular values, numerical and stable rank, principal-angle alignment, and the deep UFM."""

import numpy as np
import pytest
import torch

from neuralcollapse.geometry import simplex_etf
from neuralcollapse.measures import (
    depth_rank_profile,
    layer_rank,
    spectrum,
    subspace_alignment,
    ufm_rank_profile,
)
from neuralcollapse.metrics import ClassStats
from neuralcollapse.ufm import UFMProblem, solve_lbfgs


def _orthonormal(rows, cols, seed):
    q, _ = np.linalg.qr(np.random.default_rng(seed).normal(size=(rows, cols)))
    return q[:, :cols]


def _with_singular_values(values, rows, cols, seed):
    u = _orthonormal(rows, len(values), seed)
    v = _orthonormal(cols, len(values), seed + 1)
    return u @ np.diag(values) @ v.T


def test_stable_and_numerical_rank_of_a_constructed_matrix():
    values = [4.0, 2.0, 1.0, 1e-3, 1e-15]
    result = spectrum(_with_singular_values(values, 6, 9, seed=0))
    assert np.allclose(result.singular_values[:5], values, rtol=1e-9, atol=1e-14)
    assert result.stable_rank == pytest.approx(sum(v * v for v in values) / 16.0, rel=1e-12)
    assert result.numerical_rank == 4  # 1e-15 is below max(6, 9) * eps * 4 = 8e-15
    coarse = spectrum(_with_singular_values(values, 6, 9, seed=0), rtol=1e-2)
    assert coarse.numerical_rank == 3 and coarse.threshold == pytest.approx(0.04)


def test_an_equal_norm_frame_has_stable_rank_equal_to_its_rank():
    etf = simplex_etf(5, 12).numpy()  # K x d rows, rank K - 1, equal singular values
    result = spectrum(etf)
    assert result.numerical_rank == 4
    assert result.stable_rank == pytest.approx(4.0, rel=1e-12)
    diagnostics = layer_rank(etf)  # the rows are already centred: centring changes nothing
    assert diagnostics.centred.numerical_rank == 4
    orthogonal = layer_rank(np.eye(5, 12) * 3.0)  # an orthogonal frame: rank K, centred K - 1
    assert orthogonal.uncentred.numerical_rank == 5
    assert orthogonal.uncentred.stable_rank == pytest.approx(5.0, rel=1e-12)
    assert orthogonal.centred.numerical_rank == 4
    assert orthogonal.centred.stable_rank == pytest.approx(4.0, rel=1e-12)


def test_alignment_of_a_layer_built_aligned_and_one_built_orthogonal():
    rng = np.random.default_rng(3)
    means = rng.normal(size=(4, 10))
    centred = means - means.mean(0)
    span = np.linalg.svd(centred)[2][:3]  # the 3-dim span of the centred means
    aligned = rng.normal(size=(6, 3)) @ span  # rows inside the span
    result = layer_rank(means, aligned)
    assert result.alignment == pytest.approx(1.0, abs=1e-12)
    assert result.num_directions == 3
    complement = np.linalg.svd(centred)[2][3:]  # orthogonal to every centred mean
    orthogonal = rng.normal(size=(6, 7)) @ complement
    result = layer_rank(means, orthogonal)
    assert result.alignment == pytest.approx(0.0, abs=1e-12)
    assert np.allclose(result.principal_cosines, 0, atol=1e-12)
    # half in, half out: one principal angle 0, the others 90 degrees
    mixed = np.vstack([5 * span[:1], 3 * complement[:1], 2 * complement[1:2]])
    mean_cos, cosines = subspace_alignment(mixed, centred)
    assert np.allclose(sorted(cosines), [0, 0, 1], atol=1e-12)
    assert mean_cos == pytest.approx(1 / 3, abs=1e-12)


def test_profile_from_class_stats_and_weights():
    rng = np.random.default_rng(4)
    labels = np.repeat(np.arange(3), 10)
    features = rng.normal(size=(3, 5))[labels] + 0.1 * rng.normal(size=(30, 5))
    stats = ClassStats(3).update(features, labels)
    profile = depth_rank_profile({"a": stats, "b": stats.means()}, {"a": rng.normal(size=(4, 5))})
    assert list(profile) == ["a", "b"]
    assert profile["a"].alignment is not None and profile["b"].alignment is None
    assert profile["a"].centred.numerical_rank == 2
    with pytest.raises(ValueError, match="unknown layers"):
        depth_rank_profile({"a": stats}, {"z": np.eye(5)})


@pytest.mark.parametrize("bias", ["none", "free"])
def test_deep_linear_ufm_layers_are_equal_frames_aligned_with_their_weights(bias):
    problem = UFMProblem(
        num_classes=3, per_class=2, dim=6, depth=3, lam_w=1e-3, lam_h=1e-3, bias=bias
    )
    solution = solve_lbfgs(problem, restarts=2)
    profile = ufm_rank_profile(solution, rtol=1e-4)
    assert [layer.name for layer in profile] == ["H", "layer1", "layer2", "output"]
    rank = 3 if bias == "none" else 2  # orthogonal frame vs simplex ETF
    for layer in profile[1:]:
        spectrum_ = layer.uncentred if bias == "none" else layer.centred
        assert spectrum_.numerical_rank == rank
        assert spectrum_.stable_rank == pytest.approx(rank, rel=1e-4)
    for layer in profile[:-1]:
        assert layer.alignment == pytest.approx(1.0, abs=1e-6)
        assert layer.subspace == ("uncentred" if bias == "none" else "centred")


def test_bad_input_names_the_problem():
    means = np.random.default_rng(5).normal(size=(3, 4))
    with pytest.raises(ValueError, match=r"num_directions must be an integer in \[1, 2\]"):
        layer_rank(means, np.ones((2, 4)), num_directions=3)
    with pytest.raises(ValueError, match=r"num_directions must be an integer in \[1, 2\]"):
        layer_rank(means, np.ones((2, 4)), num_directions=0)
    with pytest.raises(ValueError, match="transposed"):
        layer_rank(means, np.ones((4, 2)))
    with pytest.raises(ValueError, match="all equal"):
        spectrum(np.zeros((3, 4)))
    with pytest.raises(ValueError, match=r"rtol must be a finite number in \[0, 1\)"):
        spectrum(means, rtol=1.5)
    with pytest.raises(ValueError, match="unknown subspace"):
        layer_rank(means, np.ones((2, 4)), subspace="both")
    with pytest.raises(ValueError, match="NaN"):
        spectrum(torch.tensor([[1.0, float("nan")], [0.0, 1.0]]))
