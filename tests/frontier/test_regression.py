"""Neural regression collapse: streaming NRC1-NRC3 and the regression UFM's closed form."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
import torch

from neuralcollapse.frontier.regression import (
    RegressionStats,
    RegressionUFM,
    nrc3_distance,
    regression_collapse,
    regression_ufm_theory,
    solve_regression_ufm,
)

RNG = np.random.default_rng(11)


def _targets(n_samples: int = 24, seed: int = 0) -> torch.Tensor:
    generator = torch.Generator().manual_seed(seed)
    mixing = torch.tensor([[2.0, 0.0, 0.0], [0.6, 1.0, 0.0], [0.0, 0.3, 0.4]], dtype=torch.float64)
    shift = torch.tensor([1.0, -2.0, 0.5], dtype=torch.float64)
    return torch.randn(n_samples, 3, generator=generator, dtype=torch.float64) @ mixing + shift


def test_streaming_sums_merge_exactly_and_match_numpy():
    rng = np.random.default_rng(0)
    features, targets = rng.standard_normal((90, 7)), rng.standard_normal((90, 2))
    whole = RegressionStats().update(features, targets)
    parts = [
        RegressionStats().update(features[i : i + 30], targets[i : i + 30]) for i in (0, 30, 60)
    ]
    merged = RegressionStats()
    for part in parts:
        merged.merge(part)
    np.testing.assert_allclose(merged.feature_covariance(), np.cov(features.T, ddof=0), atol=1e-12)
    np.testing.assert_allclose(merged.target_covariance(), np.cov(targets.T, ddof=0), atol=1e-12)
    weights = rng.standard_normal((2, 7))
    a, b = regression_collapse(whole, weights), regression_collapse(merged, weights)
    assert (a.nrc1, a.nrc2, a.nrc3) == pytest.approx((b.nrc1, b.nrc2, b.nrc3), abs=1e-12)


def test_nrc1_and_nrc2_against_independent_projections():
    rng = np.random.default_rng(1)
    features, targets = (
        rng.standard_normal((200, 6)) * [3, 2, 1, 0.5, 0.2, 0.1],
        rng.standard_normal((200, 2)),
    )
    weights = rng.standard_normal((2, 6))
    centred = features - features.mean(axis=0)
    _, _, vt = np.linalg.svd(centred, full_matrices=False)
    top = vt[:2].T
    nrc1 = np.sum((centred - centred @ top @ top.T) ** 2) / np.sum(centred**2)
    q, _ = np.linalg.qr(weights.T)
    nrc2 = np.sum((centred - centred @ q @ q.T) ** 2) / np.sum(centred**2)
    result = regression_collapse((features, targets), weights)
    assert result.nrc1 == pytest.approx(nrc1, rel=1e-10)
    assert result.nrc2 == pytest.approx(nrc2, rel=1e-10)


def test_collapsed_features_give_zero_nrc():
    rng = np.random.default_rng(2)
    weights = rng.standard_normal((3, 8))
    coefficients = rng.standard_normal((50, 3))
    features = coefficients @ weights + 0.7  # in W's row space (plus a global mean)
    result = regression_collapse((features, rng.standard_normal((50, 3))), weights)
    assert result.nrc1 < 1e-12 and result.nrc2 < 1e-12


def test_nrc3_recovers_gamma_and_is_scale_invariant():
    rng = np.random.default_rng(3)
    a = rng.standard_normal((3, 3))
    sigma = torch.from_numpy(a @ a.T + 0.5 * np.eye(3))
    values, vectors = torch.linalg.eigh(sigma)
    gamma = 0.6 * float(values.min())
    gram = (vectors * (values.sqrt() - gamma**0.5)) @ vectors.T
    distance, fitted = nrc3_distance(7.3 * gram, sigma)
    assert distance < 1e-7
    assert fitted == pytest.approx(gamma, rel=1e-4)
    assert nrc3_distance(gram, sigma, gamma=gamma)[0] < 1e-12
    assert nrc3_distance(gram, sigma, gamma=0.0)[0] > 1e-3


def test_per_sample_nrc_against_a_direct_loop():
    rng = np.random.default_rng(4)
    features, targets = rng.standard_normal((40, 5)), rng.standard_normal((40, 2))
    weights = rng.standard_normal((2, 5))
    stats = RegressionStats().update(features, targets)
    nrc1, nrc2 = stats.per_sample_nrc([features[:15], features[15:]], weights)
    centred = features - features.mean(axis=0)
    unit = centred / np.linalg.norm(centred, axis=1, keepdims=True)
    _, vectors = np.linalg.eigh(np.cov(features.T, ddof=0))
    top = vectors[:, -2:]
    q, _ = np.linalg.qr(weights.T)
    assert nrc1 == pytest.approx(np.mean(np.sum((unit - unit @ top @ top.T) ** 2, axis=1)))
    assert nrc2 == pytest.approx(np.mean(np.sum((unit - unit @ q @ q.T) ** 2, axis=1)))


@pytest.mark.parametrize("bias", ["free", "none"])
@pytest.mark.parametrize(("lam_w", "lam_h"), [(1e-2, 1e-2), (5e-2, 1e-1)])
def test_solver_reaches_the_closed_form(bias, lam_w, lam_h):
    problem = RegressionUFM(_targets(), dim=5, lam_w=lam_w, lam_h=lam_h, bias=bias)
    solution = solve_regression_ufm(problem, restarts=2)
    theory = regression_ufm_theory(problem)
    assert abs(solution.rel_gap) < 1e-6
    assert solution.gram_error < 1e-5
    # the balanced factors: H H^T = (lam_W / lam_H) W^T W
    h, w = solution.features, solution.weights
    torch.testing.assert_close(h @ h.T, lam_w / lam_h * w.T @ w, atol=1e-5, rtol=0)
    prediction = (w @ h).T + (0 if solution.bias is None else solution.bias)
    torch.testing.assert_close(prediction, theory.predictions, atol=1e-5, rtol=0)
    # the closed form's W W^T is NRC3's form at gamma = N lam_W lam_H
    sigma = problem.target_covariance()
    assert nrc3_distance(theory.gram_weights, sigma, gamma=problem.gamma)[0] < 1e-12


@pytest.mark.parametrize("bias", ["free", "none"])
def test_closed_form_thresholds_small_target_directions(bias):
    base = RegressionUFM(_targets(), dim=5, lam_w=5e-2, lam_h=1.0, bias=bias)
    values = torch.linalg.eigvalsh(base.target_covariance())
    gamma = float(values[0] + values[1]) / 2  # between the two smallest eigenvalues
    problem = RegressionUFM(_targets(), dim=5, lam_w=5e-2, lam_h=gamma / (24 * 5e-2), bias=bias)
    theory = regression_ufm_theory(problem)
    assert problem.gamma == pytest.approx(gamma)
    assert theory.active == 2  # the smallest direction is switched off
    assert torch.linalg.matrix_rank(theory.gram_weights, atol=1e-10) == 2
    solution = solve_regression_ufm(problem, restarts=2)
    assert abs(solution.rel_gap) < 1e-6 and solution.gram_error < 1e-5


def test_closed_form_value_against_the_objective_of_its_own_point_by_scipy():
    """f* is the minimum: SciPy's L-BFGS-B from the data's least-squares point gets no lower."""
    scipy_optimize = pytest.importorskip("scipy.optimize")
    problem = RegressionUFM(_targets(12, seed=4), dim=3, lam_w=2e-2, lam_h=3e-2, bias="none")
    n, d, big_n = 3, 3, 12

    def f(flat: np.ndarray) -> float:
        w = torch.from_numpy(flat[: n * d].reshape(n, d))
        h = torch.from_numpy(flat[n * d :].reshape(d, big_n))
        return float(problem.objective(w, h))

    rng = np.random.default_rng(0)
    best = min(
        scipy_optimize.minimize(
            f,
            rng.standard_normal(n * d + d * big_n),
            method="L-BFGS-B",
            options={"maxiter": 20000, "ftol": 1e-15, "gtol": 1e-12},
        ).fun
        for _ in range(3)
    )
    assert best == pytest.approx(regression_ufm_theory(problem).f_star, rel=1e-6)


def test_narrow_features_keep_the_largest_directions():
    problem = RegressionUFM(_targets(), dim=1, lam_w=1e-3, lam_h=1e-3)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        solution = solve_regression_ufm(problem, restarts=3)
    assert abs(solution.rel_gap) < 1e-6
    assert regression_ufm_theory(problem).active == 1


def test_bad_input_names_the_problem():
    with pytest.raises(TypeError, match="floating point"):
        RegressionStats().update(np.ones((4, 3)), np.arange(4))
    with pytest.raises(ValueError, match="rows but features"):
        RegressionStats().update(np.ones((4, 3)), np.ones((5, 2)))
    with pytest.raises(ValueError, match="transposed"):
        regression_collapse((RNG.random((10, 4)), RNG.random((10, 2))), np.ones((4, 2)))
    with pytest.raises(ValueError, match="at most as many targets"):
        regression_collapse((RNG.random((10, 2)), RNG.random((10, 3))), np.ones((3, 2)))
    with pytest.raises(ValueError, match="lam_w must be a finite number > 0"):
        RegressionUFM(_targets(), dim=3, lam_w=0.0, lam_h=1.0)
    with pytest.raises(ValueError, match="bias must be"):
        RegressionUFM(_targets(), dim=3, lam_w=1.0, lam_h=1.0, bias="yes")
    with pytest.raises(ValueError, match="seen no data"):
        RegressionStats().feature_covariance()
