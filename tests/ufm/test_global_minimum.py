"""The default L-BFGS solve reaches the closed-form global minimum near the depth >= 2
threshold, and a solve that ends above a known closed form says so."""

import json
import warnings

import pytest

from neuralcollapse.cli import main
from neuralcollapse.ufm import UFMProblem, solve_gd, solve_lbfgs, theory

ISSUE_CASE = UFMProblem(3, 2, 5, depth=2, lam_w=(0.1, 0.1), lam_h=0.105)


def _near_threshold(depth: int, ratio: float, k: int, n: int, d: int, activation="linear"):
    threshold = (depth - 1) ** (depth - 1) / depth ** (2 * depth)
    lam = (ratio * threshold / (k ** (depth + 1) * n)) ** (1 / (depth + 1))
    return UFMProblem(k, n, d, depth=depth, lam_w=lam, lam_h=lam, activation=activation)


GRID = [
    _near_threshold(depth, ratio, k, n, d)
    for depth in (2, 3)
    for ratio in (0.9, 0.95, 0.99)
    for k, n, d in ((3, 2, 5), (4, 3, 6))
] + [_near_threshold(2, 0.95, 3, 2, 5, "relu")]


def test_issue_case_reaches_the_closed_form_by_default():
    solution = solve_lbfgs(ISSUE_CASE)
    assert abs(solution.rel_gap) < 1e-6
    assert solution.reached_global_minimum and not solution.warnings


@pytest.mark.parametrize("index", range(len(GRID)))
def test_default_solver_reaches_the_closed_form_within_ten_percent_of_the_threshold(index):
    problem = GRID[index]
    assert not theory(problem).is_zero
    solution = solve_lbfgs(problem)
    assert abs(solution.rel_gap) < 1e-6, solution.restart_objectives
    assert solution.reached_global_minimum


def test_a_stuck_solve_is_reported_in_the_result_and_as_a_warning():
    with pytest.warns(RuntimeWarning, match="NOT THE GLOBAL MINIMUM.*relative gap 8.3"):
        stuck = solve_lbfgs(ISSUE_CASE, restarts=1, init="random")
    assert stuck.converged and stuck.reached_global_minimum is False
    summary = stuck.summary()
    assert summary["reached_global_minimum"] is False and "NOT THE GLOBAL" in summary["warnings"][0]


def test_gd_stopped_early_is_reported():
    with pytest.warns(RuntimeWarning, match="iteration limit"):
        solution = solve_gd(UFMProblem(3, 2, 4), steps=5)
    assert solution.reached_global_minimum is False


def test_ufm_command_reports_a_stuck_solve_in_json_and_text(capsys):
    arguments = "ufm --K 3 --n 2 --d 5 --lambda-w 0.1 0.1 --lambda-h 0.105 --depth 2".split()
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # the command reports, it does not just warn
        assert main([*arguments, "--restarts", "1", "--init", "random", "--json"]) == 0
    captured = capsys.readouterr()
    summary = json.loads(captured.out)
    assert summary["reached_global_minimum"] is False
    assert "WARNING: NOT THE GLOBAL MINIMUM" in captured.err
    assert main([*arguments, "--restarts", "1", "--init", "random"]) == 0
    captured = capsys.readouterr()
    assert "WARNING: NOT THE GLOBAL MINIMUM" in captured.out
    assert main([*arguments, "--json"]) == 0  # the default finds it
    assert json.loads(capsys.readouterr().out)["reached_global_minimum"] is True


def test_ufm_sweep_lists_failed_solves_prominently(tmp_path, capsys):
    arguments = [
        "ufm-sweep", "--K", "3", "--n", "2", "--d", "5", "--depth", "2", "--restarts", "1",
        "--init", "random", "--lambda-w", "0.1", "--lambda-h-range", "0.1", "0.105", "2",
        "--out", str(tmp_path / "s"),
    ]  # fmt: skip
    assert main(arguments) == 0
    captured = capsys.readouterr()
    assert "did NOT reach the closed form's global minimum" in captured.err
    assert "solves above the closed form (failed):" in captured.out
    assert "reached_global_minimum" in (tmp_path / "s.csv").read_text().splitlines()[0]


def test_ufm_command_refuses_a_solve_beyond_memory(capsys):
    assert main(["ufm", "--K", "100000", "--n", "2", "--d", "100"]) == 2
    error = capsys.readouterr().err
    assert "needs about" in error and "GB" in error and "fewer restarts" in error


def test_imbalanced_sizes_on_the_command_line_use_the_imbalanced_closed_form(capsys):
    arguments = "ufm --K 3 --n 4 2 1 --d 4 --lambda-w 0.1 --lambda-h 0.1 --json".split()
    assert main(arguments) == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["theory"]["available"] and abs(summary["rel_gap"]) < 1e-6


def test_unknown_init_is_rejected():
    with pytest.raises(ValueError, match="unknown init 'spectral'"):
        solve_lbfgs(UFMProblem(3, 2, 4), init="spectral")
