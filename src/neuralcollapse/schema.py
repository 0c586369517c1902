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
from collections.abc import Collection, Mapping
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
    #: the group the column belongs to (:data:`COLUMN_GROUPS`)
    group: str = ""


def _column(key, label, description, lower=None, *, group):
    return ColumnSpec(key, label, description, lower, group)


#: every other column ``neuralcollapse train`` writes into epochs.jsonl / metrics.jsonl
RUN_COLUMNS: dict[str, ColumnSpec] = {
    spec.key: spec
    for spec in (
        _column("train_loss", "train loss", "mean training loss", True, group="training"),
        _column("train_error", "train error", "training error (fraction)", True, group="training"),
        _column("test_loss", "test loss", "mean test loss", True, group="training"),
        _column("test_error", "test error", "test error (fraction)", True, group="training"),
        _column("lr", "learning rate", "learning rate of the epoch", group="training"),
        _column(
            "deepfool_ratio",
            "DeepFool ‖r‖/‖x‖",
            "mean minimal DeepFool perturbation relative to the image norm",
            False,
            group="robustness",
        ),
        _column(
            "deepfool_ratio_correct",
            "DeepFool ‖r‖/‖x‖ (correct)",
            "the same over correctly classified images only",
            False,
            group="robustness",
        ),
        _column(
            "deepfool_failed_fraction",
            "DeepFool not fooled",
            "fraction of images the attack did not fool within its step limit",
            group="robustness",
        ),
        _column("deepfool_count", "DeepFool images", "images attacked", group="robustness"),
        _column("deepfool_succeeded", "DeepFool fooled", "images fooled", group="robustness"),
        _column(
            "deepfool_accuracy",
            "subset accuracy",
            "accuracy on the attacked subset",
            group="robustness",
        ),
        _column("deepfool_mean_steps", "DeepFool steps", "mean steps to fool", group="robustness"),
        _column(
            "deepfool_seconds", "DeepFool time", "seconds of the measurement", group="robustness"
        ),
        _column("mse_loss", "MSE loss", "MSE loss of the network's classifier", True, group="mse"),
        _column("mse_nc1", "L_NC1", "Han et al.'s within-class term", True, group="mse"),
        _column("mse_nc2_3", "L_NC2/3", "Han et al.'s class-mean term", True, group="mse"),
        _column(
            "mse_ls_perp",
            "L_LS⊥",
            "distance of the classifier from least squares",
            True,
            group="mse",
        ),
        _column("mse_loss_ls", "L_LS", "loss of the least-squares classifier", True, group="mse"),
        _column(
            "mse_ridge", "ridge λ", "ridge penalty of the least-squares classifier", group="mse"
        ),
        _column(
            "accuracy_majority",
            "accuracy (majority)",
            "accuracy over the majority classes",
            False,
            group="imbalance",
        ),
        _column(
            "accuracy_minority",
            "accuracy (minority)",
            "accuracy over the minority classes",
            False,
            group="imbalance",
        ),
        _column(
            "minority_cosine_weights",
            "minority cosine (W)",
            "mean pairwise cosine of the minority classifier rows (Fang et al. 2021)",
            group="imbalance",
        ),
        _column(
            "minority_cosine_means",
            "minority cosine (means)",
            "mean pairwise cosine of the minority centred class means",
            group="imbalance",
        ),
        _column(
            "spectra_top_eigenvalue",
            "G top eigenvalue",
            "largest eigenvalue of the Gauss-Newton matrix over --spectra-params",
            group="spectra",
        ),
        _column(
            "spectra_outliers",
            "G outliers",
            "eigenvalues above the spectrum's largest log-gap (Papyan 2020: C, C^2)",
            group="spectra",
        ),
        _column(
            "spectra_separation",
            "outlier separation",
            "that largest gap, in decades",
            False,
            group="spectra",
        ),
        _column("spectra_trace", "tr G", "Hutchinson estimate of the trace of G", group="spectra"),
        _column(
            "spectra_class_error",
            "class-means prediction error",
            "median relative error of the top eigenvalues against the C^2 x C^2 Gram of the "
            "class / cross-class means (Papyan 2020)",
            True,
            group="spectra",
        ),
        _column("spectra_seconds", "spectrum time", "seconds of the measurement", group="spectra"),
        _column(
            "code_angle_weights",
            "smallest angle of W's rows (°)",
            "smallest angle between two classifier rows, in degrees (K > d + 1: the Tammes / "
            "softmax-code objective; Jiang et al. 2023)",
            False,
            group="codes",
        ),
        _column(
            "code_angle_means",
            "smallest angle of the means (°)",
            "smallest angle between two centred training class means of the classifier's "
            "input, in degrees",
            False,
            group="codes",
        ),
        _column(
            "code_margin_means",
            "one-vs-rest margin of the means",
            "min over classes of <u_k, v_k - v_j> for the unit centred mean u_k against the unit "
            "classifier rows v_j, j != k (> 0: every mean is classified correctly)",
            False,
            group="codes",
        ),
        _column(
            "transfer_cdnv",
            "CDNV (new classes)",
            "class-distance normalised variance of the penultimate features of the classes "
            "withheld from training (Galanti et al. 2022)",
            True,
            group="transfer",
        ),
        _column(
            "transfer_error",
            "few-shot error (new classes)",
            "k-way m-shot nearest-class-centre error on the withheld classes, mean over random "
            "episodes",
            True,
            group="transfer",
        ),
        _column(
            "transfer_error_stderr",
            "few-shot error s.e.",
            "standard error of that mean over the episodes",
            group="transfer",
        ),
        _column(
            "transfer_bound",
            "few-shot bound",
            "min(1, (k - 1)(12 + 6/m) CDNV): the bound on the expected few-shot error "
            "(docs/theory.md)",
            True,
            group="transfer",
        ),
    )
}

#: the metrics that describe the data rather than its collapse (no figure draws them)
SIZE_KEYS = ("num_classes", "num_samples", "dim")

# ----------------------------------------------------------------------------- names and groups
# Consumers name a metric or a column through these constants and iterate over these groups,
# so that a key is spelt once, here (tests/test_schema_owns_names.py counts what is left).

#: single keys that consumers name on their own
NUM_CLASSES, NUM_SAMPLES, DIM = "num_classes", "num_samples", "dim"
NC1 = "nc1"
NC1_TRACE_RATIO, CDNV = "nc1_trace_ratio", "cdnv"
WITHIN_CLASS_VARIANCE, BETWEEN_CLASS_VARIANCE = "within_class_variance", "between_class_variance"
NCC_ACCURACY = "ncc_accuracy"
NCC_MISMATCH = "ncc_mismatch"
OF_GAP_MEANS, GLOBAL_MEAN_RATIO = "of_gap_means", "global_mean_ratio"
ETF_GAP_MEANS = "etf_gap_means"
ETF_GAP_WEIGHTS, OF_GAP_WEIGHTS = "etf_gap_weights", "of_gap_weights"
SELF_DUALITY, SELF_DUALITY_UNCENTRED = "self_duality", "self_duality_uncentred"
ACCURACY = "accuracy"
TRAIN_LOSS, TRAIN_ERROR, TEST_LOSS, TEST_ERROR, LR = (
    "train_loss",
    "train_error",
    "test_loss",
    "test_error",
    "lr",
)
DEEPFOOL_RATIO, DEEPFOOL_FAILED_FRACTION = "deepfool_ratio", "deepfool_failed_fraction"
MSE_LOSS, MSE_LS_PERP, MSE_LOSS_LS = "mse_loss", "mse_ls_perp", "mse_loss_ls"
ACCURACY_MAJORITY, ACCURACY_MINORITY = "accuracy_majority", "accuracy_minority"
MINORITY_COSINE_WEIGHTS, MINORITY_COSINE_MEANS = (
    "minority_cosine_weights",
    "minority_cosine_means",
)

#: the three measurements that name the frame of the class means (:mod:`neuralcollapse.frames`):
#: the OF gap of the uncentred means, the global-mean ratio, the ETF gap of the centred means
FRAME_KEYS: tuple[str, str, str] = (OF_GAP_MEANS, GLOBAL_MEAN_RATIO, ETF_GAP_MEANS)
#: the metrics that need the classifier (W, b)
CLASSIFIER_KEYS: tuple[str, ...] = tuple(k for k, s in METRICS.items() if s.needs == "classifier")
#: the GNC2 uniformity kernels of the unit centred means (Liu et al. 2023; docs/metrics.md)
UNIFORMITY_KEYS: tuple[str, ...] = tuple(k for k in METRICS if k.startswith("gnc2_"))
#: the NC2/NC3 measures read on both the class means and the classifier rows, as
#: (class means, classifier rows); self-duality as (centred means, uncentred means)
PAIRED_KEYS: tuple[tuple[str, str], ...] = (
    ("equinorm_means", "equinorm_weights"),
    ("equiangular_means", "equiangular_weights"),
    ("maxangle_means", "maxangle_weights"),
    (SELF_DUALITY, SELF_DUALITY_UNCENTRED),
    (ETF_GAP_MEANS, ETF_GAP_WEIGHTS),
    (OF_GAP_MEANS, OF_GAP_WEIGHTS),
)
#: the UFM's trajectory and sweep columns: the frame of the means, NC1, the classifier's frame
UFM_KEYS: tuple[str, ...] = (
    NC1,
    OF_GAP_MEANS,
    ETF_GAP_MEANS,
    GLOBAL_MEAN_RATIO,
    ETF_GAP_WEIGHTS,
    OF_GAP_WEIGHTS,
    SELF_DUALITY_UNCENTRED,
    ACCURACY,
)

#: the groups of :data:`RUN_COLUMNS` (``ColumnSpec.group``) and what they hold
COLUMN_GROUPS: dict[str, str] = {
    "training": "losses, errors and learning rate of every epoch",
    "robustness": "DeepFool on a fixed test subset (Moosavi-Dezfooli et al. 2016)",
    "mse": "Han, Papyan & Donoho's decomposition of the MSE loss (ICLR 2022)",
    "imbalance": "group accuracies and minority cosines (Fang et al. 2021)",
    "spectra": "the Gauss-Newton spectrum's outliers and their class structure (Papyan 2020)",
    "codes": "the geometry of K > d + 1 classes: smallest angles and margins (Jiang et al. 2023)",
    "transfer": "collapse and few-shot error on classes withheld from training (Galanti et al. "
    "2022)",
}


def column_group(group: str) -> tuple[str, ...]:
    """The keys of :data:`RUN_COLUMNS` in ``group`` (:data:`COLUMN_GROUPS`), in schema order."""
    if group not in COLUMN_GROUPS:
        raise ValueError(f"group must be one of {sorted(COLUMN_GROUPS)}; got {group!r}")
    return tuple(key for key, spec in RUN_COLUMNS.items() if spec.group == group)


#: (train, test) columns of the error and of the loss
ERROR_KEYS: tuple[str, str] = (TRAIN_ERROR, TEST_ERROR)
LOSS_KEYS: tuple[str, str] = (TRAIN_LOSS, TEST_LOSS)
#: the DeepFool columns of a per-epoch row (``DeepFoolResult.as_row``)
ROBUSTNESS_KEYS: tuple[str, ...] = column_group("robustness")
#: every MSE column: the loss, its three terms, the least-squares loss and ridge
MSE_KEYS: tuple[str, ...] = column_group("mse")
#: the three terms of the MSE loss: L_NC1 + L_NC2/3 + L_LS⊥ = MSE loss (Han et al. 2022)
MSE_TERM_KEYS: tuple[str, str, str] = ("mse_nc1", "mse_nc2_3", MSE_LS_PERP)
#: the spectral columns of a per-epoch row (``neuralcollapse train --track-spectra``)
SPECTRA_KEYS: tuple[str, ...] = column_group("spectra")
#: the many-class columns of a per-epoch row (runs whose penultimate width d < K - 1):
#: smallest angle of the classifier rows, of the centred means, the means' one-vs-rest margin
CODE_KEYS: tuple[str, ...] = column_group("codes")
#: the transfer columns of a per-epoch row (``neuralcollapse train --transfer-classes``):
#: CDNV of the withheld classes, few-shot error, its standard error, the bound
TRANSFER_KEYS: tuple[str, ...] = column_group("transfer")
#: test accuracy over the majority and the minority classes
GROUP_ACCURACY_KEYS: tuple[str, str] = (ACCURACY_MAJORITY, ACCURACY_MINORITY)
#: mean pairwise cosine of the minority classifier rows and centred class means
MINORITY_COSINE_KEYS: tuple[str, str] = (MINORITY_COSINE_WEIGHTS, MINORITY_COSINE_MEANS)
#: every imbalance column (group accuracies, then minority cosines)
IMBALANCE_KEYS: tuple[str, ...] = column_group("imbalance")


def label(key: str) -> str:
    """The short label of a metric or a run column (tables, figures, the CLI)."""
    spec = METRICS.get(key) or RUN_COLUMNS.get(key)
    if spec is None:
        raise KeyError(f"{key!r} is neither a metric nor a run column of the schema")
    return spec.label


def all_keys() -> frozenset[str]:
    """Every key the schema declares: the metrics and the run columns."""
    return frozenset(METRICS) | frozenset(RUN_COLUMNS)


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
    results: Mapping[str, Any],
    *,
    prefix: str = "nc",
    split: str | None = None,
    keys: Collection[str] | None = None,
) -> dict[str, float]:
    """Flat ``{"nc/<split>/<layer>/<key>": value}``: the one naming of every logger.

    The Lightning and Hugging Face callbacks, ``neuralcollapse train --tensorboard`` and
    :class:`~neuralcollapse.integrations.CollapseMetric` all log under these names.
    ``results`` maps a layer name to a CollapseMetrics (or None: not computed, skipped).
    Sizes and metrics that are None are left out: a logger has no "not computed".
    Without ``split`` the names are ``nc/<layer>/<key>``. ``keys``: log only these metric
    keys (default every one).

    One layer vocabulary: the classifier's input is ``penultimate`` whoever measured it, so
    ``neuralcollapse train``'s ``penultimate_post`` (the input of the final linear layer,
    after the last ReLU) is logged as ``penultimate``; its ``penultimate_pre`` (the same
    features before that ReLU, which only the project's own networks expose) keeps its name.
    Other layer names are logged as they are (``model.named_modules()`` names).
    """
    # the classifier's input has one name in every log (issue 24)
    logged_name = {PENULTIMATE_POST: PENULTIMATE}
    wanted = None if keys is None else frozenset(keys)
    logs: dict[str, float] = {}
    named: dict[str, str] = {}
    for layer, metrics in results.items():
        name = logged_name.get(layer, layer)
        if name in named:
            raise ValueError(
                f"layers {named[name]!r} and {layer!r} would both be logged as {name!r}: "
                "both are the classifier's input; measure it under one name"
            )
        named[name] = layer
        if metrics is None:
            continue
        head = "/".join(part for part in (prefix, split, name) if part)
        for key, value in metrics.to_dict().items():
            if value is None or key in SIZE_KEYS or (wanted is not None and key not in wanted):
                continue
            logs[f"{head}/{key}"] = float(value)
    return logs


__all__ = [
    "CLASSIFIER_KEYS",
    "CODE_KEYS",
    "COLUMN_GROUPS",
    "ERROR_KEYS",
    "FRAME_KEYS",
    "GROUP_ACCURACY_KEYS",
    "IMBALANCE_KEYS",
    "LOSS_KEYS",
    "METRICS",
    "MINORITY_COSINE_KEYS",
    "MSE_KEYS",
    "MSE_TERM_KEYS",
    "PAIRED_KEYS",
    "ROBUSTNESS_KEYS",
    "TRANSFER_KEYS",
    "UFM_KEYS",
    "UNIFORMITY_KEYS",
    "all_keys",
    "column_group",
    "label",
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
