"""Lanczos with full reorthogonalisation: the top-k eigenpairs of a symmetric operator.

From a unit start ``q_1`` the iteration builds an orthonormal basis ``Q_m`` of the Krylov space
``span{q_1, A q_1, ..., A^(m-1) q_1}`` in which ``Q_m^T A Q_m = T_m`` is tridiagonal
(``alpha_j = q_j^T A q_j`` on the diagonal, ``beta_j = ||r_j||`` beside it). Every new vector is
orthogonalised against all earlier ones (twice: "twice is enough", Parlett), so float64 rounding
does not bring back copies of converged eigenvalues. The Ritz pairs ``(theta_j, Q_m s_j)`` of
``T_m = S diag(theta) S^T`` have residual ``||A y_j - theta_j y_j|| = beta_m |s_{m j}|``, the
convergence test used here.

In exact arithmetic a single Krylov space holds one vector per distinct eigenvalue: an exactly
repeated eigenvalue shows once until the space is exhausted (``beta ~ 0``). In float64 further
copies grow out of rounding errors, one at a time and at a rate nothing controls (quickly for
well-separated outliers, slowly inside a bulk), so a run that stops on its residuals can report
a converged list with copies missing and later eigenvalues in their places. On a breakdown
the iteration restarts
with a fresh random vector orthogonal to ``Q`` (``T`` becomes block diagonal), so ``exhaust=True``
(run to ``max_steps``) recovers multiplicities, as exactly collapsed UFM solutions need.

Block Lanczos (:func:`block_lanczos`, ``top_eigenpairs(..., block_size=b)``) removes that
limit without exhausting the space. From an orthonormal start block ``Q_1`` (p, b) it builds an
orthonormal basis of the block Krylov space ``span{Q_1, A Q_1, ..., A^(s-1) Q_1}``::

    A_j = Q_j^T A Q_j,    R_j = A Q_j - Q_j A_j - Q_(j-1) B_(j-1)^T = Q_(j+1) B_j  (QR),

in which ``Q^T A Q = T`` is block tridiagonal: ``A_j`` (b, b) on the diagonal, ``B_j`` below it
and ``B_j^T`` above. The space holds the projection of all b start vectors on every eigenspace,
so an eigenvalue of multiplicity up to b appears with its multiplicity. A larger multiplicity m
shows b times in exact arithmetic; further copies only grow from rounding, as for one vector,
so the count found lies between b and m (the limit, see :func:`top_eigenpairs`). As for
vectors, every new block is
orthogonalised twice against all earlier ones. A column of ``R_j`` that is numerically dependent
(norm below ``1e-12`` times the largest ``||A q||`` seen, after projecting out everything
before it) is deflated: its row of ``B_j`` is zero, and its place goes to a fresh random
direction orthogonal to the basis, so the block keeps b columns while the space has room (the
restart of the vector case, column by column; ``T`` stays block tridiagonal). A Ritz pair
``(theta, Q s)`` has residual ``||A y - theta y|| = ||B_s s_last||``, with ``B_s`` the last
block's coupling and ``s_last`` the rows of ``s`` in the last block. A block of products costs
one pass over the data (``SpectralOperator.matmat``). Memory: O(p * steps * b), the basis of
``steps`` blocks of b columns, and ``T``, ``(steps * b)^2`` floats.

References: Lanczos (1950); Parlett, "The symmetric eigenvalue problem" (1998), ch. 13;
Golub & Van Loan, "Matrix computations" (4th ed., 2013), Sec. 10.1 and Sec. 10.3 (block
Lanczos); Cullum & Donath (1974) and Golub & Underwood (1977), the block method.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Callable
from dataclasses import dataclass

import torch

from neuralcollapse.checks import check_float, check_int

__all__ = [
    "BlockLanczosRun",
    "Eigenpairs",
    "LanczosRun",
    "block_lanczos",
    "lanczos",
    "top_eigenpairs",
]

MatVec = Callable[[torch.Tensor], torch.Tensor]
#: a breakdown / deflation: a new direction shorter than this times the largest ||A q|| so far
BREAKDOWN = 1e-12


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
        if beta <= BREAKDOWN * max(scale, 1e-300):
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
class BlockLanczosRun:
    """The basis ``Q`` (p, m), the block tridiagonal ``T`` (m, m), the last coupling ``B``
    (r, b_last: a Ritz vector ``Q s`` has residual ``||B s[-b_last:]||``), the block sizes and
    the number of deflated columns (each replaced by a random direction when ``restart``)."""

    basis: torch.Tensor
    tridiagonal: torch.Tensor
    last_coupling: torch.Tensor
    block_sizes: list[int]
    deflations: int


MatMat = Callable[[torch.Tensor], torch.Tensor]


def _block_operator(operator: object) -> tuple[MatMat, int]:
    """``V -> A V`` for a block V (p, b): the operator's ``matmat`` (one pass over the data for
    the block), a matrix product, or b ``matvec`` calls."""
    matvec, dim = _operator(operator)  # checks the operator and gives its size
    if hasattr(operator, "matmat"):
        return operator.matmat, dim
    if isinstance(operator, torch.Tensor):
        return matvec, dim  # (p, p) @ (p, b)

    def matmat(block: torch.Tensor) -> torch.Tensor:
        columns = [matvec(block[:, i]).to(torch.float64).reshape(-1) for i in range(block.shape[1])]
        return torch.stack(columns, dim=1)

    return matmat, dim


def _project_out(vectors: torch.Tensor, basis: torch.Tensor) -> torch.Tensor:
    """``(I - Q Q^T)^2 V``: classical Gram-Schmidt twice ("twice is enough", Parlett)."""
    for _ in range(2):
        vectors = vectors - basis @ (basis.T @ vectors)
    return vectors


def _next_block(
    residual: torch.Tensor,
    basis: torch.Tensor,
    threshold: float,
    room: int,
    width: int,
    generator: torch.Generator | None,
) -> tuple[torch.Tensor, torch.Tensor, int]:
    """``R = Q_next B`` with deflation: the next block (p, r), the coupling B (r, b) and the
    number of deflated columns.

    ``residual`` (p, b) is already orthogonal to ``basis``. Its columns are orthonormalised in
    turn (Gram-Schmidt twice against the basis and the columns kept so far: a column that
    shrinks by many orders of magnitude when the kept ones are removed would otherwise carry
    the rounding left along the basis into its normalised direction); a column left no longer than
    ``threshold`` lies, to that accuracy, in the span of what came before and is deflated:
    dropping it changes ``A Q - Q T`` by at most the threshold. Every other column is kept,
    whatever the budget: cutting one with a nonzero coupling would make the residual formula
    wrong (the caller stops instead). With a ``generator``, deflated places are refilled by
    random directions orthogonal to everything, with zero coupling, up to ``width`` columns
    and at most ``room`` more (what the budget leaves), so later eigenvalues keep b copies.
    """
    p = residual.shape[0]
    kept: list[torch.Tensor] = []
    for i in range(residual.shape[1]):
        column = residual[:, i]
        if kept:
            column = _project_out(column, torch.cat([basis, torch.stack(kept, dim=1)], dim=1))
        norm = float(column.norm())
        if norm > threshold:
            kept.append(column / norm)
    following = torch.stack(kept, dim=1) if kept else residual.new_zeros(p, 0)
    coupling = following.T @ residual  # B = Q_next^T R (upper trapezoidal up to rounding)
    deflated = residual.shape[1] - len(kept)
    if generator is None:
        return following, coupling, deflated
    for _ in range(max(0, min(width - len(kept), room - len(kept)))):
        everything = torch.cat([basis, following], dim=1)
        for _ in range(5):  # a fresh direction orthogonal to the space found so far
            fresh = _project_out(
                torch.randn(p, generator=generator, dtype=torch.float64), everything
            )
            if float(fresh.norm()) > 1e-8:
                break
        else:
            break  # the space is exhausted
        following = torch.cat([following, (fresh / fresh.norm()).unsqueeze(1)], dim=1)
    padding = coupling.new_zeros(following.shape[1] - len(kept), coupling.shape[1])
    return following, torch.cat([coupling, padding]), deflated


def block_lanczos(
    matmat: MatMat,
    dim: int,
    block_size: int,
    steps: int,
    *,
    start: torch.Tensor | None = None,
    generator: torch.Generator | None = None,
    restart: bool = True,
    on_step: Callable[[BlockLanczosRun], bool] | None = None,
) -> BlockLanczosRun:
    """Block Lanczos with full reorthogonalisation and deflation (module docstring).

    At most ``steps`` products (= basis vectors), in blocks of ``block_size`` = b columns;
    fewer when the space is exhausted or the next block would not fit in ``steps``.
    ``matmat(V)`` returns ``A V`` for V (p, b'); ``start`` (p, b) defaults to a Gaussian block
    drawn from ``generator``. With ``restart=True`` deflated columns are replaced by random
    directions orthogonal to the basis (the block keeps b columns while the space has room);
    with ``restart=False`` they are dropped, the block shrinks, and the run ends when no
    column is left. ``on_step(run)`` is called after every block and may return True to stop.

    Recurrence (Golub & Van Loan, "Matrix computations", 4th ed., Sec. 10.3, block Lanczos):
    ``A_j = Q_j^T A Q_j``, ``R_j = (I - Q Q^T) A Q_j = Q_(j+1) B_j``, ``T`` block tridiagonal.
    """
    b = check_int("block_size", block_size, minimum=1, maximum=dim, meaning="at most p")
    steps = check_int("steps", steps, minimum=b, meaning="products, at least the block size")
    steps = min(steps, dim)
    generator = generator or torch.Generator().manual_seed(0)
    if start is None:
        start = torch.randn(dim, b, generator=generator, dtype=torch.float64)
    start = start.to(torch.float64)
    if start.shape != (dim, b) or not torch.isfinite(start).all():
        raise ValueError(
            f"the start block must be a finite ({dim}, {b}) matrix; got shape {tuple(start.shape)}"
        )
    basis = torch.zeros(dim, steps, dtype=torch.float64)  # p * steps = p * blocks * b floats
    tridiagonal = torch.zeros(steps, steps, dtype=torch.float64)
    size = max(float(start.norm(dim=0).max()), 1e-300)
    first, _, _ = _next_block(start, basis[:, :0], 1e-10 * size, 0, b, None)
    if first.shape[1] < b:
        raise ValueError(f"the start block must have rank {b} (linearly independent columns)")
    basis[:, :b] = first
    lo, hi, sizes, deflations, scale = 0, b, [b], 0, 0.0
    while True:
        block = basis[:, lo:hi]
        product = matmat(block).to(torch.float64).reshape(dim, hi - lo)
        if not torch.isfinite(product).all():
            raise ValueError("the operator returned non-finite values (NaN or inf)")
        diagonal = block.T @ product
        tridiagonal[lo:hi, lo:hi] = 0.5 * (diagonal + diagonal.T)  # A_j, symmetric
        scale = max(scale, float(product.norm(dim=0).max()))
        # R_j: projecting out every block so far subtracts Q_j A_j and Q_(j-1) B_(j-1)^T and
        # the rounding that would otherwise bring back copies of converged eigenvectors
        residual = _project_out(product, basis[:, :hi])
        following, coupling, dropped = _next_block(
            residual,
            basis[:, :hi],
            BREAKDOWN * max(scale, 1e-300),
            steps - hi,
            b,
            generator if restart else None,
        )
        deflations += dropped
        width = following.shape[1]
        if width == 0 or hi + width > steps:
            return _block_run(basis, tridiagonal, hi, coupling, sizes, deflations)
        basis[:, hi : hi + width] = following
        tridiagonal[hi : hi + width, lo:hi] = coupling
        tridiagonal[lo:hi, hi : hi + width] = coupling.T
        # the run so far ends at hi with coupling B_j; the block just added costs nothing yet
        run = _block_run(basis, tridiagonal, hi, coupling, sizes, deflations)
        if on_step is not None and on_step(run):
            return run
        lo, hi = hi, hi + width
        sizes.append(width)


def _block_run(
    basis: torch.Tensor,
    tridiagonal: torch.Tensor,
    m: int,
    coupling: torch.Tensor,
    sizes: list[int],
    deflations: int,
) -> BlockLanczosRun:
    return BlockLanczosRun(basis[:, :m], tridiagonal[:m, :m], coupling, list(sizes), deflations)


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


def _ritz(
    run: LanczosRun | BlockLanczosRun, k: int
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    theta, s = torch.linalg.eigh(run.tridiagonal)
    order = torch.argsort(theta, descending=True)[:k]
    if isinstance(run, BlockLanczosRun):
        # A Q s - theta Q s = Q_next B s_last: the norm of B times the last block's rows of s
        last = s[s.shape[0] - run.block_sizes[-1] :, order]
        residuals = torch.linalg.vector_norm(run.last_coupling @ last, dim=0)
    else:
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
    block_size: int | None = None,
) -> Eigenpairs:
    """The k largest eigenvalues (algebraic) and eigenvectors of a symmetric operator.

    Stops once every one of the top-k Ritz residuals is at most ``tol * |theta_1|`` (relative
    to the largest), or after ``max_steps`` products (default ``min(p, max(4k, k + 40 b))``,
    b the block size, 1 without one), or with ``exhaust=True`` only at ``max_steps`` (default p
    then). A run that ends unconverged warns and sets ``converged=False``.

    Exactly repeated eigenvalues (module docstring): single-vector Lanczos
    (``block_size=None``) sees one copy of each in exact arithmetic until the space is
    exhausted (further copies grow from rounding, at no predictable step), so it needs
    ``exhaust=True`` (p products) to count them. Block Lanczos (``block_size=b``, Golub & Van
    Loan Sec. 10.3) finds every eigenvalue of multiplicity m <= b with its multiplicity in an
    ordinary run (b products per step of polynomial degree, in one pass over the data each).
    **Limit:** an eigenvalue of multiplicity m > b shows b times in exact arithmetic, and
    between b and m times in float64; the next eigenvalues take the places of its missing
    copies with small residuals (each value is a true eigenvalue, the count is short), so
    ``converged`` cannot tell. Choose b >= the largest multiplicity expected (C for a last
    layer under MSE), or use ``exhaust=True``.

    Parameters
    ----------
    operator : a :class:`~neuralcollapse.spectra.operators.SpectralOperator` or a square tensor.
    k : how many eigenpairs (1 <= k <= p).
    tol : relative residual tolerance.
    seed : seed of the start (and restart) vectors.
    block_size : None (single-vector Lanczos, as before) or b in [1, p]; b = 1 is the same
        iteration as None (equal to rounding). Memory: O(p * steps * b) for ``steps`` blocks,
        the basis of p x ``max_steps`` floats.
    """
    matvec, dim = _operator(operator)
    k = check_int("k", k, minimum=1, maximum=dim, meaning="eigenpairs wanted, at most p")
    tol = check_float("tol", tol, minimum=0.0, strict=True)
    if block_size is not None:
        block_size = check_int(
            "block_size",
            block_size,
            minimum=1,
            maximum=dim,
            meaning="vectors per Lanczos block, at most p",
            alternative="or None (single-vector Lanczos)",
        )
    width = block_size or 1
    default_steps = dim if exhaust else min(dim, max(4 * k, k + 40 * width))
    if max_steps is None:
        max_steps = default_steps
    max_steps = check_int(
        "max_steps", max_steps, minimum=max(k, width), alternative="or None (automatic)"
    )
    max_steps = min(max_steps, dim)

    def done(run: LanczosRun | BlockLanczosRun) -> bool:
        m = run.tridiagonal.shape[0]
        # the convergence test (an eigh of T) runs when the products pass a multiple of 5
        last = run.block_sizes[-1] if isinstance(run, BlockLanczosRun) else 1
        if exhaust or m < k or (m // 5 == (m - last) // 5 and m < max_steps):
            return False
        theta, _, residuals = _ritz(run, k)
        return bool((residuals <= tol * max(float(theta.abs().max()), 1e-300)).all())

    generator = torch.Generator().manual_seed(check_int("seed", seed))
    if block_size is None:
        run = lanczos(matvec, dim, max_steps, generator=generator, on_step=done)
    else:
        matmat, _ = _block_operator(operator)
        run = block_lanczos(matmat, dim, block_size, max_steps, generator=generator, on_step=done)
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
