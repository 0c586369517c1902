"""Reference geometries of neural collapse and distances between Gram matrices.

Two frames matter (docs/theory.md, "Telling an ETF from an orthogonal frame"):

- the *simplex equiangular tight frame* (ETF): K unit vectors with pairwise cosine
  -1/(K-1), Gram matrix ``K/(K-1) (I - J)`` with ``J = 11^T/K``. It is what the class
  means reach under cross-entropy, or MSE with an unregularised bias
  (Papyan, Han & Donoho, PNAS 2020; Tirer & Bruna, ICML 2022);
- the *orthogonal frame* (OF): K orthonormal vectors, Gram ``I``. It is what the class
  means reach under MSE without a bias (Tirer & Bruna, ICML 2022, Thm 3.1).

Centring an equal-norm OF gives a simplex ETF, so distances on centred means cannot
tell the two apart; the uncentred Gram can. All functions are pure and work in float64
unless told otherwise. Frames are returned as (K, d) matrices whose *rows* are the
vectors, matching the layout of class means and classifier weights in this package.
"""

from __future__ import annotations

import math

import torch

from neuralcollapse.checks import check_int


def _check_num_classes(num_classes: object) -> int:
    return check_int(
        "num_classes", num_classes, minimum=2, meaning="a frame needs at least two vectors"
    )


def _check_dim_and_seed(function: str, k: int, dim: object, seed: object) -> tuple[int, int | None]:
    """``dim`` (default K) and ``seed`` as Python ints (torch refuses NumPy integers)."""
    if dim is None:
        dim = k
    else:
        dim = check_int(
            "dim",
            dim,
            minimum=k,
            meaning=f"{function} needs dim >= num_classes",
            alternative="or None (dim = num_classes)",
        )
    if seed is not None:
        seed = check_int("seed", seed, alternative="or None (no rotation: the coordinate axes)")
    return dim, seed


def _random_orthonormal_columns(
    dim: int, count: int, *, dtype: torch.dtype, seed: int | None
) -> torch.Tensor:
    """A (dim, count) matrix with orthonormal columns, Haar-random when ``seed`` is given."""
    if seed is None:
        return torch.eye(dim, count, dtype=dtype)
    generator = torch.Generator().manual_seed(seed)
    gaussian = torch.randn(dim, count, generator=generator, dtype=torch.float64)
    q, r = torch.linalg.qr(gaussian)
    # fix the signs so that the distribution is Haar (QR alone is not)
    q = q * torch.sign(torch.diagonal(r)).unsqueeze(0)
    return q.to(dtype)


def etf_gram(num_classes: int, *, dtype: torch.dtype = torch.float64) -> torch.Tensor:
    """Gram matrix of the unit-norm simplex ETF: ``K/(K-1) (I - 11^T/K)``."""
    k = _check_num_classes(num_classes)
    identity = torch.eye(k, dtype=dtype)
    return (identity - torch.full((k, k), 1.0 / k, dtype=dtype)) * (k / (k - 1))


def simplex_etf(
    num_classes: int,
    dim: int | None = None,
    *,
    dtype: torch.dtype = torch.float64,
    seed: int | None = None,
) -> torch.Tensor:
    """Unit-norm simplex ETF as a (K, d) matrix of rows with pairwise cosine -1/(K-1).

    Built as ``sqrt(K/(K-1)) (I - J) P^T`` for a (d, K) matrix ``P`` with orthonormal
    columns (the first K coordinate axes, or a random rotation when ``seed`` is given),
    so its Gram matrix is exactly :func:`etf_gram`. Needs ``d >= K`` (the frame spans
    K-1 dimensions, but this construction keeps it simple and exact).

    Parameters
    ----------
    num_classes : K >= 2.
    dim : d >= K (default K).
    seed : rotate the frame by a Haar-random orthogonal matrix drawn with this seed.
    """
    k = _check_num_classes(num_classes)
    dim, seed = _check_dim_and_seed("simplex_etf", k, dim, seed)
    centred = torch.eye(k, dtype=torch.float64) - 1.0 / k
    basis = _random_orthonormal_columns(dim, k, dtype=torch.float64, seed=seed)
    return (math.sqrt(k / (k - 1)) * centred @ basis.T).to(dtype)


def orthogonal_frame(
    num_classes: int,
    dim: int | None = None,
    *,
    dtype: torch.dtype = torch.float64,
    seed: int | None = None,
) -> torch.Tensor:
    """K orthonormal rows in R^d (d >= K): coordinate axes, or rotated when ``seed`` is given."""
    k = _check_num_classes(num_classes)
    dim, seed = _check_dim_and_seed("orthogonal_frame", k, dim, seed)
    return _random_orthonormal_columns(dim, k, dtype=dtype, seed=seed).T.contiguous()


def normalized_gram_distance(gram: torch.Tensor, target: torch.Tensor) -> float:
    """``|| G/||G||_F - T/||T||_F ||_F``: distance between Gram matrices up to scale.

    0 when ``G`` is a positive multiple of ``T``; at most 2. Used for the ETF gap
    (``T`` = :func:`etf_gram`) and the orthogonal-frame gap (``T = I``).
    """
    if gram.shape != target.shape or gram.ndim != 2:
        raise ValueError(
            f"gram and target must be square matrices of one shape; got {tuple(gram.shape)} "
            f"and {tuple(target.shape)}"
        )
    gram = gram.to(torch.float64)
    target = target.to(gram)
    gram_norm = torch.linalg.matrix_norm(gram)
    if gram_norm == 0:
        raise ValueError("gram is the zero matrix: its direction (and so the gap) is undefined")
    difference = gram / gram_norm - target / torch.linalg.matrix_norm(target)
    return float(torch.linalg.matrix_norm(difference))


def of_etf_distance(num_classes: int) -> float:
    """Normalised Gram distance between the orthogonal frame and the simplex ETF.

    ``|| I/sqrt(K) - (I-J)/sqrt(K-1) ||_F = sqrt(2 - 2 sqrt((K-1)/K))``, because
    ``<I, I-J> = K-1``. It is what ``etf_gap_weights`` reads for weights forming an OF.
    """
    k = _check_num_classes(num_classes)
    return math.sqrt(2.0 - 2.0 * math.sqrt((k - 1) / k))
