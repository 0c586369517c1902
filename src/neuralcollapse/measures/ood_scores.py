"""Out-of-distribution scores on penultimate features: collapse-based ones and the baselines.

Every score is computed from the features ``h`` (d,) of the layer that feeds the classifier
``logits = W h + b``, with statistics of the *training* features (:class:`FeatureStatistics`:
class counts, class means ``mu_k``, within-class covariance ``Sigma_W``, and from them the
total covariance ``Sigma_T``). Convention: **higher score = more in-distribution** for every
score, so an ID sample is the positive class in :mod:`.ood_eval`.

Baselines
---------
- ``msp``: maximum softmax probability ``max_k softmax(W h + b)_k`` (Hendrycks & Gimpel,
  ICLR 2017).
- ``max_logit``: ``max_k (W h + b)_k`` (Hendrycks et al., "Scaling out-of-distribution
  detection for real-world settings", ICML 2022).
- ``energy``: the negative free energy ``T logsumexp((W h + b) / T)``, T = ``temperature``
  (default 1; Liu, Wang, Owens & Li, NeurIPS 2020).
- ``mahalanobis``: ``-min_k (h - mu_k)^T Sigma_W^+ (h - mu_k)`` with the class means and the
  tied (shared) within-class covariance of the training features (Lee, Lee, Lee & Shin,
  NeurIPS 2018, without their input perturbation and layer ensemble). ``Sigma_W^+`` is the
  pseudo-inverse (eigenvalues below ``d * eps`` of the largest dropped), so a covariance
  that is singular (dead units, collapse) is handled by ignoring its null directions.

Collapse-based
--------------
- ``neco`` (Ammar, Belkhir, Popescu, Manzanera & Franchi, "NECO: NEural Collapse Based
  Out-of-distribution detection", ICLR 2024, eq. 6): ``NECO(h) = ||P z|| / ||z||`` with P the
  orthogonal projection onto the top ``num_directions`` principal axes of the training
  features. ``standardize=True`` (default) follows the public implementation: ``z`` is the
  feature standardised per coordinate with the training mean and standard deviation
  (ddof 0; a coordinate with zero variance is left unscaled), and the principal axes are
  those of the standardised training features (the eigenvectors of their correlation
  matrix). ``standardize=False`` is the formula as printed, on the raw feature ``z = h`` with
  the principal axes of the (centred) training covariance ``Sigma_T``. ``z = 0`` scores 0.
  Under NC1 + NC2 the ID features lie in the (K-1)-dimensional span of the class means and
  OOD features, orthogonal to it (NC5), project little: the default ``num_directions`` is
  ``min(K - 1, d)``; the paper tunes it per model.
- ``neco_max_logit``: ``NECO(h) * max_k (W h + b)_k``, the paper's max-logit-scaled variant
  (reported there for its transformer models), which restores the scale the ratio discards.
- ``nci`` (Liu & Qin, "Detecting out-of-distribution through the lens of neural collapse",
  CVPR 2025, arXiv:2311.01479): ``w_c . (h - h_bar) / ||h - h_bar|| + alpha ||h||_1`` with
  ``c = argmax_k (W h + b)_k``, ``w_c`` the (unnormalised) classifier row and ``h_bar`` the
  mean of the training features; the first term ("pScore") is the proximity of the centred
  feature to its predicted class's weight (NC3), the second a feature-norm filter
  (``alpha`` = 0 by default: the pScore alone; the paper tunes alpha per benchmark).
- ``mean_alignment``: ``max_k cos(h - mu_G, mu_k - mu_G)``, the cosine of the centred
  feature with the nearest centred *training class mean* (``mu_G`` the mean of the class
  means). Needs no classifier: the NC1/NC2 counterpart of NCI's pScore, our own variant.

Cost per sample (all float64, a chunk of rows at a time, nothing N x N or N x d kept):
one (d x K) product for the logit scores, NCI and the mean alignment; (d x q) for NECO;
(d x r)(r x K) with r = rank Sigma_W (<= d) for Mahalanobis, whose whitening is the one
O(N d^2) score.
"""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np
import torch

from neuralcollapse.checks import check_float, check_int
from neuralcollapse.measures.scatter import (
    BatchSource,
    FeatureStatistics,
    feature_statistics,
    feature_statistics_batches,
)
from neuralcollapse.metrics.stats import check_chunk_rows, default_chunk_rows
from neuralcollapse.metrics.validation import (
    ArrayLike,
    check_classifier,
    check_features,
    check_finite_chunk,
)

SCORES: tuple[str, ...] = (
    "msp",
    "max_logit",
    "energy",
    "mahalanobis",
    "neco",
    "neco_max_logit",
    "nci",
    "mean_alignment",
)
NEEDS_CLASSIFIER = {"msp", "max_logit", "energy", "neco_max_logit", "nci"}


class OODScorer:
    """Scores of test features against the statistics of the training features.

    Parameters
    ----------
    statistics : :class:`FeatureStatistics` of the training (penultimate) features.
    weights, bias : the classifier ``logits = h W^T + b``, (K, d) and (K,); needed by the
        logit-based scores, NECO's max-logit variant and NCI.

    Examples
    --------
    >>> scorer = OODScorer.fit(train_h, train_y, weights=W, bias=b)      # doctest: +SKIP
    >>> id_scores = scorer.score(test_h, "neco", num_directions=9)      # doctest: +SKIP
    >>> ood_scores = scorer.score(ood_h, "neco", num_directions=9)      # doctest: +SKIP
    >>> evaluate_ood(id_scores, ood_scores).auroc                       # doctest: +SKIP
    """

    def __init__(
        self,
        statistics: FeatureStatistics,
        weights: ArrayLike | None = None,
        bias: ArrayLike | None = None,
    ) -> None:
        if not isinstance(statistics, FeatureStatistics):
            raise ValueError(
                "statistics must be a FeatureStatistics (use OODScorer.fit(features, labels, "
                f"...) to build one); got {type(statistics).__name__}"
            )
        self.statistics = statistics
        num_classes, dim = statistics.num_classes, statistics.dim
        self.weights, self.bias = check_classifier(weights, bias, num_classes, dim)
        self._device = statistics.means.device
        if self.weights is not None:
            self.weights = self.weights.to(self._device)
            self.bias = None if self.bias is None else self.bias.to(self._device)
        self._cache: dict[object, object] = {}

    @classmethod
    def fit(
        cls,
        features: ArrayLike,
        labels: ArrayLike,
        weights: ArrayLike | None = None,
        bias: ArrayLike | None = None,
        *,
        num_classes: int | None = None,
        batch_size: int | None = None,
    ) -> OODScorer:
        """Fit on in-memory training features (N, d) and labels (N,)."""
        stats = feature_statistics(features, labels, num_classes=num_classes, batch_size=batch_size)
        return cls(stats, weights, bias)

    @classmethod
    def fit_batches(
        cls,
        make_batches: BatchSource,
        *,
        num_classes: int,
        weights: ArrayLike | None = None,
        bias: ArrayLike | None = None,
        batch_size: int | None = None,
        distributed: bool = False,
    ) -> OODScorer:
        """Fit on a stream of training batches (``make_batches()`` is read twice);
        ``distributed=True`` all-reduces the statistics of every rank's shard (torchrun)."""
        stats = feature_statistics_batches(
            make_batches, num_classes=num_classes, batch_size=batch_size, distributed=distributed
        )
        return cls(stats, weights, bias)

    # ---- fitted pieces, computed once ----------------------------------------------------
    def _principal(self, standardize: bool) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """(centre, scale, axes): z = (h - centre) / scale; axes (d, d), by decreasing variance."""
        key = ("pca", standardize)
        if key not in self._cache:
            total = self.statistics.total()
            dim = self.statistics.dim
            if standardize:
                centre = self.statistics.sample_mean
                std = total.diagonal().clamp_min(0).sqrt()
                scale = torch.where(std > 0, std, torch.ones_like(std))
                covariance = total / scale.unsqueeze(0) / scale.unsqueeze(1)
            else:
                centre = torch.zeros(dim, dtype=torch.float64, device=self._device)
                scale = torch.ones(dim, dtype=torch.float64, device=self._device)
                covariance = total
            _, vectors = torch.linalg.eigh(covariance)
            self._cache[key] = (centre, scale, vectors.flip(1).contiguous())
        return self._cache[key]

    def _whitening(self) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """(L, C, ||C||^2): Sigma_W^+ = L L^T (d x r), C = means @ L (K x r)."""
        if "whitening" not in self._cache:
            values, vectors = torch.linalg.eigh(self.statistics.within)
            largest = float(values[-1])
            if largest <= 0:
                raise ValueError(
                    "the training features have no within-class spread (Sigma_W = 0, every "
                    "sample on its class mean): the Mahalanobis score is undefined"
                )
            keep = values > self.statistics.dim * float(torch.finfo(torch.float64).eps) * largest
            factor = vectors[:, keep] / values[keep].sqrt()
            centres = self.statistics.means @ factor
            self._cache["whitening"] = (factor, centres, centres.square().sum(dim=1))
        return self._cache["whitening"]

    def _unit_centred_means(self) -> tuple[torch.Tensor, torch.Tensor]:
        if "means" not in self._cache:
            means = self.statistics.means
            centre = means.mean(dim=0)
            centred = means - centre
            norms = torch.linalg.vector_norm(centred, dim=1, keepdim=True)
            unit = torch.where(norms > 0, centred / norms.clamp_min(1e-300), 0.0)
            self._cache["means"] = (centre, unit.T.contiguous())
        return self._cache["means"]

    def _weights_at_mean(self) -> torch.Tensor:
        if "w_mean" not in self._cache:
            self._cache["w_mean"] = self.weights @ self.statistics.sample_mean
        return self._cache["w_mean"]

    # ---- scoring ---------------------------------------------------------------------------
    def _logits(self, chunk: torch.Tensor) -> torch.Tensor:
        logits = chunk @ self.weights.T
        if self.bias is not None:
            logits += self.bias
        return logits

    def _check_method(self, method: str) -> None:
        if method not in SCORES:
            raise ValueError(f"unknown OOD score {method!r}; choose one of {SCORES}")
        if method in NEEDS_CLASSIFIER and self.weights is None:
            raise ValueError(
                f"the {method!r} score needs the classifier: build the scorer with "
                "weights=W (and bias=b)"
            )

    def score(
        self,
        features: ArrayLike,
        method: str,
        *,
        num_directions: int | None = None,
        standardize: bool = True,
        temperature: float = 1.0,
        alpha: float = 0.0,
        batch_size: int | None = None,
        name: str = "features",
    ) -> np.ndarray:
        """One score per row of ``features`` (M, d): a float64 NumPy array (M,).

        ``num_directions``: NECO's number of principal axes, in [1, d] (default
        ``min(K - 1, d)``); ``standardize``: NECO's standardisation (see the module
        docstring); ``temperature``: the energy's T > 0; ``alpha``: NCI's weight >= 0 of
        ``||h||_1``. ``name`` is used in error messages (e.g. "ood_features").
        """
        return self.scores(
            features,
            [method],
            num_directions=num_directions,
            standardize=standardize,
            temperature=temperature,
            alpha=alpha,
            batch_size=batch_size,
            name=name,
        )[method]

    def scores(
        self,
        features: ArrayLike,
        methods: Iterable[str] | None = None,
        *,
        num_directions: int | None = None,
        standardize: bool = True,
        temperature: float = 1.0,
        alpha: float = 0.0,
        batch_size: int | None = None,
        name: str = "features",
    ) -> dict[str, np.ndarray]:
        """``{method: score(features, method, ...)}`` for each method (default: all that the
        scorer can compute — the classifier-free ones when it has no classifier).

        One pass over ``features``: each chunk is converted to float64 and checked for
        NaN/inf once, then every method's kernel scores a copy of it (the kernels may
        overwrite their input), so k methods cost one conversion, not k.
        """
        if methods is None:
            methods = [m for m in SCORES if self.weights is not None or m not in NEEDS_CLASSIFIER]
        methods = list(dict.fromkeys(methods))
        for method in methods:
            self._check_method(method)
        tensor = check_features(features, name, check_values=False)
        dim = self.statistics.dim
        if tensor.shape[1] != dim:
            raise ValueError(
                f"{name} have dimension {tensor.shape[1]} but the training features had {dim}; "
                "score features of the same layer of the same network"
            )
        kernels = {
            method: self._kernel(method, num_directions, standardize, temperature, alpha)
            for method in methods
        }
        rows = check_chunk_rows(batch_size) or default_chunk_rows(
            max(dim, self.statistics.num_classes)
        )
        size = tensor.shape[0]
        out = {m: torch.empty(size, dtype=torch.float64, device=self._device) for m in methods}
        shape = (min(rows, size), dim)
        workspace = torch.empty(shape, dtype=torch.float64, device=self._device)
        # a second buffer only when a kernel's overwrite would spoil the chunk for the next
        scratch = (
            torch.empty(shape, dtype=torch.float64, device=self._device)
            if len(methods) > 1
            else workspace
        )
        for start in range(0, size, rows):
            part = tensor[start : start + rows]
            chunk = workspace[: part.shape[0]].copy_(part)
            check_finite_chunk(chunk, name, offset=start)
            for method, kernel in kernels.items():
                given = chunk if scratch is workspace else scratch[: part.shape[0]].copy_(chunk)
                out[method][start : start + part.shape[0]] = kernel(given)
        return {method: values.cpu().numpy() for method, values in out.items()}

    def _kernel(self, method, num_directions, standardize, temperature, alpha):
        """The per-chunk function of ``method``; ``chunk`` is a float64 buffer it may overwrite."""
        if method in ("neco", "neco_max_logit"):
            dim = self.statistics.dim
            count = min(self.statistics.num_classes - 1, dim)
            count = check_int(
                "num_directions",
                count if num_directions is None else num_directions,
                minimum=1,
                maximum=dim,
                alternative="or None for min(K - 1, d)",
                hint=f"NECO projects on between 1 and d = {dim} principal directions",
            )
            centre, scale, axes = self._principal(bool(standardize))
            top = axes[:, :count]

            def neco(chunk: torch.Tensor) -> torch.Tensor:
                logits_max = self._logits(chunk).amax(dim=1) if method == "neco_max_logit" else None
                z = chunk.sub_(centre).div_(scale)
                norms = torch.linalg.vector_norm(z, dim=1)
                projected = torch.linalg.vector_norm(z @ top, dim=1)
                ratio = torch.where(norms > 0, projected / norms.clamp_min(1e-300), 0.0)
                return ratio if logits_max is None else ratio * logits_max

            return neco
        if method == "mahalanobis":
            factor, centres, centre_norms = self._whitening()

            def mahalanobis(chunk: torch.Tensor) -> torch.Tensor:
                z = chunk @ factor
                nearest = torch.addmm(centre_norms, z, centres.T, alpha=-2.0).argmin(dim=1)
                # the exact distance to the nearest mean, not the expanded (cancelling) form
                return -(z - centres[nearest]).square().sum(dim=1)

            return mahalanobis
        if method == "mean_alignment":
            centre, unit = self._unit_centred_means()

            def alignment(chunk: torch.Tensor) -> torch.Tensor:
                u = chunk.sub_(centre)
                norms = torch.linalg.vector_norm(u, dim=1)
                best = (u @ unit).amax(dim=1)
                return torch.where(norms > 0, best / norms.clamp_min(1e-300), 0.0)

            return alignment
        if method == "nci":
            weight_alpha = check_float(
                "alpha",
                alpha,
                minimum=0.0,
                meaning="NCI's weight of ||h||_1",
                hint="Use 0 for the pScore alone.",
            )
            centre = self.statistics.sample_mean

            def nci(chunk: torch.Tensor) -> torch.Tensor:
                logits = self._logits(chunk)
                top, predicted = logits.max(dim=1)
                bias = 0.0 if self.bias is None else self.bias[predicted]
                # w_c . (h - h_bar) = (logit_c - b_c) - w_c . h_bar: no gather of N x d rows
                dots = top - bias - self._weights_at_mean()[predicted]
                l1 = torch.linalg.vector_norm(chunk, ord=1, dim=1) if weight_alpha else None
                norms = torch.linalg.vector_norm(chunk.sub_(centre), dim=1)
                score = torch.where(norms > 0, dots / norms.clamp_min(1e-300), 0.0)
                return score if l1 is None else score + weight_alpha * l1

            return nci
        if method == "energy":
            scale = check_float(
                "temperature",
                temperature,
                minimum=0.0,
                strict=True,
                meaning="the energy's T",
                hint="Use 1 for the plain energy score.",
            )

            def energy(chunk: torch.Tensor) -> torch.Tensor:
                return scale * _logsumexp(self._logits(chunk).div_(scale))

            return energy
        if method == "max_logit":
            return lambda chunk: self._logits(chunk).amax(dim=1)

        def msp(chunk: torch.Tensor) -> torch.Tensor:
            # max_k softmax_k = exp(max - logsumexp) = 1 / sum_k exp(z_k - max)
            logits = self._logits(chunk)
            top = logits.amax(dim=1, keepdim=True)
            return logits.sub_(top).exp_().sum(dim=1).reciprocal_()

        return msp


def _logsumexp(values: torch.Tensor) -> torch.Tensor:
    """Row-wise log-sum-exp, shifted by the row maximum; overwrites ``values``.

    In place on the (rows x K) block: torch.logsumexp measured 4-5x slower on float64
    (2 CPU threads, K = 100), which made the energy score cost more than its matrix product.
    """
    top = values.amax(dim=1, keepdim=True)
    return values.sub_(top).exp_().sum(dim=1).log_().add_(top.squeeze(1))
