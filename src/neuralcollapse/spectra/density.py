"""Spectral density by stochastic Lanczos quadrature (SLQ), and the exact density it estimates.

The Gaussian-broadened spectral density of a symmetric p x p matrix with eigenvalues
``lambda_i`` is

    phi_sigma(t) = (1/p) sum_i g_sigma(t - lambda_i),  g_sigma(x) = exp(-x^2/(2 sigma^2)) /
    (sigma sqrt(2 pi)),

i.e. ``tr g_sigma(t I - A) / p``. For a unit probe ``v = z/sqrt(p)`` with Rademacher ``z``,
``E[v^T f(A) v] = tr f(A)/p``, and m Lanczos steps from ``v`` give the Gauss quadrature
``v^T f(A) v ~ sum_j tau_j f(theta_j)`` with nodes ``theta_j`` (Ritz values) and weights
``tau_j = s_{1j}^2`` (first components of T's eigenvectors), exact for polynomials of degree
< 2m. The estimate averages over n_v probes. It has two errors, both stated at every t:

- ``stderr``, the probe-sampling standard error ``std_l(phi_l(t)) / sqrt(n_v)``;
- ``quadrature_error``, an a-posteriori estimate of the error of the m-node rules (m < p),
  ``mean_l max_{k=1,2} |phi_l^(m)(t) - phi_l^(m-k)(t)|``, where ``phi_l^(c)`` is the Gauss rule
  of the leading c x c block of the same probe's T (no further operator products), and exactly
  0 for a probe whose Krylov space is exhausted (m = p, or a breakdown): the rule is then exact.

Why the difference of two Gauss rules estimates the error. For one probe the m-node rule
``G_m(f) = e_1^T f(T_m) e_1`` integrates f against ``mu_v = sum_i (u_i^T v)^2 delta(lambda_i)``
exactly up to degree 2m - 1, with positive weights summing to 1 and nodes inside
[lambda_min, lambda_max], so its error ``E_m(f) = v^T f(A) v - G_m(f)`` obeys
``|E_m| <= 2 min_{deg q < 2m} max |f - q|`` over that interval (Golub & Meurant 2010, the
chapters "Gauss quadrature" and "Bounds for bilinear forms u^T f(A) v"). For
``f = g_sigma(t - .)``, an entire function, that best-approximation error stays of the size of g
until 2m passes about the spread of the spectrum over sigma, then falls faster than
geometrically (Ubaru, Chen & Saad 2017 bound the Lanczos-quadrature error by
``O(rho^(-2m))`` for f analytic inside the Bernstein ellipse of parameter rho): E_m falls with m.
The first c steps of the Lanczos run are the c-step run, so the leading block ``T_c`` gives the
c-node Gauss rule of the same measure, and ``G_m - G_(m-k) = E_(m-k) - E_m``, about
``E_(m-k)`` once the error falls: the standard a-posteriori estimate of a Gauss rule's error by a
rule with more nodes (Golub & Meurant 2010; Strakos & Tichy 2002, the CG error estimated with a
delay of d steps). As the error of the m-node rule it errs on the safe side by about
``|E_(m-k)/E_m|`` (measured 1.7x-3.4x, up to 7x once E_m is below 1e-5 of the peak, on a
spread spectrum: docs/spectra.md). At a single t the difference of two rules can pass through
zero while E_m does not; the two coarser rules cross the m-node rule at different t, so the
larger difference over k = 1, 2 is taken. Its absolute value is averaged over the probes, at
least the error of their mean.

Limits: an estimate, not a bound. With one or two nodes the 0-node rule (0 everywhere) enters,
so the estimate is at least the density itself. Mass far (several sigma) from every node of all
three rules is not seen: beyond the extreme Ritz values, and in the gaps between nodes while m is
far below the spread over sigma (the density is then a comb of m peaks; the estimate still
holds in the largest value and the sum over t, not at every t).

References: Lin, Saad & Yang, "Approximating spectral densities of large matrices", SIAM Review
2016; Ubaru, Chen & Saad, "Fast estimation of tr(f(A)) via stochastic Lanczos quadrature", SIAM
J. Matrix Anal. Appl. 2017; Golub & Meurant, "Matrices, moments and quadrature with
applications", Princeton 2010; Strakos & Tichy, "On error estimation in the conjugate gradient
method and why it works in finite precision computations", ETNA 2002; Ghorbani, Krishnan & Xiao,
"An investigation into neural net optimization via Hessian eigenvalue density", ICML 2019;
Papyan, JMLR 2020 (the same estimator for deepnet spectra).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import torch

from neuralcollapse.checks import check_float, check_int
from neuralcollapse.spectra.lanczos import BREAKDOWN, LanczosRun, _operator, lanczos

__all__ = ["SpectralDensity", "exact_density", "gaussian_density", "spectral_density"]

#: the m-node rule is compared with the (m - k)-node rules of the same T for these k
COARSER_BY = (1, 2)


@dataclass
class SpectralDensity:
    """``grid`` (T,), ``density`` (T,), ``stderr`` (T,), ``sigma``, per-probe ``nodes`` and
    ``weights`` (lists of tensors), ``trace`` (p sum_j tau_j theta_j averaged) with its
    ``trace_stderr``, and ``quadrature_error`` (T,), the estimated error of the m-node rules
    (module docstring; 0 where the Krylov spaces are exhausted). The density's error is about
    ``2 stderr + quadrature_error`` (sampling at two standard errors, plus the quadrature)."""

    grid: torch.Tensor
    density: torch.Tensor
    stderr: torch.Tensor
    sigma: float
    nodes: list[torch.Tensor]
    weights: list[torch.Tensor]
    trace: float
    trace_stderr: float
    steps: int
    # last and defaulted, so a SpectralDensity built by hand without it still works
    quadrature_error: torch.Tensor | None = None

    def to_dict(self) -> dict:
        return {
            "grid": self.grid.tolist(),
            "density": self.density.tolist(),
            "stderr": self.stderr.tolist(),
            "sigma": self.sigma,
            "probes": len(self.nodes),
            "steps": self.steps,
            "trace": self.trace,
            "trace_stderr": self.trace_stderr,
            **(
                {}
                if self.quadrature_error is None
                else {"quadrature_error": self.quadrature_error.tolist()}
            ),
        }


def gaussian_density(
    nodes: torch.Tensor, weights: torch.Tensor, grid: torch.Tensor, sigma: float
) -> torch.Tensor:
    """sum_j w_j g_sigma(t - x_j) at every t of ``grid``."""
    diff = grid.unsqueeze(1) - nodes.unsqueeze(0)
    kernel = torch.exp(-0.5 * (diff / sigma) ** 2) / (sigma * math.sqrt(2 * math.pi))
    return kernel @ weights


def exact_density(eigenvalues: torch.Tensor, grid: torch.Tensor, sigma: float) -> torch.Tensor:
    """phi_sigma on ``grid`` from all p eigenvalues (module docstring)."""
    values = torch.as_tensor(eigenvalues, dtype=torch.float64)
    weights = torch.full_like(values, 1.0 / values.numel())
    return gaussian_density(values, weights, torch.as_tensor(grid, dtype=torch.float64), sigma)


def _exhausted(run: LanczosRun, theta: torch.Tensor, dim: int) -> bool:
    """True when the probe's Krylov space is invariant under A, so its Gauss rule is exact: p
    steps, or a breakdown (``beta_m`` at rounding level, as ``lanczos`` judges one, relative to
    ``||T||``; ``restart=False`` ends the run there, or its last step lands on it)."""
    size = run.tridiagonal.shape[0]
    scale = max(float(theta.abs().max()), 1e-300)
    return size == dim or run.last_beta <= BREAKDOWN * scale


def _quadrature_difference(
    tridiagonal: torch.Tensor, fine: torch.Tensor, grid: torch.Tensor, sigma: float
) -> torch.Tensor:
    """``max_k |G_m - G_(m-k)|`` at every t for one probe, k in ``COARSER_BY``: ``fine`` is the
    m-node rule's ``sum_j tau_j g_sigma(t - theta_j)``; the (m - k)-node rule is that of the
    leading block of ``tridiagonal`` (the same Lanczos run stopped earlier), the 0-node rule
    (m - k <= 0) is 0 everywhere."""
    size = tridiagonal.shape[0]
    largest = torch.zeros_like(fine)
    for coarse in sorted({max(size - k, 0) for k in COARSER_BY}):
        if coarse == 0:
            rule = torch.zeros_like(fine)
        else:
            theta, s = torch.linalg.eigh(tridiagonal[:coarse, :coarse])
            rule = gaussian_density(theta, s[0] ** 2, grid, sigma)
        largest = torch.maximum(largest, (fine - rule).abs())
    return largest


def spectral_density(
    operator: object,
    *,
    probes: int = 8,
    steps: int = 80,
    sigma: float | None = None,
    grid: Sequence[float] | torch.Tensor | None = None,
    points: int = 512,
    seed: int = 0,
) -> SpectralDensity:
    """SLQ estimate of phi_sigma with ``probes`` Rademacher probes of ``steps`` Lanczos steps.

    ``sigma`` defaults to 1% of the spread of the Ritz values; ``grid`` to ``points`` points
    from 3 sigma below the smallest to 3 sigma above the largest node. Besides the probes'
    ``stderr``, the result carries ``quadrature_error``, ``mean_l max_(k=1,2) |phi_l^(m) -
    phi_l^(m-k)|`` from the leading blocks of each probe's T (module docstring): no further
    operator products, and exactly 0 at the t of a probe whose Krylov space is exhausted.
    """
    matvec, dim = _operator(operator)
    probes = check_int("probes", probes, minimum=2, meaning="at least two, for the stated error")
    steps = min(check_int("steps", steps, minimum=1, meaning="Lanczos steps per probe"), dim)
    points = check_int("points", points, minimum=2)
    generator = torch.Generator().manual_seed(check_int("seed", seed))
    nodes, weights, tridiagonals, exact = [], [], [], []
    for _ in range(probes):
        z = torch.randint(0, 2, (dim,), generator=generator, dtype=torch.float64) * 2 - 1
        run = lanczos(matvec, dim, steps, start=z, generator=generator, restart=False)
        theta, s = torch.linalg.eigh(run.tridiagonal)
        nodes.append(theta)
        weights.append(s[0] ** 2)
        # kept for the quadrature error: the coarser rules are T's leading blocks
        tridiagonals.append(run.tridiagonal)
        exact.append(_exhausted(run, theta, dim))
    low = min(float(n.min()) for n in nodes)
    high = max(float(n.max()) for n in nodes)
    if sigma is None:
        sigma = 0.01 * (high - low) if high > low else max(abs(high), 1.0) * 1e-3
    sigma = check_float("sigma", sigma, minimum=0.0, strict=True, meaning="Gaussian width")
    if grid is None:
        grid = torch.linspace(low - 3 * sigma, high + 3 * sigma, points, dtype=torch.float64)
    else:
        grid = torch.as_tensor(grid, dtype=torch.float64).reshape(-1)
    per_probe = torch.stack(
        [gaussian_density(n, w, grid, sigma) for n, w in zip(nodes, weights, strict=True)]
    )
    traces = torch.tensor([dim * float(n @ w) for n, w in zip(nodes, weights, strict=True)])
    # an exhausted probe's rule is exact: its share of the estimate is 0, not the (nonzero)
    # difference to a coarser rule that is not exact
    differences = torch.stack(
        [
            torch.zeros_like(fine) if done else _quadrature_difference(t, fine, grid, sigma)
            for t, fine, done in zip(tridiagonals, per_probe, exact, strict=True)
        ]
    )
    return SpectralDensity(
        grid=grid,
        density=per_probe.mean(0),
        stderr=per_probe.std(0, unbiased=True) / math.sqrt(probes),
        sigma=sigma,
        nodes=nodes,
        weights=weights,
        trace=float(traces.mean()),
        trace_stderr=float(traces.std(unbiased=True)) / math.sqrt(probes),
        steps=max(int(n.numel()) for n in nodes),
        quadrature_error=differences.mean(0),
    )
