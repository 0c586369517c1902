"""The Layer-Peeled Model's convex relaxation (Fang, He, Long & Su, PNAS 2021, Sec. 3).

After collapse (:mod:`neuralcollapse.ufm.lpm`) the objective sees (W, H) only through the
logits ``w_j . h_k``, entries of the 2K x 2K Gram matrix ``X = F F^T`` of
``F = [h_1 .. h_K, w_1 .. w_K]^T``. Over X the problem is

    minimise   sum_k (n_k/N) [ log sum_j exp X[K+j, k] - X[K+k, k] ]
    subject to X PSD,  tr X[:K, :K] <= K E_H,  tr X[K:, K:] <= K E_W,

a convex program (log-sum-exp is convex, the rest is linear) with one PSD cone and K
exponential-cone blocks. Any PSD X factors as F F^T with F of rank X columns, so the
relaxation is exact when d >= rank X, in particular whenever d >= 2K; for d < 2K its value
is a lower bound, attained only if the optimal X has rank <= d (checked after the solve).

Solver: Clarabel (interior point, Goulart & Chen 2024) handles PSD and exponential cones
together and converges to 1e-9 relative gaps in a few dozen iterations; SCS (first-order
ADMM) handles the same cones but needs many more iterations for high accuracy, so it is the
fallback, tried when Clarabel reports anything but "optimal" (e.g. "optimal_inaccurate").
"""

from __future__ import annotations

import importlib.util
import warnings

import torch

from neuralcollapse.ufm.lpm import LPMProblem, LPMSolution, finish_solution, solve_lpm_nonconvex
from neuralcollapse.ufm.problem import DTYPE

#: eigenvalues of X below this fraction of the largest count as zero (interior-point noise)
RANK_TOL = 1e-6
DEFAULT_SOLVERS: tuple[str, ...] = ("CLARABEL", "SCS")
_SETTINGS = {
    "CLARABEL": {"tol_gap_abs": 1e-9, "tol_gap_rel": 1e-9, "tol_feas": 1e-9},
    "SCS": {"eps_abs": 1e-9, "eps_rel": 1e-9, "max_iters": 200_000},
}


class LPMSolverError(ValueError):
    """The conic route could not solve the relaxation (no solver, or every solver failed)."""


def _cvxpy():
    if importlib.util.find_spec("cvxpy") is None:
        raise LPMSolverError(
            "the convex LPM route needs cvxpy with a conic solver: pip install cvxpy clarabel; "
            "or solve the non-convex problem instead: solve_lpm(problem, method='nonconvex')"
        )
    import cvxpy  # optional dependency, imported only here

    return cvxpy


def _relaxation(problem: LPMProblem, cp):
    k = problem.num_classes
    x = cp.Variable((2 * k, 2 * k), PSD=True)
    logits = x[k:, :k]  # logits[j, k] = w_j . h_k
    weights = problem.class_weights.numpy()
    loss = sum(weights[c] * (cp.log_sum_exp(logits[:, c]) - logits[c, c]) for c in range(k))
    constraints = [
        cp.trace(x[:k, :k]) <= k * problem.e_h,
        cp.trace(x[k:, k:]) <= k * problem.e_w,
    ]
    return x, cp.Problem(cp.Minimize(loss), constraints)


def _factor(gram: torch.Tensor, dim: int) -> tuple[torch.Tensor, int]:
    """F (2K, dim) with F F^T = the best rank-dim approximation of ``gram``; and rank gram."""
    values, vectors = torch.linalg.eigh((gram + gram.T) / 2)
    values = values.clamp_min(0.0)
    rank = int((values > RANK_TOL * values.max().clamp_min(1e-300)).sum())
    order = torch.argsort(values, descending=True)[:dim]
    frame = vectors[:, order] * values[order].sqrt()
    if frame.shape[1] < dim:
        frame = torch.cat(
            [frame, torch.zeros(frame.shape[0], dim - frame.shape[1], dtype=DTYPE)], 1
        )
    return frame, rank


def solve_lpm_convex(
    problem: LPMProblem,
    *,
    solvers: tuple[str, ...] = DEFAULT_SOLVERS,
    verbose: bool = False,
) -> LPMSolution:
    """Solve the LPM through its convex relaxation over the 2K x 2K Gram matrix.

    Parameters
    ----------
    problem : the LPM. With d < 2K a warning says the relaxation may not be tight; the
        result's ``tight`` says whether it was (rank X <= d).
    solvers : cvxpy solver names, tried in order until one reports "optimal"
        (default Clarabel, then SCS).
    verbose : print the conic solver's log.

    Returns
    -------
    :class:`LPMSolution` with ``method="convex"``, ``lower_bound`` (the relaxation's value),
    ``tight``, the conic ``status`` and ``solver``; W and H factor X in R^d.

    Raises
    ------
    LPMSolverError (a ValueError) : cvxpy or every listed solver is missing, or every solver
        failed; the message lists each status and names the non-convex route.
    """
    cp = _cvxpy()
    k = problem.num_classes
    notes = []
    if problem.dim < 2 * k:
        notes.append(
            f"d = {problem.dim} < 2K = {2 * k}: the convex relaxation may not be tight (its "
            f"optimal Gram matrix can need rank up to 2K); the result's `tight` says whether it "
            "was. Use d >= 2K, or the non-convex route: solve_lpm(problem, method='nonconvex')"
        )
    installed = set(cp.installed_solvers())
    available = [name for name in solvers if name in installed]
    if not available:
        raise LPMSolverError(
            f"conic solver(s) {list(solvers)} not installed (cvxpy has "
            f"{sorted(installed)}): pip install clarabel (or scs), or use "
            "solve_lpm(problem, method='nonconvex')"
        )
    missing = [name for name in solvers if name not in installed]
    if missing:
        notes.append(f"conic solver(s) {missing} not installed; used {available[0]}")
    x, program = _relaxation(problem, cp)
    outcomes = []
    for name in available:
        try:
            with warnings.catch_warnings():
                # cvxpy warns on inaccurate solutions; the status is reported (and acted on) here
                warnings.simplefilter("ignore", UserWarning)
                program.solve(solver=name, verbose=verbose, **_SETTINGS.get(name, {}))
        except cp.error.SolverError as error:
            outcomes.append(f"{name}: failed ({error})")
            continue
        outcomes.append(f"{name}: {program.status}")
        if program.status == cp.OPTIMAL and x.value is not None:
            break
    else:
        raise LPMSolverError(
            f"the convex LPM relaxation was not solved ({'; '.join(outcomes)}); solve the "
            "non-convex problem instead: solve_lpm(problem, method='nonconvex')"
        )
    if len(outcomes) > 1:
        notes.append(f"fell back to {name}: {'; '.join(outcomes)}")
    gram = torch.as_tensor(x.value, dtype=DTYPE)
    frame, rank = _factor(gram, problem.dim)
    tight = rank <= problem.dim
    if not tight:
        notes.append(
            f"the relaxation is not tight: its optimal Gram matrix has rank {rank} > d = "
            f"{problem.dim}, so {program.value:.10g} is only a lower bound and (W, H) is its "
            "best rank-d approximation. Use d >= 2K or solve_lpm(problem, method='nonconvex')"
        )
    solution = finish_solution(
        problem,
        frame[k:].clone(),
        frame[:k].T.clone(),
        method="convex",
        status=str(program.status),
        solver=name,
        tight=tight,
        lower_bound=float(program.value),
        warnings=notes,
    )
    for message in notes:
        warnings.warn(message, RuntimeWarning, stacklevel=2)
    return solution


def solve_lpm(problem: LPMProblem, method: str = "auto", **options) -> LPMSolution:
    """Solve one LPM: ``method`` "convex", "nonconvex", or "auto" (convex; if the conic
    solver is missing or fails, warn and fall back to the non-convex route)."""
    if method == "convex":
        return solve_lpm_convex(problem, **options)
    if method == "nonconvex":
        return solve_lpm_nonconvex(problem, **options)
    if method != "auto":
        raise ValueError(f"unknown method {method!r}; choose 'auto', 'convex' or 'nonconvex'")
    try:
        return solve_lpm_convex(problem, **options)
    except LPMSolverError as error:
        warnings.warn(
            f"{error}. Falling back to the non-convex route", RuntimeWarning, stacklevel=2
        )
        solution = solve_lpm_nonconvex(problem)
        solution.warnings.insert(0, f"convex route failed ({error}); solved non-convex")
        return solution
