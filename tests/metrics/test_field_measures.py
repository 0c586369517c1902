"""Generalised NC2, UNC3, NC5, held-out NCC, the per-class table and tiling.

Every value is checked against an independent dense computation written here (explicit
loops over classes and class pairs, float64, NumPy where it reads more plainly), a
theoretical value at an exact geometry, an invariance, or an error message.
"""

import csv
import math

import numpy as np
import pytest
import torch

from neuralcollapse.geometry import orthogonal_frame, simplex_etf
from neuralcollapse.metrics import ClassStats, measure, measure_batches

from .reference import dense_metrics

GNC2_KEYS = {
    "distance": ("gnc2_dist_mean", "gnc2_dist_var"),
    "log": ("gnc2_log_mean", "gnc2_log_var"),
    "riesz": ("gnc2_riesz_log_mean",),
}
ALL_GNC2_KEYS = [key for keys in GNC2_KEYS.values() for key in keys]
NEW_KEYS = [*ALL_GNC2_KEYS, "unc3", "unc3_cv", "nc5"]
PER_CLASS_COLUMNS = ("class", "count", "within_variance", "mean_norm", "weight_norm", "cdnv")


def problem(seed, n=300, d=12, k=7, spread=2.0):
    """Unbalanced random classes (every class present) and a random classifier, float64."""
    g = torch.Generator().manual_seed(seed)
    y = torch.randint(0, k, (n,), generator=g)
    y[:k] = torch.arange(k)
    centres = torch.randn(k, d, generator=g, dtype=torch.float64) * spread
    h = centres[y] + torch.randn(n, d, generator=g, dtype=torch.float64)
    w = torch.randn(k, d, generator=g, dtype=torch.float64)
    b = torch.randn(k, generator=g, dtype=torch.float64)
    return h, y, w, b


def ood_data(seed, d, n=80, offset=1.5):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(n, d, generator=g, dtype=torch.float64) + offset


def class_means(h, y, k):
    return torch.stack([h[y == c].mean(0) for c in range(k)])


def dense_gnc2(h, y, k):
    """Pairwise distances of the normalised centred means, one unordered pair at a time."""
    means = class_means(h, y, k)
    centred = means - means.mean(0)  # mean of class means, not the sample mean
    unit = [centred[c] / centred[c].norm() for c in range(k)]
    distances = [float((unit[a] - unit[b]).norm()) for a in range(k) for b in range(a + 1, k)]
    dist = np.array(distances)
    log_inverse = np.log(1.0 / dist)
    s = h.shape[1] - 2
    exponents = torch.tensor([-s * math.log(v) for v in distances], dtype=torch.float64)
    riesz = float(torch.logsumexp(exponents, 0)) - math.log(len(distances))
    return {
        "gnc2_dist_mean": float(dist.mean()),
        "gnc2_dist_var": float(dist.var()),
        "gnc2_log_mean": float(log_inverse.mean()),
        "gnc2_log_var": float(log_inverse.var()),
        "gnc2_riesz_log_mean": riesz,
    }


def dense_unc3(h, y, w, k):
    means = class_means(h, y, k).numpy()
    centred = means - means.mean(axis=0)
    weights = np.asarray(w)
    s = np.array([weights[c] @ centred[c] for c in range(k)])
    return {"unc3": float(s.var(ddof=1)), "unc3_cv": float(s.std(ddof=1) / abs(s.mean()))}


def dense_nc5(h, y, ood, k):
    means = class_means(h, y, k).numpy()
    ood_mean = np.asarray(ood).mean(axis=0)
    cosines = [
        abs(means[c] @ ood_mean) / (np.linalg.norm(means[c]) * np.linalg.norm(ood_mean))
        for c in range(k)
    ]
    return float(np.mean(cosines))


def dense_per_class(h, y, w, k):
    hn, yn = h.numpy(), y.numpy()
    means = np.stack([hn[yn == c].mean(axis=0) for c in range(k)])
    count = np.array([(yn == c).sum() for c in range(k)])
    variance = np.array([((hn[yn == c] - means[c]) ** 2).sum(axis=1).mean() for c in range(k)])
    cdnv = np.array(
        [
            np.mean(
                [
                    (variance[c] + variance[j]) / (2 * np.sum((means[c] - means[j]) ** 2))
                    for j in range(k)
                    if j != c
                ]
            )
            for c in range(k)
        ]
    )
    return {
        "count": count,
        "within_variance": variance,
        "mean_norm": np.linalg.norm(means - means.mean(axis=0), axis=1),
        "weight_norm": np.linalg.norm(np.asarray(w), axis=1),
        "cdnv": cdnv,
    }


def scalar_keys_close(actual, expected, rel):
    assert set(actual) == set(expected)
    for key, value in expected.items():
        if value is None:
            assert actual[key] is None, key
        else:
            assert actual[key] == pytest.approx(value, rel=rel, abs=1e-14), key


# --- generalised NC2 (hyperspherical uniformity) ---------------------------------------


@pytest.mark.parametrize("seed,k,d", [(0, 7, 5), (1, 10, 40), (2, 15, 9), (3, 12, 6)])
def test_gnc2_keys_match_dense_pairwise_distances_of_normalised_centred_means(seed, k, d):
    h, y, _, _ = problem(seed, n=40 * k, d=d, k=k)
    result = measure(h, y).to_dict()
    for key, expected in dense_gnc2(h, y, k).items():
        assert result[key] == pytest.approx(expected, rel=1e-9, abs=1e-13), key


@pytest.mark.parametrize("k,d", [(3, 3), (5, 8), (10, 12), (4, 30)])
def test_simplex_etf_means_have_equal_pairwise_distances_and_zero_variance(k, d):
    frame = 2.5 * simplex_etf(k, d, seed=k)
    result = measure(frame.repeat(3, 1), torch.arange(k).repeat(3))
    chord = math.sqrt(2 * k / (k - 1))
    assert result.gnc2_dist_mean == pytest.approx(chord, rel=1e-12)
    assert abs(result.gnc2_dist_var) < 1e-12
    assert result.gnc2_log_mean == pytest.approx(-math.log(chord), rel=1e-10, abs=1e-12)
    assert abs(result.gnc2_log_var) < 1e-12
    assert result.gnc2_riesz_log_mean == pytest.approx(
        -(d - 2) * math.log(chord), rel=1e-10, abs=1e-12
    )


def test_riesz_energy_of_nearly_coincident_directions_in_high_dimension_does_not_overflow():
    # d = 300, s = 298: two centred means 0.05 apart on the sphere give D^-s ~ 1e387
    k, d = 5, 300
    g = torch.Generator().manual_seed(4)
    basis, _ = torch.linalg.qr(torch.randn(d, 4, generator=g, dtype=torch.float64))
    x, z, p, q = basis.T  # orthonormal
    centred = torch.stack([x, x + 0.05 * z, 1.3 * p - x, 0.7 * q + p, torch.zeros(d)])
    centred[4] = -centred[:4].sum(0)  # mean zero: these are the centred means themselves
    jitter = 0.1 * torch.randn(k, d, generator=g, dtype=torch.float64)
    h = torch.cat([centred + jitter, centred - jitter])
    y = torch.arange(k).repeat(2)
    expected = dense_gnc2(h, y, k)["gnc2_riesz_log_mean"]
    assert expected > math.log(torch.finfo(torch.float64).max)  # naive exp would overflow
    result = measure(h, y).gnc2_riesz_log_mean
    assert math.isfinite(result)
    assert result == pytest.approx(expected, rel=1e-10)


@pytest.mark.parametrize(
    "kernels", [("distance",), ("log",), ("riesz",), ("distance", "riesz"), ("riesz", "log")]
)
def test_only_the_requested_uniformity_kernels_are_computed(kernels):
    h, y, _, _ = problem(5)
    full = measure(h, y).to_dict()
    part = measure(h, y, uniformity_kernels=kernels).to_dict()
    for name, keys in GNC2_KEYS.items():
        for key in keys:
            if name in kernels:
                assert part[key] == pytest.approx(full[key], rel=1e-12), key
            else:
                assert part[key] is None, key


def test_unknown_uniformity_kernel_is_rejected_by_name():
    h, y, _, _ = problem(6)
    with pytest.raises(ValueError, match="gaussian"):
        measure(h, y, uniformity_kernels=("gaussian",))
    with pytest.raises(ValueError, match="gaussian"):
        measure(h, y, uniformity_kernels=("distance", "gaussian"))


# --- UNC3 (uniform duality) --------------------------------------------------------------


@pytest.mark.parametrize("seed,k,d", [(7, 7, 12), (8, 12, 5)])
def test_unc3_matches_numpy_spread_of_weight_centred_mean_inner_products(seed, k, d):
    h, y, w, b = problem(seed, n=30 * k, d=d, k=k)
    result = measure(h, y, w, b)
    expected = dense_unc3(h, y, w, k)
    assert result.unc3 == pytest.approx(expected["unc3"], rel=1e-9)
    assert result.unc3_cv == pytest.approx(expected["unc3_cv"], rel=1e-9)


@pytest.mark.parametrize("k,d", [(3, 3), (6, 10), (10, 16)])
def test_unc3_is_zero_for_a_classifier_proportional_to_simplex_etf_means(k, d):
    frame = simplex_etf(k, d, seed=1)
    h, y = (1.7 * frame).repeat(2, 1), torch.arange(k).repeat(2)
    result = measure(h, y, weights=0.4 * frame)
    assert abs(result.unc3) < 1e-12
    assert abs(result.unc3_cv) < 1e-12


def test_unc3_uses_centred_means_so_a_common_feature_shift_does_not_change_it():
    h, y, w, b = problem(9)
    shift = torch.linspace(-3.0, 5.0, h.shape[1], dtype=torch.float64)
    base, shifted = measure(h, y, w, b), measure(h + shift, y, w, b)
    for key in ("unc3", "unc3_cv", *ALL_GNC2_KEYS):
        assert getattr(shifted, key) == pytest.approx(getattr(base, key), rel=1e-9), key


def test_new_keys_are_floats_and_none_exactly_when_their_input_is_missing():
    h, y, w, b = problem(10)
    ood = ood_data(10, h.shape[1])
    bare = measure(h, y).to_dict()
    full = measure(h, y, w, b, ood_features=ood).to_dict()
    for key in NEW_KEYS:
        assert isinstance(full[key], float) and math.isfinite(full[key]), key
    for key in ALL_GNC2_KEYS:
        assert isinstance(bare[key], float), key
    assert bare["unc3"] is None and bare["unc3_cv"] is None and bare["nc5"] is None
    assert measure(h, y, w, b).nc5 is None
    assert measure(h, y, ood_features=ood).unc3 is None


# --- NC5 (ID/OOD orthogonality) ----------------------------------------------------------


def test_nc5_matches_numpy_mean_absolute_cosine_to_the_ood_mean():
    h, y, w, b = problem(11, d=9)
    ood = ood_data(11, 9)
    expected = dense_nc5(h, y, ood, 7)
    assert measure(h, y, w, b, ood_features=ood).nc5 == pytest.approx(expected, rel=1e-10)
    assert measure(h, y, ood_features=ood.numpy()).nc5 == pytest.approx(expected, rel=1e-10)


def test_nc5_from_ood_class_statistics_uses_their_overall_mean():
    h, y, _, _ = problem(12, d=9)
    ood = ood_data(12, 9, n=90)
    ood_labels = torch.randint(0, 7, (90,), generator=torch.Generator().manual_seed(0))
    ood_labels[:7] = torch.arange(7)
    stats = ClassStats(7).update(ood, ood_labels)  # unbalanced: not the mean of class means
    expected = dense_nc5(h, y, ood, 7)
    assert measure(h, y, ood_features=stats).nc5 == pytest.approx(expected, rel=1e-10)


def test_nc5_is_zero_when_the_ood_mean_is_orthogonal_to_every_class_mean():
    k, d = 6, 8
    g = torch.Generator().manual_seed(13)
    h, y, _, _ = problem(13, d=d, k=k)
    h[:, -1] = 0.0  # class means live in the first d - 1 coordinates
    noise = torch.randn(20, d, generator=g, dtype=torch.float64)
    noise[:, -1] = 0.0
    ood = torch.cat([noise, -noise]) + 3.0 * torch.eye(d, dtype=torch.float64)[-1]
    assert abs(measure(h, y, ood_features=ood).nc5) < 1e-12


def test_nc5_of_an_ood_mean_along_one_orthogonal_class_mean_is_one_over_k():
    k, d = 5, 9
    frame = orthogonal_frame(k, d, seed=2)
    h, y = (2.0 * frame).repeat(3, 1), torch.arange(k).repeat(3)
    ood = torch.stack([4.0 * frame[0] + frame[1], 4.0 * frame[0] - frame[1]])
    assert measure(h, y, ood_features=ood).nc5 == pytest.approx(1.0 / k, rel=1e-12)


@pytest.mark.parametrize("as_stats", [False, True])
def test_ood_features_of_another_dimension_are_rejected(as_stats):
    h, y, _, _ = problem(14, d=6)
    ood = ood_data(14, 7)
    if as_stats:
        ood = ClassStats(2).update(ood, torch.arange(ood.shape[0]) % 2)
    with pytest.raises(ValueError, match="dimension"):
        measure(h, y, ood_features=ood)


# --- held-out nearest class centre --------------------------------------------------------


def shifted_held_out_problem():
    """Training data, and test data shifted so that its own means separate it perfectly."""
    k, d = 4, 6
    g = torch.Generator().manual_seed(15)
    centres = 4.0 * torch.eye(k, d, dtype=torch.float64)
    train_y = torch.arange(k).repeat(25)
    train_h = centres[train_y] + 0.3 * torch.randn(100, d, generator=g, dtype=torch.float64)
    test_y = torch.arange(k).repeat(20)
    shift = 0.55 * (centres[1] - centres[0])  # carries class 0 towards the train mean of 1
    test_h = centres[test_y] + shift + 0.3 * torch.randn(80, d, generator=g, dtype=torch.float64)
    w = torch.randn(k, d, generator=g, dtype=torch.float64)
    b = torch.randn(k, generator=g, dtype=torch.float64)
    return train_h, train_y, test_h, test_y, w, b


def test_held_out_ncc_uses_reference_class_means_and_matches_brute_force():
    train_h, train_y, test_h, test_y, w, b = shifted_held_out_problem()
    reference = ClassStats(4).update(train_h, train_y)
    train_means = class_means(train_h, train_y, 4)
    prediction = torch.cdist(test_h, train_means).argmin(dim=1)
    expected_accuracy = float((prediction == test_y).double().mean())
    own = torch.cdist(test_h, class_means(test_h, test_y, 4)).argmin(dim=1)
    assert bool((own == test_y).all()) and 0.0 < expected_accuracy < 1.0  # a real difference

    held_out = measure(test_h, test_y, w, b, reference=reference)
    assert held_out.ncc_accuracy == pytest.approx(expected_accuracy, abs=1e-15)
    classifier = (test_h @ w.T + b).argmax(dim=1)
    expected_mismatch = float((classifier != prediction).double().mean())
    assert held_out.ncc_mismatch == pytest.approx(expected_mismatch, abs=1e-15)
    assert measure(test_h, test_y, w, b).ncc_accuracy == 1.0


def test_reference_changes_only_the_nearest_centre_keys():
    train_h, train_y, test_h, test_y, w, b = shifted_held_out_problem()
    reference = ClassStats(4).update(train_h, train_y)
    own = measure(test_h, test_y, w, b).to_dict()
    held_out = measure(test_h, test_y, w, b, reference=reference).to_dict()
    for key in ("ncc_accuracy", "ncc_mismatch"):
        held_out.pop(key), own.pop(key)
    scalar_keys_close(held_out, own, rel=1e-12)


@pytest.mark.parametrize("mismatch", ["classes", "dimension"])
def test_reference_of_another_shape_is_rejected(mismatch):
    h, y, w, b = problem(16, d=8, k=5)
    k, d = (6, 8) if mismatch == "classes" else (5, 9)
    ref_h, ref_y, _, _ = problem(17, d=d, k=k)
    reference = ClassStats(k).update(ref_h, ref_y)
    with pytest.raises(ValueError, match="reference"):
        measure(h, y, w, b, reference=reference)


# --- per-class table ------------------------------------------------------------------------


def test_per_class_columns_match_numpy():
    k = 9
    h, y, w, b = problem(18, n=250, d=11, k=k)
    table = measure(h, y, w, b).per_class
    expected = dense_per_class(h, y, w, k)
    assert np.array_equal(np.asarray(table.count), expected["count"])
    for column in ("within_variance", "mean_norm", "weight_norm", "cdnv"):
        actual = np.asarray(getattr(table, column), dtype=np.float64)
        assert actual.shape == (k,), column
        np.testing.assert_allclose(actual, expected[column], rtol=1e-10, err_msg=column)


def test_mean_of_per_class_cdnv_is_the_scalar_cdnv():
    h, y, w, b = problem(19, k=11)
    result = measure(h, y, w, b)
    assert float(np.mean(np.asarray(result.per_class.cdnv))) == pytest.approx(
        result.cdnv, rel=1e-12
    )
    assert result.cdnv == pytest.approx(dense_metrics(h, y, w, b)["cdnv"], rel=1e-10)


def test_per_class_weight_norm_is_none_without_weights_and_the_table_is_not_a_metric_key():
    h, y, _, _ = problem(20)
    result = measure(h, y)
    assert result.per_class.weight_norm is None
    assert np.asarray(result.per_class.within_variance).shape == (7,)
    assert "per_class" not in result.to_dict()
    assert "per_class" not in type(result).keys()


def test_per_class_to_dict_and_csv_hold_one_row_per_class(tmp_path):
    k = 6
    h, y, w, b = problem(21, n=150, d=7, k=k)
    table = measure(h, y, w, b).per_class
    columns = table.to_dict()
    assert set(PER_CLASS_COLUMNS) <= set(columns)
    assert all(len(values) == k for values in columns.values())
    assert list(columns["class"]) == list(range(k))
    expected = dense_per_class(h, y, w, k)
    np.testing.assert_allclose(np.asarray(columns["cdnv"], dtype=float), expected["cdnv"], 1e-10)

    path = tmp_path / "per_class.csv"
    table.write_csv(path)
    with open(path, newline="") as handle:
        reader = csv.DictReader(handle)
        rows = list(reader)
        header = reader.fieldnames
    assert set(header) == set(columns) and len(rows) == k
    for c, row in enumerate(rows):
        assert int(row["class"]) == c
        assert int(float(row["count"])) == expected["count"][c]
        for column in ("within_variance", "mean_norm", "weight_norm", "cdnv"):
            assert float(row[column]) == pytest.approx(expected[column][c], rel=1e-6), column


# --- tiling -----------------------------------------------------------------------------------


def test_tile_size_does_not_change_any_scalar_or_per_class_value():
    k = 12
    h, y, w, b = problem(22, n=240, d=10, k=k)
    train_h, train_y, _, _ = problem(23, n=240, d=10, k=k)
    options = dict(ood_features=ood_data(22, 10), reference=ClassStats(k).update(train_h, train_y))
    base = measure(h, y, w, b, **options)
    base_table = base.per_class
    for tile in (1, 3, 4, 7, k, k + 5):
        tiled = measure(h, y, w, b, tile_size=tile, **options)
        scalar_keys_close(tiled.to_dict(), base.to_dict(), rel=1e-10)
        for column in ("count", "within_variance", "mean_norm", "weight_norm", "cdnv"):
            np.testing.assert_allclose(
                np.asarray(getattr(tiled.per_class, column), dtype=np.float64),
                np.asarray(getattr(base_table, column), dtype=np.float64),
                rtol=1e-10,
                err_msg=f"{column} tile_size={tile}",
            )


@pytest.mark.parametrize("tile", [0, -3, 2.5])
def test_invalid_tile_size_is_rejected(tile):
    h, y, w, b = problem(24)
    with pytest.raises(ValueError, match="tile_size"):
        measure(h, y, w, b, tile_size=tile)


# --- the rest is unchanged; streaming; invariances ----------------------------------------


def test_existing_keys_still_match_dense_reference_with_every_new_option_on():
    h, y, w, b = problem(25, n=400, d=16, k=9)
    result = measure(
        h,
        y,
        w,
        b,
        ood_features=ood_data(25, 16),
        uniformity_kernels=("distance", "log", "riesz"),
        tile_size=4,
    ).to_dict()
    for key, expected in dense_metrics(h, y, w, b).items():
        assert result[key] == pytest.approx(expected, rel=1e-8, abs=1e-12), key


def test_measure_batches_with_ood_and_reference_equals_measure():
    k = 7
    h, y, w, b = problem(26, n=300, d=10, k=k)
    train_h, train_y, _, _ = problem(27, n=300, d=10, k=k)
    options = dict(ood_features=ood_data(26, 10), reference=ClassStats(k).update(train_h, train_y))
    batches = [(h[i : i + 64], y[i : i + 64]) for i in range(0, h.shape[0], 64)]
    streamed = measure_batches(lambda: batches, num_classes=k, weights=w, bias=b, **options)
    direct = measure(h, y, w, b, **options)
    scalar_keys_close(streamed.to_dict(), direct.to_dict(), rel=1e-10)
    for column in ("within_variance", "mean_norm", "weight_norm", "cdnv"):
        np.testing.assert_allclose(
            np.asarray(getattr(streamed.per_class, column), dtype=np.float64),
            np.asarray(getattr(direct.per_class, column), dtype=np.float64),
            rtol=1e-10,
            err_msg=column,
        )


def test_gnc2_unc3_and_nc5_are_invariant_to_a_global_rotation():
    h, y, w, b = problem(28, d=14, k=8)
    ood = ood_data(28, 14)
    g = torch.Generator().manual_seed(5)
    q, _ = torch.linalg.qr(torch.randn(14, 14, generator=g, dtype=torch.float64))
    base = measure(h, y, w, b, ood_features=ood)
    rotated = measure(h @ q, y, w @ q, b, ood_features=ood @ q)
    for key in NEW_KEYS:
        assert getattr(rotated, key) == pytest.approx(getattr(base, key), rel=1e-9), key


def test_nc5_of_an_ood_mean_at_the_rounding_level_is_refused_like_an_exact_zero():
    """Issue 23: features o and -o have a float64 mean of ~1e-17, not 0: rounding, whose
    direction is noise. It is refused as the exact zero is, not read as NC5 = 0.249."""
    import numpy as np
    import pytest
    import torch

    from neuralcollapse import measure
    from neuralcollapse.metrics import ClassStats

    generator = torch.Generator().manual_seed(3)
    labels = torch.arange(60) % 3
    features = torch.randn(60, 8, generator=generator, dtype=torch.float64) + 3 * labels[:, None]
    ood = torch.tensor(np.random.default_rng(1).normal(size=(20, 8)) * 0.1 + 0.7)
    for balanced in (ood - ood.mean(0), torch.cat([ood, -ood])):
        mean = balanced.mean(0)
        assert float(mean.abs().max()) < 1e-15  # rounding, not an exact zero in general
        with pytest.raises(ValueError, match="mean 0 .exactly, or to the rounding"):
            measure(features, labels, ood_features=balanced)
    # as statistics: per-class sums that cancel each other (o in one class, -o in the other)
    stats = ClassStats(2).update(torch.cat([ood, -ood]), torch.arange(40) // 20)
    with pytest.raises(ValueError, match="to the rounding of its float64 sum"):
        measure(features, labels, ood_features=stats)
    # a genuine mean, however small against the features, keeps its NC5
    shifted = ood - ood.mean(0) + 1e-6
    value = measure(features, labels, ood_features=shifted).nc5
    means = torch.stack([features[labels == k].mean(0) for k in range(3)])
    direction = shifted.mean(0)
    cosines = (means @ direction) / (means.norm(dim=1) * direction.norm())
    assert value == pytest.approx(float(cosines.abs().mean()), rel=1e-6)
