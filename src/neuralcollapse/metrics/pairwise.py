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

Each quantity is a small reducer (:class:`CosineMoments`, :class:`UniformityKernels`,
:class:`EtfGap`, :class:`OfGap`, :class:`ClassDistanceVariance`); :func:`reduce_frame`
runs the ones a caller passes in one pass over the tiles, forming each Gram block once.
The nearest-other-row bound of the nearest-centre certificate (:func:`nearest_row_distance`)
is a pass of its own: it works on a float32 copy of the frame, not on these float64 blocks.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

import torch

from neuralcollapse import schema
from neuralcollapse.checks import check_int

# 1024 x 1024 float64 tiles (8 MB each, a few alive at a time): at K = 20,000 and d = 768 the
# passes over the means and the classifier took 16.0 s in all with 1024, 18.6 s with 512 and
# 18.0 s with 256 (2 CPU cores): fewer, larger tiles keep the matrix products efficient and
# the per-tile overhead of the elementwise work low
DEFAULT_TILE_SIZE = 1024

UNIFORMITY_KERNELS = ("distance", "log", "riesz")

#: the uniformity kernels' keys, in the schema's order: distance mean and variance, log
#: kernel mean and variance, Riesz energy
_DIST_MEAN, _DIST_VAR, _LOG_MEAN, _LOG_VAR, _RIESZ = schema.UNIFORMITY_KEYS


def check_tile_size(tile_size: int | None) -> int:
    """``tile_size`` (side of the square blocks of the K x K grid) or the default."""
    if tile_size is None:
        return DEFAULT_TILE_SIZE
    return check_int(
        "tile_size",
        tile_size,
        minimum=1,
        meaning="side of the square blocks the K x K pairwise work is cut into",
        alternative=f"or None for the default {DEFAULT_TILE_SIZE}",
    )


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


# ---------------------------------------------------------------------------- tile reducers
#
# Every pairwise summary of a frame is a reducer: it is started once with the frame's
# context (norms, the Frobenius norm of its Gram, ...), fed every tile of the half grid in
# one pass, and finished. :func:`reduce_frame` forms each tile's Gram block once and hands
# it to every reducer in turn, so asking for more quantities never adds a pass over the
# tiles. Derived blocks (the cosines and what the uniformity kernels make of them, the
# normalised Gram) are built once per tile on first request and shared; some are turned
# into the next in place, to keep the elementwise work and the memory of a tile low.


@dataclass
class FrameContext:
    """What every reducer may read about the frame: fixed for the whole pass."""

    frame: torch.Tensor  # (K, d) float64, rows x_k
    norms: torch.Tensor  # (K,) ||x_k||
    squared_norms: torch.Tensor  # (K,) ||x_k||^2 (norms * norms)
    inverse_norms: torch.Tensor  # (K,) 1/||x_k||, 0 for a zero row
    tile_size: int
    _plain_gram_norm: float | None = None

    @property
    def num_rows(self) -> int:
        return self.frame.shape[0]

    @property
    def dim(self) -> int:
        return self.frame.shape[1]

    @property
    def pair_count(self) -> int:
        """Ordered pairs k != k'."""
        return self.num_rows * (self.num_rows - 1)

    @property
    def etf_cosine(self) -> float:
        """The cosine every pair has at the simplex ETF, -1/(K-1)."""
        return -1.0 / (self.num_rows - 1)

    @property
    def etf_distance(self) -> float:
        """The distance of every pair of unit rows at the simplex ETF, sqrt(2K/(K-1))."""
        return math.sqrt(2.0 * self.num_rows / (self.num_rows - 1))

    def plain_gram_norm(self) -> float:
        """``||X X^T||_F`` of the rows as they are, computed once for every reducer asking."""
        if self._plain_gram_norm is None:
            self._plain_gram_norm = gram_frobenius_norm(self.frame, tile_size=self.tile_size)
        return self._plain_gram_norm


# stages of a tile's cosine chain: each is made from the previous one in place
_NO_CHAIN, _COSINES, _DISTANCES, _LOGS, _CHAIN_TAKEN = range(5)
_STAGE_NAMES = ("", "cosines", "unit distances", "log unit distances", "(taken)")


class Tile:
    """One block ``G[rows, cols]`` of the Gram of the frame, with blocks derived from it.

    ``weight`` is the number of ordered pairs each entry stands for (1 on the diagonal
    blocks, 2 off it; see the module docstring) and ``diagonal`` the index of the block's
    diagonal entries (None off the diagonal).

    Derived blocks, each made on first request:

    - :meth:`cosines` (the diagonal set to the neutral ``-1/(K-1)``), then
      :meth:`unit_distances` ``D = sqrt(2 - 2 cos)`` and :meth:`log_unit_distances`
      ``log D``, each made from the previous *in place*: asking for an earlier stage after
      a later one is an error (reducers run in ``order``, so it cannot happen);
      :meth:`take_log_unit_distances` hands the last stage over to be overwritten;
    - :meth:`normalised_gram` ``G / norm`` with a zero diagonal (read only);
    - :meth:`take_gram`: the Gram block itself, to be overwritten (its last reader).
    """

    def __init__(self, context: FrameContext, rows: slice, cols: slice, on_diagonal: bool):
        self.context = context
        self.rows, self.cols, self.on_diagonal = rows, cols, on_diagonal
        self.weight = 1.0 if on_diagonal else 2.0
        self.diagonal = _diagonal(rows) if on_diagonal else None
        self._gram = context.frame[rows] @ context.frame[cols].T
        self._gram_taken = False
        self._chain: torch.Tensor | None = None
        self._stage = _NO_CHAIN
        self._normalised: dict[float, torch.Tensor] = {}

    @property
    def gram(self) -> torch.Tensor:
        """The Gram block (read only: other reducers read it after you)."""
        if self._gram_taken:
            raise RuntimeError("the tile's Gram block was taken by a reducer that ran earlier")
        return self._gram

    def take_gram(self) -> torch.Tensor:
        """The Gram block, the caller's to overwrite: no reducer after it may read it."""
        gram = self.gram
        # still referenced: the tile keeps its blocks alive until the next one exists
        # (see reduce_frame), only the right to read them is gone
        self._gram_taken = True
        return gram

    def cosines(self) -> torch.Tensor:
        """``cos(x_k, x_j)`` (0 with a zero row), the diagonal ``-1/(K-1)`` (read only)."""
        return self._advance(_COSINES)

    def unit_distances(self) -> torch.Tensor:
        """``D = ||u_k - u_j|| = sqrt(2 - 2 cos)`` of the unit rows (read only)."""
        return self._advance(_DISTANCES)

    def log_unit_distances(self) -> torch.Tensor:
        """``log D`` (read only)."""
        return self._advance(_LOGS)

    def take_log_unit_distances(self) -> torch.Tensor:
        """``log D``, the caller's to overwrite: the end of the cosine chain."""
        logs = self._advance(_LOGS)
        self._chain, self._stage = None, _CHAIN_TAKEN
        return logs

    def normalised_gram(self, norm: float) -> torch.Tensor:
        """``G / norm`` with the diagonal set to 0 (read only; shared by equal norms)."""
        normalised = self._normalised.get(norm)
        if normalised is None:
            normalised = self.gram / norm
            if self.on_diagonal:
                normalised[self.diagonal] = 0.0  # the diagonal is added exactly at the end
            self._normalised[norm] = normalised
        return normalised

    def release(self, resource: str) -> None:
        """Free a derived block once its last reader is done (``"chain"``, ``"normalised"``)."""
        if resource == "chain" and self._stage != _CHAIN_TAKEN:
            self._chain = None
        elif resource == "normalised":
            self._normalised.clear()

    def _advance(self, stage: int) -> torch.Tensor:
        if self._stage > stage:
            raise RuntimeError(
                f"the tile's {_STAGE_NAMES[stage]} were already turned into "
                f"{_STAGE_NAMES[self._stage]} in place; a reducer reading them must run earlier"
            )
        context = self.context
        if self._stage < _COSINES:
            cosines = self.gram * context.inverse_norms[self.rows, None]
            cosines.mul_(context.inverse_norms[None, self.cols])
            if self.on_diagonal:
                cosines[self.diagonal] = context.etf_cosine  # neutral: shift 0, distance D_etf
            self._chain = cosines
        if stage >= _DISTANCES > self._stage:
            # rounding can push 2 - 2 cos below 0
            self._chain.mul_(-2.0).add_(2.0).clamp_(min=0.0).sqrt_()
        if stage >= _LOGS > self._stage:
            self._chain.log_()
        self._stage = stage
        return self._chain


class TileReducer:
    """One pairwise quantity of a frame, reduced tile by tile (see :func:`reduce_frame`).

    ``order`` fixes when a reducer sees each tile: readers of a derived block that another
    turns into something else in place must run first (the cosine chain, the Gram block);
    ``uses`` names the tile's derived blocks it reads (``"chain"``, ``"normalised"``,
    ``"gram"``), so each is freed after its last reader.
    """

    order: int = 50
    uses: frozenset[str] = frozenset()

    def start(self, context: FrameContext) -> None:
        """Called once before the tiles, with the frame's context."""

    def add(self, tile: Tile) -> None:
        """Reduce one tile."""
        raise NotImplementedError

    def finish(self, context: FrameContext) -> None:
        """Called once after the last tile: compute the results."""


class CosineMoments(TileReducer):
    """NC2's angle summaries over the ordered pairs k != k' (Papyan et al. 2020, Figs. 3-4).

    After the pass: ``equiangular`` = std of ``cos(x_k, x_k')`` (ddof = 1) and ``maxangle`` =
    mean of ``|cos(x_k, x_k') + 1/(K-1)|``. The cosines are summed shifted by their ETF value
    ``-1/(K-1)``, so near collapse the sums do not cancel.
    """

    order = 10
    uses = frozenset({"chain"})

    def __init__(self) -> None:
        self.equiangular = self.maxangle = math.nan

    def start(self, context: FrameContext) -> None:
        self._moments = _PairMoments(0.0, context.frame)  # cosines shifted by -1/(K-1)
        self._absolute_sum = context.frame.new_zeros(())
        self._etf_cosine = context.etf_cosine

    def add(self, tile: Tile) -> None:
        shifted = tile.cosines() - self._etf_cosine
        self._moments.add(shifted, tile.weight)
        self._absolute_sum += tile.weight * torch.linalg.vector_norm(shifted.view(-1), ord=1)

    def finish(self, context: FrameContext) -> None:
        pair_count = context.pair_count
        mean_shift = float(self._moments.total) / pair_count
        squares = float(self._moments.squares)
        variance = (squares - pair_count * mean_shift**2) / max(pair_count - 1, 1)
        self.equiangular = math.sqrt(max(variance, 0.0)) if pair_count > 1 else 0.0
        self.maxangle = float(self._absolute_sum) / pair_count


class UniformityKernels(TileReducer):
    """Hyperspherical uniformity of the unit rows ``u_k = x_k / ||x_k||`` (generalised NC2).

    Liu et al., "Generalizing and decoupling neural collapse via hyperspherical uniformity
    gap", ICLR 2023. Over the pairs k < k', with ``D = ||u_k - u_k'|| = sqrt(2 - 2 cos)``:
    ``"distance"``: mean and ddof-0 variance of ``D`` (``gnc2_dist_*``); ``"log"``: of
    ``log(1/D)`` (``gnc2_log_*``); ``"riesz"``: ``log mean D^-s`` (``gnc2_riesz_log_mean``),
    accumulated as a log-sum-exp so that ``s`` in the hundreds cannot overflow;
    ``riesz_exponent`` s defaults to ``d - 2``. Sums are shifted by the ETF distance
    ``sqrt(2K/(K-1))``. Coincident directions make the log and Riesz keys ``inf``.

    After the pass: ``values``, the five ``gnc2_*`` keys (None for a kernel not asked for).
    """

    order = 20
    uses = frozenset({"chain"})
    KEYS = (_DIST_MEAN, _DIST_VAR, _LOG_MEAN, _LOG_VAR)

    def __init__(
        self, kernels: Sequence[str] = UNIFORMITY_KERNELS, riesz_exponent: float | None = None
    ) -> None:
        self.kernels = check_uniformity_kernels(kernels)
        self.riesz_exponent = riesz_exponent
        self.values: dict[str, float | None] = dict.fromkeys([*self.KEYS, _RIESZ])
        if not self.kernels:
            self.uses = frozenset()

    def start(self, context: FrameContext) -> None:
        dim = context.dim
        self._riesz = "riesz" in self.kernels
        self._exponent = float(dim - 2 if self.riesz_exponent is None else self.riesz_exponent)
        self._etf_distance = context.etf_distance
        self._log_etf_distance = math.log(context.etf_distance)
        self._distance = _PairMoments(context.etf_distance, context.frame)
        # of log D - log D_etf
        self._log_distance = _PairMoments(-self._log_etf_distance, context.frame)
        self._riesz_log_sum = torch.tensor(
            -math.inf, dtype=context.frame.dtype, device=context.frame.device
        )

    def add(self, tile: Tile) -> None:
        if not self.kernels:
            return
        distances = tile.unit_distances()
        if "distance" in self.kernels:
            self._distance.add(distances - self._etf_distance, tile.weight)
        if "log" not in self.kernels and not self._riesz:
            return
        logs = tile.log_unit_distances()
        if "log" in self.kernels:
            self._log_distance.add(logs - self._log_etf_distance, tile.weight)
        if self._riesz and self._exponent != 0.0:
            energies = tile.take_log_unit_distances().mul_(-self._exponent)
            if tile.on_diagonal:
                energies[tile.diagonal] = -math.inf  # no self-pairs in the energy
            tile_sum = torch.logsumexp(energies.view(-1), dim=0) + math.log(tile.weight)
            self._riesz_log_sum = torch.logaddexp(self._riesz_log_sum, tile_sum)

    def finish(self, context: FrameContext) -> None:
        pair_count = context.pair_count
        values = self.values
        if "distance" in self.kernels:
            values[_DIST_MEAN], values[_DIST_VAR] = self._distance.mean_and_variance(pair_count)
        if "log" in self.kernels:
            # the kernel is log(1/D) = -log D: the mean flips sign, the variance does not
            values[_LOG_MEAN], values[_LOG_VAR] = self._log_distance.mean_and_variance(
                pair_count, sign=-1.0
            )
        if self._riesz:
            # log mean_{k != k'} D^-s; with s = 0 every kernel value is 1
            values[_RIESZ] = (
                0.0 if self._exponent == 0.0 else float(self._riesz_log_sum) - math.log(pair_count)
            )


def _zero_frame() -> ValueError:
    return ValueError("the frame is all zeros: its Gram direction is undefined")


class EtfGap(TileReducer):
    """``|| G/||G||_F - (I-J)/sqrt(K-1) ||_F``: the normalised Gram distance to the simplex ETF.

    After the pass: ``value``. The diagonal of the normalised Gram is added exactly at the end.
    """

    order = 30
    uses = frozenset({"normalised"})

    def __init__(self) -> None:
        self.value: float | None = None

    def start(self, context: FrameContext) -> None:
        self._norm = context.plain_gram_norm()
        if self._norm == 0.0:
            raise _zero_frame()
        num_rows = context.num_rows
        self._scale = 1.0 / math.sqrt(num_rows - 1)
        self._off_diagonal = self._scale / num_rows  # the target is -scale/K off the diagonal
        self._squares = context.frame.new_zeros(())

    def add(self, tile: Tile) -> None:
        off_target = tile.normalised_gram(self._norm) + self._off_diagonal
        if tile.on_diagonal:
            off_target[tile.diagonal] = 0.0
        flat = off_target.view(-1)
        self._squares += tile.weight * torch.dot(flat, flat)

    def finish(self, context: FrameContext) -> None:
        diagonal_gap = context.squared_norms / self._norm - self._scale * (
            1.0 - 1.0 / context.num_rows
        )
        squares = self._squares + torch.dot(diagonal_gap, diagonal_gap)
        self.value = math.sqrt(max(float(squares), 0.0))


class OfGap(TileReducer):
    """``|| G/||G||_F - I/sqrt(K) ||_F``: the normalised Gram distance to the orthogonal frame.

    With ``offset`` (d,), of the rows ``x_k + offset`` (the uncentred class means from the
    centred ones: ``G_kj + x_k.g + x_j.g + ||g||^2``, no K x d copy); ``offset_norms`` then
    holds ``||x_k + offset||``. After the pass: ``value``.
    """

    order = 31

    def __init__(self, offset: torch.Tensor | None = None) -> None:
        self.offset = offset
        self.uses = frozenset({"normalised"}) if offset is None else frozenset()
        self.value: float | None = None
        self.offset_norms: torch.Tensor | None = None

    def start(self, context: FrameContext) -> None:
        frame, offset = context.frame, self.offset
        if offset is None:
            self._norm = context.plain_gram_norm()
        else:
            self._norm = gram_frobenius_norm(frame, offset, context.tile_size)
        if self._norm == 0.0:
            raise _zero_frame()
        if offset is not None:
            self._cross = frame @ offset
            self.offset_norms = offset_row_norms(frame, offset, context.tile_size)
            self._offset_square = float(offset @ offset)
        self._squares = frame.new_zeros(())

    def add(self, tile: Tile) -> None:
        if self.offset is None:
            flat = tile.normalised_gram(self._norm).view(-1)
        else:
            rows, cols = tile.rows, tile.cols
            shifted_gram = tile.gram + self._cross[rows, None]
            shifted_gram.add_(self._cross[None, cols]).add_(self._offset_square).div_(self._norm)
            if tile.on_diagonal:
                shifted_gram[tile.diagonal] = 0.0
            flat = shifted_gram.view(-1)
        self._squares += tile.weight * torch.dot(flat, flat)

    def finish(self, context: FrameContext) -> None:
        shifted_norms = context.squared_norms if self.offset is None else self.offset_norms**2
        diagonal_gap = shifted_norms / self._norm - 1.0 / math.sqrt(context.num_rows)
        squares = self._squares + torch.dot(diagonal_gap, diagonal_gap)
        self.value = math.sqrt(max(float(squares), 0.0))


class ClassDistanceVariance(TileReducer):
    """CDNV: ``mean_{k != k'} (v_k + v_k') / (2 ||x_k - x_k'||^2)`` for per-row variances ``v_k``.

    Galanti, György & Hutter, ICLR 2022. Since ``sum_{k != k'} (v_k + v_k')/(2 D_kk') =
    sum_k v_k sum_{k'} 1/D_kk'``, the total and the per-row means come from the same row
    sums. Pass centred means: differences are unchanged, conditioning better. After the
    pass: ``value`` and ``per_row`` (K,), ``inf`` where two rows coincide. It overwrites the
    tile's Gram block, so it runs last.
    """

    order = 90
    uses = frozenset({"gram"})

    def __init__(self, variances: torch.Tensor) -> None:
        self.variances = variances
        self.value: float | None = None
        self.per_row: torch.Tensor | None = None

    def start(self, context: FrameContext) -> None:
        self._rows = torch.zeros_like(context.norms)
        self._degenerate = torch.zeros_like(context.norms, dtype=torch.bool)
        self._squared_norms = context.squared_norms

    def add(self, tile: Tile) -> None:
        rows, cols, variances = tile.rows, tile.cols, self.variances
        distances_sq = tile.take_gram().mul_(-2.0).add_(self._squared_norms[rows, None])
        distances_sq.add_(self._squared_norms[None, cols])
        if tile.on_diagonal:
            distances_sq[tile.diagonal] = math.inf  # its ratio below is then 0
        if float(distances_sq.min()) <= 0.0:
            degenerate = distances_sq <= 0.0
            self._degenerate[rows] |= degenerate.any(dim=1)
            self._degenerate[cols] |= degenerate.any(dim=0)
        ratios = variances[rows, None] + variances[None, cols]
        ratios.div_(distances_sq.clamp_(min=1e-300).mul_(2.0))
        self._rows[rows] += ratios.sum(dim=1)
        if not tile.on_diagonal:
            self._rows[cols] += ratios.sum(dim=0)

    def finish(self, context: FrameContext) -> None:
        self.per_row = self._rows / (context.num_rows - 1)
        self.per_row[self._degenerate] = math.inf
        degenerate = bool(self._degenerate.any())
        self.value = math.inf if degenerate else float(self._rows.sum()) / context.pair_count


@dataclass(frozen=True)
class FrameNorms:
    """The row norms of a frame and NC2's equinorm (what :func:`reduce_frame` returns)."""

    norms: torch.Tensor  # (K,) row norms
    equinorm: float  # std_k ||x_k|| / mean_k ||x_k|| (ddof = 1)


def reduce_frame(
    frame: torch.Tensor, reducers: Sequence[TileReducer], *, tile_size: int | None = None
) -> FrameNorms:
    """Feed every tile of the half Gram of ``frame`` (K, d) float64 to each reducer: one pass.

    Each reducer is started with the frame's :class:`FrameContext`, sees every tile (in
    ``order``) and is finished; its results are then its attributes, e.g.::

        angles, gap = CosineMoments(), EtfGap()
        norms = reduce_frame(means, [angles, gap])
        angles.equiangular, gap.value, norms.equinorm

    Memory is O(K d + tile_size^2) whatever K (``tile_size``: side of the square blocks,
    default :data:`DEFAULT_TILE_SIZE`). Cosines with a zero row are taken as 0.
    """
    tile_size = check_tile_size(tile_size)
    norms = torch.linalg.vector_norm(frame, dim=1)
    equinorm = float(norms.std() / norms.mean()) if float(norms.mean()) > 0 else 0.0
    context = FrameContext(
        frame=frame,
        norms=norms,
        squared_norms=norms * norms,
        inverse_norms=torch.where(norms > 0, 1.0 / norms, torch.zeros_like(norms)),
        tile_size=tile_size,
    )
    ordered = sorted(reducers, key=lambda reducer: reducer.order)
    for reducer in ordered:
        reducer.start(context)
    # free each derived block of a tile right after its last reader (a few tile-sized
    # blocks alive at a time, as in one hand-written loop)
    last_reader = {resource: i for i, reducer in enumerate(ordered) for resource in reducer.uses}
    releases = [
        [resource for resource, last in last_reader.items() if last == i]
        for i in range(len(ordered))
    ]
    if ordered:
        for rows, cols, on_diagonal in symmetric_tiles(frame.shape[0], tile_size):
            tile = Tile(context, rows, cols, on_diagonal)
            for reducer, done in zip(ordered, releases, strict=True):
                reducer.add(tile)
                for resource in done:
                    tile.release(resource)
            # no ``del tile`` here (nor in Tile.take_gram): freeing the last tile's Gram
            # before the next one is allocated let the allocator hand the pages back, and the
            # page faults made the pass ~1.5x slower at K = 10,000
    for reducer in ordered:
        reducer.finish(context)
    return FrameNorms(norms=norms, equinorm=equinorm)
