"""``CollapseMetric``: neural collapse behind the ``torchmetrics.Metric`` API, in one pass.

``update(features, labels)`` per batch, ``compute()`` -> :class:`~neuralcollapse.metrics.
CollapseMetrics`, ``reset()``; the states are sums declared with ``dist_reduce_fx="sum"``,
so under DDP torchmetrics' own sync all-reduces them and every rank computes the metrics of
all the data. Needs ``torchmetrics`` (``pip install torchmetrics``; it comes with
``neuralcollapse[lightning]``).

**One pass.** :func:`~neuralcollapse.measure` and :func:`~neuralcollapse.integrations.
measure_model` take two passes: class means first, then every sample's distance to its own
mean. A Metric sees each batch once, so it keeps sufficient statistics from which the
second pass's sums follow exactly (float64, per class ``k`` with ``n_k`` samples)::

    counts[k]       = n_k
    sums[k]         = sum_{i in k} h_i                   (K x d)
    square_norms[k] = sum_{i in k} ||h_i||^2             (K)
    second_moment   = sum_i h_i h_i^T                    (d x d)

    within_ss[k] = square_norms[k] - ||sums[k]||^2 / n_k          (sum_{i in k} ||h_i - mu_k||^2)
    S_W          = second_moment - sum_k sums[k] sums[k]^T / n_k  (N Sigma_W)
    NC1          = Tr(Sigma_W Sigma_B^+) / K = Tr(S^-1 V^T S_W V S^-1) / N

with ``M^T = U S V^T`` the thin SVD of the centred class means (``Sigma_B^+ = K V S^-2 V^T``),
which is how the engine defines NC1 (:mod:`neuralcollapse.metrics.collapse`). Every metric
of the class means, NC1, its trace ratio, the CDNV, the within-class variance, the
classifier's NC2 / NC3 and the per-class table equal ``measure``'s.

**Not in one pass:** ``ncc_accuracy``, ``ncc_mismatch`` (NC4) and ``accuracy`` decide each
sample against the final class means (and the classifier at compute time), which a single
pass does not know while it sees the sample. They are None; :data:`NOT_AVAILABLE` says why.

**Memory and precision.** The d x d second moment is the cost of one pass: 8 d^2 bytes
(4.7 MB at d = 768, 134 MB at d = 4096), gathered from every rank at a DDP sync, against
the O(K d) of ``measure_model``'s two passes. Subtracting squared sums (rather than centring
each sample on its class mean) loses digits when the within-class spread is tiny against
the features' norms -- late in training, exactly where neural collapse lives: about
``-log10(Tr Sigma_W / mean ||h||^2)`` of float64's 16 digits. A
:class:`OnePassPrecisionWarning` says when fewer than ~10 remain; ``measure_model`` is exact
there. docs/integrations.md says when to prefer which.
"""

from __future__ import annotations

import dataclasses
import functools
import math
import warnings
from collections.abc import Callable, Sequence
from typing import Any

import torch
from torch import nn

from neuralcollapse import schema
from neuralcollapse.checks import check_int
from neuralcollapse.integrations.callback_support import METRIC_GROUPS, resolve_metrics
from neuralcollapse.metrics.collapse import (
    DEFAULT_UNIFORMITY_KERNELS,
    CollapseMetrics,
    compute_metrics,
)
from neuralcollapse.metrics.stats import CentredStats, ClassStats, MeanGeometry, check_rtol
from neuralcollapse.metrics.validation import check_num_classes

try:
    from torchmetrics import Metric
except ModuleNotFoundError as error:  # pragma: no cover - torchmetrics comes with lightning
    raise ModuleNotFoundError(
        "CollapseMetric needs the torchmetrics package: pip install torchmetrics "
        "(or pip install 'neuralcollapse[lightning]')",
        name=error.name,
    ) from error

#: metric key -> why one pass cannot give it (it is None in ``compute()``'s result)
NOT_AVAILABLE: dict[str, str] = dict.fromkeys(
    METRIC_GROUPS["NC4"],
    "needs a second pass: each sample is decided against the final class means (or the "
    "classifier at compute time); use measure_model (two passes) for it",
)

#: below this fraction Tr Sigma_W / mean ||h||^2 fewer than ~10 digits of the one-pass
#: within-class statistics are left (float64 keeps ~16)
_PRECISION_FLOOR = 1e-6


class OnePassPrecisionWarning(UserWarning):
    """The within-class spread is so small against the features that one pass loses digits."""


class _Opaque:
    """Carries compute()'s result through torchmetrics' wrapper, which would otherwise try
    to rebuild the frozen CollapseMetrics dataclass field by field (and refuse)."""

    __slots__ = ("value",)

    def __init__(self, value: Any) -> None:
        self.value = value


class CollapseMetric(Metric):
    """Neural-collapse metrics of streamed ``(features, labels)`` batches (module docstring).

    Parameters
    ----------
    num_classes : K >= 2; labels are class indices in [0, K), and every class needs a sample
        by ``compute()``.
    dim : feature dimension d (the states are allocated now: the d x d second moment is
        ``8 d^2`` bytes).
    classifier : the final linear layer (any module with ``weight`` (K, d) and optional
        ``bias``), read at ``compute()``: NC2 of the weights and NC3. Kept as a reference,
        not as a submodule (it stays out of this metric's ``state_dict``).
    weights, bias : the classifier as tensors instead.
    uniformity_kernels, tile_size, rtol : as in :func:`neuralcollapse.measure`.
    kwargs : torchmetrics' own (``dist_sync_on_step``, ``process_group``, ``sync_on_compute``,
        ...).

    Examples
    --------
    >>> metric = CollapseMetric(num_classes=10, dim=512, classifier=net.fc)  # doctest: +SKIP
    >>> for x, y in loader:                                                   # doctest: +SKIP
    ...     metric.update(net.features(x), y)
    >>> metric.compute().nc1                                                  # doctest: +SKIP
    """

    full_state_update = False
    is_differentiable = False
    higher_is_better = None

    counts: torch.Tensor
    sums: torch.Tensor
    square_norms: torch.Tensor
    second_moment: torch.Tensor
    input_eps: torch.Tensor

    def __init__(
        self,
        num_classes: int,
        dim: int,
        *,
        classifier: nn.Module | None = None,
        weights: torch.Tensor | None = None,
        bias: torch.Tensor | None = None,
        uniformity_kernels: Sequence[str] = DEFAULT_UNIFORMITY_KERNELS,
        tile_size: int | None = None,
        rtol: float | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.num_classes = check_num_classes(num_classes)
        self.dim = check_int("dim", dim, minimum=1, meaning="feature dimension")
        if classifier is not None and weights is not None:
            raise ValueError("pass classifier= or weights= (with bias=), not both")
        if classifier is not None and not isinstance(
            getattr(classifier, "weight", None), torch.Tensor
        ):
            raise ValueError(
                f"classifier must have a weight tensor (an nn.Linear); got "
                f"{type(classifier).__name__}"
            )
        # a tuple, so that nn.Module does not register the classifier as a submodule
        self._classifier = (classifier,) if classifier is not None else ()
        self.weights = None if weights is None else torch.as_tensor(weights).detach()
        self.bias = None if bias is None else torch.as_tensor(bias).detach()
        self.uniformity_kernels = tuple(uniformity_kernels)
        self.tile_size = tile_size
        self.rtol = None if rtol is None else check_rtol(rtol)
        k, d, f64 = self.num_classes, self.dim, torch.float64
        self.add_state("counts", torch.zeros(k, dtype=torch.int64), dist_reduce_fx="sum")
        self.add_state("sums", torch.zeros(k, d, dtype=f64), dist_reduce_fx="sum")
        self.add_state("square_norms", torch.zeros(k, dtype=f64), dist_reduce_fx="sum")
        self.add_state("second_moment", torch.zeros(d, d, dtype=f64), dist_reduce_fx="sum")
        # machine epsilon of the least precise features seen (RoundingLevelWarning, as measure)
        eps = torch.tensor(torch.finfo(f64).eps, dtype=f64)
        self.add_state("input_eps", eps, dist_reduce_fx="max")

    # ------------------------------------------------------------------ accumulate

    def update(self, features: torch.Tensor, labels: torch.Tensor) -> None:
        """Add a batch: ``features`` (B, d) of any float dtype, ``labels`` (B,) in [0, K)."""
        features = torch.as_tensor(features)
        labels = torch.as_tensor(labels)
        if features.ndim != 2 or features.shape[1] != self.dim:
            raise ValueError(
                f"features must have shape (batch, {self.dim}); got {tuple(features.shape)} "
                "(pool or flatten them first, e.g. features.flatten(1))"
            )
        if not features.is_floating_point():
            raise ValueError(f"features must be floating point; got {features.dtype}")
        if labels.ndim != 1 or labels.shape[0] != features.shape[0]:
            raise ValueError(
                f"labels must have shape ({features.shape[0]},), one class index per row of "
                f"features; got {tuple(labels.shape)}"
            )
        if labels.is_floating_point() or labels.is_complex() or labels.dtype == torch.bool:
            raise ValueError(f"labels must be integer class indices; got {labels.dtype}")
        device = self.sums.device
        labels = labels.to(device=device, dtype=torch.int64)
        if labels.numel() and (int(labels.min()) < 0 or int(labels.max()) >= self.num_classes):
            raise ValueError(
                f"labels must lie in [0, {self.num_classes}); got values from "
                f"{int(labels.min())} to {int(labels.max())}"
            )
        rows = features.detach().to(device=device, dtype=torch.float64)
        if not bool(torch.isfinite(rows).all()):
            raise ValueError("features contain NaN or inf")
        self.counts += torch.bincount(labels, minlength=self.num_classes)
        self.sums.index_add_(0, labels, rows)
        self.square_norms.index_add_(0, labels, (rows * rows).sum(dim=1))
        self.second_moment.addmm_(rows.T, rows)
        eps = torch.finfo(features.dtype).eps
        self.input_eps.clamp_(min=eps)

    def forward(self, features: torch.Tensor, labels: torch.Tensor) -> None:
        """Accumulate the batch (as :meth:`update`); returns None.

        A batch alone rarely holds every class, so a per-batch value of the metrics would be
        undefined or meaningless: ``compute()`` at the end of the epoch gives them.
        """
        self.update(features, labels)

    # ------------------------------------------------------------------ compute

    def _wrap_compute(self, compute: Callable) -> Callable:
        """torchmetrics' compute wrapper (sync, cache), with the result carried opaquely."""
        wrapped = super()._wrap_compute(lambda: _Opaque(compute()))

        @functools.wraps(compute)
        def unwrapped() -> Any:
            return wrapped().value

        return unwrapped

    def _classifier_tensors(self) -> tuple[torch.Tensor | None, torch.Tensor | None]:
        if self._classifier:
            (module,) = self._classifier
            bias = getattr(module, "bias", None)
            return module.weight.detach(), None if bias is None else bias.detach()
        return self.weights, self.bias

    def compute(self) -> CollapseMetrics:
        """Every metric one pass gives, as :func:`neuralcollapse.measure` defines it.

        ``ncc_accuracy``, ``ncc_mismatch`` and ``accuracy`` are None (:data:`NOT_AVAILABLE`).
        Raises ValueError when no sample was seen, or some class has none.
        """
        counts = self.counts
        if int(counts.sum()) == 0:
            raise ValueError("CollapseMetric has seen no samples: call update() first")
        device = self.sums.device
        class_stats = ClassStats(self.num_classes, dim=self.dim, device=device)
        class_stats.counts.copy_(counts)
        class_stats.sums.copy_(self.sums)
        class_stats.input_eps = float(self.input_eps)
        geometry = MeanGeometry.from_means(
            class_stats.means(), overwrite=True, rtol=self.rtol, input_eps=class_stats.input_eps
        )
        # the second pass's sums from the one-pass statistics; the geometry holds the data
        # divided by the power of two ``scale`` (1 but for extreme magnitudes)
        float_counts = counts.to(torch.float64)
        within_ss = self.square_norms - (self.sums * self.sums).sum(dim=1) / float_counts
        within_ss = within_ss.clamp(min=0.0)
        self._check_precision(within_ss)
        root_weighted = self.sums / float_counts.sqrt().unsqueeze(1)  # sums_k / sqrt(n_k)
        scatter = self.second_moment - root_weighted.T @ root_weighted  # N Sigma_W
        scaled_basis = geometry.basis / geometry.singular_values  # V S^-1 (scaled units)
        inverse_square_scale = 1.0 / (geometry.scale * geometry.scale)
        projected = float((scaled_basis * (scatter @ scaled_basis)).sum()) * inverse_square_scale
        weights, bias = self._classifier_tensors()
        centred = CentredStats(
            geometry, weights, bias, nearest_centre=False, tile_size=self.tile_size
        )
        centred.counts.copy_(counts)
        centred.within_ss.copy_(within_ss * inverse_square_scale)
        # compute_metrics reads only the total of projected_ss (NC1); one pass cannot split
        # Tr(S^-1 V^T S_W V S^-1) by class without a d x d moment per class
        centred.projected_ss.zero_()
        centred.projected_ss[0] = max(projected, 0.0)
        result = compute_metrics(
            None, centred, uniformity_kernels=self.uniformity_kernels, tile_size=self.tile_size
        )
        return dataclasses.replace(result, **dict.fromkeys(NOT_AVAILABLE))

    def _check_precision(self, within_ss: torch.Tensor) -> None:
        """Warn when the within-class spread is at the cancellation level of one pass."""
        norms = float(self.square_norms.sum())
        if norms == 0.0:
            return
        fraction = float(within_ss.sum()) / norms
        if fraction >= _PRECISION_FLOOR:
            return
        digits = max(0.0, 16.0 + math.log10(fraction)) if fraction > 0 else 0.0
        warnings.warn(
            f"the within-class variance is {fraction:.1e} of the mean squared feature norm: "
            f"the one-pass statistics keep about {digits:.0f} of its 16 digits (NC1, the CDNV "
            "and the within-class variance follow that rounding); measure_model's two "
            "passes centre each sample on its class mean and stay exact here",
            OnePassPrecisionWarning,
            stacklevel=3,
        )

    # ------------------------------------------------------------------ logging

    def scalars(
        self,
        result: CollapseMetrics | None = None,
        *,
        split: str | None = None,
        layer: str = schema.PENULTIMATE,
        metrics: str | Sequence[str] | None = None,
    ) -> dict[str, float]:
        """``{"nc/<split>/<layer>/<metric>": value}`` for ``self.log_dict`` (or any logger).

        ``result`` default ``self.compute()``; ``metrics`` as the callbacks' (keys and group
        names, default NC1-NC4 in the five numbers of
        :data:`~neuralcollapse.integrations.callback_support.DEFAULT_METRICS`; those one
        pass cannot give are left out). The names are the callbacks' own
        (:func:`neuralcollapse.schema.scalar_logs`).
        """
        result = self.compute() if result is None else result
        keys = resolve_metrics(metrics)
        return schema.scalar_logs({layer: result}, split=split, keys=keys)


__all__ = ["NOT_AVAILABLE", "CollapseMetric", "OnePassPrecisionWarning"]
