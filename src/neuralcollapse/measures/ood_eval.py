"""How well a score separates in-distribution from out-of-distribution samples.

Convention: the **in-distribution samples are the positive class** and every score is
"higher = more in-distribution" (as in :mod:`.ood_scores`), the convention of the NECO and
OpenOOD evaluations. All three numbers come from scikit-learn's metrics:

- ``auroc``: area under the ROC curve, ``sklearn.metrics.roc_auc_score`` (the probability
  that a random ID sample scores above a random OOD one, ties counting 1/2; symmetric in
  which class is positive).
- ``aupr_in`` / ``aupr_out``: area under the precision-recall curve with ID positive
  (scores as they are) / with OOD positive (scores negated), as average precision
  (``sklearn.metrics.average_precision_score``, the step-wise sum, no interpolation).
- ``fpr_at_95_tpr``: the fraction of OOD samples accepted as ID at the highest threshold that
  keeps at least 95 % of the ID samples (the first point of ``sklearn.metrics.roc_curve``,
  with every threshold, whose true-positive rate reaches 0.95).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from sklearn.metrics import average_precision_score, roc_auc_score, roc_curve

from neuralcollapse.measures._checks import check_fraction
from neuralcollapse.metrics.validation import ArrayLike


@dataclass(frozen=True)
class OODEvaluation:
    """AUROC, AUPR (ID and OOD positive) and FPR at 95 % TPR of one score."""

    auroc: float
    aupr_in: float
    aupr_out: float
    fpr_at_95_tpr: float
    num_id: int
    num_ood: int
    tpr_level: float = 0.95

    def to_dict(self) -> dict[str, float | int]:
        return {
            "auroc": self.auroc,
            "aupr_in": self.aupr_in,
            "aupr_out": self.aupr_out,
            "fpr_at_95_tpr": self.fpr_at_95_tpr,
            "num_id": self.num_id,
            "num_ood": self.num_ood,
            "tpr_level": self.tpr_level,
        }


def _scores(values: ArrayLike, name: str) -> np.ndarray:
    if isinstance(values, torch.Tensor):
        values = values.detach().cpu().to(torch.float64).numpy()
    try:
        array = np.asarray(values, dtype=np.float64)
    except (TypeError, ValueError) as error:
        raise ValueError(
            f"{name} must be a 1-D array of numbers; got {type(values).__name__}"
        ) from error
    if array.ndim != 1:
        raise ValueError(
            f"{name} must be a 1-D array of scores (one per sample); got shape {array.shape}"
        )
    if array.shape[0] < 2:
        raise ValueError(
            f"{name} has {array.shape[0]} sample(s); AUROC, AUPR and FPR95 need at least 2 "
            "in-distribution and 2 out-of-distribution samples — score more samples"
        )
    bad = np.flatnonzero(~np.isfinite(array))
    if bad.size:
        raise ValueError(
            f"{name} contains NaN or inf ({bad.size} value(s), first at index {bad[0]}); the "
            "features behind them were not finite — fix or drop those samples"
        )
    return array


def evaluate_ood(
    id_scores: ArrayLike, ood_scores: ArrayLike, *, tpr_level: float = 0.95
) -> OODEvaluation:
    """Evaluate one score: ``id_scores`` of in-distribution samples, ``ood_scores`` of OOD ones.

    Both are 1-D, finite, at least 2 samples each; higher means "more in-distribution".
    ``tpr_level`` (default 0.95) is the true-positive rate of the FPR number.
    """
    inside = _scores(id_scores, "id_scores")
    outside = _scores(ood_scores, "ood_scores")
    tpr_level = check_fraction(
        "tpr_level",
        tpr_level,
        zero=False,
        one=True,
        meaning="the true-positive rate the FPR is read at",
        hint="Use 0.95 for FPR95.",
    )
    truth = np.concatenate([np.ones(inside.size), np.zeros(outside.size)])
    values = np.concatenate([inside, outside])
    false_pos, true_pos, _ = roc_curve(truth, values, drop_intermediate=False)
    reached = int(np.argmax(true_pos >= tpr_level - 1e-12))
    return OODEvaluation(
        auroc=float(roc_auc_score(truth, values)),
        aupr_in=float(average_precision_score(truth, values)),
        aupr_out=float(average_precision_score(1 - truth, -values)),
        fpr_at_95_tpr=float(false_pos[reached]),
        num_id=int(inside.size),
        num_ood=int(outside.size),
        tpr_level=tpr_level,
    )
