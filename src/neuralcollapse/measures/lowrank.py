"""Low-rank and alignment diagnostics of the class means through depth.

Deep neural collapse (Súkeník, Mondelli & Lampert, "Deep neural collapse is provably optimal
for the deep unconstrained features model", NeurIPS 2023) predicts that at every layer the
class means form an orthogonal frame (no bias) or a simplex ETF: rank K (uncentred) or K - 1
(centred), all non-zero singular values equal, and that each weight matrix W_l is aligned
with the class means of its input (its row space is their span). Their follow-up ("Neural
collapse versus low-rank bias: is deep neural collapse really optimal?", NeurIPS 2024) shows
that with many layers or classes the optimum has *lower* rank instead. These diagnostics read
both on one scale, per layer, from the K x d class means only (K x d work):

- singular values ``s_1 >= s_2 >= ...`` of the class-mean matrix M (K x d; rows
  ``m_k = mu_k - mu_G`` centred on the mean of the class means, or the uncentred ``mu_k``);
- numerical rank ``#{i : s_i > rtol * s_1}``, default ``rtol = max(K, d) * eps`` (the
  cut-off of ``numpy.linalg.matrix_rank``); pass a larger rtol (e.g. 1e-3) to count only
  directions that carry a visible share of the spread of trained features;
- stable rank ``||M||_F^2 / ||M||_2^2 = sum_i s_i^2 / s_1^2`` (between 1 and the rank; equal
  to the rank exactly when every non-zero singular value is equal, as for an OF or ETF);
- for a linear layer ``z -> W z`` acting on these features: the principal angles between the
  span of W's top-q right-singular vectors and the span of the class means of its input
  (``scipy.linalg.subspace_angles``), reported as their cosines and their mean (1 = aligned,
  0 = orthogonal). q defaults to the numerical rank of the means. When W has tied singular
  values at position q (an OF weight has K equal ones), its top-q subspace is not unique: use
  the uncentred means with q = K there.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np
import scipy.linalg
import torch

from neuralcollapse.checks import check_int
from neuralcollapse.measures._checks import as_matrix, check_rtol
from neuralcollapse.metrics import ClassStats
from neuralcollapse.metrics.validation import ArrayLike

SUBSPACES = ("centred", "uncentred")


@dataclass(frozen=True)
class Spectrum:
    """Singular values of a class-mean matrix, its numerical rank and stable rank.

    ``threshold = rtol * s_1`` is the absolute cut-off the rank was counted with.
    """

    singular_values: tuple[float, ...]
    numerical_rank: int
    stable_rank: float
    rtol: float
    threshold: float

    def to_dict(self) -> dict:
        return {
            "singular_values": list(self.singular_values),
            "numerical_rank": self.numerical_rank,
            "stable_rank": self.stable_rank,
            "rtol": self.rtol,
            "threshold": self.threshold,
        }


@dataclass(frozen=True)
class LayerRank:
    """The rank diagnostics of one layer (see the module docstring).

    ``alignment`` (mean cosine of the principal angles) and ``principal_cosines`` are None
    when no weight matrix was given; ``subspace`` says which means they were measured against
    and ``num_directions`` how many of W's right-singular vectors were used.
    """

    name: str
    centred: Spectrum
    uncentred: Spectrum
    alignment: float | None = None
    principal_cosines: tuple[float, ...] | None = None
    subspace: str | None = None
    num_directions: int | None = None

    def to_dict(self) -> dict:
        return {
            "name": self.name,
            "centred": self.centred.to_dict(),
            "uncentred": self.uncentred.to_dict(),
            "alignment": self.alignment,
            "principal_cosines": None
            if self.principal_cosines is None
            else list(self.principal_cosines),
            "subspace": self.subspace,
            "num_directions": self.num_directions,
        }


def _default_rtol(matrix: torch.Tensor) -> float:
    return max(matrix.shape) * float(torch.finfo(torch.float64).eps)


def spectrum(matrix: ArrayLike, *, rtol: float | None = None) -> Spectrum:
    """Singular values, numerical rank and stable rank of a (K, d) matrix (any orientation).

    Raises ValueError for an all-zero matrix (no spread: rank and stable rank undefined).
    """
    tensor = as_matrix(matrix, "matrix", shape_hint="(K, d)")
    tolerance = check_rtol(rtol, _default_rtol(tensor))
    singular = torch.linalg.svdvals(tensor)
    largest = float(singular[0])
    if largest == 0.0:
        raise ValueError(
            "the class means are all equal (the matrix is zero): rank and stable rank are "
            "undefined — check that the layer's features depend on the class"
        )
    threshold = tolerance * largest
    squares = singular.square()
    return Spectrum(
        singular_values=tuple(float(s) for s in singular),
        numerical_rank=int((singular > threshold).sum()),
        stable_rank=float(squares.sum() / squares[0]),
        rtol=tolerance,
        threshold=threshold,
    )


def _class_means(source: ClassStats | ArrayLike) -> torch.Tensor:
    if isinstance(source, ClassStats):
        return source.means().cpu()
    return as_matrix(source, "class means", shape_hint="(K, d), one row per class").cpu()


def _top_basis(matrix: torch.Tensor, count: int) -> np.ndarray:
    """(d, count) orthonormal: the top ``count`` right-singular vectors of ``matrix``."""
    _, _, right = torch.linalg.svd(matrix, full_matrices=False)
    return right[:count].T.numpy()


def subspace_alignment(
    weights: ArrayLike,
    means: ArrayLike,
    *,
    num_directions: int | None = None,
    rtol: float | None = None,
) -> tuple[float, tuple[float, ...]]:
    """Mean cosine of the principal angles between W's top right-singular space and the means'.

    ``weights`` (out, d) acts on d-dimensional features; ``means`` (K, d) are the class means
    (centred or not: the caller picks) of those features. The means' subspace is spanned by
    their top right-singular vectors up to their numerical rank r; W's by its top
    ``num_directions`` (default r). Returns (mean cosine, cosines in decreasing order).
    """
    weight = as_matrix(weights, "weights", shape_hint="(out, d)").cpu()
    mean_matrix = as_matrix(means, "means", shape_hint="(K, d)").cpu()
    if weight.shape[1] != mean_matrix.shape[1]:
        hint = " (transposed? pass W.T)" if weight.shape[0] == mean_matrix.shape[1] else ""
        raise ValueError(
            f"weights act on dimension {weight.shape[1]} but the means have dimension "
            f"{mean_matrix.shape[1]}{hint}; pass the weight of the layer that takes these "
            "features as input, shape (out, d)"
        )
    rank = spectrum(mean_matrix, rtol=rtol).numerical_rank
    largest = min(weight.shape)
    count = rank if num_directions is None else num_directions
    count = check_int(
        "num_directions",
        count,
        minimum=1,
        maximum=largest,
        alternative="or None for the means' numerical rank",
        hint=f"W (shape {tuple(weight.shape)}) has at most {largest} right-singular vectors",
    )
    if float(torch.linalg.matrix_norm(weight, ord=2)) == 0.0:
        raise ValueError("weights are all zero: their singular vectors are undefined")
    angles = scipy.linalg.subspace_angles(_top_basis(weight, count), _top_basis(mean_matrix, rank))
    cosines = np.sort(np.cos(angles))[::-1]
    return float(cosines.mean()), tuple(float(c) for c in cosines)


def layer_rank(
    class_means: ClassStats | ArrayLike,
    weights: ArrayLike | None = None,
    *,
    rtol: float | None = None,
    subspace: str = "centred",
    num_directions: int | None = None,
    name: str = "",
) -> LayerRank:
    """Rank and alignment diagnostics of one layer from its class means.

    Parameters
    ----------
    class_means : the layer's :class:`~neuralcollapse.metrics.ClassStats` or its (K, d)
        class means.
    weights : (out, d) weight of the linear layer that takes these features as input
        (optional): gives the alignment.
    rtol : relative tolerance of the numerical rank (default ``max(K, d) * eps``).
    subspace : which means W is compared with: "centred" (``mu_k - mu_G``, a net with biases)
        or "uncentred" (``mu_k``, no bias: W's rows then align with the uncentred means).
    num_directions : how many of W's top right-singular vectors to use (default: the
        numerical rank of the chosen means).
    """
    if subspace not in SUBSPACES:
        raise ValueError(f"unknown subspace {subspace!r}; choose one of {SUBSPACES}")
    means = _class_means(class_means)
    centred = means - means.mean(dim=0)
    result = LayerRank(
        name=name,
        centred=spectrum(centred, rtol=rtol),
        uncentred=spectrum(means, rtol=rtol),
    )
    if weights is None:
        return result
    chosen = centred if subspace == "centred" else means
    alignment, cosines = subspace_alignment(
        weights, chosen, num_directions=num_directions, rtol=rtol
    )
    return LayerRank(
        name=result.name,
        centred=result.centred,
        uncentred=result.uncentred,
        alignment=alignment,
        principal_cosines=cosines,
        subspace=subspace,
        num_directions=len(cosines) if num_directions is None else num_directions,
    )


def depth_rank_profile(
    layers: Mapping[str, ClassStats | ArrayLike],
    weights: Mapping[str, ArrayLike] | None = None,
    *,
    rtol: float | None = None,
    subspace: str = "centred",
) -> dict[str, LayerRank]:
    """:func:`layer_rank` of every layer, in the given (depth) order.

    ``weights[name]`` is the weight matrix of the linear layer that *consumes* layer
    ``name``'s features (e.g. for an MLP the next ``nn.Linear``); layers without one get no
    alignment.
    """
    weights = weights or {}
    unknown = set(weights) - set(layers)
    if unknown:
        raise ValueError(
            f"weights given for unknown layers {sorted(unknown)}; their names must be keys "
            f"of layers ({', '.join(layers)})"
        )
    return {
        name: layer_rank(source, weights.get(name), rtol=rtol, subspace=subspace, name=name)
        for name, source in layers.items()
    }


def ufm_rank_profile(solution, *, rtol: float | None = None) -> list[LayerRank]:
    """The same diagnostics on a deep UFM solution (:class:`neuralcollapse.ufm.UFMSolution`).

    Layers, in order: ``H`` (the free features, input of W_1), ``layer1`` ...
    ``layer{L-1}`` (the post-activation outputs ``s(W_l ...)``, inputs of W_{l+1}), each
    with the alignment of the weight that consumes it, and ``output`` (``W_L`` applied, the
    logits before the bias; no alignment). The alignment uses the uncentred means when the
    problem has no bias (theory: every factor an orthogonal frame, rank K) and the centred
    ones otherwise (rank K - 1).

    A zero solution (all means 0, the trivial minimum) is a ValueError from :func:`spectrum`.
    """
    from neuralcollapse.ufm.problem import ProblemBatch, UFMParameters

    problem = solution.problem
    batch = ProblemBatch([problem])
    params = UFMParameters(
        weights=[w.detach().to(torch.float64).unsqueeze(0) for w in solution.weights],
        features=solution.features.detach().to(torch.float64).unsqueeze(0),
        bias=None if solution.bias is None else solution.bias.detach().unsqueeze(0),
    )
    with torch.no_grad():
        outputs = [out[0] for out in batch.layer_outputs(params)]
    inputs = [params.features[0]]
    for pre in outputs[:-1]:
        inputs.append(pre if problem.activation == "linear" else torch.relu(pre))
    labels = problem.labels()
    counts = torch.bincount(labels, minlength=problem.num_classes).to(torch.float64)

    def means_of(columns: torch.Tensor) -> torch.Tensor:  # (dim, N) -> (K, dim)
        sums = torch.zeros(problem.num_classes, columns.shape[0], dtype=torch.float64)
        sums.index_add_(0, labels, columns.T)
        return sums / counts.unsqueeze(1)

    subspace = "uncentred" if problem.bias == "none" else "centred"
    names = ["H", *[f"layer{index}" for index in range(1, problem.depth)]]
    profile = [
        layer_rank(means_of(x), weight, rtol=rtol, subspace=subspace, name=name)
        for name, x, weight in zip(names, inputs, solution.weights, strict=True)
    ]
    profile.append(layer_rank(means_of(outputs[-1]), rtol=rtol, name="output"))
    return profile
