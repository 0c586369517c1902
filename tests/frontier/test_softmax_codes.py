"""Generalized neural collapse: tiled one-vs-rest margins and the spherical-code solver."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from neuralcollapse.frontier.softmax_codes import (
    TAMMES_ANGLES_D3,
    feature_margins,
    frame_margins,
    known_optimal_margin,
    simplex_bound,
    solve_spherical_code,
)
from neuralcollapse.geometry import simplex_etf


def _dense_margins(rows: np.ndarray) -> np.ndarray:
    units = rows / np.linalg.norm(rows, axis=1, keepdims=True)
    cosines = units @ units.T
    np.fill_diagonal(cosines, -np.inf)
    return 1.0 - cosines.max(axis=1)


@pytest.mark.parametrize("tile_size", [7, 64, None])
def test_frame_margins_match_dense_numpy_in_any_tiling(tile_size):
    rows = np.random.default_rng(0).standard_normal((300, 5)) * np.random.default_rng(1).uniform(
        0.5, 3.0, (300, 1)
    )
    result = frame_margins(torch.from_numpy(rows), tile_size=tile_size)
    np.testing.assert_allclose(result.per_class.numpy(), _dense_margins(rows), atol=1e-12)
    units = rows / np.linalg.norm(rows, axis=1, keepdims=True)
    cosines = units @ units.T
    np.fill_diagonal(cosines, -np.inf)
    np.testing.assert_array_equal(result.nearest.numpy(), cosines.argmax(axis=1))
    assert result.minimum == pytest.approx(_dense_margins(rows).min(), abs=1e-12)


def test_row_whose_nearest_cosine_is_below_the_etf_value_is_not_clipped():
    # row 0's only neighbours are antipodal: its largest cosine is -1 < -1/(K-1)
    rows = torch.tensor([[1.0, 0.0], [-1.0, 0.0], [-1.0, 1e-9]], dtype=torch.float64)
    assert float(frame_margins(rows, uniformity_kernels=()).per_class[0]) == pytest.approx(2.0)


@pytest.mark.parametrize("k", [3, 5, 10])
def test_simplex_etf_attains_the_known_optimum_and_the_bound(k):
    result = frame_margins(simplex_etf(k, k + 2, seed=1))
    assert result.minimum == pytest.approx(k / (k - 1), abs=1e-12)
    assert result.optimum == pytest.approx(simplex_bound(k))
    assert abs(result.gap) < 1e-12
    assert result.uniformity["gnc2_dist_var"] == pytest.approx(0.0, abs=1e-20)


def test_cross_polytope_margin_is_one():
    dim = 4
    rows = torch.cat([torch.eye(dim), -torch.eye(dim)]).double()
    result = frame_margins(rows)
    assert result.minimum == pytest.approx(1.0) and result.min_angle_degrees == pytest.approx(90)
    assert result.gap == pytest.approx(0.0, abs=1e-15)


def test_margins_are_invariant_to_row_scaling_and_rotation():
    generator = torch.Generator().manual_seed(3)
    rows = torch.randn(40, 4, generator=generator, dtype=torch.float64)
    rotation, _ = torch.linalg.qr(torch.randn(4, 4, generator=generator, dtype=torch.float64))
    scales = torch.rand(40, 1, generator=generator, dtype=torch.float64) + 0.1
    a = frame_margins(rows).per_class
    b = frame_margins(scales * rows @ rotation).per_class
    torch.testing.assert_close(a, b, rtol=0, atol=1e-12)


def test_feature_margins_match_dense_numpy():
    rng = np.random.default_rng(5)
    means, weights = rng.standard_normal((130, 6)), rng.standard_normal((130, 6))
    u = means / np.linalg.norm(means, axis=1, keepdims=True)
    v = weights / np.linalg.norm(weights, axis=1, keepdims=True)
    scores = u @ v.T
    own = np.diag(scores).copy()
    np.fill_diagonal(scores, -np.inf)
    expected = own - scores.max(axis=1)
    for tile in (9, 50, None):
        got = feature_margins(means, weights, tile_size=tile).numpy()
        np.testing.assert_allclose(got, expected, atol=1e-12)


def test_self_dual_feature_margins_equal_frame_margins():
    rows = torch.randn(50, 3, generator=torch.Generator().manual_seed(2), dtype=torch.float64)
    torch.testing.assert_close(feature_margins(rows, rows), frame_margins(rows).per_class)


def test_feature_margins_never_exceed_the_distance_to_the_hull_of_the_other_rows():
    """Jiang et al.'s one-vs-rest distance, computed independently with SciPy's SLSQP."""
    scipy_optimize = pytest.importorskip("scipy.optimize")
    rng = np.random.default_rng(7)
    weights = rng.standard_normal((7, 3))
    weights /= np.linalg.norm(weights, axis=1, keepdims=True)
    means = weights + 0.3 * rng.standard_normal((7, 3))
    margins = feature_margins(means, weights).numpy()
    for k in range(7):
        others = np.delete(weights, k, axis=0)
        result = scipy_optimize.minimize(
            lambda a, others=others, k=k: np.sum((weights[k] - a @ others) ** 2),
            np.full(6, 1 / 6),
            bounds=[(0, 1)] * 6,
            constraints=[{"type": "eq", "fun": lambda a: a.sum() - 1}],
            method="SLSQP",
            options={"ftol": 1e-14},
        )
        assert margins[k] <= math.sqrt(result.fun) + 1e-6


@pytest.mark.parametrize("k", [4, 5, 6, 7, 8, 12])
def test_solver_reaches_the_tabulated_tammes_angles_in_three_dimensions(k):
    code = solve_spherical_code(k, 3, restarts=12, seed=0)
    assert code.min_angle_degrees == pytest.approx(TAMMES_ANGLES_D3[k], abs=2e-3)
    torch.testing.assert_close(code.points.norm(dim=1), torch.ones(k, dtype=torch.float64))
    # the reported margin is the exact margin of the returned points
    assert frame_margins(code.points).minimum == pytest.approx(code.min_margin, abs=1e-12)


@pytest.mark.parametrize(("k", "d"), [(3, 2), (5, 4), (6, 5), (8, 4), (10, 5)])
def test_solver_finds_the_simplex_and_the_cross_polytope(k, d):
    code = solve_spherical_code(k, d, restarts=6, seed=1)
    expected = k / (k - 1) if k <= d + 1 else 1.0
    assert code.min_margin == pytest.approx(expected, abs=1e-5)
    assert code.optimum == pytest.approx(expected)


def test_softmax_code_objective_also_reaches_the_icosahedron():
    code = solve_spherical_code(12, 3, restarts=8, objective="softmax")
    assert code.min_angle_degrees == pytest.approx(math.degrees(math.atan(2.0)), abs=2e-3)


def test_known_optimum_of_the_polygon_and_unknown_cases():
    assert known_optimal_margin(7, 2) == pytest.approx(1 - math.cos(2 * math.pi / 7))
    assert known_optimal_margin(30, 5) is None
    assert known_optimal_margin(4, 3) == pytest.approx(1 + 1 / 3)


def test_bad_input_names_the_problem():
    with pytest.raises(ValueError, match="zero row"):
        frame_margins(torch.tensor([[1.0, 0.0], [0.0, 0.0]]))
    with pytest.raises(ValueError, match=r"\(K, d\) matrix"):
        frame_margins(torch.ones(5))
    with pytest.raises(ValueError, match="transposed"):
        feature_margins(torch.randn(4, 3), torch.randn(3, 4))
    with pytest.raises(ValueError, match="objective must be"):
        solve_spherical_code(4, 3, objective="hinge")
    with pytest.raises(ValueError, match="restarts must be an integer >= 1"):
        solve_spherical_code(4, 3, restarts=0)
    with pytest.raises(ValueError, match="not finite|NaN|nan"):
        frame_margins(torch.tensor([[1.0, float("nan")], [0.0, 1.0]]))
