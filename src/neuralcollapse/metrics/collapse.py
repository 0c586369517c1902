"""Neural-collapse metrics NC1-NC4 (and friends) from sufficient statistics.

Notation (docs/theory.md): K classes, N samples, features ``h_i`` in R^d with labels
``y_i``; class means ``mu_k``; global mean ``mu_G = (1/K) sum_k mu_k`` (each class weighs
1/K, so Sigma_B treats classes equally; on balanced data it is the sample mean);
centred means ``m_k = mu_k - mu_G``; classifier ``W`` (K x d, rows ``w_k``), bias ``b``.

    Sigma_W = (1/N) sum_i (h_i - mu_{y_i})(h_i - mu_{y_i})^T
    Sigma_B = (1/K) sum_k m_k m_k^T

Metrics (all 0 at perfect collapse onto a simplex ETF with an aligned classifier):

- ``nc1 = Tr(Sigma_W Sigma_B^+) / K`` (Papyan, Han & Donoho, PNAS 2020, Fig. 6).
  Division by K follows Papyan's code and the rhubarbwu/neural-collapse package; some
  papers report ``Tr(Sigma_W Sigma_B^+)`` itself (multiply by K).
- ``nc1_trace_ratio = Tr Sigma_W / Tr Sigma_B`` (the pseudo-inverse-free variant, e.g.
  Tirer & Bruna, ICML 2022).
- ``cdnv``: mean over class pairs of ``(V_k + V_k') / (2 ||mu_k - mu_k'||^2)`` with
  ``V_k = mean_{i in k} ||h_i - mu_k||^2`` (Galanti, György & Hutter, ICLR 2022).
- ``equinorm_*``: ``std_k ||v_k|| / mean_k ||v_k||`` (NC2, Papyan Fig. 2) for the centred
  means ``m_k`` and the classifier rows ``w_k``; std with Bessel's correction (ddof=1).
- ``equiangular_*``: std over the K(K-1) pairs k != k' of ``cos(v_k, v_k')`` (Papyan Fig. 3).
- ``maxangle_*``: mean over k != k' of ``|cos(v_k, v_k') + 1/(K-1)|`` (Papyan Fig. 4).
- ``etf_gap_means``: ``|| G/||G||_F - (I-J)/sqrt(K-1) ||_F`` with ``G = M M^T`` of the
  *centred* means; ``etf_gap_weights`` the same with ``G = W W^T`` (rows uncentred, as
  Zhu et al., NeurIPS 2021). An equal-norm orthogonal frame reads 0 for the centred means
  but ``sqrt(2 - 2 sqrt((K-1)/K))`` for the weights.
- ``of_gap_means``: ``|| G/||G||_F - I/sqrt(K) ||_F`` with ``G = Hbar^T Hbar`` of the
  *uncentred* means; ``of_gap_weights`` with ``G = W W^T``. Tells the orthogonal frame
  (MSE without bias, Tirer & Bruna) from the simplex ETF.
- ``global_mean_ratio = ||mu_G|| / mean_k ||mu_k||``: 0 for a centred ETF, 1/sqrt(K) for
  an equal-norm orthogonal frame.
- ``self_duality = || W^T/||W||_F - M/||M||_F ||_F^2`` with ``M = [m_1 ... m_K]`` (NC3,
  Papyan Fig. 5); ``self_duality_uncentred`` the same against the uncentred means
  ``[mu_1 ... mu_K]``, which is what W aligns with when there is no bias.
- ``ncc_mismatch``: fraction of samples where ``argmax_k (w_k . h + b_k)`` differs from
  ``argmin_k ||h - mu_k||`` (NC4, Papyan Fig. 7; with the bias, as the network decides).
- ``ncc_accuracy``: accuracy of the nearest-class-centre rule (with ``reference``: of the
  reference's means, e.g. the training means on test data); ``accuracy``: of the
  classifier (with bias).

Measures that came after Papyan's four:

- ``gnc2_*``: hyperspherical uniformity of the normalised centred means ``u_k = m_k/||m_k||``
  (generalised NC2; Liu et al., ICLR 2023), over pairs k < k' with ``D = ||u_k - u_k'||``:
  ``gnc2_dist_mean`` / ``gnc2_dist_var`` (mean and ddof-0 variance of D),
  ``gnc2_log_mean`` / ``gnc2_log_var`` (of ``log(1/D)``) and ``gnc2_riesz_log_mean =
  log mean D^-(d-2)`` (the Riesz s-energy with s = d - 2, as its logarithm). At a simplex
  ETF every ``D = sqrt(2K/(K-1))`` and the variances are 0; uniformity is what a vocabulary
  of K >> d classes can still reach when an ETF cannot exist.
- ``unc3``: uniform duality (Wu & Papyan, "Linguistic collapse", NeurIPS 2024): the variance
  over classes (ddof 1) of ``s_k = <w_k, m_k>``; ``unc3_cv = std_k s_k / |mean_k s_k|``.
- ``nc5``: ID/OOD orthogonality (Ammar et al., "NECO", ICLR 2024):
  ``mean_k |cos(mu_k, mu_OOD)|`` with the *uncentred* class means and the plain mean of the
  out-of-distribution features, the convention of the public implementation issue 8
  points to (centring both on the in-distribution global mean would measure the angle to
  the span of the centred means instead; we keep that convention so numbers compare).
- ``per_class``: a :class:`~neuralcollapse.metrics.per_class.PerClassTable` (counts,
  within-class variance, ``||m_k||``, ``||w_k||``, ``<w_k, m_k>``, per-class CDNV), kept out
  of ``to_dict()``.

NC1 without a d x d pseudo-inverse: write the centred means ``M^T = U S V^T`` (thin SVD,
rank r <= K-1). Then ``Sigma_B^+ = K V S^-2 V^T`` and

    Tr(Sigma_W Sigma_B^+) = (K/N) sum_i ||S^-1 V^T (h_i - mu_{y_i})||^2,

an O(N d r) projection instead of O(N d^2 + d^3) (see :class:`.stats.CentredStats`).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field, fields

import torch

from neuralcollapse.metrics.ood import OODFeatures, check_ood_dimension, checked_ood_mean
from neuralcollapse.metrics.pairwise import (
    UNIFORMITY_KERNELS,
    ClassDistanceVariance,
    CosineMoments,
    EtfGap,
    OfGap,
    UniformityKernels,
    check_tile_size,
    check_uniformity_kernels,
    reduce_frame,
    row_blocks,
    rowwise_dot,
)
from neuralcollapse.metrics.per_class import PerClassTable
from neuralcollapse.metrics.stats import (
    CentredStats,
    ClassStats,
    MeanGeometry,
    peak_magnitude,
    power_of_two_scale,
)
from neuralcollapse.metrics.validation import ArrayLike, check_classifier


@dataclass(frozen=True)
class CollapseMetrics:
    """Neural-collapse metrics of one set of features (see :mod:`neuralcollapse.metrics.collapse`).

    Keys that need the classifier (``*_weights``, ``self_duality*``, ``ncc_mismatch``,
    ``accuracy``, ``unc3*``) are None when no weights were given; keys that need the second
    pass (``nc1``, ``nc1_trace_ratio``, ``cdnv``, ``within_class_variance``, ``ncc_*``,
    ``accuracy``) are None when only class means were available; ``ncc_*`` are None when
    the nearest-class-centre rule was switched off (``nearest_centre=False``); ``nc5`` is
    None without out-of-distribution features; ``gnc2_*`` of a kernel not requested are
    None. ``per_class`` is a table, not a scalar: ``to_dict()`` and ``keys()`` leave it out.
    """

    num_classes: int
    num_samples: int
    dim: int
    nc1: float | None
    nc1_trace_ratio: float | None
    cdnv: float | None
    within_class_variance: float | None
    between_class_variance: float
    equinorm_means: float
    equinorm_weights: float | None
    equiangular_means: float
    equiangular_weights: float | None
    maxangle_means: float
    maxangle_weights: float | None
    etf_gap_means: float
    etf_gap_weights: float | None
    of_gap_means: float
    of_gap_weights: float | None
    global_mean_ratio: float
    self_duality: float | None
    self_duality_uncentred: float | None
    ncc_mismatch: float | None
    ncc_accuracy: float | None
    accuracy: float | None
    gnc2_dist_mean: float | None = None
    gnc2_dist_var: float | None = None
    gnc2_log_mean: float | None = None
    gnc2_log_var: float | None = None
    gnc2_riesz_log_mean: float | None = None
    unc3: float | None = None
    unc3_cv: float | None = None
    nc5: float | None = None
    per_class: PerClassTable | None = field(default=None, repr=False, compare=False)

    def to_dict(self) -> dict[str, float | int | None]:
        """Plain dict of every scalar metric (Python numbers; None = not computed).

        Values may be ``inf`` (e.g. ``cdnv`` of two coincident means), which ``json.dumps``
        writes as the invalid token ``Infinity``: serialise with :meth:`to_json` (or
        :func:`neuralcollapse.schema.dumps`), which writes the strict form of the metric
        contract. ``per_class`` is left out.
        """
        return {name: getattr(self, name) for name in self.keys()}

    def to_json(self, **kwargs) -> str:
        """Strict JSON of :meth:`to_dict`: non-finite values as ``"Infinity"`` / ``"NaN"``
        strings, ``null`` for not computed (:func:`neuralcollapse.schema.dumps`)."""
        from neuralcollapse import schema  # schema imports nothing of the metrics

        return schema.dumps(self.to_dict(), **kwargs)

    @classmethod
    def keys(cls) -> list[str]:
        """Names of the scalar metrics, in a stable order."""
        return [f.name for f in fields(cls) if f.name != "per_class"]


DEFAULT_UNIFORMITY_KERNELS: tuple[str, ...] = UNIFORMITY_KERNELS


def _times(value, *factors: float):
    """``value`` times each factor in turn: a product of the factors first could overflow
    (2^700 x 2^700) and turn a 0 into NaN, while 0 x 2^700 x 2^700 stays 0."""
    for factor in factors:
        value = value * factor
    return value


def _duality_gap(
    weights: torch.Tensor,
    centred: torch.Tensor,
    offset: torch.Tensor | None,
    row_norms: torch.Tensor,
    tile_size: int,
) -> float:
    """``|| W/||W||_F - X/||X||_F ||_F^2`` with the rows of X ``m_k (+ offset)``, in row blocks.

    ``row_norms`` are the norms of those rows (the frame pass has them already).
    """
    weight_norm = float(torch.linalg.matrix_norm(weights))
    frame_norm = float(torch.linalg.vector_norm(row_norms))
    total = 0.0
    for rows in row_blocks(centred.shape[0], tile_size):
        frame_rows = centred[rows] if offset is None else centred[rows] + offset
        difference = weights[rows] / weight_norm - frame_rows / frame_norm
        total += float((difference * difference).sum())
    return total


def _uniform_duality(similarities: torch.Tensor) -> tuple[float, float]:
    """UNC3: variance (ddof 1) of the per-class similarities, and their coefficient of variation."""
    variance = float(similarities.var())
    mean = abs(float(similarities.mean()))
    return variance, (math.sqrt(variance) / mean if mean > 0 else math.inf)


def _ood_orthogonality(
    geometry: MeanGeometry, mean_norms: torch.Tensor, ood_centre: torch.Tensor
) -> float:
    """NC5 = mean_k |cos(mu_k, mu_OOD)| with the uncentred class means (NECO's convention)."""
    ood_norm = float(torch.linalg.vector_norm(ood_centre))
    if ood_norm == 0.0:
        raise ValueError(
            "the out-of-distribution features have mean 0 (exactly, or to the rounding of its "
            "float64 sum): their direction, and NC5, is undefined — pass the OOD features as "
            "the network produces them"
        )
    dots = geometry.centred @ ood_centre + float(geometry.global_mean @ ood_centre)
    safe_norms = torch.where(mean_norms > 0, mean_norms, torch.ones_like(mean_norms))
    cosines = torch.where(mean_norms > 0, dots / (safe_norms * ood_norm), 0.0)
    return float(cosines.abs().mean())


def compute_metrics(
    class_stats: ClassStats | None,
    centred_stats: CentredStats | None = None,
    weights: torch.Tensor | None = None,
    bias: torch.Tensor | None = None,
    *,
    ood_features: ArrayLike | ClassStats | None = None,
    uniformity_kernels: Sequence[str] = DEFAULT_UNIFORMITY_KERNELS,
    tile_size: int | None = None,
    rtol: float | None = None,
) -> CollapseMetrics:
    """All metrics from pass-1 statistics and, when given, pass-2 statistics.

    With ``centred_stats`` None only the class-mean metrics are computed (one pass over
    the data suffices for them); the within-class ones are None. The classifier comes
    from ``centred_stats`` when it was built with one, else from ``weights``/``bias``;
    with ``centred_stats``, ``class_stats`` may be None (its counts are in both).
    ``ood_features``: out-of-distribution features, (N_ood, d) or their ClassStats, for NC5.
    ``uniformity_kernels``: which ``gnc2_*`` kernels to compute (``"distance"``, ``"log"``,
    ``"riesz"``). ``tile_size``: side of the square tiles of the K x K pairwise work. ``rtol``: the
    class means' singular-value cut-off (:func:`~.measuring.measure`), used when the geometry
    is built here (without ``centred_stats``).
    """
    kernels = check_uniformity_kernels(uniformity_kernels)
    tile_size = check_tile_size(tile_size)
    if centred_stats is not None:
        geometry = centred_stats.geometry
        # CentredStats checked its classifier when it was built
        weights, bias = centred_stats.weights, centred_stats.bias
        counts = centred_stats.counts
    else:
        if class_stats is None:
            raise ValueError("compute_metrics needs class_stats, centred_stats or both")
        geometry = MeanGeometry.from_means(
            class_stats.means(), rtol=rtol, input_eps=class_stats.input_eps
        )
        weights, bias = check_classifier(weights, bias, *geometry.shape)
        counts = class_stats.counts
    ood = None if ood_features is None else check_ood_dimension(ood_features, geometry.shape[1])
    return checked_metrics(
        geometry,
        counts,
        weights,
        bias,
        centred_stats,
        ood_features=ood,
        kernels=kernels,
        tile_size=tile_size,
    )


def checked_metrics(
    geometry: MeanGeometry,
    counts: torch.Tensor,
    weights: torch.Tensor | None,
    bias: torch.Tensor | None,
    centred_stats: CentredStats | None,
    *,
    ood_features: OODFeatures | None,
    kernels: tuple[str, ...],
    tile_size: int,
) -> CollapseMetrics:
    """:func:`compute_metrics` of arguments that passed its checks (issue 13: checked once).

    For the caller that has checked them at its own door (``measure_batches``):
    ``weights``/``bias`` as :func:`~.validation.check_classifier` returns them,
    ``ood_features`` as :func:`~.ood.check_ood_dimension` does, ``kernels`` and
    ``tile_size`` as their checks do; ``geometry`` and ``counts`` are the class means'
    and the per-class sample counts.
    """
    num_classes, dim = geometry.shape
    device = geometry.centred.device
    ood_centre = None if ood_features is None else checked_ood_mean(ood_features, device)
    if ood_centre is not None:  # only its direction matters: bring it to ~1 (exact)
        ood_centre = ood_centre / power_of_two_scale(peak_magnitude(ood_centre))
    num_samples = int(counts.sum())
    # the geometry (and pass 2) hold the data divided by the power of two ``scale`` (1 but for
    # extreme magnitudes): quadratic quantities are multiplied back by scale^2 at the end
    scale = geometry.scale
    centred = geometry.centred
    between = float(torch.linalg.vector_norm(centred) ** 2 / num_classes)

    within = nc1 = trace_ratio = class_variances = None
    ncc_accuracy = accuracy = ncc_mismatch = None
    if centred_stats is not None:
        within = float(centred_stats.within_ss.sum() / num_samples)
        # Tr(Sigma_W Sigma_B^+) = (K/N) sum_i ||S^-1 V^T r_i||^2, then divided by K
        nc1 = float(centred_stats.projected_ss.sum() / num_samples)
        trace_ratio = within / between
        class_variances = centred_stats.within_ss / counts.to(torch.float64)
        within = _times(within, scale, scale)
        if centred_stats.nearest_centre:
            ncc_accuracy = int(centred_stats.ncc_correct) / num_samples
        if weights is not None:
            accuracy = int(centred_stats.classifier_correct) / num_samples
            if centred_stats.nearest_centre:
                ncc_mismatch = 1.0 - int(centred_stats.classifier_ncc_agree) / num_samples

    # one tiled pass over the means' Gram: NC2 of the centred means, the OF gap of the
    # uncentred ones (mu_k = m_k + mu_G, through the offset), CDNV and the uniformity kernels
    means_angles, means_etf = CosineMoments(), EtfGap()
    means_of = OfGap(offset=geometry.global_mean)
    uniformity = UniformityKernels(kernels)
    cdnv = None if class_variances is None else ClassDistanceVariance(class_variances)
    means_reducers = [means_angles, uniformity, means_etf, means_of]
    means_frame = reduce_frame(
        centred, means_reducers + ([] if cdnv is None else [cdnv]), tile_size=tile_size
    )
    uncentred_norms = means_of.offset_norms  # ||mu_k||
    global_mean_ratio = float(torch.linalg.vector_norm(geometry.global_mean)) / float(
        uncentred_norms.mean()
    )
    nc5 = None if ood_centre is None else _ood_orthogonality(geometry, uncentred_norms, ood_centre)

    weight_frame = weight_angles = weight_etf = weight_of = None
    self_duality = self_duality_uncentred = unc3 = unc3_cv = similarities = None
    weight_norms = None
    if weights is not None:
        weights = weights.to(device)
        # the rows of W divided by a power of two as well, when extreme (1e155 squares to inf)
        weight_scale = power_of_two_scale(peak_magnitude(weights))
        if weight_scale != 1.0:
            weights = weights * (1.0 / weight_scale)
        weight_angles, weight_etf, weight_of = CosineMoments(), EtfGap(), OfGap()
        weight_frame = reduce_frame(
            weights, [weight_angles, weight_etf, weight_of], tile_size=tile_size
        )
        self_duality = _duality_gap(weights, centred, None, means_frame.norms, tile_size)
        self_duality_uncentred = _duality_gap(
            weights, centred, geometry.global_mean, uncentred_norms, tile_size
        )
        similarities = rowwise_dot(weights, centred, tile_size)
        unc3, unc3_cv = _uniform_duality(similarities)
        weight_norms = weight_frame.norms
        if scale != 1.0 or weight_scale != 1.0:
            # <w_k, m_k> scales with both; its variance with their squares
            similarities = _times(similarities, scale, weight_scale)
            unc3 = _times(unc3, scale, scale, weight_scale, weight_scale)
            weight_norms = _times(weight_norms, weight_scale)

    mean_norms = means_frame.norms
    if scale != 1.0:
        between = _times(between, scale, scale)
        mean_norms = _times(mean_norms, scale)
        if class_variances is not None:
            class_variances = _times(class_variances, scale, scale)

    per_class = PerClassTable.from_tensors(
        count=counts,
        within_variance=class_variances,
        mean_norm=mean_norms,
        weight_norm=weight_norms,
        duality=similarities,
        cdnv=None if cdnv is None else cdnv.per_row,
    )
    return CollapseMetrics(
        num_classes=num_classes,
        num_samples=num_samples,
        dim=dim,
        nc1=nc1,
        nc1_trace_ratio=trace_ratio,
        cdnv=None if cdnv is None else cdnv.value,
        within_class_variance=within,
        between_class_variance=between,
        equinorm_means=means_frame.equinorm,
        equinorm_weights=None if weight_frame is None else weight_frame.equinorm,
        equiangular_means=means_angles.equiangular,
        equiangular_weights=None if weight_angles is None else weight_angles.equiangular,
        maxangle_means=means_angles.maxangle,
        maxangle_weights=None if weight_angles is None else weight_angles.maxangle,
        etf_gap_means=means_etf.value,
        etf_gap_weights=None if weight_etf is None else weight_etf.value,
        of_gap_means=means_of.value,
        of_gap_weights=None if weight_of is None else weight_of.value,
        global_mean_ratio=global_mean_ratio,
        self_duality=self_duality,
        self_duality_uncentred=self_duality_uncentred,
        ncc_mismatch=ncc_mismatch,
        ncc_accuracy=ncc_accuracy,
        accuracy=accuracy,
        **uniformity.values,
        unc3=unc3,
        unc3_cv=unc3_cv,
        nc5=nc5,
        per_class=per_class,
    )
