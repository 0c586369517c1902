"""Minority collapse from theory: Fang et al.'s LPM setting (K = 10, K_A = K_B = 5) and the
penalised MSE UFM with its closed-form threshold, as CSV tables and one figure per budget.

    .venv/bin/python experiments/imbalance/minority_collapse.py --out imbalance-out

Writes ``lpm_E{E}.csv`` (R, convex and non-convex objective and minority cosine),
``ufm.csv`` (R, closed-form and solver minority cosine) and ``minority_collapse_E{E}.png``;
prints where the minority cosine crosses 0 and reaches 0.99. About 30 s on 2 CPU cores.
See docs/imbalance.md for the results and how they compare with Fang et al.
"""

from __future__ import annotations

import argparse
import csv
import math
import warnings
from pathlib import Path

import numpy as np

from neuralcollapse.ufm import UFMProblem, solve_lbfgs
from neuralcollapse.ufm.closed_forms import imbalanced_mse_theory
from neuralcollapse.ufm.lpm import LPMProblem, solve_lpm_nonconvex
from neuralcollapse.ufm.lpm_convex import solve_lpm_convex
from neuralcollapse.viz.imbalance_figures import minority_collapse_figure

K_A, K_B, DIM = 5, 5, 20
UFM_MAJORITY, UFM_LAM = 100, 5.7e-3  # closed-form threshold near R = 10


def lpm_rows(e: float, ratios: np.ndarray) -> list[dict]:
    # n_A = 10,000 resolves R to 5 % at R = 1000 (only n_k / N enters the collapsed LPM)
    problems = [
        LPMProblem.step(K_A, K_B, float(r), DIM, majority_size=10_000, e_w=e, e_h=e) for r in ratios
    ]
    convex = [solve_lpm_convex(p) for p in problems]
    nonconvex = solve_lpm_nonconvex(problems, restarts=2, reference=convex)
    return [
        {
            "ratio": p.ratio,
            "convex_objective": c.objective,
            "nonconvex_objective": n.objective,
            "convex_cosine": c.minority_cosine,
            "nonconvex_cosine": n.minority_cosine,
            "minority_rows_zero": c.minority_zero,
            "convex_solver": c.solver,
        }
        for p, c, n in zip(problems, convex, nonconvex, strict=True)
    ]


def _ufm_cosine(weights, group) -> float:
    """Minority cosine of a UFM classifier; a vanished group has merged (cosine 1)."""
    from neuralcollapse.metrics.minority import minority_cosine

    norms = weights.norm(dim=1)
    if bool((norms[list(group)] <= 1e-6 * norms.max()).all()):
        return 1.0
    return minority_cosine(weights, group)


def ufm_threshold(n_a: int, lam: float) -> float:
    """R* where n_B = n_A/R meets n_B = N^2 lam_W lam_H (continuous R), the smaller root."""
    c2 = lam * lam
    a, b, c = c2 * K_B**2, 2 * c2 * K_A * K_B * n_a - 1, c2 * (K_A * n_a) ** 2
    low = (-b - math.sqrt(b * b - 4 * a * c)) / (2 * a)
    return n_a / low


def ufm_rows(ratios: np.ndarray) -> list[dict]:
    group = tuple(range(K_A, K_A + K_B))
    rows = []
    for ratio in ratios:
        sizes = (UFM_MAJORITY,) * K_A + (max(1, round(UFM_MAJORITY / ratio)),) * K_B
        problem = UFMProblem(K_A + K_B, sizes, DIM, lam_w=UFM_LAM, lam_h=UFM_LAM)
        reference = imbalanced_mse_theory(problem)
        zero = set(reference.extra["zero_classes"])
        theory_cos = 1.0 if zero.issuperset(group) else 0.0  # orthogonal rows, or vanished
        solution = solve_lbfgs(problem, restarts=1, reference=reference)
        rows.append(
            {
                "ratio": UFM_MAJORITY / sizes[-1],
                "theory_cosine": theory_cos,
                "solver_cosine": _ufm_cosine(solution.weights[-1], group),
                "rel_gap": solution.rel_gap,
            }
        )
    return rows


def _write(path: Path, rows: list[dict]) -> None:
    with path.open("w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)


def _crossing(rows: list[dict], key: str, level: float) -> float | None:
    for row in rows:
        if row[key] is not None and row[key] >= level:
            return row["ratio"]
    return None


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--out", default="imbalance-out")
    parser.add_argument("--budgets", type=float, nargs="+", default=[1.0, 3.0, 10.0])
    parser.add_argument("--points", type=int, default=41)
    args = parser.parse_args()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    ratios = np.logspace(0, 3, args.points)
    warnings.simplefilter("ignore", RuntimeWarning)  # solver notes are in the tables
    ufm = ufm_rows(np.logspace(0, 2, 21))
    _write(out / "ufm.csv", ufm)
    threshold = ufm_threshold(UFM_MAJORITY, UFM_LAM)
    worst = max(abs(row["rel_gap"]) for row in ufm)
    print(f"UFM (MSE, no bias, n_A={UFM_MAJORITY}, lam={UFM_LAM:g}): R* = {threshold:.3g}; "
          f"solver vs closed form worst |gap| {worst:.1e}")  # fmt: skip
    for e in args.budgets:
        rows = lpm_rows(e, ratios)
        _write(out / f"lpm_E{e:g}.csv", rows)
        figure = minority_collapse_figure(
            {
                "ratio": [r["ratio"] for r in rows],
                "convex": [r["convex_cosine"] for r in rows],
                "nonconvex": [r["nonconvex_cosine"] for r in rows],
            },
            {
                "ratio": [r["ratio"] for r in ufm],
                "theory": [r["theory_cosine"] for r in ufm],
                "solver": [r["solver_cosine"] for r in ufm],
            },
            num_classes=K_A + K_B,
            ufm_threshold=threshold,
            title=f"Minority collapse, K_A = K_B = 5, d = 20, LPM E_W = E_H = {e:g}",
        )
        figure.savefig(out / f"minority_collapse_E{e:g}.png")
        gap = max(
            abs(r["nonconvex_objective"] - r["convex_objective"]) / abs(r["convex_objective"])
            for r in rows
        )
        diffs = [
            abs(r["nonconvex_cosine"] - r["convex_cosine"])
            for r in rows
            if r["nonconvex_cosine"] is not None and r["convex_cosine"] is not None
        ]
        zero_from = _crossing([{**r, "z": 1.0 if r["minority_rows_zero"] else 0.0} for r in rows],
                              "z", 1.0)  # fmt: skip
        print(
            f"LPM E={e:g}: cosine at R=1 {rows[0]['convex_cosine']:.4f}; crosses 0 at R = "
            f"{_crossing(rows, 'convex_cosine', 0.0)}; reaches 0.99 at R = "
            f"{_crossing(rows, 'convex_cosine', 0.99)}; minority rows vanish from R = "
            f"{zero_from}; convex vs non-convex: objective {gap:.1e}, cosine "
            f"{max(diffs):.1e}"
        )


if __name__ == "__main__":
    main()
