"""Gradient descent (Tirer & Bruna's Fig. 1 setting) and the batched L-BFGS solver."""

import pytest
import torch

from neuralcollapse.ufm import SolverDivergedError, UFMProblem, solve_gd, solve_lbfgs
from neuralcollapse.ufm.lbfgs import batched_lbfgs


def test_gd_in_tirer_bruna_setting_drives_nc1_and_gap_to_zero():
    problem = UFMProblem(4, 5, 20, lam_w=5e-3, lam_h=1e-2)  # K=4, d=20, n=5
    solution = solve_gd(problem, lr=1.0, steps=1500, record_every=250, seed=0)
    first, last = solution.trajectory[0], solution.trajectory[-1]
    assert first["rel_gap"] > 1.0 and first["nc1"] > 0.1
    assert abs(last["rel_gap"]) < 1e-9
    assert last["nc1"] < 1e-12
    assert last["of_gap_means"] < 1e-6  # MSE without bias: orthogonal frame
    gaps = [row["rel_gap"] for row in solution.trajectory]
    # GD never goes uphill here
    assert all(b <= a + 1e-12 for a, b in zip(gaps, gaps[1:], strict=False))
    assert [row["step"] for row in solution.trajectory] == [0, 250, 500, 750, 1000, 1250, 1500]


def test_gd_stops_at_requested_gap():
    problem = UFMProblem(3, 2, 4, lam_w=1e-2, lam_h=1e-2)
    solution = solve_gd(problem, lr=1.0, steps=5000, record_every=1000, tol_gap=1e-4)
    assert 0 <= solution.rel_gap <= 1e-4
    assert solution.iterations < 5000


def test_gd_divergence_stops_and_says_so():
    with pytest.raises(SolverDivergedError, match=r"diverged at step \d+.*lower the step size"):
        solve_gd(UFMProblem(3, 2, 4), lr=1e6, steps=200)


@pytest.mark.parametrize(
    "arguments,message",
    [
        (dict(lr=0.0), "lr must be a finite number > 0"),
        (dict(steps=0), "steps must be an integer >= 1"),
        (dict(record_every=0), "record_every must be an integer >= 1"),
    ],
)
def test_gd_rejects_invalid_settings(arguments, message):
    with pytest.raises(ValueError, match=message):
        solve_gd(UFMProblem(3, 2, 4), **arguments)


def test_batched_lbfgs_gives_each_problem_its_own_solution():
    lams = [1e-3, 1e-2, 5e-2]
    problems = [UFMProblem(3, 2, 4, bias="free", lam_w=lam, lam_h=2 * lam) for lam in lams]
    together = solve_lbfgs(problems, restarts=1, seed=5)
    for problem, solution in zip(problems, together, strict=False):
        alone = solve_lbfgs(problem, restarts=1, seed=11)
        assert solution.problem is problem
        assert solution.objective == pytest.approx(alone.objective, rel=1e-10)
        assert abs(solution.rel_gap) < 1e-9


def test_lbfgs_keeps_the_best_restart():
    solution = solve_lbfgs(UFMProblem(3, 2, 4, depth=2, lam_w=1e-2, lam_h=1e-2), restarts=3)
    assert len(solution.restart_objectives) == 3
    assert solution.objective == pytest.approx(min(solution.restart_objectives), rel=1e-12)


def test_lbfgs_rejects_problems_of_different_sizes():
    with pytest.raises(ValueError, match="must share sizes"):
        solve_lbfgs([UFMProblem(3, 2, 4), UFMProblem(3, 2, 5)])


def test_imbalanced_problem_is_solved_without_a_reference():
    solution = solve_lbfgs(UFMProblem(3, (4, 2, 1), 4, lam_w=1e-2, lam_h=1e-2), restarts=2)
    assert solution.rel_gap is None and not solution.theory.available
    assert solution.converged
    assert solution.result.nc1 < 1e-8  # collapse still holds within each class


def test_batched_lbfgs_minimises_independent_quadratics_exactly():
    # f_b(x) = 1/2 x^T A_b x - c_b^T x, minimiser A_b^{-1} c_b, checked per problem
    generator = torch.Generator().manual_seed(0)
    a = torch.randn(4, 6, 6, generator=generator, dtype=torch.float64)
    a = a @ a.transpose(1, 2) + torch.eye(6, dtype=torch.float64) * torch.tensor(
        [0.1, 1.0, 10.0, 0.5], dtype=torch.float64
    ).view(4, 1, 1)
    c = torch.randn(4, 6, generator=generator, dtype=torch.float64)

    def objective(x, rows):
        return 0.5 * torch.einsum("bi,bij,bj->b", x, a[rows], x) - (c[rows] * x).sum(dim=1)

    result = batched_lbfgs(objective, torch.zeros(4, 6, dtype=torch.float64), tol_grad=1e-12)
    expected = torch.linalg.solve(a, c.unsqueeze(-1)).squeeze(-1)
    assert result.converged.all()
    assert torch.allclose(result.x, expected, atol=1e-9)
