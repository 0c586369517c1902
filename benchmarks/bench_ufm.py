"""Benchmark: a 20 x 20 (lam_W, lam_H) grid of MSE no-bias UFMs (K=10, n=20, d=32), each solved
to a relative objective gap <= 1e-6 against the closed form.

- batched: all 400 problems as one L-BFGS tensor program (neuralcollapse.ufm.solve_lbfgs, one
  restart: the depth-1 MSE landscape has no spurious local minima), with its own stopping
  test (max-abs gradient <= 1e-8), then checked against theory;
- baseline: the usual practice, plain full-batch gradient descent problem by problem
  (solve_gd), each stopped as soon as its gap to theory is <= 1e-6 (an oracle stop that
  favours the baseline). By default the baseline runs on an evenly spaced sample of the grid
  and its total is extrapolated (mean time per problem x 400); --full-baseline runs all 400.

Prints the wall times, their ratio and the worst gap. Usage:
    python benchmarks/bench_ufm.py [--size 20] [--baseline-sample 40] [--full-baseline]
"""

from __future__ import annotations

import argparse
import math
import os
import time

import numpy as np
import torch

from neuralcollapse.ufm import UFMProblem, solve_gd, solve_lbfgs

K, N_PER_CLASS, DIM = 10, 20, 32
TARGET_GAP = 1e-6


def grid_problems(size: int) -> list[UFMProblem]:
    values = np.logspace(-4, -1, size)  # crosses K sqrt(n lam_W lam_H) = 1
    return [
        UFMProblem(K, N_PER_CLASS, DIM, lam_w=float(a), lam_h=float(b))
        for a in values
        for b in values
    ]


def gd_learning_rate(problem: UFMProblem) -> float:
    """A stable fixed step from the curvature at the theoretical optimum: the largest
    curvatures are ~||W||^2/N + lam_H (for H) and ~||hbar||^2 + lam_W (for W)."""
    n, lam_w, lam_h = problem.per_class, problem.lam_w, problem.lam_h
    w_sq = math.sqrt(n * lam_h / lam_w)
    h_sq = math.sqrt(lam_w / (n * lam_h))
    curvature = max(w_sq / n + lam_h, h_sq + lam_w, 1.0)
    return 1.0 / curvature


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--size", type=int, default=20, help="grid points per axis")
    parser.add_argument("--baseline-sample", type=int, default=20)
    parser.add_argument("--full-baseline", action="store_true")
    parser.add_argument("--max-gd-steps", type=int, default=200_000)
    args = parser.parse_args()
    problems = grid_problems(args.size)
    print(
        f"grid: {len(problems)} problems, K={K} n={N_PER_CLASS} d={DIM}, float64, "
        f"torch threads={torch.get_num_threads()}, load={os.getloadavg()[0]:.2f}"
    )

    start = time.perf_counter()
    solutions = solve_lbfgs(problems, restarts=1, seed=0, tol_grad=1e-8, max_iter=5000)
    batched_time = time.perf_counter() - start
    gaps = np.array([s.rel_gap for s in solutions])
    iterations = np.array([s.iterations for s in solutions])
    print(
        f"batched L-BFGS: {batched_time:.2f} s for all {len(problems)} (incl. measuring); "
        f"worst gap {np.abs(gaps).max():.2e}, problems with gap > {TARGET_GAP:g}: "
        f"{int((gaps > TARGET_GAP).sum())}; iterations median {np.median(iterations):.0f} "
        f"max {iterations.max()}"
    )

    if args.full_baseline:
        sample = list(range(len(problems)))
    else:
        sample = np.linspace(0, len(problems) - 1, args.baseline_sample).round().astype(int)
        sample = sorted(set(sample.tolist()))
    gd_times, gd_steps, gd_gaps = [], [], []
    for index in sample:
        problem = problems[index]
        start = time.perf_counter()
        solution = solve_gd(
            problem,
            lr=gd_learning_rate(problem),
            steps=args.max_gd_steps,
            record_every=args.max_gd_steps,
            seed=0,
            tol_gap=TARGET_GAP,
        )
        gd_times.append(time.perf_counter() - start)
        gd_steps.append(solution.iterations)
        gd_gaps.append(solution.rel_gap)
    per_problem = float(np.mean(gd_times))
    baseline_total = per_problem * len(problems)
    label = "measured" if args.full_baseline else f"extrapolated from {len(sample)} problems"
    print(
        f"one-by-one GD: {per_problem:.3f} s per problem (median steps "
        f"{np.median(gd_steps):.0f}, max {max(gd_steps)}; worst gap {max(gd_gaps):.2e}); "
        f"total {baseline_total:.1f} s ({label})"
    )
    print(
        f"speed-up: {baseline_total / batched_time:.1f}x "
        f"(target >= 20x; batched target <= 30 s: {'met' if batched_time <= 30 else 'MISSED'})"
    )


if __name__ == "__main__":
    main()
