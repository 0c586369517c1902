"""Aligned starting points for the UFM solvers: a random rotation of a balanced frame.

Why. For depth L >= 2 every singular direction of ``Z = W_L ... W_1 Hbar`` has its own
basin at zero (the penalties are quadratic, the fit couples the L+1 factors at order L+1),
and near the threshold that basin is wide. A Gaussian start makes Z a random matrix whose
smallest singular directions often start inside it: on 55 depth-2/3 problems within 10 % of
the threshold (``benchmarks/bench_ufm.py --parts threshold``) one Gaussian start reached the
global minimum in 1-7 cases and six Gaussian restarts in 7-25, while one aligned start
reached it in all 55, for every seed tried (docs/imbalance.md, benchmark section).

The aligned start. Class means ``Hbar = sqrt(rho) Q_0`` with ``Q_0`` a random d x K
orthonormal frame; ``W_l = a_l P_l P_{l-1}^T`` with ``P_0 = Q_0`` and ``P_l`` (l < L) K
random coordinate axes of layer l (non-negative, so a ReLU passes them), ``P_L = I_K``; the
factors are balanced (``n lam_H rho = lam_l a_l^2``, facts 1-2 of
:mod:`neuralcollapse.ufm.closed_forms`) with ``Z = s I``, where s is theory's singular value s*
when a closed form gives a nonzero one, 1e-3 when theory says the minimiser is zero, and 1
without a closed form. Then ``rho = (s^2 lam_1...lam_L / (n lam_H)^L)^{1/(L+1)}``. Gaussian
noise of relative size ``noise`` is added to every factor, so the solver still has to find
the minimiser (and the start is not the closed form itself: no symmetry is assumed beyond
the frame).
"""

from __future__ import annotations

import math

import torch

from neuralcollapse.checks import check_float
from neuralcollapse.ufm.closed_forms import TheoryResult
from neuralcollapse.ufm.problem import DTYPE, UFMParameters, UFMProblem

#: relative Gaussian noise on an aligned start (in a first measurement on 26 near-threshold
#: problems, noise 0 and 0.3 reached every global minimum, 1.0 only 7-18 of them)
ALIGNED_NOISE = 0.1
#: the product's singular value for an aligned start when theory's minimiser is zero
ZERO_START = 1e-3


def can_align(problem: UFMProblem) -> bool:
    """An aligned start needs room for K orthogonal directions in d and every hidden width."""
    k = problem.num_classes
    return problem.dim >= k and all(width >= k for width in problem.hidden_dims)


def start_singular_value(problem: UFMProblem, reference: TheoryResult | None) -> float:
    """s for the aligned start: theory's s* (MSE), 1e-3 at a zero minimiser, else 1."""
    if reference is None or not reference.available:
        return 1.0
    if reference.is_zero:
        return ZERO_START
    if problem.loss == "mse" and reference.s_star:
        return float(reference.s_star)
    return 1.0


def _frame(generator: torch.Generator, rows: int, cols: int) -> torch.Tensor:
    q, r = torch.linalg.qr(torch.randn(rows, cols, generator=generator, dtype=DTYPE))
    return q * torch.sign(torch.diagonal(r)).unsqueeze(0)  # a Haar-random frame


def _axes(generator: torch.Generator, width: int, k: int) -> torch.Tensor:
    chosen = torch.randperm(width, generator=generator)[:k]
    axes = torch.zeros(width, k, dtype=DTYPE)
    axes[chosen, torch.arange(k)] = 1.0
    return axes


def aligned_parameters(
    problem: UFMProblem,
    generator: torch.Generator,
    singular_value: float = 1.0,
    noise: float = ALIGNED_NOISE,
) -> UFMParameters:
    """One aligned start (batch dimension 1) for ``problem``; see the module docstring.

    ``singular_value`` is s in ``Z = s I`` (> 0), ``noise`` the relative size of the Gaussian
    noise on every factor (>= 0).
    """
    singular_value = check_float(
        "singular_value", singular_value, minimum=0.0, strict=True, meaning="s of Z = s I"
    )
    noise = check_float("noise", noise, minimum=0.0, meaning="relative noise on the start")
    if not can_align(problem):
        raise ValueError(
            f"an aligned start needs d and every hidden width >= K = {problem.num_classes}; "
            "use init='random'"
        )
    k, depth = problem.num_classes, problem.depth
    n = problem.num_samples / k  # the mean class size sets the scale when imbalanced
    lams = problem.layer_lams
    n_lam_h = n * problem.lam_h
    rho = (singular_value**2 * math.prod(lams) / n_lam_h**depth) ** (1.0 / (depth + 1))
    frames = [_frame(generator, problem.dim, k)]
    frames += [_axes(generator, width, k) for width in problem.hidden_dims]
    frames.append(torch.eye(k, dtype=DTYPE))
    weights = []
    for index in range(depth):
        scale = math.sqrt(n_lam_h * rho / lams[index])
        weight = scale * frames[index + 1] @ frames[index].T
        jitter = torch.randn(weight.shape, generator=generator, dtype=DTYPE)
        weights.append((weight + noise * scale / math.sqrt(k) * jitter).unsqueeze(0))
    means = math.sqrt(rho) * frames[0]
    features = means.repeat_interleave(torch.tensor(problem.class_counts), dim=1)
    jitter = torch.randn(features.shape, generator=generator, dtype=DTYPE)
    features = features + noise * math.sqrt(rho / k) * jitter
    bias = torch.zeros(1, k, dtype=DTYPE) if problem.has_bias else None
    return UFMParameters(weights, features.unsqueeze(0), bias)
