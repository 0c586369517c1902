"""Pairwise (K x K) reductions over the rows of a frame, in square tiles, for K up to ~10^5.

A frame is a (K, d) matrix whose rows are class means or classifier rows. Every pairwise
quantity the metrics need — cosines, the normalised Gram distance to a target frame, the
class-distance normalised variance, the hyperspherical-uniformity kernels, the nearest
other row — is a function of the entries of the Gram matrix ``G = X X^T``. We never hold
``G``: the grid is cut into ``tile_size x tile_size`` blocks, only the blocks on and above
the diagonal are formed (``G`` is symmetric, so this halves the product), and each block
is reduced on the spot. Memory is O(K d + tile_size^2), not O(K^2): at K = 50,257 a full
float64 Gram is 20 GB, a 1024 x 1024 tile 8 MB.

Bookkeeping for the half grid: an off-diagonal block holds each of its unordered pairs
once and stands for both orders (weight 2 in sums over ordered pairs; its row reductions
go to its rows, its column reductions to its columns); a diagonal block holds both orders
itself (weight 1) and its diagonal entries, which are overwritten with a neutral value.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

import torch

# 1024 x 1024 float64 tiles (8 MB each, a few alive at a time): at K = 20,000 and d = 768 the
# passes over the means and the classifier took 16.0 s in all with 1024, 18.6 s with 512 and
# 18.0 s with 256 (2 CPU cores): fewer, larger tiles keep the matrix products efficient and
# the per-tile overhead of the elementwise work low
DEFAULT_TILE_SIZE = 1024

UNIFORMITY_KERNELS = ("distance", "log", "riesz")


def check_tile_size(tile_size: int | None) -> int:
    """``tile_size`` (side of the square blocks of the K x K grid) or the default."""
    if tile_size is None:
        return DEFAULT_TILE_SIZE
    if isinstance(tile_size, bool) or not isinstance(tile_size, int) or tile_size < 1:
        raise ValueError(
            f"tile_size (side of the square blocks the K x K pairwise work is cut into) must "
            f"be an integer >= 1, or None for the default {DEFAULT_TILE_SIZE}; got {tile_size!r}"
        )
    return tile_size


def check_uniformity_kernels(kernels: Sequence[str] | None) -> tuple[str, ...]:
    """The requested hyperspherical-uniformity kernels, checked against the known names."""
    if kernels is None:
        return ()
    if isinstance(kernels, str):
        kernels = (kernels,)
    unknown = [name for name in kernels if name not in UNIFORMITY_KERNELS]
    if unknown:
        raise ValueError(
            f"unknown uniformity kernel(s) {', '.join(repr(name) for name in unknown)}; "
            f"choose from {', '.join(UNIFORMITY_KERNELS)} (or pass () for none)"
        )
    return tuple(dict.fromkeys(kernels))


def symmetric_tiles(num_rows: int, tile_size: int) -> Iterator[tuple[slice, slice, bool]]:
    """Blocks ``(rows, cols, on_diagonal)`` covering a K x K grid's upper half and diagonal."""
    starts = range(0, num_rows, tile_size)
    for row_start in starts:
        rows = slice(row_start, min(num_rows, row_start + tile_size))
        for col_start in range(row_start, num_rows, tile_size):
            cols = slice(col_start, min(num_rows, col_start + tile_size))
            yield rows, cols, col_start == row_start


def row_blocks(num_rows: int, tile_size: int) -> Iterator[slice]:
    """Row slices of about ``tile_size^2`` entries' worth of a (K, d) matrix, for K x d work."""
    step = max(1, tile_size)
    for start in range(0, num_rows, step):
        yield slice(start, min(num_rows, start + step))


def _diagonal(block: slice) -> tuple[torch.Tensor, torch.Tensor]:
    index = torch.arange(block.stop - block.start)
    return index, index


def offset_row_norms(
    frame: torch.Tensor, offset: torch.Tensor | None = None, tile_size: int = DEFAULT_TILE_SIZE
) -> torch.Tensor:
    """``||x_k + offset||`` for every row, a block of rows at a time (no K x d temporary)."""
    if offset is None:
        return torch.linalg.vector_norm(frame, dim=1)
    norms = torch.empty(frame.shape[0], dtype=frame.dtype, device=frame.device)
    for rows in row_blocks(frame.shape[0], tile_size):
        norms[rows] = torch.linalg.vector_norm(frame[rows] + offset, dim=1)
    return norms


def rowwise_dot(first: torch.Tensor, second: torch.Tensor, tile_size: int = DEFAULT_TILE_SIZE):
    """``<a_k, b_k>`` for every row pair, a block of rows at a time (no K x d temporary)."""
    out = torch.empty(first.shape[0], dtype=torch.float64, device=first.device)
    for rows in row_blocks(first.shape[0], tile_size):
        out[rows] = (first[rows] * second[rows]).sum(dim=1)
    return out


def gram_frobenius_norm(
    frame: torch.Tensor, offset: torch.Tensor | None = None, tile_size: int = DEFAULT_TILE_SIZE
) -> float:
    """``||X X^T||_F`` of the rows ``x_k`` (+ ``offset``), from the smaller of the two Grams.

    ``||X X^T||_F = ||X^T X||_F`` (both are the root of the sum of the fourth powers of the
    singular values), so when d < K the d x d Gram is the cheap way; with an offset g,
    ``(X + 1 g^T)^T (X + 1 g^T) = X^T X + s g^T + g s^T + K g g^T`` with ``s = X^T 1``.
    """
    num_rows, dim = frame.shape
    if dim < num_rows:
        # in row blocks: one X^T X product would have BLAS pack a K x d copy of X
        small = frame.new_zeros(dim, dim)
        for rows in row_blocks(num_rows, tile_size):
            small.addmm_(frame[rows].T, frame[rows])
        if offset is not None:
            column_sums = frame.sum(dim=0)
            small += torch.outer(column_sums, offset) + torch.outer(offset, column_sums)
            small += num_rows * torch.outer(offset, offset)
        return float(torch.linalg.matrix_norm(small))
    cross = None if offset is None else frame @ offset
    offset_square = 0.0 if offset is None else float(offset @ offset)
    total = frame.new_zeros(())
    for rows, cols, on_diagonal in symmetric_tiles(num_rows, tile_size):
        gram = frame[rows] @ frame[cols].T
        if cross is not None:
            gram.add_(cross[rows, None]).add_(cross[None, cols]).add_(offset_square)
        flat = gram.view(-1)
        total += (1.0 if on_diagonal else 2.0) * torch.dot(flat, flat)
    return math.sqrt(float(total))


def nearest_row_distance(frame: torch.Tensor, tile_size: int = DEFAULT_TILE_SIZE) -> torch.Tensor:
    """A lower bound on ``min_{j != k} ||x_k - x_j||`` for every row k, over the half grid.

    The bound only certifies nearest-class-centre decisions (a smaller one costs a few more
    scores, never a wrong decision), so it is computed in float32, whose products run
    twice as fast, with allowances for every rounding:

    - rounding the rows to float32 moves each by at most ``eps ||x_k||`` (``eps`` of float32),
      so the distance changes by at most ``eps (||x_k|| + ||x_j||)``, subtracted at the end
      with the largest norm for ``||x_j||``;
    - the squared distance from the Gram, ``||x_k||^2 + ||x_j||^2 - 2 x_k.x_j``, has rounding
      error below ``(d + 2) eps (||x_k||^2 + ||x_j||^2)``; four times that is subtracted.

    The rows are first divided by ``c``, the power of two at or above their largest entry
    (exact): float32 squares overflow from ~1.8e19, which made every sample of features of
    norm 1e19 "certified" and NCC accuracy 1.0 where it is 0.975 (issue 16). After the
    division every row has norm <= sqrt(d), its squares and Gram entries are far from
    float32's limits, and the bound, multiplied back by ``c``, does not depend on a global
    rescaling of the frame. Entries below ~1e-38 c become subnormal or 0 in float32; that
    moves a row by less than ``sqrt(d) 1e-45``, far inside the allowance ``2 eps`` below,
    which is at least ``2 eps`` since the largest row has norm >= 1 after the division.

    The result never exceeds the true distance (tested against ``torch.cdist``).
    """
    num_rows, dim = frame.shape
    low_peak, high_peak = torch.aminmax(frame) if frame.numel() else (frame.new_zeros(()),) * 2
    peak = max(-float(low_peak), float(high_peak))
    if peak == 0.0:  # all rows zero: every distance is 0
        return frame.new_zeros(num_rows)
    scale = math.ldexp(1.0, math.frexp(peak)[1])  # power of two in (peak, 2 peak]
    inverse = 1.0 / scale
    low = torch.empty(num_rows, dim, dtype=torch.float32, device=frame.device)
    norms = torch.empty(num_rows, dtype=frame.dtype, device=frame.device)
    for rows in row_blocks(num_rows, tile_size):  # a block at a time: no K x d float64 copy
        block = frame[rows] * inverse
        norms[rows] = torch.linalg.vector_norm(block, dim=1)
        low[rows] = block
    eps = torch.finfo(torch.float32).eps
    squared_norms = torch.linalg.vector_norm(low, dim=1).square_()  # no K x d temporary
    slack = 4.0 * (dim + 2) * eps
    nearest = torch.full((num_rows,), torch.inf, dtype=torch.float32, device=frame.device)
    for rows, cols, on_diagonal in symmetric_tiles(num_rows, tile_size):
        squared = (squared_norms[rows, None] + squared_norms[None, cols]).mul_(1.0 - slack)
        squared.addmm_(low[rows], low[cols].T, alpha=-2.0)
        if on_diagonal:
            squared[_diagonal(rows)] = torch.inf  # a row is not its own neighbour
        torch.minimum(nearest[rows], squared.amin(dim=1), out=nearest[rows])
        if not on_diagonal:
            torch.minimum(nearest[cols], squared.amin(dim=0), out=nearest[cols])
    rounding = 2.0 * eps * (norms + norms.max())  # twice the allowance, for the sqrt's own
    bound = nearest.to(frame.dtype).clamp_(min=0.0).sqrt_().sub_(rounding)
    return bound.clamp_(min=0.0).mul_(scale)


@dataclass(frozen=True)
class FrameStatistics:
    """Pairwise summaries of the rows ``x_k`` of a (K, d) frame (see :func:`frame_statistics`)."""

    norms: torch.Tensor  # (K,) row norms
    equinorm: float  # std_k ||x_k|| / mean_k ||x_k|| (ddof = 1)
    equiangular: float  # std over k != k' of cos(x_k, x_k') (ddof = 1)
    maxangle: float  # mean over k != k' of |cos(x_k, x_k') + 1/(K-1)|
    etf_gap: float | None  # || G/||G||_F - (I-J)/sqrt(K-1) ||_F
    of_gap: float | None  # || G/||G||_F - I/sqrt(K) ||_F (G of the rows + offset)
    cdnv: float | None  # mean over k != k' of (v_k + v_k') / (2 ||x_k - x_k'||^2)
    class_cdnv: torch.Tensor | None  # (K,): the same mean over k' != k for each k
    offset_norms: torch.Tensor | None  # (K,) ||x_k + offset|| when an offset was given
    uniformity: dict[str, float | None]  # gnc2_* keys (None: kernel not requested)


class _PairMoments:
    """Sums over ordered pairs of values shifted by a reference, for a mean and a ddof-0 variance.

    Shifting by the value every pair takes at the simplex ETF keeps the variance exact near
    collapse, where the raw sums would cancel.
    """

    def __init__(self, reference: float, like: torch.Tensor) -> None:
        self.reference = reference
        self.total = like.new_zeros(())
        self.squares = like.new_zeros(())

    def add(self, shifted: torch.Tensor, weight: float) -> None:
        flat = shifted.reshape(-1)
        self.total += weight * flat.sum()
        self.squares += weight * torch.dot(flat, flat)

    def mean_and_variance(self, count: int, sign: float = 1.0) -> tuple[float, float]:
        """Mean and ddof-0 variance of ``reference + sign * shifted`` over ``count`` pairs."""
        mean_shift = float(self.total) / count
        if not math.isfinite(mean_shift):  # a pair at distance 0 under a log kernel
            return self.reference + sign * mean_shift, math.inf
        variance = max(float(self.squares) / count - mean_shift * mean_shift, 0.0)
        return self.reference + sign * mean_shift, variance


def frame_statistics(
    frame: torch.Tensor,
    *,
    etf_gap: bool = False,
    of_gap: bool = False,
    offset: torch.Tensor | None = None,
    variances: torch.Tensor | None = None,
    angles: bool = True,
    uniformity_kernels: Sequence[str] = (),
    riesz_exponent: float | None = None,
    tile_size: int | None = None,
) -> FrameStatistics:
    """Norm, angle, Gram-distance, CDNV and uniformity summaries of the rows of ``frame``.

    One pass over the upper half of the tiled Gram ``X X^T`` serves every quantity asked for.

    Parameters
    ----------
    frame : (K, d) float64, rows ``x_k``.
    etf_gap : the normalised Gram distance to the simplex ETF,
        ``|| G/||G||_F - (I-J)/sqrt(K-1) ||_F``.
    of_gap : the normalised Gram distance to the orthogonal frame,
        ``|| G/||G||_F - I/sqrt(K) ||_F``, of the rows ``x_k + offset`` when ``offset`` (d,)
        is given (the uncentred class means from the centred ones:
        ``G_kj + x_k.g + x_j.g + ||g||^2``, no K x d copy). With an offset, the norms
        ``||x_k + offset||`` are returned too (``offset_norms``).
    variances : (K,) per-row variances ``v_k``; when given, the class-distance normalised
        variance ``CDNV = mean_{k != k'} (v_k + v_k') / (2 ||x_k - x_k'||^2)`` (Galanti,
        György & Hutter, ICLR 2022) and its per-row means ``class_cdnv``. Since
        ``sum_{k != k'} (v_k + v_k')/(2 D_kk') = sum_k v_k sum_{k'} 1/D_kk'``, both come from
        the same row sums. Pass centred means: differences are unchanged, conditioning better.
    angles : the cosine summaries (equiangular, maxangle); False leaves them NaN.
    uniformity_kernels : any of ``"distance"``, ``"log"``, ``"riesz"``: hyperspherical
        uniformity (generalised NC2; Liu et al., "Generalizing and decoupling neural collapse
        via hyperspherical uniformity gap", ICLR 2023) of ``u_k = x_k / ||x_k||`` over the
        pairs k < k', with ``D = ||u_k - u_k'|| = sqrt(2 - 2 cos)``: mean and ddof-0 variance of
        ``D`` (``gnc2_dist_*``) and of ``log(1/D)`` (``gnc2_log_*``), and the logarithm of the
        mean Riesz s-energy ``log mean D^-s`` (``gnc2_riesz_log_mean``), accumulated as a
        log-sum-exp so that ``s`` in the hundreds cannot overflow.
    riesz_exponent : s of the Riesz kernel; default ``d - 2``.
    tile_size : side of the square blocks (default :data:`DEFAULT_TILE_SIZE`).

    Returns
    -------
    FrameStatistics. Cosines with a zero row are taken as 0. At the simplex ETF every pair
    has cosine ``-1/(K-1)`` and distance ``sqrt(2K/(K-1))``; sums accumulate values shifted
    by these, so near collapse they do not cancel. Coincident directions (``D = 0``) make
    the log and Riesz keys ``inf``; coincident rows make ``cdnv`` ``inf``.
    """
    tile_size = check_tile_size(tile_size)
    kernels = check_uniformity_kernels(uniformity_kernels)
    num_rows, dim = frame.shape
    norms = torch.linalg.vector_norm(frame, dim=1)
    equinorm = float(norms.std() / norms.mean()) if float(norms.mean()) > 0 else 0.0
    inverse_norms = torch.where(norms > 0, 1.0 / norms, torch.zeros_like(norms))
    etf_cosine = -1.0 / (num_rows - 1)
    etf_distance = math.sqrt(2.0 * num_rows / (num_rows - 1))
    riesz = "riesz" in kernels
    exponent = float(dim - 2 if riesz_exponent is None else riesz_exponent)

    plain_gram = etf_gap or (of_gap and offset is None)  # a gap of the rows as they are
    etf_norm = gram_frobenius_norm(frame, tile_size=tile_size) if plain_gram else 1.0
    of_norm = etf_norm
    if of_gap and offset is not None:
        of_norm = gram_frobenius_norm(frame, offset, tile_size)
    if (etf_gap and etf_norm == 0.0) or (of_gap and of_norm == 0.0):
        raise ValueError("the frame is all zeros: its Gram direction is undefined")
    etf_scale = 1.0 / math.sqrt(num_rows - 1)
    of_scale = 1.0 / math.sqrt(num_rows)
    cross = None if offset is None else frame @ offset
    offset_norms = None if offset is None else offset_row_norms(frame, offset, tile_size)
    offset_square = 0.0 if offset is None else float(offset @ offset)

    cosine = _PairMoments(0.0, frame)  # cosines shifted by -1/(K-1)
    absolute_sum = frame.new_zeros(())
    distance = _PairMoments(etf_distance, frame)
    log_distance = _PairMoments(-math.log(etf_distance), frame)  # of log D - log D_etf
    riesz_log_sum = torch.tensor(-math.inf, dtype=frame.dtype, device=frame.device)
    etf_squares = frame.new_zeros(())
    of_squares = frame.new_zeros(())
    squared_norms = norms * norms
    cdnv_rows = None if variances is None else torch.zeros_like(norms)
    degenerate_rows = None if variances is None else torch.zeros_like(norms, dtype=torch.bool)
    need_cosines = angles or bool(kernels)

    for rows, cols, on_diagonal in symmetric_tiles(num_rows, tile_size):
        # ordered pairs each entry stands for (see the module docstring)
        weight = 1.0 if on_diagonal else 2.0
        diagonal = _diagonal(rows) if on_diagonal else None
        gram = frame[rows] @ frame[cols].T

        if need_cosines:
            cosines = gram * inverse_norms[rows, None]
            cosines.mul_(inverse_norms[None, cols])
            if on_diagonal:
                cosines[diagonal] = etf_cosine  # neutral: shifted value 0, distance D_etf
            if angles:
                shifted = cosines - etf_cosine
                cosine.add(shifted, weight)
                absolute_sum += weight * torch.linalg.vector_norm(shifted.view(-1), ord=1)
                del shifted
            if kernels:
                # D = ||u_k - u_j|| = sqrt(2 - 2 cos); rounding can push 2 - 2 cos below 0
                distances = cosines.mul_(-2.0).add_(2.0).clamp_(min=0.0).sqrt_()
                if "distance" in kernels:
                    distance.add(distances - etf_distance, weight)
                if "log" in kernels or riesz:
                    logs = distances.log_()
                    if "log" in kernels:
                        log_distance.add(logs - math.log(etf_distance), weight)
                    if riesz and exponent != 0.0:
                        energies = logs.mul_(-exponent)
                        if on_diagonal:
                            energies[diagonal] = -math.inf  # no self-pairs in the energy
                        tile_sum = torch.logsumexp(energies.view(-1), dim=0) + math.log(weight)
                        riesz_log_sum = torch.logaddexp(riesz_log_sum, tile_sum)
            del cosines

        if plain_gram:
            normalised = gram / etf_norm if etf_gap else gram / of_norm
            if on_diagonal:
                normalised[diagonal] = 0.0  # the diagonal is added exactly below
            if etf_gap:
                # target (I - J)/sqrt(K-1): -scale/K off the diagonal
                off_target = normalised + etf_scale / num_rows
                if on_diagonal:
                    off_target[diagonal] = 0.0
                flat = off_target.view(-1)
                etf_squares += weight * torch.dot(flat, flat)
                del off_target
            if of_gap and offset is None:
                flat = normalised.view(-1)
                of_squares += weight * torch.dot(flat, flat)
            del normalised
        if of_gap and offset is not None:
            shifted_gram = gram + cross[rows, None]
            shifted_gram.add_(cross[None, cols]).add_(offset_square).div_(of_norm)
            if on_diagonal:
                shifted_gram[diagonal] = 0.0
            flat = shifted_gram.view(-1)
            of_squares += weight * torch.dot(flat, flat)
            del shifted_gram

        if variances is not None:
            distances_sq = gram.mul_(-2.0).add_(squared_norms[rows, None])
            distances_sq.add_(squared_norms[None, cols])
            if on_diagonal:
                distances_sq[diagonal] = math.inf  # its ratio below is then 0
            if float(distances_sq.min()) <= 0.0:
                degenerate = distances_sq <= 0.0
                degenerate_rows[rows] |= degenerate.any(dim=1)
                degenerate_rows[cols] |= degenerate.any(dim=0)
            ratios = variances[rows, None] + variances[None, cols]
            ratios.div_(distances_sq.clamp_(min=1e-300).mul_(2.0))
            cdnv_rows[rows] += ratios.sum(dim=1)
            if not on_diagonal:
                cdnv_rows[cols] += ratios.sum(dim=0)

    pair_count = num_rows * (num_rows - 1)  # ordered pairs
    equiangular = maxangle = math.nan
    if angles:
        mean_shift = float(cosine.total) / pair_count
        variance = (float(cosine.squares) - pair_count * mean_shift**2) / max(pair_count - 1, 1)
        equiangular = math.sqrt(max(variance, 0.0)) if pair_count > 1 else 0.0
        maxangle = float(absolute_sum) / pair_count

    # the exact diagonal of the normalised Grams
    if etf_gap:
        diagonal_gap = squared_norms / etf_norm - etf_scale * (1.0 - 1.0 / num_rows)
        etf_squares += torch.dot(diagonal_gap, diagonal_gap)
    if of_gap:
        shifted_norms = squared_norms if offset is None else offset_norms**2
        diagonal_gap = shifted_norms / of_norm - of_scale
        of_squares += torch.dot(diagonal_gap, diagonal_gap)

    uniformity: dict[str, float | None] = dict.fromkeys(
        [
            "gnc2_dist_mean",
            "gnc2_dist_var",
            "gnc2_log_mean",
            "gnc2_log_var",
            "gnc2_riesz_log_mean",
        ]
    )
    if "distance" in kernels:
        uniformity["gnc2_dist_mean"], uniformity["gnc2_dist_var"] = distance.mean_and_variance(
            pair_count
        )
    if "log" in kernels:
        # the kernel is log(1/D) = -log D: the mean flips sign, the variance does not
        uniformity["gnc2_log_mean"], uniformity["gnc2_log_var"] = log_distance.mean_and_variance(
            pair_count, sign=-1.0
        )
    if riesz:
        # log mean_{k != k'} D^-s; with s = 0 every kernel value is 1
        uniformity["gnc2_riesz_log_mean"] = (
            0.0 if exponent == 0.0 else float(riesz_log_sum) - math.log(pair_count)
        )

    cdnv = class_cdnv = None
    if variances is not None:
        class_cdnv = cdnv_rows / (num_rows - 1)
        class_cdnv[degenerate_rows] = math.inf
        cdnv = math.inf if bool(degenerate_rows.any()) else float(cdnv_rows.sum()) / pair_count
    return FrameStatistics(
        norms=norms,
        equinorm=equinorm,
        equiangular=equiangular,
        maxangle=maxangle,
        etf_gap=math.sqrt(max(float(etf_squares), 0.0)) if etf_gap else None,
        of_gap=math.sqrt(max(float(of_squares), 0.0)) if of_gap else None,
        cdnv=cdnv,
        class_cdnv=class_cdnv,
        offset_norms=offset_norms,
        uniformity=uniformity,
    )
