"""Minority collapse at Fang et al.'s own budget (issue 25, item 6).

Their code (``optimization.py`` of the LPM repository) uses K = 10 classes, K_A = 5 majority
classes, E_H = 5, E_W = 1, imbalance ratios R = 10^(0.1 i) for i = 0..40 (1 to 10^4), one
feature per class, and the minority classes' losses divided by R. That is the collapsed
Layer-Peeled Model of :mod:`neuralcollapse.ufm.lpm` with class weights n_k / N proportional to
1 (majority) and 1/R (minority): ``LPMProblem.step(5, 5, R, d, e_w=1, e_h=5)``. Only the
ratios n_k / N enter, so the majority size n_A = 10^8 resolves every R to 5e-5 (relative).

Both routes are solved: the convex relaxation (exact for d >= 2K; d = 20 here) and the
non-convex batched L-BFGS with the convex value as reference.

    .venv/bin/python experiments/imbalance/fang_budget.py --out experiments/imbalance/results

Writes ``fang_budget.csv`` (R, objectives, minority cosine of the classifier rows and of the
centred means, minority row norms) and prints where the minority rows merge. About a minute
on 2 CPU cores.
"""

from __future__ import annotations

import argparse
import csv
import math
import warnings
from pathlib import Path

import numpy as np

from neuralcollapse.ufm.lpm import LPMProblem, solve_lpm_nonconvex
from neuralcollapse.ufm.lpm_convex import solve_lpm_convex

K_A, K_B, DIM = 5, 5, 20
E_W, E_H = 1.0, 5.0
MAJORITY_SIZE = 100_000_000


def ratios() -> np.ndarray:
    """R = 10^(0.1 i), i = 0..40, as in Fang et al.'s code."""
    return 10.0 ** (0.1 * np.arange(41))


def solve_all(values: np.ndarray) -> list[dict]:
    problems = [
        LPMProblem.step(K_A, K_B, float(r), DIM, majority_size=MAJORITY_SIZE, e_w=E_W, e_h=E_H)
        for r in values
    ]
    convex = [solve_lpm_convex(p) for p in problems]
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        nonconvex = solve_lpm_nonconvex(problems, restarts=3, reference=convex)
    for message in {str(w.message) for w in caught}:
        print("warning:", message[:200])
    rows = []
    for r, problem, c, n in zip(values, problems, convex, nonconvex, strict=True):
        norms = c.weights.pow(2).sum(dim=1).sqrt()
        rows.append(
            {
                "R": float(r),
                "R_effective": problem.ratio,
                "objective_convex": c.objective,
                "objective_nonconvex": n.objective,
                "rel_gap": n.rel_gap,
                "cos_w_convex": c.minority_cosine,
                "cos_w_nonconvex": n.minority_cosine,
                "cos_means_convex": c.minority_cosine_means,
                "minority_zero": c.minority_zero,
                "minority_row_norm": float(norms[K_A:].mean()),
                "majority_row_norm": float(norms[:K_A].mean()),
            }
        )
    return rows


def first_ratio(rows: list[dict], key: str, level: float) -> float | None:
    for row in rows:
        value = row[key]
        if value is not None and value >= level:
            return row["R"]
    return None


def merge_ratio(low: float, high: float, level: float = 0.999, steps: int = 14) -> float:
    """The R in [low, high] where the convex minority cosine of W first reaches ``level``
    (bisection in log R; ``low`` below the level, ``high`` at or above it)."""
    for _ in range(steps):
        middle = math.sqrt(low * high)
        problem = LPMProblem.step(
            K_A, K_B, middle, DIM, majority_size=MAJORITY_SIZE, e_w=E_W, e_h=E_H
        )
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            cosine = solve_lpm_convex(problem).minority_cosine
        if cosine is not None and cosine >= level:
            high = middle
        else:
            low = middle
    return math.sqrt(low * high)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--out", type=Path, default=Path("experiments/imbalance/results"))
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    rows = solve_all(ratios())
    path = args.out / "fang_budget.csv"
    with path.open("w", newline="") as stream:
        writer = csv.DictWriter(stream, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    print(f"wrote {path}")
    print("   R      cos W (convex / non-convex)   cos means   |w_min|/|w_maj|   rel gap")
    for row in rows:
        ratio_norm = row["minority_row_norm"] / row["majority_row_norm"]
        cos_n = row["cos_w_nonconvex"]
        print(
            f"{row['R']:9.2f}  {row['cos_w_convex']!s:>10.8}  {cos_n!s:>10.8}  "
            f"{row['cos_means_convex']!s:>10.8}  {ratio_norm:8.4f}  {row['rel_gap']:.1e}"
        )
    for level in (0.0, 0.5, 0.9, 0.99, 0.999):
        print(
            f"minority cosine of W first >= {level}: R = {first_ratio(rows, 'cos_w_convex', level)}"
        )
    below = max(r["R"] for r in rows if r["cos_w_convex"] < 0.999)
    above = min(r["R"] for r in rows if r["cos_w_convex"] >= 0.999)
    print(f"bisection: minority cosine of W reaches 0.999 at R = {merge_ratio(below, above):.4f}")
    zero = [row["R"] for row in rows if row["minority_zero"]]
    print(f"minority rows numerically zero from R = {zero[0] if zero else None}")
    print(f"largest relative gap non-convex vs convex: {max(abs(r['rel_gap']) for r in rows):.2e}")
    if not math.isfinite(rows[-1]["objective_convex"]):
        print("warning: a convex objective is not finite")


if __name__ == "__main__":
    main()
