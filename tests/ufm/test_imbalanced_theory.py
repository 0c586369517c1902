"""Imbalanced MSE without bias: per-class soft-thresholding against the solver, on both sides
of each class's threshold lam_W lam_H = n_k / N^2."""

import math

import pytest
import torch

from neuralcollapse.ufm import UFMProblem, solve_lbfgs, theory
from neuralcollapse.ufm.closed_forms import closed_form, imbalanced_mse_theory

COUNTS = (6, 3, 1)  # N = 10; thresholds on lam_W lam_H: 0.06, 0.03, 0.01


def _problem(product: float) -> UFMProblem:
    lam = math.sqrt(product)
    return UFMProblem(3, COUNTS, 4, lam_w=lam, lam_h=lam)


# products of lam_W lam_H just below / above each class's threshold n_k / N^2
PRODUCTS = [0.009, 0.011, 0.027, 0.033, 0.054, 0.066]


@pytest.mark.parametrize("product", PRODUCTS)
def test_closed_form_matches_solver_on_both_sides_of_each_threshold(product):
    problem = _problem(product)
    reference = imbalanced_mse_theory(problem)
    expected_zero = [k for k, n in enumerate(COUNTS) if product >= n / 100]
    assert reference.extra["zero_classes"] == expected_zero
    solution = solve_lbfgs(problem, restarts=2, seed=1, reference=reference)
    assert abs(solution.rel_gap) < 1e-6 and solution.rel_gap > -1e-9
    assert solution.reached_global_minimum
    measured = solution.measurement
    assert torch.allclose(measured.gram_means, reference.gram_means, atol=1e-6)
    assert torch.allclose(measured.gram_weights, reference.gram_weights, atol=1e-6)
    # zero classes: mean and classifier row vanish; the others are orthogonal, unequal norms
    row_norms = solution.weights[0].norm(dim=1)
    for k in range(3):
        assert (row_norms[k] < 1e-5) == (k in expected_zero)


def test_geometry_is_orthogonal_with_norms_following_the_class_sizes():
    reference = imbalanced_mse_theory(_problem(1e-4))
    gram = reference.gram_weights
    assert torch.count_nonzero(gram - torch.diag(torch.diagonal(gram))) == 0
    weights_sq = torch.diagonal(gram)
    assert weights_sq[0] > weights_sq[1] > weights_sq[2] > 0  # larger classes, longer rows
    means_sq = torch.diagonal(reference.gram_means)
    assert means_sq[2] > means_sq[0]  # ... but shorter means: ||hbar_k||^2 ~ s_k / n_k


def test_equal_counts_reduce_to_the_balanced_closed_form():
    balanced = UFMProblem(3, 4, 5, lam_w=1e-2, lam_h=2e-2)
    # a problem with equal counts given per class is normalised to balanced; compare formulas
    counts = imbalanced_mse_theory(balanced.replace(per_class=(4, 4, 4)))
    assert counts.f_star == pytest.approx(theory(balanced).f_star, rel=1e-14)
    assert counts.control == pytest.approx(theory(balanced).control, rel=1e-14)


def test_closed_form_dispatches_and_theory_keeps_imbalanced_unavailable():
    problem = _problem(0.02)
    assert not theory(problem).available
    assert "imbalanced_mse_theory" in theory(problem).reason
    assert closed_form(problem).available
    ce = UFMProblem(3, COUNTS, 4, loss="ce")
    assert not imbalanced_mse_theory(ce).available and not closed_form(ce).available


def test_too_small_dimension_has_no_closed_form():
    problem = UFMProblem(3, COUNTS, 2, lam_w=1e-2, lam_h=1e-2)
    with pytest.raises(ValueError, match="d=2 < 3"):
        imbalanced_mse_theory(problem)
    assert not closed_form(problem).available


@pytest.mark.parametrize("fields", [dict(loss="ce"), dict(bias="free")])
def test_imbalanced_ce_and_free_bias_solve_and_collapse_within_classes(fields):
    solution = solve_lbfgs(UFMProblem(3, COUNTS, 4, lam_w=1e-2, lam_h=1e-2, **fields))
    assert solution.reached_global_minimum is None  # no closed form to compare with
    assert solution.converged and solution.result.nc1 < 1e-8
