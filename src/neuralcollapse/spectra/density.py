"""Spectral density by stochastic Lanczos quadrature (SLQ), and the exact density it estimates.

The Gaussian-broadened spectral density of a symmetric p x p matrix with eigenvalues
``lambda_i`` is

    phi_sigma(t) = (1/p) sum_i g_sigma(t - lambda_i),  g_sigma(x) = exp(-x^2/(2 sigma^2)) /
    (sigma sqrt(2 pi)),

i.e. ``tr g_sigma(t I - A) / p``. For a unit probe ``v = z/sqrt(p)`` with Rademacher ``z``,
``E[v^T f(A) v] = tr f(A)/p``, and m Lanczos steps from ``v`` give the Gauss quadrature
``v^T f(A) v ~ sum_j tau_j f(theta_j)`` with nodes ``theta_j`` (Ritz values) and weights
``tau_j = s_{1j}^2`` (first components of T's eigenvectors), exact for polynomials of degree
< 2m. The estimate averages over n_v probes; its stated error is the probe-sampling standard
error at every t, ``std_l(phi_l(t)) / sqrt(n_v)`` (the quadrature error is negligible next to it
once m is large compared with the spread of the spectrum over sigma, and zero when m reaches p).

References: Lin, Saad & Yang, "Approximating spectral densities of large matrices", SIAM Review
2016; Ghorbani, Krishnan & Xiao, "An investigation into neural net optimization via Hessian
eigenvalue density", ICML 2019; Papyan, JMLR 2020 (the same estimator for deepnet spectra).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import torch

from neuralcollapse.checks import check_float, check_int
from neuralcollapse.spectra.lanczos import _operator, lanczos

__all__ = ["SpectralDensity", "exact_density", "gaussian_density", "spectral_density"]


@dataclass
class SpectralDensity:
    """``grid`` (T,), ``density`` (T,), ``stderr`` (T,), ``sigma``, per-probe ``nodes`` and
    ``weights`` (lists of tensors), and ``trace`` (p sum_j tau_j theta_j averaged) with its
    ``trace_stderr``."""

    grid: torch.Tensor
    density: torch.Tensor
    stderr: torch.Tensor
    sigma: float
    nodes: list[torch.Tensor]
    weights: list[torch.Tensor]
    trace: float
    trace_stderr: float
    steps: int

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
    from 3 sigma below the smallest to 3 sigma above the largest node.
    """
    matvec, dim = _operator(operator)
    probes = check_int("probes", probes, minimum=2, meaning="at least two, for the stated error")
    steps = min(check_int("steps", steps, minimum=1, meaning="Lanczos steps per probe"), dim)
    points = check_int("points", points, minimum=2)
    generator = torch.Generator().manual_seed(check_int("seed", seed))
    nodes, weights = [], []
    for _ in range(probes):
        z = torch.randint(0, 2, (dim,), generator=generator, dtype=torch.float64) * 2 - 1
        run = lanczos(matvec, dim, steps, start=z, generator=generator, restart=False)
        theta, s = torch.linalg.eigh(run.tridiagonal)
        nodes.append(theta)
        weights.append(s[0] ** 2)
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
    )
