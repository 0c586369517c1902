"""The law of data separation: separation fuzziness decays geometrically with depth.

He & Su ("A law of data separation in deep learning", PNAS 2023) measure, at the output of
every layer l of a trained network, the *separation fuzziness*

    D_l = Tr(SS_W^l (SS_B^l)^+),
    SS_W = (1/N) sum_k sum_{i in k} (h_i - mu_k)(h_i - mu_k)^T,
    SS_B = (1/N) sum_k n_k (mu_k - h_bar)(mu_k - h_bar)^T,

with ``h_bar`` the mean of all N samples, so ``SS_B`` weighs class k by ``n_k / N``. They find
``D_l ~ rho^l D_0``: a straight line ``log D_l = a + l log rho`` (0 < rho < 1), the same
decay ratio rho for every layer. :func:`fit_separation_law` fits it by least squares and
reports rho, R^2 and the per-layer residuals.

Relation to our NC1 (docs/metrics.md): ``nc1 = Tr(Sigma_W Sigma_B^+) / K`` with the same
``Sigma_W = SS_W`` but ``Sigma_B = (1/K) sum_k (mu_k - mu_G)(mu_k - mu_G)^T``, ``mu_G`` the mean
of the class means (every class weighs 1/K). On *balanced* classes (``n_k = N/K``) the two
between-class matrices are equal (then ``h_bar = mu_G``), so ``D_l = K * nc1`` exactly. On
imbalanced classes they differ (both share the span of the centred means, not its metric):
:func:`separation_fuzziness` computes He & Su's D itself (``weighting="samples"``), or
``K * nc1`` (``weighting="classes"``), from the features, without a d x d matrix.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import torch

from neuralcollapse import schema
from neuralcollapse.measures.scatter import sum_across_processes
from neuralcollapse.metrics import ClassStats, CollapseMetrics
from neuralcollapse.metrics.stats import check_chunk_rows, default_chunk_rows
from neuralcollapse.metrics.validation import (
    ArrayLike,
    BatchSource,
    check_batch,
    check_num_classes,
    checked_batches,
)

WEIGHTINGS = ("samples", "classes")


@dataclass(frozen=True)
class SeparationFit:
    """Least-squares fit of ``log D_l = a + l log rho`` over the layers.

    Attributes
    ----------
    layers : layer names, in depth order.
    positions : the depth index l of each layer (default 1, 2, ...).
    fuzziness : D_l of each layer.
    rho : the decay ratio ``exp(slope)``; < 1 when fuzziness falls with depth.
    intercept : a, so that the fitted D at depth l is ``exp(a) * rho**l``.
    r_squared : coefficient of determination of the fit on the log scale (equal to the
        squared Pearson correlation He & Su report); 1.0 when every log D_l is equal.
    residuals : ``log D_l - (a + l log rho)`` per layer (natural log).
    """

    layers: tuple[str, ...]
    positions: tuple[float, ...]
    fuzziness: tuple[float, ...]
    rho: float
    intercept: float
    r_squared: float
    residuals: tuple[float, ...]

    def fitted(self, positions: Sequence[float] | np.ndarray | None = None) -> np.ndarray:
        """The fitted ``exp(a) rho^l`` at ``positions`` (default: the layers' own)."""
        at = np.asarray(self.positions if positions is None else positions, dtype=float)
        return np.exp(self.intercept + at * math.log(self.rho))

    def to_dict(self) -> dict:
        """JSON-ready (strict: every number is finite)."""
        return {
            "layers": list(self.layers),
            "positions": list(self.positions),
            "fuzziness": list(self.fuzziness),
            "rho": self.rho,
            "intercept": self.intercept,
            "r_squared": self.r_squared,
            "residuals": list(self.residuals),
        }


def fuzziness_from_metrics(metrics: CollapseMetrics | Mapping) -> float:
    """``D = K * nc1 = Tr(Sigma_W Sigma_B^+)`` of a measured layer (He & Su's D on balanced data).

    ``metrics``: a :class:`~neuralcollapse.metrics.CollapseMetrics` or its ``to_dict()`` (a
    training log row), measured with the second pass (``nc1`` not None).
    """
    nc1, classes = _field(metrics, schema.NC1), _field(metrics, schema.NUM_CLASSES)
    if nc1 is None or classes is None:
        raise ValueError(
            "these metrics have no nc1 (or no num_classes): measure the layer with both "
            "passes (measure / measure_batches), not from class means alone"
        )
    return float(classes) * float(nc1)


def _field(metrics: CollapseMetrics | Mapping, name: str):
    if isinstance(metrics, Mapping):
        return metrics.get(name)
    return getattr(metrics, name, None)


def _layer_values(
    layers: Mapping[str, CollapseMetrics | Mapping | float] | Sequence[float],
) -> tuple[list[str], list[float]]:
    if isinstance(layers, Mapping):
        names, items = [str(name) for name in layers], list(layers.values())
    elif isinstance(layers, (str, bytes)) or not isinstance(layers, Sequence | np.ndarray):
        raise ValueError(
            "layers must be a mapping layer-name -> CollapseMetrics (or metrics dict, or D) "
            f"in depth order, or a sequence of D values; got {type(layers).__name__}"
        )
    else:
        items = list(layers)
        names = [f"layer{index + 1}" for index in range(len(items))]
    sizes = {}
    values = []
    for name, item in zip(names, items, strict=True):
        if isinstance(item, (int, float, np.floating, np.integer)) and not isinstance(item, bool):
            values.append(float(item))
            continue
        values.append(fuzziness_from_metrics(item))
        count = _field(item, schema.NUM_SAMPLES)
        if count is not None:
            sizes[name] = int(count)
    if len(set(sizes.values())) > 1:
        shown = ", ".join(f"{name}: N={count}" for name, count in sizes.items())
        raise ValueError(
            f"the layers were measured on different numbers of samples ({shown}); the law "
            "compares layers on the same data — measure every layer on the same samples"
        )
    return names, values


def fit_separation_law(
    layers: Mapping[str, CollapseMetrics | Mapping | float] | Sequence[float],
    *,
    positions: Sequence[float] | None = None,
) -> SeparationFit:
    """Fit He & Su's law ``log D_l = a + l log rho`` by ordinary least squares.

    Parameters
    ----------
    layers : in depth order, either a mapping layer-name -> the layer's metrics
        (:class:`~neuralcollapse.metrics.CollapseMetrics` or its ``to_dict()``, from which
        ``D_l = K * nc1``: He & Su's D on balanced classes, see the module docstring) or
        -> D_l itself; or a plain sequence of D_l values.
    positions : the depth index of each layer (default 1, 2, ..., L).

    Returns
    -------
    :class:`SeparationFit` with rho, R^2 and the per-layer residuals.

    Raises
    ------
    ValueError : fewer than 2 layers (no fit possible), layers measured on different N,
        a D_l that is not finite and > 0 (log D undefined; exact collapse gives D = 0),
        positions of the wrong length or all equal.

    References
    ----------
    He & Su, "A law of data separation in deep learning", PNAS 120 (2023) e2221704120.
    """
    names, values = _layer_values(layers)
    if len(values) < 2:
        raise ValueError(
            f"the law of data separation needs at least 2 layers to fit a decay ratio; got "
            f"{len(values)} — pass the metrics of every layer (e.g. --layers all in training)"
        )
    for name, value in zip(names, values, strict=True):
        if not (math.isfinite(value) and value > 0):
            raise ValueError(
                f"separation fuzziness of layer {name!r} is {value!r}; the fit is on log D and "
                "needs every D finite and > 0 (D = 0 is exact collapse) — drop that layer"
            )
    at = np.arange(1, len(values) + 1, dtype=float) if positions is None else None
    if positions is not None:
        at = np.asarray(positions, dtype=float)
        if at.shape != (len(values),) or not np.all(np.isfinite(at)):
            raise ValueError(
                f"positions must be {len(values)} finite numbers, one per layer; got {positions!r}"
            )
        if np.ptp(at) == 0:
            raise ValueError("positions are all equal; give each layer its depth index")
    logs = np.log(np.asarray(values))
    design = np.column_stack([np.ones_like(at), at])
    (intercept, slope), *_ = np.linalg.lstsq(design, logs, rcond=None)
    residuals = logs - (intercept + slope * at)
    total = float(np.sum((logs - logs.mean()) ** 2))
    r_squared = 1.0 if total == 0 else 1.0 - float(np.sum(residuals**2)) / total
    return SeparationFit(
        layers=tuple(names),
        positions=tuple(float(p) for p in at),
        fuzziness=tuple(values),
        rho=float(math.exp(slope)),
        intercept=float(intercept),
        r_squared=r_squared,
        residuals=tuple(float(r) for r in residuals),
    )


def separation_fuzziness(
    features: ArrayLike,
    labels: ArrayLike,
    *,
    num_classes: int | None = None,
    weighting: str = "samples",
    batch_size: int | None = None,
) -> float:
    """Separation fuzziness ``D = Tr(SS_W SS_B^+)`` of one layer, without a d x d matrix.

    ``weighting="samples"``: He & Su's ``SS_B`` (class k weighs ``n_k/N``, centred on the
    sample mean); ``"classes"``: our ``Sigma_B`` (1/K each, centred on the mean of the class
    means), which gives ``K * nc1``. The two agree on balanced classes.

    Method: ``SS_B = B^T B`` with the K rows of B ``sqrt(w_k) (mu_k - c)``; its thin SVD
    ``B = U S V^T`` (rank r <= K-1) gives ``SS_B^+ = V S^-2 V^T`` and
    ``D = (1/N) sum_i ||S^-1 V^T (h_i - mu_{y_i})||^2``: one (N x d)(d x r) projection.
    The rank cut-off is ``torch.linalg.pinv``'s on the d x d ``SS_B`` (``d * eps`` relative).
    """
    weighting = _check_weighting(weighting)
    rows = check_chunk_rows(batch_size)
    batch = check_batch(features, labels, num_classes)  # the passes take it unchecked
    return _fuzziness(batch, batch.num_classes, weighting, rows)


def separation_fuzziness_batches(
    make_batches: BatchSource,
    *,
    num_classes: int,
    weighting: str = "samples",
    batch_size: int | None = None,
    distributed: bool = False,
) -> float:
    """:func:`separation_fuzziness` of a stream (``make_batches()`` is read twice);
    ``distributed=True`` all-reduces every rank's sums (torchrun)."""
    weighting = _check_weighting(weighting)
    rows = check_chunk_rows(batch_size)
    return _fuzziness(make_batches, check_num_classes(num_classes), weighting, rows, distributed)


def _check_weighting(weighting: str) -> str:
    if weighting not in WEIGHTINGS:
        raise ValueError(f"unknown weighting {weighting!r}; choose one of {WEIGHTINGS}")
    return weighting


def _fuzziness(
    make_batches: BatchSource,
    num_classes: int,
    weighting: str,
    rows: int | None,
    distributed: bool = False,
) -> float:
    """The two passes of :func:`separation_fuzziness_batches`, its arguments checked."""
    stats = ClassStats(num_classes).update_from(make_batches)
    if distributed:
        stats.all_reduce()
    means = stats.means()
    counts = stats.counts.to(torch.float64)
    num_samples = float(counts.sum())
    if weighting == "samples":
        weights = counts / num_samples
        centre = weights @ means
    else:
        weights = torch.full_like(counts, 1.0 / num_classes)
        centre = means.mean(dim=0)
    factor = (means - centre) * weights.sqrt().unsqueeze(1)
    _, singular, right = torch.linalg.svd(factor, full_matrices=False)
    eigen = singular**2
    dim = means.shape[1]
    keep = eigen > dim * torch.finfo(torch.float64).eps * eigen.max()
    if not bool(keep.any()):
        raise ValueError("all class means are equal: SS_B = 0 and the fuzziness is undefined")
    scaled_basis = right[keep].T / singular[keep]
    total = 0.0
    rows = rows or default_chunk_rows(dim, means.device)
    for tensor, label_tensor in checked_batches(make_batches, num_classes, means.device):
        for start in range(0, tensor.shape[0], rows):
            chunk = tensor[start : start + rows].to(device=means.device, dtype=torch.float64)
            projected = (chunk - means[label_tensor[start : start + rows]]) @ scaled_basis
            total += float((projected * projected).sum())
    if distributed:
        total = float(sum_across_processes(torch.tensor([total], dtype=torch.float64))[0])
    if not math.isfinite(total):
        raise ValueError("features contain NaN or inf in the second pass")
    return total / num_samples
