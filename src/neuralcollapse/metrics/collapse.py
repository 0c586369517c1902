"""Neural-collapse metrics NC1-NC4 (and friends) from sufficient statistics.

Notation (shared/THEORY.md): K classes, N samples, features ``h_i`` in R^d with labels
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
- ``ncc_accuracy``: accuracy of the nearest-class-centre rule; ``accuracy``: of the
  classifier (with bias).

NC1 without a d x d pseudo-inverse: write the centred means ``M^T = U S V^T`` (thin SVD,
rank r <= K-1). Then ``Sigma_B^+ = K V S^-2 V^T`` and

    Tr(Sigma_W Sigma_B^+) = (K/N) sum_i ||S^-1 V^T (h_i - mu_{y_i})||^2,

an O(N d r) projection instead of O(N d^2 + d^3) (see :class:`.stats.CentredStats`).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields

import torch

from neuralcollapse.metrics.pairwise import frame_statistics
from neuralcollapse.metrics.stats import CentredStats, ClassStats, MeanGeometry


@dataclass(frozen=True)
class CollapseMetrics:
    """Neural-collapse metrics of one set of features (see :mod:`neuralcollapse.metrics.collapse`).

    Keys that need the classifier (``*_weights``, ``self_duality*``, ``ncc_mismatch``,
    ``accuracy``) are None when no weights were given; keys that need the second pass
    (``nc1``, ``nc1_trace_ratio``, ``cdnv``, ``within_class_variance``, ``ncc_*``,
    ``accuracy``) are None when only class means were available; ``ncc_*`` are None when
    the nearest-class-centre rule was switched off (``nearest_centre=False``).
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

    def to_dict(self) -> dict[str, float | int | None]:
        """Plain dict of every metric (JSON-serialisable)."""
        return asdict(self)

    @classmethod
    def keys(cls) -> list[str]:
        """Names of the metrics, in a stable order."""
        return [field.name for field in fields(cls)]


def _duality_gap(weights: torch.Tensor, means: torch.Tensor) -> float:
    """``|| W/||W||_F - means/||means||_F ||_F^2`` with both as (K, d) row matrices."""
    difference = weights / torch.linalg.matrix_norm(weights) - means / torch.linalg.matrix_norm(
        means
    )
    return float((difference * difference).sum())


def compute_metrics(
    class_stats: ClassStats,
    centred_stats: CentredStats | None = None,
    weights: torch.Tensor | None = None,
    bias: torch.Tensor | None = None,
) -> CollapseMetrics:
    """All metrics from pass-1 statistics and, when given, pass-2 statistics.

    With ``centred_stats`` None only the class-mean metrics are computed (one pass over
    the data suffices for them); the within-class ones are None. The classifier comes
    from ``centred_stats`` when it was built with one, else from ``weights``/``bias``.
    """
    if centred_stats is not None:
        geometry = centred_stats.geometry
        weights, bias = centred_stats.weights, centred_stats.bias
    else:
        geometry = MeanGeometry.from_means(class_stats.means())
        from neuralcollapse.metrics.validation import check_classifier

        weights, bias = check_classifier(weights, bias, *geometry.means.shape)
    num_classes, dim = geometry.means.shape
    num_samples = class_stats.num_samples
    counts = class_stats.counts.to(torch.float64)
    between = float((geometry.centred**2).sum() / num_classes)

    within = nc1 = trace_ratio = class_variances = None
    ncc_accuracy = accuracy = ncc_mismatch = None
    if centred_stats is not None:
        within = float(centred_stats.within_ss.sum() / num_samples)
        # Tr(Sigma_W Sigma_B^+) = (K/N) sum_i ||S^-1 V^T r_i||^2, then divided by K
        nc1 = float(centred_stats.projected_ss.sum() / num_samples)
        trace_ratio = within / between
        class_variances = centred_stats.within_ss / counts
        if centred_stats.nearest_centre:
            ncc_accuracy = int(centred_stats.ncc_correct) / num_samples
        if weights is not None:
            accuracy = int(centred_stats.classifier_correct) / num_samples
            if centred_stats.nearest_centre:
                ncc_mismatch = 1.0 - int(centred_stats.classifier_ncc_agree) / num_samples

    means_frame = frame_statistics(geometry.centred, etf_gap=True, variances=class_variances)
    uncentred_frame = frame_statistics(geometry.means, of_gap=True, angles=False)
    mean_norm = float(uncentred_frame.norms.mean())
    global_mean_ratio = float(torch.linalg.vector_norm(geometry.global_mean)) / mean_norm

    weight_frame = None
    self_duality = self_duality_uncentred = None
    if weights is not None:
        weights = weights.to(geometry.means.device)
        weight_frame = frame_statistics(weights, etf_gap=True, of_gap=True)
        self_duality = _duality_gap(weights, geometry.centred)
        self_duality_uncentred = _duality_gap(weights, geometry.means)

    def from_weights(name: str) -> float | None:
        return None if weight_frame is None else getattr(weight_frame, name)

    return CollapseMetrics(
        num_classes=num_classes,
        num_samples=num_samples,
        dim=dim,
        nc1=nc1,
        nc1_trace_ratio=trace_ratio,
        cdnv=means_frame.cdnv,
        within_class_variance=within,
        between_class_variance=between,
        equinorm_means=means_frame.equinorm,
        equinorm_weights=from_weights("equinorm"),
        equiangular_means=means_frame.equiangular,
        equiangular_weights=from_weights("equiangular"),
        maxangle_means=means_frame.maxangle,
        maxangle_weights=from_weights("maxangle"),
        etf_gap_means=means_frame.etf_gap,
        etf_gap_weights=from_weights("etf_gap"),
        of_gap_means=uncentred_frame.of_gap,
        of_gap_weights=from_weights("of_gap"),
        global_mean_ratio=global_mean_ratio,
        self_duality=self_duality,
        self_duality_uncentred=self_duality_uncentred,
        ncc_mismatch=ncc_mismatch,
        ncc_accuracy=ncc_accuracy,
        accuracy=accuracy,
    )
