"""Metrics against exact geometries and an independent dense reference."""

import math

import numpy as np
import pytest
import torch

from neuralcollapse.geometry import of_etf_distance, orthogonal_frame, simplex_etf
from neuralcollapse.metrics import CollapseMetrics, measure

from .reference import assert_same_metrics, dense_metrics

WEIGHT_KEYS = {
    "equinorm_weights",
    "equiangular_weights",
    "maxangle_weights",
    "etf_gap_weights",
    "of_gap_weights",
    "self_duality",
    "self_duality_uncentred",
    "ncc_mismatch",
    "accuracy",
    "unc3",
    "unc3_cv",
}
OOD_KEYS = {"nc5"}  # None unless out-of-distribution features are given


def collapsed(frame: torch.Tensor, per_class: int):
    k = frame.shape[0]
    return frame.repeat(per_class, 1), torch.arange(k).repeat(per_class)


def random_problem(seed, n=500, d=24, k=7, spread=2.0, dtype=torch.float64):
    g = torch.Generator().manual_seed(seed)
    y = torch.randint(0, k, (n,), generator=g)
    y[:k] = torch.arange(k)  # every class present
    centres = torch.randn(k, d, generator=g, dtype=torch.float64) * spread
    h = centres[y] + torch.randn(n, d, generator=g, dtype=torch.float64)
    w = torch.randn(k, d, generator=g, dtype=torch.float64)
    b = torch.randn(k, generator=g, dtype=torch.float64)
    return h.to(dtype), y, w, b


@pytest.mark.parametrize("num_classes,dim", [(2, 2), (3, 5), (10, 10), (10, 64)])
def test_collapsed_simplex_etf_with_aligned_classifier_gives_zero_for_every_nc_metric(
    num_classes, dim
):
    frame = simplex_etf(num_classes, dim, seed=3) * 2.5
    h, y = collapsed(frame, 4)
    result = measure(h, y, weights=0.3 * frame, bias=torch.zeros(num_classes))
    zero_keys = [
        "nc1", "nc1_trace_ratio", "cdnv", "within_class_variance", "equinorm_means",
        "equinorm_weights", "equiangular_means", "equiangular_weights", "maxangle_means",
        "maxangle_weights", "etf_gap_means", "etf_gap_weights", "global_mean_ratio",
        "self_duality", "self_duality_uncentred", "ncc_mismatch",
    ]  # fmt: skip
    for key in zero_keys:
        assert abs(getattr(result, key)) < 1e-7, key
    assert result.accuracy == 1.0 and result.ncc_accuracy == 1.0
    # the ETF is not an orthogonal frame: the uncentred gap reads the OF-ETF distance
    assert result.of_gap_means == pytest.approx(of_etf_distance(num_classes), abs=1e-9)


@pytest.mark.parametrize("num_classes,dim", [(3, 3), (4, 20), (12, 16)])
def test_orthogonal_frame_gives_zero_of_gap_and_known_etf_gap(num_classes, dim):
    frame = orthogonal_frame(num_classes, dim, seed=5) * 1.7
    h, y = collapsed(frame, 3)
    result = measure(h, y, weights=frame)
    expected = of_etf_distance(num_classes)
    assert result.of_gap_means < 1e-9 and result.of_gap_weights < 1e-9
    assert result.etf_gap_weights == pytest.approx(expected, abs=1e-9)
    # centring an equal-norm OF gives an ETF: the centred-means gap cannot tell them apart
    assert result.etf_gap_means < 1e-9
    assert result.global_mean_ratio == pytest.approx(1 / math.sqrt(num_classes), abs=1e-12)
    # without a bias W aligns with the uncentred means; centred NC3 reads 2 - 2 sqrt((K-1)/K)
    assert result.self_duality_uncentred < 1e-12
    assert result.self_duality == pytest.approx(expected**2, abs=1e-12)
    assert result.maxangle_weights == pytest.approx(1 / (num_classes - 1), abs=1e-12)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_random_features_match_dense_reference(seed):
    h, y, w, b = random_problem(seed)
    result = measure(h, y, w, b).to_dict()
    reference = dense_metrics(h, y, w, b)
    for key, expected in reference.items():
        assert result[key] == pytest.approx(expected, rel=1e-8, abs=1e-12), key


def test_high_dimension_uses_span_of_means_not_full_pseudo_inverse():
    # d > N: Sigma_W is singular and d x d, but NC1 only needs the (K-1)-dim span of the means
    h, y, w, b = random_problem(4, n=60, d=300, k=5)
    result = measure(h, y, w, b)
    assert result.nc1 == pytest.approx(dense_metrics(h, y, w, b)["nc1"], rel=1e-8)


def test_without_weights_the_weight_keys_are_none_and_the_rest_set():
    h, y, _, _ = random_problem(7)
    result = measure(h, y).to_dict()
    for key, value in result.items():
        assert (value is None) == (key in WEIGHT_KEYS | OOD_KEYS), key
    assert set(result) == set(CollapseMetrics.keys())


@pytest.mark.parametrize("dtype", [torch.float16, torch.float32, torch.float64])
def test_low_precision_inputs_are_accumulated_in_float64(dtype):
    h, y, w, b = random_problem(8, dtype=dtype)
    exact = dense_metrics(h.to(torch.float64), y, w, b)
    result = measure(h, y, w, b)
    # the same numbers as float64 on the rounded inputs: no further precision is lost
    assert result.nc1 == pytest.approx(exact["nc1"], rel=1e-9)


def test_numpy_and_torch_inputs_agree():
    h, y, w, b = random_problem(9)
    from_torch = measure(h, y, w, b).to_dict()
    from_numpy = measure(h.numpy(), y.numpy(), w.numpy(), b.numpy()).to_dict()
    assert_same_metrics(from_numpy, from_torch, rel=1e-12)


def test_sample_permutation_and_batch_size_do_not_change_metrics():
    h, y, w, b = random_problem(10)
    base = measure(h, y, w, b).to_dict()
    order = torch.randperm(h.shape[0], generator=torch.Generator().manual_seed(0))
    permuted = measure(h[order], y[order], w, b, batch_size=37).to_dict()
    assert_same_metrics(permuted, base, rel=1e-10, abs=1e-14)


def test_relabelling_classes_consistently_does_not_change_metrics():
    h, y, w, b = random_problem(11)
    k = w.shape[0]
    relabel = torch.randperm(k, generator=torch.Generator().manual_seed(1))
    # class c becomes relabel[c]; classifier rows move with it
    w2, b2 = torch.empty_like(w), torch.empty_like(b)
    w2[relabel], b2[relabel] = w, b
    base = measure(h, y, w, b).to_dict()
    moved = measure(h, relabel[y], w2, b2).to_dict()
    assert_same_metrics(moved, base, rel=1e-10, abs=1e-14)


def test_rotation_and_scale_invariance():
    h, y, w, b = random_problem(12)
    q, _ = torch.linalg.qr(
        torch.randn(
            h.shape[1], h.shape[1], generator=torch.Generator().manual_seed(2), dtype=torch.float64
        )
    )
    base = measure(h, y, w, b).to_dict()
    rotated = measure(3.0 * h @ q, y, 3.0 * w @ q, 9.0 * b).to_dict()
    for key in ("num_samples", "dim", "num_classes"):
        base.pop(key), rotated.pop(key)
    for key in ("within_class_variance", "between_class_variance"):
        assert rotated.pop(key) == pytest.approx(9.0 * base.pop(key), rel=1e-10)
    # UNC3 is a variance of inner products <w_k, m_k>: both scale by 3, the variance by 3^4
    assert rotated.pop("unc3") == pytest.approx(81.0 * base.pop("unc3"), rel=1e-9)
    assert_same_metrics(rotated, base, rel=1e-9, abs=1e-13)


def test_single_sample_class_is_allowed_with_zero_variance():
    h, y, w, b = random_problem(13, n=100, k=4)
    y = y.clone()
    y[y == 3] = 2
    y[50] = 3  # class 3 has exactly one sample
    result = measure(h, y, w, b)
    assert result.nc1 == pytest.approx(dense_metrics(h, y, w, b)["nc1"], rel=1e-8)


def test_nc4_uses_the_bias():
    # two classes at +-1 on a line; a bias shifts the classifier's boundary away from the NCC one
    h = torch.tensor([[-1.0], [-0.2], [0.2], [1.0]], dtype=torch.float64)
    y = torch.tensor([0, 0, 1, 1])
    w = torch.tensor([[-1.0], [1.0]], dtype=torch.float64)
    without = measure(h, y, w)
    shifted = measure(h, y, w, bias=torch.tensor([0.0, 1.0], dtype=torch.float64))
    assert without.ncc_mismatch == 0.0
    # with bias 1 the boundary moves to h = -0.5: the sample at -0.2 is now called class 1
    assert shifted.ncc_mismatch == pytest.approx(0.25)
    assert shifted.accuracy == pytest.approx(0.75)


def test_large_number_of_classes_is_tiled_and_matches_dense():
    h, y, w, b = random_problem(14, n=900, d=16, k=300)
    tiled = measure(h, y, w, b, tile_size=7).to_dict()  # 43 x 43 tiles, the last one partial
    untiled = measure(h, y, w, b, tile_size=300).to_dict()
    assert_same_metrics(tiled, untiled, rel=1e-10, abs=1e-14)
    assert tiled["equiangular_means"] == pytest.approx(
        dense_metrics(h, y, w, b)["equiangular_means"], rel=1e-8
    )


def test_identical_class_means_give_infinite_cdnv():
    h = torch.tensor([[0.0, 1.0], [0.0, -1.0], [2.0, 1.0], [2.0, -1.0], [0.0, 0.5], [0.0, -0.5]])
    y = torch.tensor([0, 0, 1, 1, 2, 2])  # classes 0 and 2 share the mean (0, 0)
    assert measure(h, y).cdnv == math.inf


def test_result_is_json_serialisable():
    import json

    h, y, w, b = random_problem(15)
    text = json.dumps(measure(h, y, w, b).to_dict())
    assert json.loads(text)["num_samples"] == 500


def test_numpy_integer_features_are_accepted():
    h = np.array([[0, 0], [0, 2], [4, 0], [4, 2]])
    y = np.array([0, 0, 1, 1])
    result = measure(h, y)
    assert result.within_class_variance == pytest.approx(1.0)
    assert result.between_class_variance == pytest.approx(4.0)


def test_switching_off_nearest_centre_leaves_only_its_keys_none():
    h, y, w, b = random_problem(16)
    full = measure(h, y, w, b).to_dict()
    lean = measure(h, y, w, b, nearest_centre=False).to_dict()
    for key in ("ncc_accuracy", "ncc_mismatch"):
        assert lean.pop(key) is None and full.pop(key) is not None
    assert_same_metrics(lean, full, rel=1e-12)


@pytest.mark.parametrize("spread,mixed", [(0.3, False), (1.2, True), (2.0, True)])
def test_nearest_centre_shortcut_gives_the_brute_force_decision_for_every_sample(spread, mixed):
    # samples within half the gap to the nearest other mean skip the scores; the rest are
    # scored: both kinds occur at these spreads, and every decision must match cdist
    from neuralcollapse.metrics.stats import CentredStats, ClassStats, MeanGeometry

    h, y, _, _ = random_problem(21, n=800, d=12, k=9, spread=spread)
    class_stats = ClassStats(9).update(h, y)
    centred = CentredStats(MeanGeometry.from_means(class_stats.means()))
    means = class_stats.means()
    residual = h - means[y]
    scaled = (residual @ centred.geometry.basis) / centred.geometry.singular_values
    within = (residual * residual).sum(dim=1)
    certified = within < centred._rule.own_radius[y] ** 2
    assert (0 < int(certified.sum()) < len(y)) == mixed
    prediction = centred._rule.predict(residual, within, scaled, y)
    assert torch.equal(prediction, torch.cdist(h, means).argmin(dim=1))
    result = measure(h, y)
    assert result.ncc_accuracy == float((prediction == y).double().mean())


def test_nearest_row_distance_is_a_lower_bound_and_tight_for_centred_rows():
    from neuralcollapse.metrics.pairwise import nearest_row_distance

    g = torch.Generator().manual_seed(3)
    centred = torch.randn(50, 7, generator=g, dtype=torch.float64)
    # rows far from the origin stress the float32 rounding allowances
    for frame, tight in ((centred, True), (centred + 100.0, False)):
        exact = torch.cdist(frame, frame).fill_diagonal_(torch.inf).amin(dim=1)
        tiled = nearest_row_distance(frame, tile_size=8)  # 7 x 7 tiles, the last ones partial
        assert bool((tiled <= exact).all())
        if tight:
            assert torch.allclose(tiled, exact, rtol=1e-4)


def test_more_classes_than_dimensions_nearest_centre_matches_brute_force():
    # K > d: the means span all of R^d, so the rule scores in the original coordinates
    h, y, w, b = random_problem(22, n=1500, d=6, k=40, spread=1.0)
    means = torch.stack([h[y == c].mean(0) for c in range(40)])
    nearest = torch.cdist(h, means).argmin(dim=1)
    logits_prediction = (h @ w.T + b).argmax(dim=1)
    result = measure(h, y, w, b, tile_size=16)
    assert result.ncc_accuracy == pytest.approx(float((nearest == y).double().mean()))
    assert result.ncc_mismatch == pytest.approx(
        float((nearest != logits_prediction).double().mean())
    )


def test_tall_means_use_qr_and_give_the_singular_values_and_span_of_a_direct_svd():
    from neuralcollapse.metrics.stats import MeanGeometry

    g = torch.Generator().manual_seed(23)
    means = torch.randn(40, 6, generator=g, dtype=torch.float64)  # K > 2d: the QR route
    geometry = MeanGeometry.from_means(means)
    centred = means - means.mean(0)
    _, singular, right = torch.linalg.svd(centred, full_matrices=False)
    assert torch.allclose(geometry.singular_values, singular, rtol=1e-12)
    # same span: the projectors agree (singular vectors are defined up to sign)
    assert torch.allclose(geometry.basis @ geometry.basis.T, right.T @ right, atol=1e-12)
    assert torch.equal(geometry.centred, centred)
