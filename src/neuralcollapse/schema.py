"""The metric contract: one owner for every metric's name, meaning and serialised form.

Everything that writes or reads a metric goes through here: the run logs of
``neuralcollapse train`` and of :class:`neuralcollapse.integrations.CollapseTracker`, the
names the Lightning / Hugging Face callbacks and TensorBoard log under, ``--json`` output,
and the test fixtures. A metric added to :class:`~neuralcollapse.metrics.CollapseMetrics`
without an entry in :data:`METRICS` fails ``tests/test_schema.py``.

**Strict JSON.** JSON has no NaN or infinity, and Python's ``json`` writes the invalid
tokens ``NaN`` / ``Infinity`` unless told not to. The one rule, everywhere:

- a finite float is a JSON number;
- ``+inf``, ``-inf`` and NaN are the *strings* ``"Infinity"``, ``"-Infinity"``, ``"NaN"``
  (a real value that is not finite, e.g. an unbounded coefficient of variation);
- ``null`` means *not computed* (the metric does not apply: no classifier given, no second
  pass, or it failed at that point), and a row may say why in its ``"not_computed"`` object
  (metric key, or ``"*"`` for the whole row, to a reason).

:func:`dumps` writes that form with ``allow_nan=False`` (so a slip is an error, never an
invalid file) and :func:`decode_value` reads it back.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

#: the input of the final linear classifier (after the last ReLU in the project's nets)
PENULTIMATE_POST = "penultimate_post"
#: the same features before the final ReLU (the project's nets only)
PENULTIMATE_PRE = "penultimate_pre"
#: the classifier's input in any model (``measure_model(..., classifier=...)``)
PENULTIMATE = "penultimate"
#: layer names that mean "the classifier's input", in any run directory
PENULTIMATE_NAMES = (PENULTIMATE_POST, PENULTIMATE)

#: key of the per-row object that maps a metric key ("*" for all) to why it is not computed
NOT_COMPUTED = "not_computed"

_NON_FINITE = {"Infinity": math.inf, "-Infinity": -math.inf, "NaN": math.nan}


@dataclass(frozen=True)
class MetricSpec:
    """What one scalar metric is.

    key : the field of CollapseMetrics and the column in every log.
    label : how figures and tables name it (the paper's name where there is one).
    description : one line, with the unit.
    lower_is_better : direction of collapse (True when the metric falls to its limit).
    etf, orthogonal : the value at exact collapse onto a simplex ETF with an aligned classifier,
        and onto an orthogonal frame (MSE without bias, Tirer & Bruna 2022); a float, a
        string naming a function of K (see :func:`theory_value`), or None (no fixed value).
    needs : what it needs beyond the class means: "classifier", "second_pass",
        "nearest_centre", "ood", "" (nothing).
    """

    key: str
    label: str
    description: str
    lower_is_better: bool | None = True
    etf: float | str | None = 0.0
    orthogonal: float | str | None = None
    needs: str = ""


def _spec(key, label, description, *, lower=True, etf=0.0, orthogonal=None, needs=""):
    return MetricSpec(key, label, description, lower, etf, orthogonal, needs)


#: every scalar metric of CollapseMetrics, in its field order
METRICS: dict[str, MetricSpec] = {
    spec.key: spec
    for spec in (
        _spec("num_classes", "K", "number of classes", lower=None, etf=None),
        _spec("num_samples", "N", "number of samples", lower=None, etf=None),
        _spec("dim", "d", "feature dimension", lower=None, etf=None),
        _spec(
            "nc1",
            "NC1",
            "Tr(Sigma_W Sigma_B^+)/K, within- over between-class variability",
            orthogonal=0.0,
            needs="second_pass",
        ),
        _spec(
            "nc1_trace_ratio",
            "Tr Σ_W / Tr Σ_B",
            "pseudo-inverse-free NC1",
            orthogonal=0.0,
            needs="second_pass",
        ),
        _spec("cdnv", "CDNV", "class-distance normalised variance", orthogonal=0.0),
        _spec(
            "within_class_variance",
            "Tr Σ_W",
            "within-class variance (squared feature units)",
            etf=None,
            needs="second_pass",
        ),
        _spec(
            "between_class_variance",
            "Tr Σ_B",
            "between-class variance (squared feature units)",
            lower=None,
            etf=None,
        ),
        _spec("equinorm_means", "NC2 equinorm (means)", "std/mean of ||m_k||", orthogonal=0.0),
        _spec(
            "equinorm_weights",
            "NC2 equinorm (weights)",
            "std/mean of ||w_k||",
            orthogonal=0.0,
            needs="classifier",
        ),
        _spec(
            "equiangular_means",
            "NC2 equiangularity (means)",
            "std of cos(m_k, m_k')",
            orthogonal=0.0,
        ),
        _spec(
            "equiangular_weights",
            "NC2 equiangularity (weights)",
            "std of cos(w_k, w_k')",
            orthogonal=0.0,
            needs="classifier",
        ),
        _spec(
            "maxangle_means",
            "NC2 max-angle (means)",
            "mean |cos(m_k, m_k') + 1/(K-1)|",
            orthogonal=0.0,
        ),
        _spec(
            "maxangle_weights",
            "NC2 max-angle (weights)",
            "mean |cos(w_k, w_k') + 1/(K-1)|",
            orthogonal="maxangle_of_orthogonal",
            needs="classifier",
        ),
        _spec(
            "etf_gap_means",
            "ETF gap (means)",
            "||G/||G||_F - ETF||_F of the centred means",
            orthogonal=0.0,
        ),
        _spec(
            "etf_gap_weights",
            "ETF gap (weights)",
            "||G/||G||_F - ETF||_F of the classifier rows",
            orthogonal="of_etf_distance",
            needs="classifier",
        ),
        _spec(
            "of_gap_means",
            "OF gap (means)",
            "||G/||G||_F - I/sqrt(K)||_F of the uncentred means",
            etf="of_etf_distance",
            orthogonal=0.0,
        ),
        _spec(
            "of_gap_weights",
            "OF gap (weights)",
            "||G/||G||_F - I/sqrt(K)||_F of the classifier rows",
            etf="of_etf_distance",
            orthogonal=0.0,
            needs="classifier",
        ),
        _spec(
            "global_mean_ratio",
            "||μ_G|| / mean ||μ_k||",
            "size of the global mean against the class means",
            lower=None,
            orthogonal="inverse_sqrt_k",
        ),
        _spec(
            "self_duality",
            "NC3",
            "||W^T/||W|| - M/||M||||^2 against the centred means",
            needs="classifier",
        ),
        _spec(
            "self_duality_uncentred",
            "NC3 (uncentred)",
            "the same against the uncentred means",
            etf=None,
            orthogonal=0.0,
            needs="classifier",
        ),
        _spec(
            "ncc_mismatch",
            "NC4",
            "fraction where the classifier and the nearest class centre disagree",
            orthogonal=0.0,
            needs="nearest_centre",
        ),
        _spec(
            "ncc_accuracy",
            "NCC accuracy",
            "accuracy of the nearest-class-centre rule (fraction)",
            lower=False,
            etf=None,
            needs="nearest_centre",
        ),
        _spec(
            "accuracy",
            "accuracy",
            "accuracy of the classifier (fraction)",
            lower=False,
            etf=None,
            needs="classifier",
        ),
        _spec(
            "gnc2_dist_mean",
            "GNC2 mean distance",
            "mean ||u_k - u_k'|| of unit centred means",
            lower=False,
            etf="etf_unit_distance",
        ),
        _spec("gnc2_dist_var", "GNC2 distance variance", "variance of ||u_k - u_k'||"),
        _spec(
            "gnc2_log_mean",
            "GNC2 log kernel",
            "mean log(1/||u_k - u_k'||)",
            etf="etf_log_kernel",
        ),
        _spec("gnc2_log_var", "GNC2 log-kernel variance", "variance of log(1/||u_k - u_k'||)"),
        _spec(
            "gnc2_riesz_log_mean",
            "GNC2 Riesz energy",
            "log mean ||u_k - u_k'||^-(d-2)",
            etf=None,
        ),
        _spec("unc3", "UNC3", "variance over classes of <w_k, m_k>", needs="classifier"),
        _spec("unc3_cv", "UNC3 (CV)", "coefficient of variation of <w_k, m_k>", needs="classifier"),
        _spec("nc5", "NC5", "mean |cos(mu_k, mu_OOD)|", etf=None, needs="ood"),
    )
}


@dataclass(frozen=True)
class ColumnSpec:
    """A run-log column that is not a CollapseMetrics field (losses, robustness, MSE terms)."""

    key: str
    label: str
    description: str
    lower_is_better: bool | None = None


#: every other column ``neuralcollapse train`` writes into epochs.jsonl / metrics.jsonl
RUN_COLUMNS: dict[str, ColumnSpec] = {
    spec.key: spec
    for spec in (
        ColumnSpec("train_loss", "train loss", "mean training loss", True),
        ColumnSpec("train_error", "train error", "training error (fraction)", True),
        ColumnSpec("test_loss", "test loss", "mean test loss", True),
        ColumnSpec("test_error", "test error", "test error (fraction)", True),
        ColumnSpec("lr", "learning rate", "learning rate of the epoch"),
        ColumnSpec(
            "deepfool_ratio",
            "DeepFool ‖r‖/‖x‖",
            "mean minimal DeepFool perturbation relative to the image norm",
            False,
        ),
        ColumnSpec(
            "deepfool_ratio_correct",
            "DeepFool ‖r‖/‖x‖ (correct)",
            "the same over correctly classified images only",
            False,
        ),
        ColumnSpec(
            "deepfool_failed_fraction",
            "DeepFool not fooled",
            "fraction of images the attack did not fool within its step limit",
        ),
        ColumnSpec("deepfool_count", "DeepFool images", "images attacked"),
        ColumnSpec("deepfool_succeeded", "DeepFool fooled", "images fooled"),
        ColumnSpec("deepfool_accuracy", "subset accuracy", "accuracy on the attacked subset"),
        ColumnSpec("deepfool_mean_steps", "DeepFool steps", "mean steps to fool"),
        ColumnSpec("deepfool_seconds", "DeepFool time", "seconds of the measurement"),
        ColumnSpec("mse_loss", "MSE loss", "MSE loss of the network's classifier", True),
        ColumnSpec("mse_nc1", "L_NC1", "Han et al.'s within-class term", True),
        ColumnSpec("mse_nc2_3", "L_NC2/3", "Han et al.'s class-mean term", True),
        ColumnSpec("mse_ls_perp", "L_LS⊥", "distance of the classifier from least squares", True),
        ColumnSpec("mse_loss_ls", "L_LS", "loss of the least-squares classifier", True),
        ColumnSpec("mse_ridge", "ridge λ", "ridge penalty of the least-squares classifier"),
        ColumnSpec(
            "accuracy_majority", "accuracy (majority)", "accuracy over the majority classes", False
        ),
        ColumnSpec(
            "accuracy_minority", "accuracy (minority)", "accuracy over the minority classes", False
        ),
        ColumnSpec(
            "minority_cosine_weights",
            "minority cosine (W)",
            "mean pairwise cosine of the minority classifier rows (Fang et al. 2021)",
        ),
        ColumnSpec(
            "minority_cosine_means",
            "minority cosine (means)",
            "mean pairwise cosine of the minority centred class means",
        ),
    )
}

#: the metrics that describe the data rather than its collapse (no figure draws them)
SIZE_KEYS = ("num_classes", "num_samples", "dim")


def theory_value(key: str, frame: str, num_classes: int) -> float | None:
    """The value of ``key`` at exact collapse onto ``frame`` ("etf" or "orthogonal") for K classes.

    None where theory fixes no value (sizes, variances in feature units, accuracies).
    """
    spec = METRICS[key]
    if frame not in ("etf", "orthogonal"):
        raise ValueError(f"frame must be 'etf' or 'orthogonal'; got {frame!r}")
    value = spec.etf if frame == "etf" else spec.orthogonal
    if value is None or isinstance(value, float):
        return value
    k = num_classes
    if value == "of_etf_distance":  # ||(I-J)/sqrt(K-1) - I/sqrt(K)||_F: see geometry
        return math.sqrt(max(0.0, 2.0 - 2.0 * math.sqrt((k - 1) / k)))
    if value == "inverse_sqrt_k":
        return 1.0 / math.sqrt(k)
    if value == "maxangle_of_orthogonal":  # every cosine 0: |0 + 1/(K-1)|
        return 1.0 / (k - 1)
    if value == "etf_unit_distance":  # ||u_k - u_k'||^2 = 2 - 2 (-1/(K-1)) = 2K/(K-1)
        return math.sqrt(2.0 * k / (k - 1))
    if value == "etf_log_kernel":
        return -0.5 * math.log(2.0 * k / (k - 1))
    raise AssertionError(f"unknown theory value {value!r} for {key}")


# ----------------------------------------------------------------------------- strict JSON


def encode_value(value: Any) -> Any:
    """A value in the strict-JSON form: non-finite floats as strings, containers recursively.

    NumPy and torch scalars become Python numbers (``.item()``).
    """
    # NumPy / torch scalars (checked by module so that this file need not import torch)
    if (
        type(value).__module__.split(".")[0] in ("numpy", "torch")
        and getattr(value, "shape", None) == ()
    ):
        value = value.item()
    if isinstance(value, float):
        if math.isfinite(value):
            return value
        if math.isnan(value):
            return "NaN"
        return "Infinity" if value > 0 else "-Infinity"
    if isinstance(value, Mapping):
        return {str(k): encode_value(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [encode_value(v) for v in value]
    return value


def decode_value(value: Any) -> Any:
    """Inverse of :func:`encode_value` for one value: the three strings back to floats."""
    if isinstance(value, str) and value in _NON_FINITE:
        return _NON_FINITE[value]
    return value


def decode_row(row: Mapping[str, Any]) -> dict[str, Any]:
    """A row read from a log, with the non-finite strings turned back into floats."""
    return {k: decode_value(v) for k, v in row.items()}


def dumps(content: Any, **kwargs: Any) -> str:
    """``json.dumps`` of the strict-JSON form; raises rather than write NaN/Infinity tokens."""
    return json.dumps(encode_value(content), allow_nan=False, **kwargs)


def metric_row(metrics: Any, reason: str | None = None) -> dict[str, Any]:
    """The scalar metrics of one result as a log row (keys in schema order).

    ``metrics`` is a CollapseMetrics, or None when nothing could be computed; then every
    key is null and ``reason`` is recorded under ``not_computed["*"]``.
    """
    if metrics is None:
        if not reason:
            raise ValueError("a row with no metrics needs the reason they were not computed")
        return {**{key: None for key in METRICS}, NOT_COMPUTED: {"*": reason}}
    row = metrics.to_dict()
    return {key: row.get(key) for key in METRICS}


def scalar_logs(
    results: Mapping[str, Any], *, prefix: str = "nc", split: str | None = None
) -> dict[str, float]:
    """Flat ``{"nc/<layer>/<key>": value}`` for loggers (TensorBoard, Lightning, Trainer).

    ``results`` maps a layer name to a CollapseMetrics (or None: not computed, skipped).
    Sizes and metrics that are None are left out: a logger has no "not computed".
    With ``split`` the names are ``nc/<split>/<layer>/<key>``.
    """
    logs: dict[str, float] = {}
    for layer, metrics in results.items():
        if metrics is None:
            continue
        head = "/".join(part for part in (prefix, split, layer) if part)
        for key, value in metrics.to_dict().items():
            if value is None or key in SIZE_KEYS:
                continue
            logs[f"{head}/{key}"] = float(value)
    return logs


__all__ = [
    "METRICS",
    "RUN_COLUMNS",
    "ColumnSpec",
    "MetricSpec",
    "NOT_COMPUTED",
    "PENULTIMATE",
    "PENULTIMATE_NAMES",
    "PENULTIMATE_POST",
    "PENULTIMATE_PRE",
    "SIZE_KEYS",
    "decode_row",
    "decode_value",
    "dumps",
    "encode_value",
    "metric_row",
    "scalar_logs",
    "theory_value",
]
