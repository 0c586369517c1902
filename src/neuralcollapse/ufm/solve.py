"""Numerical minimisers of the UFM: gradient descent (paper-like dynamics) and batched L-BFGS.

- :func:`solve_gd`: full-batch gradient descent with a fixed step, recording the objective,
  its gap to theory and the NC metrics every few steps -- the experiment of Tirer & Bruna
  (ICML 2022, Fig. 1: K=4, d=20, n=5), where NC1 and the gap fall to ~0.
- :func:`solve_lbfgs`: L-BFGS with random restarts, batched over many problems (a grid of
  lambdas) and restarts as one tensor program (:mod:`neuralcollapse.ufm.lbfgs`); the fast,
  precise way to confirm a closed form.

Every solution is measured by :func:`neuralcollapse.ufm.evaluate.measure_solution` (the
project's metrics engine) and compared with :func:`neuralcollapse.ufm.theory.theory`.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field

import torch
from tqdm.auto import tqdm

from neuralcollapse.ufm.evaluate import Measurement, measure_solution, relative_gap
from neuralcollapse.ufm.lbfgs import batched_lbfgs
from neuralcollapse.ufm.problem import DTYPE, ProblemBatch, UFMParameters, UFMProblem
from neuralcollapse.ufm.theory import TheoryResult, theory_or_none

#: initial scales cycled through by the restarts: the origin is a local minimum for depth >= 2,
#: so some starts must be large enough to reach the nonzero basin
DEFAULT_INIT_SCALES: tuple[float, ...] = (1.0, 2.0, 0.5)


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

    @property
    def objective(self) -> float:
        return self.measurement.objective

    @property
    def rel_gap(self) -> float | None:
        return self.measurement.rel_gap

    @property
    def metrics(self) -> dict | None:
        return self.measurement.metrics

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


def _check_positive_int(name: str, value: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f"{name} must be an integer >= 1; got {value!r}")


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

    Returns
    -------
    UFMSolution with ``trajectory``: one dict per recorded step with ``step``, ``objective``,
    ``rel_gap`` and the NC metrics of the last-layer features (``nc1``, ``of_gap_means``, ...;
    None at the zero solution), plus ``nc1_h`` for depth >= 2.
    """
    if not (isinstance(lr, (int, float)) and math.isfinite(lr) and lr > 0):
        raise ValueError(f"lr must be a finite number > 0; got {lr!r}")
    _check_positive_int("steps", steps)
    _check_positive_int("record_every", record_every)
    reference = theory_or_none(problem)
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
    return _solution(problem, params, reference, "gd", step, True, [], trajectory)


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
    for step in tqdm(range(steps + 1), disable=not progress, desc="UFM gradient descent"):
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


def _record(problem: UFMProblem, params: UFMParameters, reference: TheoryResult, step: int) -> dict:
    measured = measure_solution(problem, params, reference)
    row = {"step": step, "objective": measured.objective, "rel_gap": measured.rel_gap}
    metrics = measured.metrics or {}
    for key in (
        "nc1",
        "of_gap_means",
        "etf_gap_means",
        "global_mean_ratio",
        "etf_gap_weights",
        "of_gap_weights",
        "self_duality_uncentred",
        "accuracy",
    ):
        row[key] = metrics.get(key)
    if problem.depth > 1:
        row["nc1_h"] = (measured.metrics_h or {}).get("nc1")
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
) -> UFMSolution | list[UFMSolution]:
    """Minimise one problem, or many sharing their sizes, with batched L-BFGS.

    All problems x restarts form one batch (one tensor program); each keeps the restart
    with the lowest objective. Restart r starts from a Gaussian draw at scale
    ``init_scales[r % len(init_scales)]``.

    Parameters
    ----------
    problems : one problem, or a sequence of problems differing only in lam_w, lam_h, lam_b.
    restarts : random restarts per problem (>= 1).
    seed : seed of the starting points.
    max_iter, tol_grad, memory : L-BFGS settings (:func:`batched_lbfgs`).
    chunk_size : solve at most this many (problem, restart) pairs at once (bounds memory).
    progress : show a tqdm bar over chunks.

    Returns
    -------
    One :class:`UFMSolution` for one problem, else a list in the order given.
    """
    single = isinstance(problems, UFMProblem)
    problem_list = [problems] if single else list(problems)
    _check_positive_int("restarts", restarts)
    _check_positive_int("max_iter", max_iter)
    if not init_scales or any(not (s > 0) for s in init_scales):
        raise ValueError(f"init_scales must be positive numbers; got {init_scales!r}")
    ProblemBatch(problem_list)  # validates that they can be batched together
    jobs = [(index, r) for r in range(restarts) for index in range(len(problem_list))]
    chunk = len(jobs) if chunk_size is None else max(1, int(chunk_size))
    best: dict[int, tuple[float, UFMParameters, int, bool, list[float]]] = {}
    restart_values: dict[int, list[float]] = {i: [] for i in range(len(problem_list))}
    generator = torch.Generator().manual_seed(seed)
    starts = range(0, len(jobs), chunk)
    for start in tqdm(starts, disable=not progress, desc="UFM L-BFGS"):
        part = jobs[start : start + chunk]
        batch = ProblemBatch([problem_list[i] for i, _ in part])
        scales = torch.tensor([init_scales[r % len(init_scales)] for _, r in part], dtype=DTYPE)
        x0 = batch.flatten(batch.initial_parameters(generator, scales))
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
                )
    solutions = []
    for index, problem in enumerate(problem_list):
        _, params, iterations, converged, values = best[index]
        reference = theory_or_none(problem)
        trajectory = [
            {"iteration": i, "objective": v, "rel_gap": relative_gap(v, reference)}
            for i, v in enumerate(values[: iterations + 1])
        ]
        solutions.append(
            _solution(
                problem,
                params,
                reference,
                "lbfgs",
                iterations,
                converged,
                restart_values[index],
                trajectory,
            )
        )
    return solutions[0] if single else solutions
