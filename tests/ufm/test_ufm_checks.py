"""The UFM entry points check their scalars with neuralcollapse.checks: NumPy integers and
floats are accepted like Python ones, bool is refused, and the message names the argument."""

import warnings

import numpy as np
import pytest
import torch

from neuralcollapse.ufm import LPMProblem, UFMProblem, solve_gd, solve_lbfgs, solve_lpm_nonconvex
from neuralcollapse.ufm.implicit_bias import implicit_bias_gd, max_margin
from neuralcollapse.ufm.init import aligned_parameters
from neuralcollapse.ufm.lpm import check_ratio, step_class_sizes
from neuralcollapse.ufm.sweeps import sweep

PROBLEM = UFMProblem(3, 2, 4, lam_w=1e-2, lam_h=1e-2)


def test_solve_gd_takes_numpy_integers_and_refuses_bool():
    with warnings.catch_warnings():  # 20 steps end above f* on purpose: short and cheap
        warnings.simplefilter("ignore", RuntimeWarning)
        solution = solve_gd(
            PROBLEM, lr=np.float64(0.5), steps=np.int64(20), record_every=np.int32(10)
        )
        same = solve_gd(PROBLEM, lr=0.5, steps=20, record_every=10)
    steps = [row["step"] for row in solution.trajectory]
    assert steps == [0, 10, 20] and all(type(step) is int for step in steps)
    assert solution.objective == same.objective
    for name in ("steps", "record_every"):
        with pytest.raises(ValueError, match=rf"^{name} must be an integer >= 1 .*; got True$"):
            solve_gd(PROBLEM, **{name: True})
    with pytest.raises(ValueError, match=r"^lr must be a finite number > 0 .*; got True$"):
        solve_gd(PROBLEM, lr=True)


def test_solve_lbfgs_takes_numpy_integers_and_refuses_bool():
    solution = solve_lbfgs(
        PROBLEM, restarts=np.int64(2), max_iter=np.int64(200), chunk_size=np.int64(1)
    )
    assert len(solution.restart_objectives) == 2
    assert solution.objective == solve_lbfgs(PROBLEM, restarts=2, max_iter=200).objective
    for name in ("restarts", "max_iter", "chunk_size"):
        with pytest.raises(ValueError, match=rf"^{name} must be an integer >= 1 .*; got True$"):
            solve_lbfgs(PROBLEM, **{name: True})
    with pytest.raises(ValueError, match=r"^chunk_size must be an integer >= 1 .*None.*; got 0$"):
        solve_lbfgs(PROBLEM, chunk_size=0)
    with pytest.raises(ValueError, match=r"^init_scales\[1\] must be a finite number > 0"):
        solve_lbfgs(PROBLEM, init_scales=(1.0, -2.0))


def test_sweep_takes_numpy_grids_and_names_the_bad_grid_value():
    result = sweep(PROBLEM, lam_w=np.array([1e-2, 1.0]), restarts=1, progress=False)
    assert [row["lam_w"] for row in result.rows] == [1e-2, 1.0]
    assert all(type(value) is float for value in result.axes["lam_w"])
    with pytest.raises(ValueError, match=r"^lam_h\[0\] must be a finite number > 0 .*; got True$"):
        sweep(PROBLEM, lam_h=[True])
    with pytest.raises(ValueError, match=r"^lam_b\[1\] must be a finite number > 0 .*; got nan$"):
        sweep(PROBLEM, lam_b=[0.1, float("nan")])


def test_lpm_takes_numpy_integers_and_refuses_bool():
    problem = LPMProblem(tuple(np.array([3, 3, 1])), dim=np.int64(6), e_w=np.float32(1.0))
    assert problem.class_sizes == (3, 3, 1) and type(problem.dim) is int
    assert all(type(size) is int for size in problem.class_sizes)
    with pytest.raises(ValueError, match=r"^class_sizes\[1\] must be an integer >= 1 .*got True"):
        LPMProblem((3, True, 2), 6)
    with pytest.raises(ValueError, match=r"^dim \(d\) must be an integer >= 1; got True$"):
        LPMProblem((3, 3), True)
    with pytest.raises(ValueError, match=r"^restarts must be an integer >= 1 .*; got True$"):
        solve_lpm_nonconvex(problem, restarts=True)
    assert step_class_sizes(np.int64(2), np.int64(1), np.int64(10), np.float64(2.0)) == (10, 10, 5)
    with pytest.raises(
        ValueError, match=r"^num_minority \(K_B\) must be an integer >= 1; got True$"
    ):
        step_class_sizes(2, True, 10, 2.0)
    with pytest.raises(ValueError, match=r"^the imbalance ratio R = n_majority / n_minority must"):
        check_ratio(True)


def test_implicit_bias_takes_numpy_integers_and_refuses_bool():
    result = implicit_bias_gd(
        np.int64(3), np.int64(2), np.int64(4), steps=np.int64(30), record_points=np.int64(3)
    )
    same = implicit_bias_gd(3, 2, 4, steps=30, record_points=3).summary()
    assert {k: v for k, v in result.summary().items() if k != "seconds"} == {
        k: v for k, v in same.items() if k != "seconds"
    }
    assert max_margin(np.int64(4), np.int64(5)) == max_margin(4, 5)
    with pytest.raises(ValueError, match=r"^num_classes must be an integer >= 2; got True$"):
        max_margin(True, 5)
    with pytest.raises(ValueError, match=r"^steps must be an integer >= 1 .*; got True$"):
        implicit_bias_gd(3, 2, 4, steps=True)
    with pytest.raises(ValueError, match=r"^dim must be an integer >= 4 \(num_classes - 1 = 4"):
        implicit_bias_gd(5, 2, 3)
    with pytest.raises(ValueError, match=r"^seed must be an integer >= 0 .*; got -1$"):
        implicit_bias_gd(3, 2, 4, steps=10, seed=-1)


def test_aligned_start_checks_its_scale_and_noise():
    generator = torch.Generator().manual_seed(0)
    params = aligned_parameters(PROBLEM, generator, np.float64(0.5), noise=np.float32(0.0))
    assert params.features.shape == (1, 4, 6)
    with pytest.raises(ValueError, match=r"^singular_value must be a finite number > 0"):
        aligned_parameters(PROBLEM, generator, True)
    with pytest.raises(ValueError, match=r"^noise must be a finite number >= 0 .*; got -0\.1$"):
        aligned_parameters(PROBLEM, generator, noise=-0.1)


def test_demo_seed_refuses_bool_and_floats(tmp_path):
    from neuralcollapse.viz.demo import run_demo

    for seed in (True, 1.0, -1):
        with pytest.raises(ValueError, match=r"^seed must be an integer >= 0 "):
            run_demo(tmp_path, seed=seed)


def test_batched_lbfgs_memory_is_checked_by_name():
    from neuralcollapse.ufm.lbfgs import batched_lbfgs

    def quadratic(x, rows):
        return (x**2).sum(dim=1)

    start = torch.ones(2, 3, dtype=torch.float64)
    for bad in (0, True, 2.0):
        with pytest.raises(ValueError, match=r"^memory must be an integer >= 1"):
            batched_lbfgs(quadratic, start, memory=bad)
    result = batched_lbfgs(quadratic, start, memory=np.int64(3))
    assert float(result.x.abs().max()) < 1e-6
