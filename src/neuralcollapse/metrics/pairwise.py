"""Pairwise (K x K) reductions over the rows of a frame, tiled so K can be ~10^5.

A frame is a (K, d) matrix whose rows are class means or classifier rows. Every
pairwise quantity the metrics need — cosines, the normalised Gram distance to a
target frame, the class-distance normalised variance — is a sum over entries of the
Gram matrix ``G = X X^T``. We never hold ``G``: row tiles ``X[i:j] X^T`` of about
``TILE_ELEMENTS`` entries are formed one at a time and reduced on the spot, so memory
is O(K d + tile) instead of O(K^2) (for K = 10,000 a full float64 Gram is 800 MB, a
tile 16 MB).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

TILE_ELEMENTS = 1 << 21  # entries of one Gram tile: 16 MB in float64


def _row_tiles(num_rows: int, num_cols: int, tile_elements: int):
    rows_per_tile = max(1, min(num_rows, tile_elements // max(num_cols, 1)))
    for start in range(0, num_rows, rows_per_tile):
        yield start, min(num_rows, start + rows_per_tile)


def gram_frobenius_norm(frame: torch.Tensor) -> float:
    """``||X X^T||_F`` computed from the smaller of the two Gram matrices.

    ``||X X^T||_F^2 = ||X^T X||_F^2`` (both equal the sum of the fourth powers of the
    singular values), so when d < K the d x d Gram is the cheaper way.
    """
    num_rows, dim = frame.shape
    if dim < num_rows:
        return float(torch.linalg.matrix_norm(frame.T @ frame))
    total = frame.new_zeros(())
    for start, stop in _row_tiles(num_rows, num_rows, TILE_ELEMENTS):
        tile = frame[start:stop] @ frame.T
        total += (tile * tile).sum()
    return math.sqrt(float(total))


def nearest_row_distance(frame: torch.Tensor, tile_elements: int = TILE_ELEMENTS) -> torch.Tensor:
    """A lower bound on ``min_{j != k} ||x_k - x_j||`` for every row k, tiled over the Gram.

    Squared distances come from the Gram, ``||x_k||^2 + ||x_j||^2 - 2 x_k.x_j``, whose
    rounding error is below ``(d + 2) eps (||x_k||^2 + ||x_j||^2)``; four times that is
    subtracted, so the result never exceeds the true distance (it only certifies).
    """
    num_rows, dim = frame.shape
    squared_norms = (frame * frame).sum(dim=1)
    slack = 4.0 * (dim + 2) * torch.finfo(frame.dtype).eps
    nearest = torch.empty(num_rows, dtype=frame.dtype, device=frame.device)
    for start, stop in _row_tiles(num_rows, num_rows, tile_elements):
        # in place: two tile-sized blocks alive at a time
        squared = (squared_norms[start:stop, None] + squared_norms[None, :]).mul_(1.0 - slack)
        squared.addmm_(frame[start:stop], frame.T, alpha=-2.0)
        rows = torch.arange(start, stop, device=frame.device)
        squared[rows - start, rows] = torch.inf  # a row is not its own neighbour
        nearest[start:stop] = squared.amin(dim=1).clamp_(min=0.0).sqrt_()
    return nearest


@dataclass(frozen=True)
class FrameStatistics:
    """Pairwise summaries of the rows ``x_k`` of a (K, d) frame (see :func:`frame_statistics`)."""

    norms: torch.Tensor  # (K,) row norms
    equinorm: float  # std_k ||x_k|| / mean_k ||x_k|| (ddof = 1)
    equiangular: float  # std over k != k' of cos(x_k, x_k') (ddof = 1)
    maxangle: float  # mean over k != k' of |cos(x_k, x_k') + 1/(K-1)|
    etf_gap: float | None  # || G/||G||_F - (I-J)/sqrt(K-1) ||_F
    of_gap: float | None  # || G/||G||_F - I/sqrt(K) ||_F
    cdnv: float | None  # mean over k < k' of (v_k + v_k') / (2 ||x_k - x_k'||^2)


def frame_statistics(
    frame: torch.Tensor,
    *,
    etf_gap: bool = False,
    of_gap: bool = False,
    variances: torch.Tensor | None = None,
    angles: bool = True,
    tile_elements: int = TILE_ELEMENTS,
) -> FrameStatistics:
    """Norm, angle and Gram-distance summaries of the rows of ``frame`` in one tiled pass.

    Parameters
    ----------
    frame : (K, d) float64, rows ``x_k``.
    etf_gap, of_gap : also compute the normalised Gram distances to the simplex ETF
        ``(I - J)/sqrt(K-1)`` and to the orthogonal frame ``I/sqrt(K)``.
    variances : (K,) per-row variances ``v_k``; when given, also the class-distance
        normalised variance ``CDNV = mean_{k<k'} (v_k + v_k') / (2 ||x_k - x_k'||^2)``
        (Galanti, György & Hutter, ICLR 2022). Differences of rows are unchanged by
        centring, so pass centred means for the best conditioning.
    angles : compute the cosine summaries (equiangular, maxangle); False leaves them NaN
        and saves the elementwise work on each tile when only a Gram gap is wanted.

    Returns
    -------
    FrameStatistics. Cosines with a zero row are taken as 0. Equiangularity accumulates
    cosines shifted by the ETF value -1/(K-1), so near collapse (all cosines close to it)
    the sums do not cancel catastrophically.
    """
    num_rows = frame.shape[0]
    norms = torch.linalg.vector_norm(frame, dim=1)
    equinorm = float(norms.std() / norms.mean()) if float(norms.mean()) > 0 else 0.0
    safe_norms = torch.where(norms > 0, norms, torch.ones_like(norms))
    etf_cosine = -1.0 / (num_rows - 1)

    gram_norm = gram_frobenius_norm(frame) if (etf_gap or of_gap) else 1.0
    if (etf_gap or of_gap) and gram_norm == 0.0:
        raise ValueError("the frame is all zeros: its Gram direction is undefined")
    etf_scale = 1.0 / math.sqrt(num_rows - 1)
    of_scale = 1.0 / math.sqrt(num_rows)

    shifted_sum = frame.new_zeros(())
    shifted_squares = frame.new_zeros(())
    absolute_sum = frame.new_zeros(())
    etf_squares = frame.new_zeros(())
    of_squares = frame.new_zeros(())
    cdnv_sum = frame.new_zeros(())
    squared_norms = norms * norms
    degenerate_pairs = 0
    for start, stop in _row_tiles(num_rows, num_rows, tile_elements):
        rows = torch.arange(start, stop, device=frame.device)
        diagonal_entries = (rows - start, rows)
        # one product per tile; cosines, the normalised Gram and the distances all derive from
        # it. Off-diagonal sums: the diagonal entries are overwritten with a neutral value
        # (boolean masks would copy the tile, and measured ~10x slower at K = 10,000)
        gram = frame[start:stop] @ frame.T

        if angles:
            shifted = gram / (safe_norms[start:stop].unsqueeze(1) * safe_norms) - etf_cosine
            shifted[diagonal_entries] = 0.0
            shifted_sum += shifted.sum()
            shifted_squares += (shifted * shifted).sum()
            absolute_sum += shifted.abs_().sum()
            del shifted

        if etf_gap or of_gap:
            normalised = gram / gram_norm
            diagonal = normalised[diagonal_entries].clone()
            if etf_gap:
                # target (I - J)/sqrt(K-1): scale (1 - 1/K) on the diagonal, -scale/K off it
                off_target = normalised + etf_scale / num_rows
                off_target[diagonal_entries] = 0.0
                etf_squares += (off_target * off_target).sum()
                etf_squares += ((diagonal - etf_scale * (1.0 - 1.0 / num_rows)) ** 2).sum()
                del off_target
            if of_gap:
                normalised[diagonal_entries] = 0.0
                of_squares += (normalised * normalised).sum()
                of_squares += ((diagonal - of_scale) ** 2).sum()
            del normalised
        if variances is not None:
            distances = squared_norms[start:stop].unsqueeze(1) + squared_norms - 2.0 * gram
            distances[diagonal_entries] = math.inf  # its ratio below is then 0
            degenerate_pairs += int((distances <= 0).sum())
            pair_variances = variances[start:stop].unsqueeze(1) + variances
            cdnv_sum += (pair_variances / (2.0 * distances.clamp_min_(1e-300))).sum()

    pair_count = num_rows * (num_rows - 1)
    mean_shift = shifted_sum / pair_count
    variance = (shifted_squares - pair_count * mean_shift * mean_shift) / (pair_count - 1)
    equiangular = math.sqrt(max(float(variance), 0.0)) if pair_count > 1 else 0.0
    if not angles:
        equiangular = math.nan
    cdnv = None
    if variances is not None:
        cdnv = math.inf if degenerate_pairs else float(cdnv_sum / pair_count)
    return FrameStatistics(
        norms=norms,
        equinorm=equinorm,
        equiangular=equiangular,
        maxangle=float(absolute_sum / pair_count) if angles else math.nan,
        etf_gap=math.sqrt(max(float(etf_squares), 0.0)) if etf_gap else None,
        of_gap=math.sqrt(max(float(of_squares), 0.0)) if of_gap else None,
        cdnv=cdnv,
    )
