"""Numerical minimisers of the UFM: gradient descent (paper-like dynamics) and batched L-BFGS.

- :func:`solve_gd`: full-batch gradient descent with a fixed step, recording the objective,
  its gap to theory and the NC metrics every few steps -- the experiment of Tirer & Bruna
  (ICML 2022, Fig. 1: K=4, d=20, n=5), where NC1 and the gap fall to ~0.
- :func:`solve_lbfgs`: L-BFGS with random restarts, batched over many problems (a grid of
  lambdas) and restarts as one tensor program (:mod:`neuralcollapse.ufm.lbfgs`); the fast,
  precise way to confirm a closed form.

Every solution is measured by :func:`neuralcollapse.ufm.evaluate.measure_solution` (the
project's metrics engine) and compared with :func:`neuralcollapse.ufm.closed_forms.theory`.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field

import torch
from tqdm.auto import tqdm

from neuralcollapse import schema
from neuralcollapse.checks import check_float, check_int
from neuralcollapse.metrics import CollapseMetrics
from neuralcollapse.progress import bar_disabled
from neuralcollapse.ufm.closed_forms import TheoryResult, theory_or_none
from neuralcollapse.ufm.evaluate import Measurement, measure_solution, relative_gap
from neuralcollapse.ufm.init import aligned_parameters, can_align, start_singular_value
from neuralcollapse.ufm.lbfgs import batched_lbfgs
from neuralcollapse.ufm.memory import check_solve_memory
from neuralcollapse.ufm.problem import DTYPE, ProblemBatch, UFMParameters, UFMProblem

#: initial scales cycled through by the restarts: the origin is a local minimum for depth >= 2,
#: so some starts must be large enough to reach the nonzero basin
DEFAULT_INIT_SCALES: tuple[float, ...] = (1.0, 2.0, 0.5)
#: start strategies of solve_lbfgs: "auto" (restart 0 aligned, the rest Gaussian), "aligned"
#: (every restart aligned, each with its own rotation and noise) or "random" (Gaussian only)
INITS: tuple[str, ...] = ("auto", "aligned", "random")
#: relative gap to a known closed form above which a solve is reported as not global
GAP_TOL = 1e-6


#: below this many variables per batch, intra-op threads only add synchronisation cost (and
#: on a busy machine each tiny op can wait milliseconds for its threads), so run on one
SMALL_BATCH_VARIABLES = 200_000


@contextmanager
def _threads_for(num_variables: int):
    """Run small problems single-threaded; restore the caller's thread count afterwards."""
    previous = torch.get_num_threads()
    if num_variables < SMALL_BATCH_VARIABLES and previous > 1:
        torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(previous)


class SolverDivergedError(ValueError):
    """The iterates left the finite numbers (too large a step)."""


@dataclass
class UFMSolution:
    """A numerical minimiser, its measurement and its reference.

    Attributes
    ----------
    problem : the problem solved.
    weights : W_1 .. W_L; ``features`` : H (d, N); ``bias`` : b (K,) or None.
    theory : the closed form (``available`` False when none).
    measurement : objective, relative gap, NC metrics, geometry, Gram matrices.
    solver : "gd" or "lbfgs"; ``iterations``; ``converged`` (L-BFGS stopping test met).
    restart_objectives : final objective of every restart (L-BFGS).
    trajectory : recorded steps (GD: step, objective, rel_gap and NC metrics; L-BFGS:
        iteration, objective, rel_gap of the kept restart).
    reached_global_minimum : True when the objective is within the gap tolerance of the
        closed form, False when it ends above it (a non-global critical point, or not run to
        convergence: ``warnings`` says so), None without a closed form.
    warnings : messages about this solve (also issued as RuntimeWarning).
    start : how the kept restart started: "aligned" or "random" (L-BFGS), "random" (GD).
    """

    problem: UFMProblem
    weights: list[torch.Tensor]
    features: torch.Tensor
    bias: torch.Tensor | None
    theory: TheoryResult
    measurement: Measurement
    solver: str
    iterations: int
    converged: bool
    restart_objectives: list[float] = field(default_factory=list)
    trajectory: list[dict] = field(default_factory=list)
    reached_global_minimum: bool | None = None
    warnings: list[str] = field(default_factory=list)
    start: str = "random"

    @property
    def objective(self) -> float:
        return self.measurement.objective

    @property
    def rel_gap(self) -> float | None:
        return self.measurement.rel_gap

    @property
    def result(self) -> CollapseMetrics | None:
        """NC metrics of the last-layer input (:attr:`Measurement.result`; None at zero)."""
        return self.measurement.result

    @property
    def geometry(self) -> str:
        return self.measurement.geometry

    def summary(self) -> dict:
        """JSON-friendly summary: theory next to the measured solution."""
        m = self.measurement
        return {
            "problem": _problem_dict(self.problem),
            "solver": self.solver,
            "iterations": self.iterations,
            "converged": self.converged,
            "objective": m.objective,
            "f_star": self.theory.f_star,
            "rel_gap": m.rel_gap,
            "geometry": m.geometry,
            "geometry_features": m.geometry_features,
            "theory": self.theory.to_dict(),
            "metrics": m.metrics,
            "metrics_h": m.metrics_h,
            "gram_means": m.gram_means.tolist(),
            "gram_features": m.gram_features.tolist(),
            "gram_weights": m.gram_weights.tolist(),
            "bias": None if self.bias is None else self.bias.tolist(),
            "restart_objectives": self.restart_objectives,
            "reached_global_minimum": self.reached_global_minimum,
            "warnings": self.warnings,
            "start": self.start,
        }


def _problem_dict(problem: UFMProblem) -> dict:
    return {
        "num_classes": problem.num_classes,
        "per_class": problem.per_class,
        "dim": problem.dim,
        "loss": problem.loss,
        "bias": problem.bias,
        "lam_w": problem.lam_w,
        "lam_h": problem.lam_h,
        "lam_b": problem.lam_b,
        "depth": problem.depth,
        "activation": problem.activation,
        "hidden_dims": problem.hidden_dims,
    }


def solve_gd(
    problem: UFMProblem,
    lr: float = 1.0,
    steps: int = 5000,
    record_every: int = 50,
    seed: int = 0,
    *,
    init_scale: float = 1.0,
    tol_gap: float | None = None,
    progress: bool = False,
    reference: TheoryResult | None = None,
    gap_tol: float = GAP_TOL,
) -> UFMSolution:
    """Full-batch gradient descent ``x <- x - lr grad f(x)`` on all variables at once.

    Parameters
    ----------
    problem : the UFM.
    lr : step size (> 0). Too large a step diverges: the solver then raises
        :class:`SolverDivergedError` naming the step.
    steps : maximum number of steps.
    record_every : measure (objective, gap to theory, NC metrics) every this many steps.
    seed : seed of the Gaussian start (:meth:`ProblemBatch.initial_parameters`).
    init_scale : scale of the start.
    tol_gap : stop once the relative gap to theory is at most this (needs a closed form).
    progress : show a tqdm bar.
    reference : the closed form to compare with (default :func:`theory`; e.g.
        :func:`~neuralcollapse.ufm.closed_forms.imbalanced_mse_theory` for unequal class sizes).
    gap_tol : a final relative gap above this sets ``reached_global_minimum=False`` and warns.

    Returns
    -------
    UFMSolution with ``trajectory``: one dict per recorded step with ``step``, ``objective``,
    ``rel_gap`` and the NC metrics of the last-layer features (``nc1``, ``of_gap_means``, ...;
    None at the zero solution), plus ``nc1_h`` for depth >= 2.
    """
    lr = check_float("lr", lr, minimum=0.0, strict=True, meaning="the gradient-descent step size")
    steps = check_int("steps", steps, minimum=1, meaning="the most gradient steps to take")
    record_every = check_int(
        "record_every", record_every, minimum=1, meaning="measure every this many steps"
    )
    reference = theory_or_none(problem) if reference is None else reference
    if tol_gap is not None and not reference.available:
        raise ValueError(f"tol_gap needs a closed form, and there is none: {reference.reason}")
    batch = ProblemBatch([problem])
    generator = torch.Generator().manual_seed(seed)
    x = batch.flatten(batch.initial_parameters(generator, init_scale)).requires_grad_(True)
    with _threads_for(batch.num_parameters):
        step, trajectory = _gd_loop(
            problem, batch, x, reference, lr, steps, record_every, tol_gap, progress
        )
    params = batch.unflatten(x.detach())
    solution = _solution(problem, params, reference, "gd", step, True, [], trajectory)
    # gradient descent has no convergence test of its own: a gap is the iteration limit's
    tolerance = gap_tol if tol_gap is None else max(gap_tol, tol_gap)
    return check_global(solution, tolerance, converged_note=True)


def _gd_loop(
    problem: UFMProblem,
    batch: ProblemBatch,
    x: torch.Tensor,
    reference: TheoryResult,
    lr: float,
    steps: int,
    record_every: int,
    tol_gap: float | None,
    progress: bool,
) -> tuple[int, list[dict]]:
    trajectory: list[dict] = []
    step = 0
    for step in tqdm(range(steps + 1), disable=bar_disabled(progress), desc="UFM gradient descent"):
        value = batch.objective(batch.unflatten(x))
        objective = float(value.detach()[0])
        if not math.isfinite(objective):
            raise SolverDivergedError(
                f"gradient descent diverged at step {step} (objective is {objective}); "
                f"lower the step size lr (got {lr})"
            )
        gap = relative_gap(objective, reference)
        done = step == steps or (tol_gap is not None and gap <= tol_gap)
        if step % record_every == 0 or done:
            trajectory.append(_record(problem, batch.unflatten(x.detach()), reference, step))
        if done:
            break
        (grad,) = torch.autograd.grad(value.sum(), x)
        with torch.no_grad():
            x -= lr * grad
    return step, trajectory


#: the NC metrics a GD trajectory row records at each recorded step
TRAJECTORY_METRICS: tuple[str, ...] = schema.UFM_KEYS


def _tracked(result: CollapseMetrics | None) -> dict[str, float | None]:
    """The :data:`TRAJECTORY_METRICS` of one measurement (all None at the zero solution)."""
    if result is None:
        return dict.fromkeys(TRAJECTORY_METRICS)
    return {key: getattr(result, key) for key in TRAJECTORY_METRICS}


def _record(problem: UFMProblem, params: UFMParameters, reference: TheoryResult, step: int) -> dict:
    measured = measure_solution(problem, params, reference)
    row = {"step": step, "objective": measured.objective, "rel_gap": measured.rel_gap}
    row.update(_tracked(measured.result))
    if problem.depth > 1:
        row["nc1_h"] = None if measured.result_h is None else measured.result_h.nc1
    return row


def _solution(
    problem: UFMProblem,
    params: UFMParameters,
    reference: TheoryResult,
    solver: str,
    iterations: int,
    converged: bool,
    restart_objectives: list[float],
    trajectory: list[dict],
) -> UFMSolution:
    return UFMSolution(
        problem=problem,
        weights=[w[0].clone() for w in params.weights],
        features=params.features[0].clone(),
        bias=None if params.bias is None else params.bias[0].clone(),
        theory=reference,
        measurement=measure_solution(problem, params, reference),
        solver=solver,
        iterations=iterations,
        converged=converged,
        restart_objectives=restart_objectives,
        trajectory=trajectory,
    )


def check_global(
    solution: UFMSolution, gap_tol: float = GAP_TOL, *, converged_note: bool = False
) -> UFMSolution:
    """Set ``reached_global_minimum`` from the gap to the closed form; warn when above it."""
    gap = solution.rel_gap
    if gap is None:
        return solution
    solution.reached_global_minimum = gap <= gap_tol
    if not solution.reached_global_minimum:
        reference = solution.theory
        why = (
            "the solver stopped at its iteration limit"
            if converged_note or not solution.converged
            else "a critical point that is not the global minimum (for depth >= 2 typically "
            "rank-deficient: some singular directions stuck at zero)"
        )
        solution.warnings.append(
            f"NOT THE GLOBAL MINIMUM: the solve ended at objective {solution.objective:.10g}, "
            f"above the closed form f* = {reference.f_star:.10g} (relative gap {gap:.3e} > "
            f"tolerance {gap_tol:g}): {why}. Use more restarts, init='aligned' (the default "
            "'auto' aligns restart 0), or more iterations"
        )
    for message in solution.warnings:
        warnings.warn(message, RuntimeWarning, stacklevel=3)
    return solution


def _references(problems: list[UFMProblem], reference) -> list[TheoryResult]:
    if reference is None:
        return [theory_or_none(p) for p in problems]
    if isinstance(reference, TheoryResult):
        return [reference] * len(problems)
    references = list(reference)
    if len(references) != len(problems):
        raise ValueError(
            f"reference needs one TheoryResult per problem ({len(problems)}); got {len(references)}"
        )
    return [
        theory_or_none(p) if r is None else r for p, r in zip(problems, references, strict=True)
    ]


def solve_lbfgs(
    problems: UFMProblem | Sequence[UFMProblem],
    restarts: int = 3,
    *,
    seed: int = 0,
    init_scales: Sequence[float] = DEFAULT_INIT_SCALES,
    max_iter: int = 3000,
    tol_grad: float = 1e-10,
    memory: int = 10,
    chunk_size: int | None = None,
    progress: bool = False,
    init: str = "auto",
    reference: TheoryResult | Sequence[TheoryResult | None] | None = None,
    gap_tol: float = GAP_TOL,
) -> UFMSolution | list[UFMSolution]:
    """Minimise one problem, or many sharing their sizes, with batched L-BFGS.

    All problems x restarts form one batch (one tensor program); each keeps the restart
    with the lowest objective. A Gaussian restart r starts at scale
    ``init_scales[r % len(init_scales)]``; an aligned restart is a random rotation of a
    balanced orthogonal frame at the closed form's scale, with noise
    (:mod:`neuralcollapse.ufm.init`). By default restart 0 is aligned and the others are
    Gaussian: near the depth >= 2 threshold Gaussian starts alone miss the global minimum
    most of the time (docs/ufm.md, "Reaching the global minimum").

    Parameters
    ----------
    problems : one problem, or a sequence of problems differing only in lam_w, lam_h, lam_b.
    restarts : restarts per problem (>= 1).
    seed : seed of the starting points (Gaussian starts are the same draws as before the
        aligned start existed, so ``init="random"`` reproduces earlier results).
    max_iter, tol_grad, memory : L-BFGS settings (:func:`batched_lbfgs`).
    chunk_size : solve at most this many (problem, restart) pairs at once (bounds memory;
        the memory estimate is checked first and a solve that cannot fit is refused).
    progress : show a tqdm bar over chunks.
    init : "auto", "aligned" or "random" (see above); problems with d or a hidden width < K
        have no aligned start and use Gaussian ones.
    reference : closed form(s) to compare with (default :func:`theory` of each problem).
    gap_tol : a relative gap above this sets ``reached_global_minimum=False`` and warns.

    Returns
    -------
    One :class:`UFMSolution` for one problem, else a list in the order given.
    """
    single = isinstance(problems, UFMProblem)
    problem_list = [problems] if single else list(problems)
    restarts = check_int("restarts", restarts, minimum=1, meaning="starts per problem")
    max_iter = check_int("max_iter", max_iter, minimum=1, meaning="L-BFGS iterations")
    if not init_scales:
        raise ValueError(f"init_scales must hold at least one scale > 0; got {init_scales!r}")
    init_scales = [
        check_float(f"init_scales[{i}]", s, minimum=0.0, strict=True, meaning="a start's scale")
        for i, s in enumerate(init_scales)
    ]
    if init not in INITS:
        raise ValueError(f"unknown init {init!r}; choose one of {INITS}")
    ProblemBatch(problem_list)  # validates that they can be batched together
    jobs = [(index, r) for r in range(restarts) for index in range(len(problem_list))]
    if chunk_size is None:
        chunk = len(jobs)
    else:
        chunk = check_int(
            "chunk_size",
            chunk_size,
            minimum=1,
            meaning="(problem, restart) pairs per batch",
            alternative="or None (all at once)",
        )
    check_solve_memory(problem_list[0], min(chunk, len(jobs)), memory)
    references = _references(problem_list, reference)
    best: dict[int, tuple[float, UFMParameters, int, bool, list[float], str]] = {}
    restart_values: dict[int, list[float]] = {i: [] for i in range(len(problem_list))}
    generator = torch.Generator().manual_seed(seed)
    # a second stream, so the Gaussian starts stay the draws they always were
    aligned_generator = torch.Generator().manual_seed(seed + 1_000_003)
    starts = range(0, len(jobs), chunk)
    for start in tqdm(starts, disable=bar_disabled(progress), desc="UFM L-BFGS"):
        part = jobs[start : start + chunk]
        batch = ProblemBatch([problem_list[i] for i, _ in part])
        scales = torch.tensor([init_scales[r % len(init_scales)] for _, r in part], dtype=DTYPE)
        x0 = batch.flatten(batch.initial_parameters(generator, scales))
        kinds = []
        for row, (index, r) in enumerate(part):
            problem = problem_list[index]
            aligned = (init == "aligned" or (init == "auto" and r == 0)) and can_align(problem)
            kinds.append("aligned" if aligned else "random")
            if aligned:
                value = start_singular_value(problem, references[index])
                params0 = aligned_parameters(problem, aligned_generator, value)
                x0[row] = ProblemBatch([problem]).flatten(params0)[0]
        with _threads_for(x0.numel()):
            result = batched_lbfgs(
                lambda x, rows, batch=batch: batch.objective(batch.unflatten(x), rows),
                x0,
                max_iter=max_iter,
                memory=memory,
                tol_grad=tol_grad,
            )
        params = batch.unflatten(result.x)
        history = torch.stack(result.value_history, dim=1)
        for row, (index, _) in enumerate(part):
            value = float(result.value[row])
            restart_values[index].append(value)
            if index not in best or value < best[index][0]:
                best[index] = (
                    value,
                    params.select(row),
                    int(result.iterations[row]),
                    bool(result.converged[row]),
                    history[row].tolist(),
                    kinds[row],
                )
    solutions = []
    for index, problem in enumerate(problem_list):
        _, params, iterations, converged, values, kind = best[index]
        reference = references[index]
        trajectory = [
            {"iteration": i, "objective": v, "rel_gap": relative_gap(v, reference)}
            for i, v in enumerate(values[: iterations + 1])
        ]
        solution = _solution(
            problem,
            params,
            reference,
            "lbfgs",
            iterations,
            converged,
            restart_values[index],
            trajectory,
        )
        solution.start = kind
        solutions.append(check_global(solution, gap_tol))
    return solutions[0] if single else solutions
