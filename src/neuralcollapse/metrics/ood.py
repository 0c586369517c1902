"""The mean of out-of-distribution features, for NC5 (Ammar et al., "NECO", ICLR 2024)."""

from __future__ import annotations

import torch

from neuralcollapse.metrics.stats import FLOAT64_EPS, ClassStats, default_chunk_rows
from neuralcollapse.metrics.validation import ArrayLike, check_features, check_finite_chunk

OODFeatures = torch.Tensor | ClassStats


def check_ood_dimension(ood_features: ArrayLike | ClassStats, dim: int) -> OODFeatures:
    """The OOD features checked (shape and dtype; values when summed) and of dimension ``dim``.

    Returns the checked (N_ood, d) tensor, or the ClassStats as given, for
    :func:`checked_ood_mean`: called before a pass over the data, it fails early on
    features of another layer, and its result is not checked again.
    """
    if isinstance(ood_features, ClassStats):
        checked, ood_dim = ood_features, ood_features.dim
    else:
        checked = check_features(ood_features, "ood_features", check_values=False)
        ood_dim = checked.shape[1]
    if ood_dim is not None and ood_dim != dim:
        raise ValueError(
            f"ood_features have dimension {ood_dim} but the features have dimension "
            f"{dim}; pass OOD features from the same layer of the same network"
        )
    return checked


def checked_ood_mean(ood_features: OODFeatures, device: torch.device) -> torch.Tensor:
    """``mu_OOD``, the plain mean of the OOD features (d,), float64 on ``device``.

    ``ood_features`` is what :func:`check_ood_dimension` returned: an (N_ood, d) tensor,
    summed in float64 a chunk at a time (its NaN/inf are caught here, chunk by chunk), or a
    :class:`ClassStats` accumulated over OOD batches (any labels: its total sum over its
    total count is used), which is how a stream of OOD data is passed.

    A mean no larger than the rounding of the float64 sum that made it (``|sum_j| <=
    terms * eps_64 * sum_i |x_ij|``, coordinate by coordinate: features ``o`` and ``-o``
    give ~1e-17 instead of 0) is returned as exactly 0: its direction is noise, and NC5 then
    says so as it does for a mean that is exactly 0 (issue 23). A ClassStats keeps only its
    per-class sums, so there the bound uses them (cancellation inside one class's sum cannot
    be seen afterwards: pass the features themselves when their mean may be ~0).
    """
    if isinstance(ood_features, ClassStats):
        if not ood_features.initialised or ood_features.num_samples == 0:
            raise ValueError("the OOD ClassStats has seen no data; update it with OOD features")
        # the per-class sums are the terms this total adds
        total, count = ood_features.sums.sum(dim=0), ood_features.num_samples
        magnitude, terms = ood_features.sums.abs().sum(dim=0), ood_features.num_classes
    else:
        total = torch.zeros(ood_features.shape[1], dtype=torch.float64, device=device)
        magnitude = torch.zeros_like(total)
        rows = default_chunk_rows(ood_features.shape[1], device)
        for start in range(0, ood_features.shape[0], rows):
            chunk = ood_features[start : start + rows].to(device=device, dtype=torch.float64)
            check_finite_chunk(chunk, "ood_features", offset=start)
            total += chunk.sum(dim=0)
            magnitude += chunk.abs().sum(dim=0)
        count = terms = ood_features.shape[0]
    rounding = max(terms, 2) * FLOAT64_EPS * magnitude.to(total.device)
    if bool((total.abs() <= rounding).all()):
        total = torch.zeros_like(total)
    return (total / count).to(device)
