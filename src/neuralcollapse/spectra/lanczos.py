"""Lanczos with full reorthogonalisation: the top-k eigenpairs of a symmetric operator.

From a unit start ``q_1`` the iteration builds an orthonormal basis ``Q_m`` of the Krylov space
``span{q_1, A q_1, ..., A^(m-1) q_1}`` in which ``Q_m^T A Q_m = T_m`` is tridiagonal
(``alpha_j = q_j^T A q_j`` on the diagonal, ``beta_j = ||r_j||`` beside it). Every new vector is
orthogonalised against all earlier ones (twice: "twice is enough", Parlett), so float64 rounding
does not bring back copies of converged eigenvalues. The Ritz pairs ``(theta_j, Q_m s_j)`` of
``T_m = S diag(theta) S^T`` have residual ``||A y_j - theta_j y_j|| = beta_m |s_{m j}|``, the
convergence test used here.

A single Krylov space holds one vector per distinct eigenvalue: an exactly repeated eigenvalue
shows once until the space is exhausted (``beta ~ 0``). On such a breakdown the iteration restarts
with a fresh random vector orthogonal to ``Q`` (``T`` becomes block diagonal), so ``exhaust=True``
(run to ``max_steps``) recovers multiplicities, as exactly collapsed UFM solutions need.

References: Lanczos (1950); Parlett, "The symmetric eigenvalue problem" (1998), ch. 13;
Golub & Van Loan, "Matrix computations", Sec. 10.1.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Callable
from dataclasses import dataclass

import torch

from neuralcollapse.checks import check_float, check_int

__all__ = ["Eigenpairs", "LanczosRun", "lanczos", "top_eigenpairs"]

MatVec = Callable[[torch.Tensor], torch.Tensor]


@dataclass
class LanczosRun:
    """The basis ``Q`` (p, m), the tridiagonal ``T`` (m, m), the last ``beta`` and restarts."""

    basis: torch.Tensor
    tridiagonal: torch.Tensor
    last_beta: float
    restarts: int


def _operator(operator: object) -> tuple[MatVec, int]:
    if hasattr(operator, "matvec") and hasattr(operator, "dim"):
        return operator.matvec, int(operator.dim)
    if isinstance(operator, torch.Tensor):
        if operator.dim() != 2 or operator.shape[0] != operator.shape[1]:
            raise ValueError(f"a matrix operator must be square; got shape {tuple(operator.shape)}")
        matrix = operator.to(torch.float64)
        return (lambda v: matrix @ v), matrix.shape[0]
    raise TypeError(
        "operator must be a SpectralOperator (curvature_operator, feature_moment_operator) or a "
        f"square torch.Tensor; got {type(operator).__name__}"
    )


def lanczos(
    matvec: MatVec,
    dim: int,
    steps: int,
    *,
    start: torch.Tensor | None = None,
    generator: torch.Generator | None = None,
    restart: bool = True,
    on_step: Callable[[LanczosRun], bool] | None = None,
) -> LanczosRun:
    """``steps`` Lanczos steps (fewer if the space is exhausted), fully reorthogonalised.

    ``on_step(run)`` is called after every step and may return True to stop. With
    ``restart=False`` a breakdown ends the run (stochastic quadrature wants one Krylov space).
    """
    steps = min(check_int("steps", steps, minimum=1), dim)
    generator = generator or torch.Generator().manual_seed(0)
    if start is None:
        start = torch.randn(dim, generator=generator, dtype=torch.float64)
    q = start.to(torch.float64).reshape(-1)
    if q.shape[0] != dim or not torch.isfinite(q).all() or float(q.norm()) == 0.0:
        raise ValueError(f"the start vector must be a finite nonzero vector of length {dim}")
    basis = torch.zeros(dim, steps, dtype=torch.float64)
    basis[:, 0] = q / q.norm()
    alphas = torch.zeros(steps, dtype=torch.float64)
    betas = torch.zeros(steps, dtype=torch.float64)  # betas[j] couples j and j+1
    scale, restarts, used = 0.0, 0, 0
    for j in range(steps):
        used = j + 1
        w = matvec(basis[:, j]).to(torch.float64).reshape(-1)
        if not torch.isfinite(w).all():
            raise ValueError("the operator returned non-finite values (NaN or inf)")
        alphas[j] = basis[:, j] @ w
        scale = max(scale, float(w.norm()))
        q_prev = basis[:, : j + 1]
        for _ in range(2):  # full reorthogonalisation, twice
            w = w - q_prev @ (q_prev.T @ w)
        beta = float(w.norm())
        if j + 1 == steps:
            betas[j] = beta
            break
        if beta <= 1e-12 * max(scale, 1e-300):
            betas[j] = 0.0
            if not restart:
                break
            restarts += 1
            for _ in range(5):  # a fresh direction orthogonal to the space found so far
                w = torch.randn(dim, generator=generator, dtype=torch.float64)
                for _ in range(2):
                    w = w - q_prev @ (q_prev.T @ w)
                if float(w.norm()) > 1e-8:
                    break
            basis[:, j + 1] = w / w.norm()
        else:
            betas[j] = beta
            basis[:, j + 1] = w / beta
        if on_step is not None and on_step(_run(basis, alphas, betas, j + 1, restarts)):
            break
    return _run(basis, alphas, betas, used, restarts)


def _run(basis, alphas, betas, m, restarts) -> LanczosRun:
    t = torch.diag(alphas[:m])
    if m > 1:
        off = betas[: m - 1]
        t = t + torch.diag(off, 1) + torch.diag(off, -1)
    return LanczosRun(basis[:, :m], t, float(betas[m - 1]), restarts)


@dataclass
class Eigenpairs:
    """Top eigenpairs, largest first: ``values`` (k,), ``vectors`` (p, k) orthonormal,
    ``residuals`` ``||A y - theta y||`` (k,), ``steps`` (products used), ``converged``."""

    values: torch.Tensor
    vectors: torch.Tensor
    residuals: torch.Tensor
    steps: int
    converged: bool

    def to_dict(self) -> dict:
        return {
            "values": self.values.tolist(),
            "residuals": self.residuals.tolist(),
            "steps": self.steps,
            "converged": self.converged,
        }


def _ritz(run: LanczosRun, k: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    theta, s = torch.linalg.eigh(run.tridiagonal)
    order = torch.argsort(theta, descending=True)[:k]
    residuals = (run.last_beta * s[-1, order]).abs()
    return theta[order], s[:, order], residuals


def top_eigenpairs(
    operator: object,
    k: int = 10,
    *,
    tol: float = 1e-10,
    max_steps: int | None = None,
    exhaust: bool = False,
    seed: int = 0,
) -> Eigenpairs:
    """The k largest eigenvalues (algebraic) and eigenvectors of a symmetric operator.

    Stops once every one of the top-k Ritz residuals is at most ``tol * |theta_1|`` (relative
    to the largest), or after ``max_steps`` products (default ``min(p, max(4k, k + 40))``), or
    with ``exhaust=True`` only at ``max_steps`` (default p then): use it when eigenvalues may
    repeat exactly (module docstring). A run that ends unconverged warns and sets
    ``converged=False``.

    Parameters
    ----------
    operator : a :class:`~neuralcollapse.spectra.operators.SpectralOperator` or a square tensor.
    k : how many eigenpairs (1 <= k <= p).
    tol : relative residual tolerance.
    seed : seed of the start (and restart) vectors.
    """
    matvec, dim = _operator(operator)
    k = check_int("k", k, minimum=1, maximum=dim, meaning="eigenpairs wanted, at most p")
    tol = check_float("tol", tol, minimum=0.0, strict=True)
    default_steps = dim if exhaust else min(dim, max(4 * k, k + 40))
    if max_steps is None:
        max_steps = default_steps
    max_steps = check_int("max_steps", max_steps, minimum=k, alternative="or None (automatic)")
    max_steps = min(max_steps, dim)

    def done(run: LanczosRun) -> bool:
        m = run.tridiagonal.shape[0]
        if exhaust or m < k or (m % 5 and m < max_steps):
            return False
        theta, _, residuals = _ritz(run, k)
        return bool((residuals <= tol * max(float(theta.abs().max()), 1e-300)).all())

    generator = torch.Generator().manual_seed(check_int("seed", seed))
    run = lanczos(matvec, dim, max_steps, generator=generator, on_step=done)
    m = run.tridiagonal.shape[0]
    if m < k:
        raise ValueError(f"the Krylov space has only {m} < k={k} dimensions; ask for fewer")
    theta, s, residuals = _ritz(run, k)
    scale = max(float(theta.abs().max()), 1e-300)
    converged = bool((residuals <= tol * scale).all())
    if not converged:
        warnings.warn(
            f"Lanczos stopped after {m} steps with top-{k} relative residuals up to "
            f"{float(residuals.max()) / scale:.2e} > tol={tol:g}; raise max_steps",
            RuntimeWarning,
            stacklevel=2,
        )
    vectors = run.basis @ s
    return Eigenpairs(theta, vectors, residuals, m, converged)


def relative_residual_bound(values: torch.Tensor, residuals: torch.Tensor) -> float:
    """max_j residual_j / |theta_1|: by Bauer-Fike each Ritz value lies within its residual of an
    eigenvalue (for symmetric operators)."""
    return float(residuals.max()) / max(float(values.abs().max()), math.ulp(1.0))
