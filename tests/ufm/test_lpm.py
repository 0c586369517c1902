"""The Layer-Peeled Model: convex relaxation and non-convex route agree; balance gives the ETF."""

import math
import warnings

import pytest
import torch

from neuralcollapse.metrics.minority import minority_cosine
from neuralcollapse.ufm.lpm import LPMProblem, solve_lpm_nonconvex, step_class_sizes
from neuralcollapse.ufm.lpm_convex import LPMSolverError, solve_lpm, solve_lpm_convex

# (R, K_A, K_B, E_W, E_H): both sides of the collapse (cosine from near -1/(K-1) to 1)
CASES = [
    (3.0, 3, 2, 3.0, 3.0),
    (10.0, 3, 2, 3.0, 3.0),
    (30.0, 2, 3, 2.0, 4.0),
    (100.0, 4, 2, 3.0, 3.0),
    (5.0, 2, 2, 1.0, 1.0),
]


@pytest.mark.parametrize("ratio,k_a,k_b,e_w,e_h", CASES)
def test_convex_and_nonconvex_routes_agree(ratio, k_a, k_b, e_w, e_h):
    problem = LPMProblem.step(k_a, k_b, ratio, dim=2 * (k_a + k_b), e_w=e_w, e_h=e_h)
    convex = solve_lpm_convex(problem)
    assert convex.tight and convex.status == "optimal"
    nonconvex = solve_lpm_nonconvex(problem, reference=convex.objective)
    assert nonconvex.objective == pytest.approx(convex.objective, rel=1e-6, abs=1e-8)
    assert nonconvex.reached_global_minimum
    assert nonconvex.minority_cosine == pytest.approx(convex.minority_cosine, abs=1e-4)
    # both budgets are spent at the optimum (the boundary parameterisation assumes it)
    k = problem.num_classes
    assert float(convex.weights.pow(2).sum()) / k == pytest.approx(e_w, rel=1e-6)
    assert float(convex.means.pow(2).sum()) / k == pytest.approx(e_h, rel=1e-6)


def test_per_sample_route_collapses_to_the_class_means_solution():
    problem = LPMProblem((6, 6, 2, 2), dim=8, e_w=2.0, e_h=2.0)
    means_route = solve_lpm_nonconvex(problem)
    samples_route = solve_lpm_nonconvex(problem, per_sample=True, restarts=1)
    assert samples_route.objective == pytest.approx(means_route.objective, rel=1e-8)
    features = samples_route.features  # (d, N): every sample sits on its class mean
    labels = torch.arange(4).repeat_interleave(torch.tensor(problem.class_sizes))
    spread = (features - samples_route.means[:, labels]).norm() / features.norm()
    assert spread < 1e-5
    # the feature budget (1/K) sum_k (1/n_k) sum_i ||h_ki||^2 is met exactly
    sizes = torch.tensor(problem.class_sizes, dtype=torch.float64)[labels]
    assert float((features.pow(2).sum(0) / sizes).sum() / 4) == pytest.approx(2.0, rel=1e-12)


def test_balanced_classes_give_the_simplex_etf():
    problem = LPMProblem((50,) * 5, dim=10, minority=(2, 3, 4))
    for solution in (solve_lpm_convex(problem), solve_lpm_nonconvex(problem)):
        assert solution.minority_cosine == pytest.approx(-1 / 4, abs=1e-4)
        gram = solution.weights @ solution.weights.T
        etf = (5 / 4) * (torch.eye(5) - 1 / 5).to(torch.float64)  # E_W = 1 per row
        assert torch.allclose(gram, etf, atol=1e-4)
        # features are aligned with the classifier (NC3)
        assert minority_cosine(solution.means.T, range(5), centred=True) == pytest.approx(
            -1 / 4, abs=1e-4
        )


def test_large_imbalance_collapses_the_minority_classifiers():
    problem = LPMProblem.step(5, 5, 1000, dim=20, e_w=3.0, e_h=3.0)
    solution = solve_lpm_convex(problem)
    assert solution.minority_cosine > 0.999
    small = solve_lpm_convex(LPMProblem.step(5, 5, 2, dim=20, e_w=3.0, e_h=3.0))
    assert small.minority_cosine < 0


def test_minority_rows_that_vanish_are_reported_as_merged():
    # E_W = E_H = 1, K = 10, R = 10: the optimum gives the minority classes no norm at all
    solution = solve_lpm_convex(LPMProblem.step(5, 5, 10, dim=20))
    assert solution.minority_zero and solution.minority_cosine == 1.0


def test_summary_is_strict_json():
    from neuralcollapse.schema import dumps

    text = dumps(solve_lpm_nonconvex(LPMProblem((3, 3, 1), dim=6)).summary())
    assert "NaN" not in text and "Infinity" not in text


def test_small_dimension_warns_that_the_relaxation_may_not_be_tight():
    with pytest.warns(RuntimeWarning, match=r"d = 3 < 2K = 8.*may not be tight.*nonconvex"):
        solution = solve_lpm_convex(LPMProblem((5, 5, 1, 1), dim=3))
    assert solution.tight in (True, False)
    if not solution.tight:
        assert solution.objective >= solution.lower_bound - 1e-9


def test_missing_conic_solver_is_an_error_naming_the_fallback():
    with pytest.raises(LPMSolverError, match="not installed.*method='nonconvex'"):
        solve_lpm_convex(LPMProblem((3, 3, 1), dim=6), solvers=("NO_SUCH_SOLVER",))


def test_auto_route_falls_back_to_the_nonconvex_solve():
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        solution = solve_lpm(LPMProblem((3, 3, 1), dim=6), solvers=("NO_SUCH_SOLVER",))
    assert solution.method == "nonconvex"
    assert "convex route failed" in solution.warnings[0]


def test_a_stuck_nonconvex_solve_is_reported():
    problem = LPMProblem((4, 4, 1), dim=6)
    reference = solve_lpm_convex(problem)
    with (
        pytest.warns(RuntimeWarning, match="above the convex optimum"),
        pytest.warns(RuntimeWarning, match="stopped at max_iter after 2 iterations"),
    ):
        stuck = solve_lpm_nonconvex(problem, max_iter=2, reference=reference)
    assert stuck.reached_global_minimum is False
    assert stuck.summary()["reached_global_minimum"] is False


@pytest.mark.parametrize(
    "call,message",
    [
        (lambda: LPMProblem((3, 0, 2), 6), r"class_sizes\[1\] must be an integer >= 1 .*got 0"),
        (lambda: LPMProblem((3, 2.5, 2), 6), r"class_sizes\[1\] must be an integer >= 1 .*2\.5"),
        (lambda: LPMProblem((3,), 6), "at least 2 classes"),
        (lambda: LPMProblem((3, 3), 6, e_w=0.0), r"e_w \(E_W\) must be a finite number > 0"),
        (lambda: LPMProblem((3, 3), 6, e_h=-1.0), r"e_h \(E_H\) must be a finite number > 0"),
        (lambda: LPMProblem((3, 3), 6, e_h=math.inf), "finite number > 0"),
        (lambda: LPMProblem((3, 3), 6, minority=(0, 5)), "distinct class indices"),
        (lambda: step_class_sizes(2, 2, 10, 0.5), "R = n_majority / n_minority"),
        (lambda: step_class_sizes(2, 2, 10, 100), "rounds to 0 samples"),
        (lambda: step_class_sizes(2, 0, 10, 2), r"num_minority \(K_B\)"),
    ],
)
def test_bad_input_is_rejected_with_the_fix(call, message):
    with pytest.raises(ValueError, match=message):
        call()


def test_phase_figure_draws_both_panels_without_pyplot():
    from matplotlib.figure import Figure

    from neuralcollapse.viz.imbalance_figures import minority_collapse_figure

    lpm = {"ratio": [1, 10, 100], "convex": [-0.11, 0.2, 1.0], "nonconvex": [-0.11, 0.2, None]}
    ufm = {"ratio": [1, 10, 100], "theory": [0, 0, 1], "solver": [0, 0, 1]}
    figure = minority_collapse_figure(lpm, ufm, num_classes=10, ufm_threshold=20.0)
    assert isinstance(figure, Figure) and len(figure.axes) == 2
    with pytest.raises(ValueError, match="nothing to draw"):
        minority_collapse_figure(None, None)
