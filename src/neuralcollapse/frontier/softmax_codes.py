"""Generalized neural collapse for many classes (K > d + 1): one-vs-rest margins, softmax codes.

Jiang, Zhou, Balzano, Wang, Zhu & Qu, "Generalized neural collapse for a large number of
classes", 2023. With K > d + 1 classes a simplex ETF cannot exist in R^d. With normalised
classifier rows ``v_k = w_k/||w_k||`` and normalised features, the one-vs-rest margin of a
(unit) feature ``u`` of class k is

    m_k(u) = min_{j != k} <u, v_k - v_j>.

Maximised over unit u it is ``dist(v_k, conv{v_j : j != k})`` (minimax theorem: the largest
margin of a unit vector separating v_k from the others is the distance from v_k to their
convex hull), Jiang et al.'s one-vs-rest distance. Under self-duality (``u = v_k``, their
GNC3) the margin is

    m_k = 1 - max_{j != k} cos(v_k, v_j) = min_{j != k} ||v_k - v_j||^2 / 2,

and maximising ``min_k m_k`` over K unit vectors is the **Tammes problem** (spread K points on
the sphere S^{d-1} to maximise their smallest angle), the zero-temperature limit of the
softmax code. Known optima (so the distance from the optimum is exact there):

- K <= d + 1: the simplex, ``cos = -1/(K-1)``, ``m* = K/(K-1)``;
- d + 2 <= K <= 2d: 90 degrees (Rankin), ``m* = 1`` (the cross-polytope at K = 2d);
- d = 2: the regular K-gon, ``m* = 1 - cos(2 pi / K)``;
- d = 3: tabulated Tammes angles (Schütte & van der Waerden 1951, Danzer 1963/86,
  Musin & Tarasov 2012/15), :data:`TAMMES_ANGLES_D3`.

For every K, ``m <= K/(K-1)`` (the mean pairwise cosine of K unit vectors is at least
-1/(K-1)), :func:`simplex_bound`.

Everything pairwise is done in tiles (:mod:`neuralcollapse.metrics.pairwise`): memory is
O(K d + tile^2), never K x K, so the margins run at K = 50,257.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field

import torch

from neuralcollapse.checks import check_float, check_int
from neuralcollapse.metrics.pairwise import (
    Tile,
    TileReducer,
    UniformityKernels,
    check_tile_size,
    reduce_frame,
    row_blocks,
)
from neuralcollapse.metrics.validation import as_tensor, check_finite
from neuralcollapse.ufm.lbfgs import batched_lbfgs

__all__ = [
    "TAMMES_ANGLES_D3",
    "best_known_angle",
    "FrameMargins",
    "SphericalCode",
    "feature_margins",
    "frame_margins",
    "known_optimal_margin",
    "simplex_bound",
    "solve_spherical_code",
]

#: Tammes problem in R^3: the largest possible smallest angle (degrees) between K points on
#: the sphere, for the K where it is proven (Sloane's tables of spherical codes).
TAMMES_ANGLES_D3: dict[int, float] = {
    2: 180.0,
    3: 120.0,
    4: math.degrees(math.acos(-1.0 / 3.0)),  # 109.4712: the tetrahedron
    5: 90.0,
    6: 90.0,  # the octahedron (cross-polytope)
    7: 77.8695421,
    8: 74.8584922,  # the square antiprism
    9: 70.5287794,
    10: 66.1468220,
    11: 63.4349488,
    12: 63.4349488,  # the icosahedron: arccos(1/sqrt(5))
    13: 57.1367031,
    14: 55.6705700,
    24: 43.6907671,  # the snub cube
}


def simplex_bound(num_classes: int) -> float:
    """``K/(K-1)``: an upper bound on the smallest self-dual margin of any K unit vectors.

    ``||sum_k v_k||^2 >= 0`` gives ``mean_{k != j} cos(v_k, v_j) >= -1/(K-1)``, so the largest
    cosine is at least that and ``min_k m_k <= 1 + 1/(K-1)``; equality only at the simplex.
    """
    k = check_int("num_classes (K)", num_classes, minimum=2)
    return k / (k - 1)


def known_optimal_margin(num_classes: int, dim: int) -> float | None:
    """The optimal smallest self-dual margin ``1 - cos(theta*)`` of K unit vectors in R^d.

    Known: K <= d + 1 (simplex, K/(K-1)), d + 2 <= K <= 2d (1: 90 degrees), d = 2 (the K-gon,
    ``1 - cos(2 pi/K)``), d = 3 with K in :data:`TAMMES_ANGLES_D3`; None otherwise (pass the
    value of :func:`solve_spherical_code` as a reference then).
    """
    k = check_int("num_classes (K)", num_classes, minimum=2)
    d = check_int("dim (d)", dim, minimum=1)
    if d == 1:
        return 2.0 if k == 2 else 0.0  # two antipodal points, else a repeat on {-1, 1}
    if k <= d + 1:
        return k / (k - 1)
    if k <= 2 * d:
        return 1.0
    if d == 2:
        return 1.0 - math.cos(2.0 * math.pi / k)
    if d == 3 and k in TAMMES_ANGLES_D3:
        return 1.0 - math.cos(math.radians(TAMMES_ANGLES_D3[k]))
    return None


def _margin_to_degrees(margin: float) -> float:
    return math.degrees(math.acos(max(-1.0, min(1.0, 1.0 - margin))))


def _check_frame(frame: object, name: str) -> torch.Tensor:
    tensor = as_tensor(frame, name)
    if tensor.ndim != 2 or tensor.shape[0] < 2 or tensor.shape[1] < 1:
        raise ValueError(
            f"{name} must be a (K, d) matrix with K >= 2 rows (one per class); got shape "
            f"{tuple(tensor.shape)}"
        )
    if not tensor.is_floating_point():
        tensor = tensor.to(torch.float64)
    tensor = tensor.detach().to(torch.float64)
    check_finite(tensor, name)
    norms = torch.linalg.vector_norm(tensor, dim=1)
    if bool((norms == 0).any()):
        index = int(torch.nonzero(norms == 0)[0, 0])
        raise ValueError(
            f"{name} has a zero row (row {index}): its direction, hence its margin, is "
            "undefined; drop the class or pass rows with a direction"
        )
    return tensor


class NearestCosine(TileReducer):
    """Per row, the largest cosine to any *other* row, ``max_{j != k} cos(x_k, x_j)``.

    Reads the tile's cosines (the first stage of the cosine chain, so it runs before the
    uniformity kernels turn them into distances); diagonal blocks are copied to mask their
    diagonal (the shared block holds a neutral value there that could exceed a row's true
    maximum). After the pass: ``largest`` (K,) and ``nearest`` (K,) the index of that row.
    """

    order = 15
    uses = frozenset({"chain"})

    def __init__(self) -> None:
        self.largest: torch.Tensor | None = None
        self.nearest: torch.Tensor | None = None

    def start(self, context) -> None:
        self.largest = torch.full(
            (context.num_rows,), -math.inf, dtype=context.frame.dtype, device=context.frame.device
        )
        self.nearest = torch.zeros(context.num_rows, dtype=torch.int64, device=context.frame.device)

    def add(self, tile: Tile) -> None:
        cosines = tile.cosines()
        if tile.on_diagonal:
            cosines = cosines.clone()
            cosines[tile.diagonal] = -math.inf
        self._update(tile.rows, *cosines.max(dim=1), tile.cols.start)
        if not tile.on_diagonal:
            self._update(tile.cols, *cosines.max(dim=0), tile.rows.start)

    def _update(self, rows: slice, values: torch.Tensor, where: torch.Tensor, offset: int):
        better = values > self.largest[rows]
        self.largest[rows] = torch.where(better, values, self.largest[rows])
        self.nearest[rows] = torch.where(better, where + offset, self.nearest[rows])


@dataclass(frozen=True)
class FrameMargins:
    """One-vs-rest margins of K unit vectors (self-dual: each class's feature is its own row).

    Attributes
    ----------
    per_class : (K,) ``m_k = 1 - max_{j != k} cos(v_k, v_j)``; ``nearest`` (K,): that j.
    minimum, mean : ``min_k m_k`` (the Tammes / softmax-code objective) and ``mean_k m_k``.
    min_angle_degrees : the smallest angle between two rows, ``arccos(1 - minimum)``.
    optimum : the optimal ``min_k m_k`` for this (K, d) where known (or given), else None.
    gap : ``optimum - minimum`` (>= 0 up to rounding when the optimum is exact), else None.
    upper_bound : :func:`simplex_bound`, valid for every (K, d).
    uniformity : the hyperspherical-uniformity kernels of the same rows (``gnc2_*`` keys of
        :class:`neuralcollapse.metrics.pairwise.UniformityKernels`).
    """

    per_class: torch.Tensor
    nearest: torch.Tensor
    minimum: float
    mean: float
    min_angle_degrees: float
    optimum: float | None
    gap: float | None
    upper_bound: float
    uniformity: dict[str, float | None] = field(default_factory=dict)

    def to_dict(self) -> dict:
        """The scalars (JSON-friendly)."""
        return {
            "min_margin": self.minimum,
            "mean_margin": self.mean,
            "min_angle_degrees": self.min_angle_degrees,
            "optimal_margin": self.optimum,
            "margin_gap": self.gap,
            "margin_upper_bound": self.upper_bound,
            **self.uniformity,
        }


def frame_margins(
    frame: object,
    *,
    optimum: float | None = None,
    uniformity_kernels: Sequence[str] = ("distance", "log", "riesz"),
    tile_size: int | None = None,
) -> FrameMargins:
    """Self-dual one-vs-rest margins of the rows of a (K, d) frame (classifier rows or means).

    ``m_k = 1 - max_{j != k} cos(x_k, x_j)`` for every row, its minimum (the Tammes objective)
    and mean, the distance ``optimum - minimum`` from the best possible value (the known optimum
    of :func:`known_optimal_margin` unless ``optimum`` is given, e.g. the value of
    :func:`solve_spherical_code`) and the uniformity kernels, in one tiled pass (memory
    O(K d + tile_size^2)). Class means should be centred first (subtract the global mean), as
    Jiang et al. do.
    """
    x = _check_frame(frame, "frame")
    if optimum is not None:
        optimum = check_float(
            "optimum", optimum, minimum=0.0, maximum=2.0, meaning="a margin 1 - cos"
        )
    nearest = NearestCosine()
    kernels = UniformityKernels(uniformity_kernels)
    reduce_frame(x, [nearest, kernels], tile_size=check_tile_size(tile_size))
    per_class = 1.0 - nearest.largest
    minimum = float(per_class.min())
    if optimum is None:
        optimum = known_optimal_margin(x.shape[0], x.shape[1])
    return FrameMargins(
        per_class=per_class,
        nearest=nearest.nearest,
        minimum=minimum,
        mean=float(per_class.mean()),
        min_angle_degrees=_margin_to_degrees(minimum),
        optimum=optimum,
        gap=None if optimum is None else optimum - minimum,
        upper_bound=simplex_bound(x.shape[0]),
        uniformity={key: value for key, value in kernels.values.items() if value is not None},
    )


def feature_margins(
    means: object, weights: object, *, tile_size: int | None = None
) -> torch.Tensor:
    """Per class, the one-vs-rest margin of its normalised mean against the normalised rows.

    ``m_k = min_{j != k} <u_k, v_k - v_j>`` with ``u_k = h_k/||h_k||`` (class mean, or any
    per-class feature) and ``v_k = w_k/||w_k||`` (classifier row): positive iff the mean is
    classified correctly by the normalised classifier, and at most
    ``dist(v_k, conv{v_j}_{j != k})`` (Jiang et al.'s one-vs-rest distance, attained by the
    best unit feature). Computed over rectangular tiles of ``U V^T``: no K x K matrix.
    Returns (K,) float64.
    """
    u = _check_frame(means, "means")
    v = _check_frame(weights, "weights")
    if u.shape != v.shape:
        raise ValueError(
            f"means and weights must both be (K, d) with the same K and d; got "
            f"{tuple(u.shape)} and {tuple(v.shape)} (transposed? pass W with one row per class)"
        )
    size = check_tile_size(tile_size)
    u = u / torch.linalg.vector_norm(u, dim=1, keepdim=True)
    v = v / torch.linalg.vector_norm(v, dim=1, keepdim=True)
    own = (u * v).sum(dim=1)
    largest = torch.full((u.shape[0],), -math.inf, dtype=torch.float64)
    for rows in row_blocks(u.shape[0], size):
        block_max = torch.full((rows.stop - rows.start,), -math.inf, dtype=torch.float64)
        for cols in row_blocks(v.shape[0], size):
            scores = u[rows] @ v[cols].T
            if cols.start < rows.stop and rows.start < cols.stop:  # the block holds j == k
                k = torch.arange(max(rows.start, cols.start), min(rows.stop, cols.stop))
                scores[k - rows.start, k - cols.start] = -math.inf
            torch.maximum(block_max, scores.amax(dim=1), out=block_max)
        largest[rows] = block_max
    return own - largest


# ------------------------------------------------------------------------------ the solver


@dataclass(frozen=True)
class SphericalCode:
    """A solution of the Tammes / softmax-code problem from :func:`solve_spherical_code`.

    points : (K, d) unit rows of the best restart; ``min_margin`` its ``min_k m_k``;
    ``min_angle_degrees`` the smallest angle; ``restart_margins`` every restart's value
    (several equal values mean the optimum was found more than once); ``optimum`` the known
    optimal value (None where unknown) and ``gap = optimum - min_margin``.
    """

    points: torch.Tensor
    min_margin: float
    min_angle_degrees: float
    restart_margins: list[float]
    optimum: float | None
    gap: float | None


def _pairwise_cosines(x: torch.Tensor, k: int, d: int) -> torch.Tensor:
    points = x.view(x.shape[0], k, d)
    units = points / torch.linalg.vector_norm(points, dim=2, keepdim=True)
    return units @ units.transpose(1, 2)


def _smooth_objective(k: int, d: int, temperature: float, kind: str):
    eye = torch.eye(k, dtype=torch.bool)

    def objective(x: torch.Tensor, rows: torch.Tensor) -> torch.Tensor:
        scores = (_pairwise_cosines(x, k, d) - 1.0) / temperature
        scores = scores.masked_fill(eye, -math.inf)
        if kind == "tammes":
            # a smooth maximum of all pairwise cosines: temperature * log sum exp(cos / t)
            return temperature * torch.logsumexp(scores.flatten(1), dim=1) + 1.0
        # the softmax code: mean CE of class k's (self-dual) feature, times the temperature
        zero = torch.zeros(x.shape[0], k, 1, dtype=x.dtype)
        return temperature * torch.logsumexp(torch.cat([zero, scores], dim=2), dim=2).mean(dim=1)

    return objective


def solve_spherical_code(
    num_classes: int,
    dim: int,
    *,
    restarts: int = 8,
    seed: int = 0,
    objective: str = "tammes",
    temperatures: Sequence[float] = (1e-1, 3e-2, 1e-2, 3e-3, 1e-3, 3e-4, 1e-4, 3e-5, 1e-5),
    max_iter: int = 400,
) -> SphericalCode:
    """K unit vectors in R^d maximising their smallest one-vs-rest (self-dual) margin.

    A batch of ``restarts`` random Gaussian starts is minimised together by the project's
    batched L-BFGS (:func:`neuralcollapse.ufm.lbfgs.batched_lbfgs`) on the sphere (rows
    ``x_k/||x_k||``, so the iterate is unconstrained), through a decreasing sequence of
    temperatures t, each stage warm-started from the last:

    - ``objective="tammes"``: ``t log sum_{k != j} exp((cos_kj - 1)/t) + 1``, a smooth maximum
      of the pairwise cosines (-> ``max cos = 1 - min_k m_k`` as t -> 0);
    - ``objective="softmax"``: ``t mean_k log(1 + sum_{j != k} exp((cos_kj - 1)/t))``, the
      cross-entropy of a self-dual softmax code at temperature t (Jiang et al.).

    Both tend to the Tammes problem as t -> 0. The restart with the largest smallest margin
    is kept. The smallest margin is exact at the final point; how close it is to the optimum
    depends on the last temperature (1e-5: ~1e-4 degrees) and on the restarts finding the
    global basin (compare ``restart_margins``).
    """
    k = check_int("num_classes (K)", num_classes, minimum=2)
    d = check_int("dim (d)", dim, minimum=2, hint="in R^1 there are only two directions")
    restarts = check_int(
        "restarts", restarts, minimum=1, meaning="random starts, solved as a batch"
    )
    seed = check_int("seed", seed)
    max_iter = check_int("max_iter", max_iter, minimum=1, meaning="L-BFGS iterations per stage")
    if objective not in ("tammes", "softmax"):
        raise ValueError(f"objective must be 'tammes' or 'softmax'; got {objective!r}")
    if isinstance(temperatures, (int, float)):
        temperatures = (temperatures,)
    if len(temperatures) == 0:
        raise ValueError("temperatures must list at least one temperature t > 0")
    temperatures = [
        check_float(f"temperatures[{i}]", t, minimum=0.0, strict=True)
        for i, t in enumerate(temperatures)
    ]
    generator = torch.Generator().manual_seed(seed)
    x = torch.randn(restarts, k * d, generator=generator, dtype=torch.float64)
    previous = torch.get_num_threads()
    torch.set_num_threads(1)  # small problems: threads only add synchronisation
    try:
        for temperature in temperatures:
            points = x.view(restarts, k, d)
            x = (points / torch.linalg.vector_norm(points, dim=2, keepdim=True)).reshape(
                restarts, -1
            )
            result = batched_lbfgs(
                _smooth_objective(k, d, temperature, objective),
                x,
                max_iter=max_iter,
                tol_grad=1e-12,
            )
            x = result.x
    finally:
        torch.set_num_threads(previous)
    cosines = _pairwise_cosines(x, k, d).masked_fill(torch.eye(k, dtype=torch.bool), -math.inf)
    margins = 1.0 - cosines.flatten(1).amax(dim=1)
    best = int(margins.argmax())
    points = x.view(restarts, k, d)[best]
    points = points / torch.linalg.vector_norm(points, dim=1, keepdim=True)
    min_margin = float(margins[best])
    optimum = known_optimal_margin(k, d)
    return SphericalCode(
        points=points,
        min_margin=min_margin,
        min_angle_degrees=_margin_to_degrees(min_margin),
        restart_margins=[float(m) for m in margins],
        optimum=optimum,
        gap=None if optimum is None else optimum - min_margin,
    )


def best_known_angle(
    num_classes: int, dim: int, *, restarts: int = 8, seed: int = 0
) -> tuple[float, bool]:
    """``(angle in degrees, exact)``: the largest smallest angle of K unit vectors in R^d, exact
    where the optimum is known (:func:`known_optimal_margin`), else the best of ``restarts``
    runs of :func:`solve_spherical_code` (then a lower bound on the optimum)."""
    optimum = known_optimal_margin(num_classes, dim)
    if optimum is not None:
        return _margin_to_degrees(optimum), True
    code = solve_spherical_code(num_classes, dim, restarts=restarts, seed=seed)
    return code.min_angle_degrees, False
