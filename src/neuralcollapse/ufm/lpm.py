"""The Layer-Peeled Model (LPM) of Fang, He, Long & Su (PNAS 2021), for any class sizes.

K classes with n_k samples, N = sum_k n_k; classifier rows w_k and features h_{k,i} in R^d:

    minimise   (1/N) sum_k sum_{i <= n_k} CE(W h_{k,i}, k)
    subject to (1/K) sum_k ||w_k||^2 <= E_W,   (1/K) sum_k (1/n_k) sum_i ||h_{k,i}||^2 <= E_H.

*Collapse.* CE is convex in h and the feature constraint is an average over each class, so
replacing every h_{k,i} by its class mean h_k keeps the point feasible (Jensen) and does not
raise the objective: some minimiser has ``h_{k,i} = h_k``, and the problem becomes

    minimise sum_k (n_k/N) CE(W h_k, k)
    s.t.     (1/K) sum_k ||w_k||^2 <= E_W,   (1/K) sum_k ||h_k||^2 <= E_H,

which depends on the sizes only through the weights n_k/N. Two routes solve it:

- convex (:mod:`neuralcollapse.ufm.lpm_convex`): the objective depends on (W, H) only through
  the 2K x 2K Gram matrix X of [h_1..h_K, w_1..w_K] (logits ``w_j.h_k = X[K+j, k]``), where it
  is convex (log-sum-exp of linear functions) and the constraints are traces: a semidefinite
  program, exact whenever d >= 2K (every PSD 2K x 2K matrix is a Gram matrix in R^d);
- non-convex (:func:`solve_lpm_nonconvex`): (W, H) directly. Both constraints hold with
  equality at a minimiser (the objective decreases along ``t -> t W`` at any point with a
  positive margin), so W and H are parameterised on the constraint boundary,
  ``W = sqrt(K E_W) U/||U||_F`` and ``H = sqrt(E_H / c(V)) V`` (c the constraint's average),
  and the smooth unconstrained problem in (U, V) is minimised with the batched L-BFGS of
  :mod:`neuralcollapse.ufm.lbfgs` -- many problems (an R-sweep) in one tensor program.

Balanced classes give the simplex ETF (Fang et al., Thm 3; the CE theory of
:mod:`neuralcollapse.ufm.closed_forms`). Step imbalance (K_A classes of n_A, K_B of n_A/R) makes
the minority classifiers merge as R grows (minority collapse, their Thm 5), measured by
:func:`neuralcollapse.metrics.minority.minority_cosine`. See docs/imbalance.md.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Sequence
from dataclasses import dataclass, field

import torch

from neuralcollapse import schema
from neuralcollapse.checks import check_float, check_int
from neuralcollapse.metrics.minority import minority_cosine
from neuralcollapse.ufm.lbfgs import batched_lbfgs
from neuralcollapse.ufm.problem import DTYPE

#: relative objective gap above which a non-convex solve counts as not globally optimal
LPM_GAP_TOL = 1e-6


def _budget(name: str, value: float) -> float:
    return check_float(
        name,
        value,
        minimum=0.0,
        strict=True,
        meaning="a norm budget",
        hint="Fang et al. use E_W = E_H = 1",
    )


def check_class_sizes(class_sizes: Sequence[int], num_classes: int | None = None) -> tuple:
    """Validated class sizes: positive integers, K >= 2 of them (matching ``num_classes``)."""
    if isinstance(class_sizes, (str, bytes)) or not isinstance(class_sizes, Sequence):
        raise ValueError(
            f"class_sizes must be a sequence of K positive integers (one per class); got "
            f"{class_sizes!r}"
        )
    sizes = [
        check_int(
            f"class_sizes[{index}]",
            size,
            minimum=1,
            meaning="class sizes are numbers of samples",
            hint="Round fractional sizes (or scale all by a common factor); drop empty classes",
        )
        for index, size in enumerate(class_sizes)
    ]
    if len(sizes) < 2:
        raise ValueError(f"need at least 2 classes; got class_sizes={list(class_sizes)}")
    if num_classes is not None and len(sizes) != num_classes:
        raise ValueError(
            f"class_sizes has {len(sizes)} entries but K = {num_classes}; give one size per class"
        )
    return tuple(sizes)


def step_class_sizes(
    num_majority: int, num_minority: int, majority_size: int, ratio: float
) -> tuple[int, ...]:
    """Step imbalance: K_A classes of n_A, then K_B classes of ``round(n_A / R)`` (>= 1).

    Raises ValueError for R < 1, K_A < 1, K_B < 1, n_A < 1, or n_A / R rounding to 0.
    """
    num_majority = check_int("num_majority (K_A)", num_majority, minimum=1)
    num_minority = check_int("num_minority (K_B)", num_minority, minimum=1)
    majority_size = check_int(
        "majority_size (n_A)", majority_size, minimum=1, meaning="samples per majority class"
    )
    ratio = check_ratio(ratio)
    minority = round(majority_size / ratio)
    if minority < 1:
        raise ValueError(
            f"n_A / R = {majority_size} / {ratio:g} rounds to 0 samples; raise majority_size to "
            f"at least {math.ceil(ratio / 2)} or lower R"
        )
    return (majority_size,) * num_majority + (minority,) * num_minority


def check_ratio(ratio: float) -> float:
    """The imbalance ratio R = n_A / n_B: a finite number >= 1."""
    return check_float(
        "the imbalance ratio R = n_majority / n_minority",
        ratio,
        minimum=1.0,
        hint="R = 1 is balanced; swap the groups for R < 1",
    )


@dataclass(frozen=True)
class LPMProblem:
    """One Layer-Peeled Model: class sizes n_k, feature dimension d, budgets E_W, E_H.

    Parameters
    ----------
    class_sizes : K >= 2 positive integers n_k (class k's samples).
    dim : d >= 1 (the convex route is exact for d >= 2K).
    e_w, e_h : the budgets E_W, E_H > 0 of ``(1/K) sum ||w_k||^2`` and
        ``(1/K) sum_k (1/n_k) sum_i ||h_{k,i}||^2``.
    minority : the classes whose collapse is measured; default: every class smaller than
        the largest (the last K_B under step imbalance).

    Examples
    --------
    >>> LPMProblem.step(num_majority=5, num_minority=5, ratio=10, dim=20).class_sizes[-1]
    100
    """

    class_sizes: tuple[int, ...]
    dim: int
    e_w: float = 1.0
    e_h: float = 1.0
    minority: tuple[int, ...] | None = None

    def __post_init__(self) -> None:
        set_ = object.__setattr__  # frozen: normalise once
        set_(self, "class_sizes", check_class_sizes(self.class_sizes))
        set_(self, "dim", check_int("dim (d)", self.dim, minimum=1))
        set_(self, "e_w", _budget("e_w (E_W)", self.e_w))
        set_(self, "e_h", _budget("e_h (E_H)", self.e_h))
        if self.minority is not None:
            group = tuple(int(k) for k in self.minority)
            if len(set(group)) != len(group) or any(not 0 <= k < self.num_classes for k in group):
                raise ValueError(
                    f"minority must list distinct class indices in [0, {self.num_classes}); "
                    f"got {self.minority!r}"
                )
            set_(self, "minority", group)

    @classmethod
    def step(
        cls,
        num_majority: int,
        num_minority: int,
        ratio: float,
        dim: int,
        *,
        majority_size: int = 1000,
        e_w: float = 1.0,
        e_h: float = 1.0,
    ) -> LPMProblem:
        """Step imbalance (Fang et al.): K_A classes of n_A samples, K_B of n_A/R (rounded).

        The effective ratio is ``n_A / round(n_A / R)`` (:attr:`ratio`), within a relative
        ``R / (2 n_A)`` of R: ``majority_size`` sets how finely R is resolved (only the
        ratios n_k/N enter the collapsed problem, so large sizes cost nothing).
        """
        sizes = step_class_sizes(num_majority, num_minority, majority_size, ratio)
        return cls(sizes, dim, e_w, e_h, tuple(range(num_majority, num_majority + num_minority)))

    @property
    def num_classes(self) -> int:
        return len(self.class_sizes)

    @property
    def num_samples(self) -> int:
        return sum(self.class_sizes)

    @property
    def ratio(self) -> float:
        """max n_k / min n_k (R for step imbalance)."""
        return max(self.class_sizes) / min(self.class_sizes)

    @property
    def minority_classes(self) -> tuple[int, ...]:
        if self.minority is not None:
            return self.minority
        largest = max(self.class_sizes)
        return tuple(k for k, n in enumerate(self.class_sizes) if n < largest)

    @property
    def class_weights(self) -> torch.Tensor:
        """n_k / N, (K,) float64: the weight of class k's CE term after collapse."""
        sizes = torch.tensor(self.class_sizes, dtype=DTYPE)
        return sizes / sizes.sum()

    def objective(self, weights: torch.Tensor, means: torch.Tensor) -> float:
        """sum_k (n_k/N) CE(W h_k, k) for W (K, d) and class means H (d, K); no constraint."""
        logits = torch.as_tensor(weights, dtype=DTYPE) @ torch.as_tensor(means, dtype=DTYPE)
        loss = torch.logsumexp(logits, dim=0) - logits.diagonal()
        return float((self.class_weights * loss).sum())

    def to_dict(self) -> dict:
        return {
            "class_sizes": list(self.class_sizes),
            "dim": self.dim,
            "e_w": self.e_w,
            "e_h": self.e_h,
            "minority": list(self.minority_classes),
        }


@dataclass
class LPMSolution:
    """A solution of one LPM.

    Attributes
    ----------
    problem : the problem.
    method : "convex" or "nonconvex".
    weights : W (K, d); ``means`` : class means H (d, K); ``features`` : per-sample H (d, N)
        when the non-convex route solved the per-sample problem, else None.
    objective : the LPM objective at (W, H).
    gram : the 2K x 2K Gram matrix of [h_1..h_K, w_1..w_K].
    minority_cosine : mean pairwise cosine of the minority classifier rows (None with fewer
        than two minority classes); ``minority_cosine_means`` : the same for the centred means.
        ``minority_zero``: some minority rows of W are numerically zero (squared norm below
        :data:`ZERO_ROW` of the largest); when all are, they coincide and the cosine is
        reported as 1 (its limit), when only some are it is None.
    status : the conic solver's status (convex) or "converged" / "max_iter" (non-convex).
    solver : the conic solver used (convex) or "lbfgs".
    tight : convex route: whether the Gram matrix has rank <= d, so the relaxation's value is
        attained in R^d (None for the non-convex route).
    reached_global_minimum : non-convex route against a convex reference: False when the
        objective exceeds it by more than the tolerance; None without a reference.
    rel_gap : (objective - reference) / |reference| when a reference was given.
    lower_bound : convex route: the relaxation's optimal value (a lower bound on the LPM's;
        equal to ``objective`` up to the solver's accuracy when ``tight``).
    warnings : everything the solve wants the caller to know (also issued as warnings).
    """

    problem: LPMProblem
    method: str
    weights: torch.Tensor
    means: torch.Tensor
    objective: float
    gram: torch.Tensor
    status: str
    solver: str
    features: torch.Tensor | None = None
    minority_cosine: float | None = None
    minority_cosine_means: float | None = None
    minority_zero: bool | None = None
    tight: bool | None = None
    reached_global_minimum: bool | None = None
    rel_gap: float | None = None
    iterations: int | None = None
    lower_bound: float | None = None
    restart_objectives: list[float] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)

    def summary(self) -> dict:
        """JSON-friendly view (lists, floats, None); see :func:`strict_json`."""
        return {
            "problem": self.problem.to_dict(),
            "method": self.method,
            "solver": self.solver,
            "status": self.status,
            "objective": self.objective,
            "minority_cosine": self.minority_cosine,
            schema.MINORITY_COSINE_MEANS: self.minority_cosine_means,
            "minority_zero": self.minority_zero,
            "tight": self.tight,
            "reached_global_minimum": self.reached_global_minimum,
            "rel_gap": self.rel_gap,
            "lower_bound": self.lower_bound,
            "iterations": self.iterations,
            "restart_objectives": self.restart_objectives,
            "weight_norms_sq": self.weights.pow(2).sum(dim=1).tolist(),
            "mean_norms_sq": self.means.pow(2).sum(dim=0).tolist(),
            "warnings": self.warnings,
        }


#: classifier rows with squared norm below this fraction of the largest count as zero: the
#: convex route's interior-point X carries ~1e-10 noise, i.e. rows of norm ~1e-5
ZERO_ROW = 1e-6


def _group_cosines(problem: LPMProblem, weights: torch.Tensor, means: torch.Tensor):
    """Minority cosines of W's rows and of the centred means; rows that are all numerically
    zero have merged completely (identical rows: cosine 1 by continuity, flagged)."""
    group = problem.minority_classes
    if len(group) < 2:
        return None, None, None
    norms = weights.pow(2).sum(dim=1)
    zero = norms[list(group)] <= ZERO_ROW * norms.max()
    centred = means.T - means.T.mean(dim=0, keepdim=True)
    mean_norms = centred.pow(2).sum(dim=1)
    means_zero = mean_norms[list(group)] <= ZERO_ROW * mean_norms.max()
    cos_h = None if bool(means_zero.any()) else minority_cosine(centred, group)
    if bool(zero.all()):
        return 1.0, cos_h, True
    if bool(zero.any()):
        return None, cos_h, True
    return minority_cosine(weights, group), cos_h, False


def finish_solution(problem: LPMProblem, weights, means, **fields) -> LPMSolution:
    """An :class:`LPMSolution` with its objective, Gram matrix and minority cosines filled in."""
    frame = torch.cat([means.T, weights], dim=0)  # rows h_1..h_K, w_1..w_K
    cos_w, cos_h, zero = _group_cosines(problem, weights, means)
    return LPMSolution(
        problem=problem,
        weights=weights,
        means=means,
        objective=problem.objective(weights, means),
        gram=frame @ frame.T,
        minority_cosine=cos_w,
        minority_cosine_means=cos_h,
        minority_zero=zero,
        **fields,
    )


# ---- the non-convex route -------------------------------------------------------------------


class _LPMBatch:
    """B LPMs sharing K and d (sizes may differ), columns = class means or samples."""

    def __init__(self, problems: Sequence[LPMProblem], per_sample: bool):
        first = problems[0]
        for index, problem in enumerate(problems):
            if (problem.num_classes, problem.dim) != (first.num_classes, first.dim):
                raise ValueError(
                    f"LPMs solved together must share K and d; problem {index} has "
                    f"K={problem.num_classes}, d={problem.dim} vs K={first.num_classes}, "
                    f"d={first.dim}"
                )
            if per_sample and problem.class_sizes != first.class_sizes:
                raise ValueError(
                    "per-sample LPMs solved together must share their class sizes; solve them "
                    "separately or use per_sample=False (class means, any sizes)"
                )
        k = first.num_classes
        self.problems, self.k, self.d = list(problems), k, first.dim
        self.e_w = torch.tensor([p.e_w for p in problems], dtype=DTYPE)
        self.e_h = torch.tensor([p.e_h for p in problems], dtype=DTYPE)
        if per_sample:
            sizes = torch.tensor(first.class_sizes)
            self.labels = torch.repeat_interleave(torch.arange(k), sizes)
            n = sizes.to(DTYPE)[self.labels]
            loss_w = torch.full_like(n, 1.0 / first.num_samples)  # 1/N per sample
            budget_w = 1.0 / (k * n)  # (1/K)(1/n_k) per sample
            self.loss_weights = loss_w.expand(len(problems), -1)
            self.budget_weights = budget_w.expand(len(problems), -1)
        else:
            self.labels = torch.arange(k)
            self.loss_weights = torch.stack([p.class_weights for p in problems])
            self.budget_weights = torch.full((len(problems), k), 1.0 / k, dtype=DTYPE)
        self.columns = len(self.labels)

    def split(self, flat: torch.Tensor):
        u = flat[:, : self.k * self.d].reshape(-1, self.k, self.d)
        v = flat[:, self.k * self.d :].reshape(-1, self.d, self.columns)
        return u, v

    def project(self, flat: torch.Tensor, rows: torch.Tensor):
        """(U, V) -> (W, H) on the constraint boundary."""
        u, v = self.split(flat)
        w = u * (self.k * self.e_w[rows]).sqrt().view(-1, 1, 1) / u.norm(dim=(1, 2), keepdim=True)
        budget = (v.pow(2).sum(dim=1) * self.budget_weights[rows]).sum(dim=1)
        h = v * (self.e_h[rows] / budget).sqrt().view(-1, 1, 1)
        return w, h

    def objective(self, flat: torch.Tensor, rows: torch.Tensor) -> torch.Tensor:
        w, h = self.project(flat, rows)
        logits = torch.bmm(w, h)  # (A, K, columns)
        picked = logits.gather(1, self.labels.view(1, 1, -1).expand(len(rows), 1, -1))[:, 0]
        loss = torch.logsumexp(logits, dim=1) - picked
        return (loss * self.loss_weights[rows]).sum(dim=1)


def solve_lpm_nonconvex(
    problems: LPMProblem | Sequence[LPMProblem],
    restarts: int = 2,
    *,
    per_sample: bool = False,
    seed: int = 0,
    max_iter: int = 5000,
    tol_grad: float = 1e-11,
    reference: float | Sequence[float | None] | None = None,
    gap_tol: float = LPM_GAP_TOL,
) -> LPMSolution | list[LPMSolution]:
    """Solve LPMs on (W, H) directly with batched L-BFGS (see the module docstring).

    Parameters
    ----------
    problems : one problem or several sharing K and d (any sizes and budgets).
    restarts : Gaussian starts per problem; the lowest objective is kept.
    per_sample : optimise every sample's feature h_{k,i} (d x N variables; then all problems
        must share their sizes) instead of one mean per class. Both reach the same minimum
        (collapse, module docstring); the per-sample route shows it.
    seed, max_iter, tol_grad : start seed and L-BFGS settings.
    reference : the known optimal value per problem, or a solution (e.g. the convex route's)
        whose objective is used; a solve more
        than ``gap_tol`` (relative) above it is flagged ``reached_global_minimum=False`` with
        a warning.
    """
    single = isinstance(problems, LPMProblem)
    problem_list = [problems] if single else list(problems)
    if not problem_list:
        raise ValueError("need at least one LPMProblem")
    restarts = check_int("restarts", restarts, minimum=1, meaning="Gaussian starts per problem")
    references = _references(reference, len(problem_list))
    jobs = [(i, r) for r in range(restarts) for i in range(len(problem_list))]
    batch = _LPMBatch([problem_list[i] for i, _ in jobs], per_sample)
    generator = torch.Generator().manual_seed(seed)
    size = batch.k * batch.d + batch.d * batch.columns
    x0 = torch.randn(len(jobs), size, generator=generator, dtype=DTYPE)
    previous = torch.get_num_threads()
    torch.set_num_threads(1)  # tiny tensors: threads only add synchronisation
    try:
        result = batched_lbfgs(batch.objective, x0, max_iter=max_iter, tol_grad=tol_grad)
    finally:
        torch.set_num_threads(previous)
    with torch.no_grad():
        w_all, h_all = batch.project(result.x, torch.arange(len(jobs)))
    best: dict[int, int] = {}
    values: dict[int, list[float]] = {i: [] for i in range(len(problem_list))}
    for row, (index, _) in enumerate(jobs):
        values[index].append(float(result.value[row]))
        if index not in best or result.value[row] < result.value[best[index]]:
            best[index] = row
    solutions = []
    for index, problem in enumerate(problem_list):
        row = best[index]
        h = h_all[row]
        if per_sample:
            means = torch.stack(
                [piece.mean(dim=1) for piece in torch.split(h, list(problem.class_sizes), 1)], 1
            )
        else:
            means = h
        solution = finish_solution(
            problem,
            w_all[row].clone(),
            means.clone(),
            method="nonconvex",
            status="converged" if bool(result.converged[row]) else "max_iter",
            solver="lbfgs",
            features=h.clone() if per_sample else None,
            iterations=int(result.iterations[row]),
            restart_objectives=values[index],
        )
        if per_sample:
            # the objective of the per-sample point itself (equal to the means' at collapse)
            solution.objective = float(result.value[row])
        _compare(solution, references[index], gap_tol)
        solutions.append(solution)
    return solutions[0] if single else solutions


def _references(reference, count: int) -> list[float | None]:
    if reference is None:
        return [None] * count
    if isinstance(reference, (int, float)):
        return [float(reference)] * count
    if isinstance(reference, LPMSolution):
        return [reference.objective] * count
    values = [v.objective if isinstance(v, LPMSolution) else v for v in reference]
    if len(values) != count:
        raise ValueError(f"reference needs one value per problem ({count}); got {len(values)}")
    return [None if v is None else float(v) for v in values]


def _compare(solution: LPMSolution, reference: float | None, gap_tol: float) -> None:
    if solution.status != "converged":
        solution.warnings.append(
            f"L-BFGS stopped at max_iter after {solution.iterations} iterations without meeting "
            "its stopping test; raise max_iter"
        )
    if reference is not None:
        solution.rel_gap = (solution.objective - reference) / abs(reference)
        solution.reached_global_minimum = solution.rel_gap <= gap_tol
        if not solution.reached_global_minimum:
            solution.warnings.append(
                f"the non-convex solve ended at {solution.objective:.10g}, above the convex "
                f"optimum {reference:.10g} (relative gap {solution.rel_gap:.2e} > {gap_tol:g}): "
                "a spurious critical point; raise restarts or use the convex route"
            )
    for message in solution.warnings:
        warnings.warn(message, RuntimeWarning, stacklevel=3)
