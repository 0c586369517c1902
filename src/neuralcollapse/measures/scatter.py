"""Class means and the full within-class covariance, for the measures that need a d x d matrix.

The metrics engine (:mod:`neuralcollapse.metrics`) never forms a d x d matrix: NC1 only needs
the within-class scatter *inside* the span of the class means. Three measures here need the
whole of it, and say so where they use it:

- the tied-covariance Mahalanobis score (Lee et al., NeurIPS 2018) whitens with ``Sigma_W^+``;
- NECO (Ammar et al., ICLR 2024) needs the principal axes of the training features, i.e. the
  eigenvectors of the total covariance ``Sigma_T = Sigma_W + Sigma_B^(n)``;
- the ridge least-squares classifier of the MSE decomposition (Han, Papyan & Donoho, ICLR
  2022) is ``W_LS ~ M^T (Sigma_T + lambda I)^-1``: like Fisher's discriminant it uses every
  direction in which the noise correlates with the class-mean directions, so no projection
  onto the K-dimensional span of the means gives it exactly.

:class:`FeatureStatistics` holds those sums (float64). Pass 1 is the engine's
:class:`~neuralcollapse.metrics.ClassStats`; pass 2 accumulates
``S_W = sum_i (h_i - mu_{y_i})(h_i - mu_{y_i})^T`` a chunk at a time (one ``R^T R`` product per
chunk of residuals), centring each sample on its class mean before squaring, so the
within-class covariance stays exact when it is 1e-12 of the squared norms (collapse).
The total covariance comes from the exact identity ``S_T = S_W + sum_k n_k (mu_k - h_bar)
(mu_k - h_bar)^T`` with ``h_bar`` the sample mean: no third pass, and no cancellation.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from neuralcollapse.metrics import ClassStats
from neuralcollapse.metrics.stats import check_chunk_rows, default_chunk_rows
from neuralcollapse.metrics.validation import (
    ArrayLike,
    BatchSource,
    check_batch,
    check_num_classes,
    checked_batches,
)


@dataclass(frozen=True)
class FeatureStatistics:
    """Per-class counts and means and the within-class covariance of a set of features.

    Attributes
    ----------
    counts : (K,) int64, ``n_k``.
    means : (K, d) float64, ``mu_k``.
    within : (d, d) float64, ``Sigma_W = (1/N) sum_i (h_i - mu_{y_i})(h_i - mu_{y_i})^T``
        (every sample weighs 1/N, as in docs/metrics.md).
    """

    counts: torch.Tensor
    means: torch.Tensor
    within: torch.Tensor

    @property
    def num_classes(self) -> int:
        return int(self.means.shape[0])

    @property
    def dim(self) -> int:
        return int(self.means.shape[1])

    @property
    def num_samples(self) -> int:
        return int(self.counts.sum())

    @property
    def proportions(self) -> torch.Tensor:
        """(K,) ``p_k = n_k / N``."""
        return self.counts.to(torch.float64) / self.num_samples

    @property
    def sample_mean(self) -> torch.Tensor:
        """(d,) ``h_bar = sum_k p_k mu_k``, the mean of all samples (not of the class means)."""
        return self.proportions @ self.means

    def between_samples(self) -> torch.Tensor:
        """(d, d) ``sum_k p_k (mu_k - h_bar)(mu_k - h_bar)^T`` (classes weighted by size)."""
        centred = (self.means - self.sample_mean) * self.proportions.sqrt().unsqueeze(1)
        return centred.T @ centred

    def total(self) -> torch.Tensor:
        """(d, d) ``Sigma_T = Sigma_W + sum_k p_k (mu_k - h_bar)(mu_k - h_bar)^T``."""
        return self.within + self.between_samples()

    def second_moment(self) -> torch.Tensor:
        """(d, d) ``(1/N) sum_i h_i h_i^T = Sigma_W + sum_k p_k mu_k mu_k^T`` (uncentred)."""
        scaled = self.means * self.proportions.sqrt().unsqueeze(1)
        return self.within + scaled.T @ scaled


def feature_statistics(
    features: ArrayLike,
    labels: ArrayLike,
    *,
    num_classes: int | None = None,
    batch_size: int | None = None,
) -> FeatureStatistics:
    """:class:`FeatureStatistics` of in-memory ``features`` (N, d) with ``labels`` (N,).

    ``num_classes`` defaults to ``labels.max() + 1``; every class needs a sample.
    """
    rows = check_chunk_rows(batch_size)
    batch = check_batch(features, labels, num_classes)  # the passes take it unchecked
    return _statistics(batch, batch.num_classes, rows)


def sum_across_processes(tensor: torch.Tensor) -> torch.Tensor:
    """Sum ``tensor`` in place over the ``torch.distributed`` processes (no-op when not
    initialised), staged on a device the backend supports (CPU for gloo, CUDA for nccl)."""
    if not (torch.distributed.is_available() and torch.distributed.is_initialized()):
        return tensor
    backend = torch.distributed.get_backend()
    device = torch.device("cuda", torch.cuda.current_device()) if backend == "nccl" else "cpu"
    staged = tensor.to(device)
    torch.distributed.all_reduce(staged, op=torch.distributed.ReduceOp.SUM)
    return tensor.copy_(staged.to(tensor.device))


def feature_statistics_batches(
    make_batches: BatchSource,
    *,
    num_classes: int,
    batch_size: int | None = None,
    class_stats: ClassStats | None = None,
    distributed: bool = False,
) -> FeatureStatistics:
    """:class:`FeatureStatistics` of a stream: ``make_batches()`` is read twice.

    Pass 1 (skipped when ``class_stats`` of the same data is given) accumulates the class
    sums; pass 2 the within-class scatter around the now known means, in chunks of
    ``batch_size`` rows (default ~4 MB of float64 per chunk). ``distributed=True`` (under
    torchrun): each process streams its own shard and every sum is all-reduced, so every
    rank gets the statistics of all shards (a given ``class_stats`` must already hold them).
    """
    num_classes = check_num_classes(num_classes)
    rows = check_chunk_rows(batch_size)
    return _statistics(make_batches, num_classes, rows, class_stats, distributed)


def _statistics(
    make_batches: BatchSource,
    num_classes: int,
    rows: int | None,
    class_stats: ClassStats | None = None,
    distributed: bool = False,
) -> FeatureStatistics:
    """The two passes of :func:`feature_statistics_batches`, its arguments checked."""
    if class_stats is None:
        class_stats = ClassStats(num_classes).update_from(make_batches)
        if distributed:
            class_stats.all_reduce()
    means = class_stats.means()
    device = means.device
    dim = means.shape[1]
    within = torch.zeros(dim, dim, dtype=torch.float64, device=device)
    counts = torch.zeros(num_classes, dtype=torch.int64, device=device)
    rows = rows or default_chunk_rows(dim, device)
    for tensor, label_tensor in checked_batches(make_batches, num_classes, device):
        if tensor.shape[1] != dim:
            raise ValueError(
                f"features have dimension {tensor.shape[1]} in the second pass but {dim} in "
                "the first; make_batches() must yield the same data on both passes"
            )
        counts += torch.bincount(label_tensor, minlength=num_classes)
        for start in range(0, tensor.shape[0], rows):
            chunk = tensor[start : start + rows].to(device=device, dtype=torch.float64)
            residual = chunk - means[label_tensor[start : start + rows]]
            within.addmm_(residual.T, residual)
    if distributed:
        sum_across_processes(counts)
        sum_across_processes(within)
    if not torch.equal(counts, class_stats.counts.to(device)):
        raise ValueError(
            "the second pass saw other class counts than the first; make_batches() must "
            "yield the same data on both passes"
        )
    if not bool(torch.isfinite(within).all()):
        raise ValueError(
            "features contain NaN or inf in the second pass; make_batches() must yield the "
            "same (finite) data on both passes"
        )
    return FeatureStatistics(counts=counts, means=means, within=within / int(counts.sum()))
