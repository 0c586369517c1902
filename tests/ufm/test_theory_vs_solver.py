"""Each closed form of neuralcollapse.ufm.closed_forms confirmed by L-BFGS at small sizes,
on both sides of each threshold (relative objective gap < 1e-6, Gram structure to 1e-5)."""

import math

import pytest
import torch

from neuralcollapse.ufm import UFMProblem, solve_lbfgs, theory

K, N_PER, D = 3, 2, 5


def _assert_matches_theory(solution, gram_tol=1e-5):
    reference = solution.theory
    assert reference.available
    # |gap| small, and the solver never beats the claimed global minimum
    assert abs(solution.rel_gap) < 1e-6, solution.rel_gap
    assert solution.rel_gap > -1e-9
    measured = solution.measurement
    scale = max(1.0, float(reference.gram_weights.abs().max()))
    if reference.gram_means is not None:
        assert torch.allclose(measured.gram_means, reference.gram_means, atol=gram_tol)
    assert torch.allclose(measured.gram_features, reference.gram_features, atol=gram_tol)
    assert torch.allclose(measured.gram_weights, reference.gram_weights, atol=gram_tol * scale)
    if reference.bias is not None:
        assert torch.allclose(solution.bias, reference.bias, atol=gram_tol)
    assert measured.geometry_features == reference.geometry_features


# (problem fields, expected theory geometry); lam values chosen on each side of K mu = 1
# (K mu = K sqrt(n lam_w lam_h); here K sqrt(n) = 3 sqrt(2) ~ 4.24)
DEPTH_ONE_CASES = [
    (dict(lam_w=1e-2, lam_h=2e-2), "of"),  # K mu = 0.06
    (dict(lam_w=0.2, lam_h=0.2), "of"),  # K mu = 0.85, just below 1
    (dict(lam_w=0.3, lam_h=0.3), "zero"),  # K mu = 1.27
    (dict(bias="free", lam_w=1e-2, lam_h=2e-2), "etf"),
    (dict(bias="free", lam_w=0.3, lam_h=0.3), "zero"),
    (dict(bias=0.05, lam_w=1e-2, lam_h=2e-2), "etf"),  # K mu (1 + 1/lam_b) > 1: exact ETF
    (dict(bias=3.0, lam_w=1e-2, lam_h=2e-2), "between"),  # m > 0: ETF + global mean
    (dict(bias=3.0, lam_w=0.3, lam_h=0.3), "zero"),
    (dict(loss="ce", lam_w=1e-2, lam_h=2e-2), "etf"),
    (dict(loss="ce", bias="free", lam_w=1e-2, lam_h=2e-2), "etf"),
    (dict(loss="ce", bias=0.5, lam_w=1e-2, lam_h=2e-2), "etf"),
    (dict(loss="ce", lam_w=0.3, lam_h=0.3), "zero"),
]


@pytest.mark.parametrize("fields,geometry", DEPTH_ONE_CASES)
def test_depth_one_closed_form_is_the_solver_minimum(fields, geometry):
    problem = UFMProblem(K, N_PER, D, **fields)
    reference = theory(problem)
    assert reference.geometry == geometry
    assert reference.is_zero == (reference.control >= 1)
    solution = solve_lbfgs(problem, restarts=3, seed=1)
    _assert_matches_theory(solution)
    assert solution.geometry == geometry


def test_mse_no_bias_means_form_an_orthogonal_frame_not_an_etf():
    solution = solve_lbfgs(UFMProblem(4, 3, 6, lam_w=1e-2, lam_h=1e-2), restarts=2)
    result = solution.result
    assert result.of_gap_means < 1e-6
    assert result.global_mean_ratio == pytest.approx(1 / math.sqrt(4), abs=1e-6)
    assert result.nc1 < 1e-10
    assert result.self_duality_uncentred < 1e-8


def _depth_two_lams(ratio: float, k: int = K, n: int = N_PER) -> dict:
    """Equal lam_1 = lam_2 = lam_H with K^3 n lam^3 = ratio / 16."""
    lam = (ratio / 16 / (k**3 * n)) ** (1 / 3)
    return dict(depth=2, lam_w=lam, lam_h=lam)


@pytest.mark.parametrize("ratio", [0.3, 0.9, 1.1])
def test_depth_two_linear_closed_form_on_both_sides_of_one_sixteenth(ratio):
    problem = UFMProblem(K, N_PER, D, **_depth_two_lams(ratio))
    reference = theory(problem)
    assert reference.is_zero == (ratio >= 1)
    _assert_matches_theory(solve_lbfgs(problem, restarts=3, seed=2))


def test_depth_two_singular_value_jumps_at_one_sixteenth():
    below = theory(UFMProblem(K, N_PER, D, **_depth_two_lams(0.999)))
    above = theory(UFMProblem(K, N_PER, D, **_depth_two_lams(1.001)))
    # s* >= (L-1)/L = 1/2 just below, 0 just above: a discontinuous jump ...
    assert below.s_star == pytest.approx(0.5, abs=0.02) and below.s_star >= 0.5
    assert above.s_star == 0.0 and above.is_zero
    # ... while the optimal value is continuous (1/2 at the threshold)
    assert below.f_star == pytest.approx(0.5, abs=1e-3) and below.f_star < 0.5
    # above it the positive root survives as a local minimum worse than zero
    s = above.extra["local_minimum_s"]
    assert s is not None and 0.25 < s < 0.5  # between the peak (L-1)/(2L) and (L-1)/L


def test_depth_three_linear_closed_form_matches_solver():
    lam = (0.1 * (2**2 / 3**6) / (K**4 * N_PER)) ** (1 / 4)  # a tenth of the L=3 threshold
    problem = UFMProblem(K, N_PER, D, depth=3, lam_w=lam, lam_h=lam)
    assert not theory(problem).is_zero
    _assert_matches_theory(solve_lbfgs(problem, restarts=3, seed=3))


def test_relu_depth_two_value_equals_linear_and_post_relu_means_are_an_orthogonal_frame():
    fields = _depth_two_lams(0.3)
    relu = UFMProblem(K, N_PER, D, activation="relu", **fields)
    linear = UFMProblem(K, N_PER, D, **fields)
    assert theory(relu).f_star == pytest.approx(theory(linear).f_star, rel=1e-14)
    solution = solve_lbfgs(relu, restarts=4, seed=4)
    _assert_matches_theory(solution)
    assert solution.measurement.geometry_features == "of"
    assert solution.result.of_gap_means < 1e-5
    # NC1 at both layers
    assert solution.result.nc1 < 1e-8
    assert solution.measurement.result_h.nc1 < 1e-8


def test_cross_entropy_margin_norms_and_wrong_class_probability_match_theory():
    problem = UFMProblem(4, 3, 6, loss="ce", lam_w=5e-3, lam_h=1e-2)
    reference = theory(problem)
    solution = solve_lbfgs(problem, restarts=2)
    mu = math.sqrt(3 * 5e-3 * 1e-2)
    logits = solution.weights[0] @ solution.features  # (K, N), class-major
    correct = logits[problem.labels(), torch.arange(12)]
    wrong = (logits.sum(dim=0) - correct) / 3
    # every wrong logit is equal and the margin is x* = log(1/mu - (K-1))
    assert torch.allclose(
        correct - wrong, torch.full((12,), math.log(1 / mu - 3), dtype=torch.float64), atol=1e-6
    )
    assert reference.extra["margin"] == pytest.approx(math.log(1 / mu - 3))
    probabilities = torch.softmax(logits, dim=0)
    wrong_p = probabilities[torch.arange(4).repeat_interleave(3) != torch.arange(4).view(-1, 1)]
    assert torch.allclose(wrong_p, torch.full_like(wrong_p, mu), atol=1e-7)
    norms_sq = solution.weights[0].pow(2).sum(dim=1)
    assert torch.allclose(
        norms_sq,
        torch.full((4,), reference.extra["weight_norm_sq"], dtype=torch.float64),
        rtol=1e-6,
    )
