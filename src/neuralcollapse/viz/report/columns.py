"""How the report's tables name a column: the schema's label, its unit and a tooltip."""

from __future__ import annotations

from neuralcollapse import schema
from neuralcollapse.train.epoch_measures import (
    AGOP_CORRELATION,
    AGOP_CORRELATION_SQRT,
    AGOP_IN_FEATURES,
    AGOP_INPUT_LAYER,
    OPTIMUM_ANGLE,
)
from neuralcollapse.viz.html import Column

#: what an empty cell of a column means when it is not "not computed"
_MISSING_MEANS = {"tpt_epoch": "zero training error not reached"}


# columns of the run files that are not metrics: how the tables name them
_OTHER_COLUMNS: dict[str, Column] = {
    column.key: column
    for column in (
        Column("run", kind="text"),
        Column("description", "setting", kind="text"),
        Column("split", kind="text"),
        Column("layer", kind="text"),
        Column("epoch"),
        Column("epochs_done", "epochs done"),
        Column("finished"),
        Column("tpt_epoch", "TPT epoch", "first epoch with zero training error"),
        Column("measured_epoch", "last measured epoch"),
        Column(schema.LR, "learning rate"),
        Column(schema.TRAIN_LOSS, "train loss"),
        Column(schema.TEST_LOSS, "test loss"),
        Column(
            schema.TRAIN_ERROR, "train error", "fraction of misclassified samples", percent=True
        ),
        Column(schema.TEST_ERROR, "test error", "fraction of misclassified samples", percent=True),
        Column(schema.NOT_COMPUTED, "not computed because", kind="text"),
        Column("check", kind="text"),
        Column("expected", "theory expects", kind="text"),
        Column("measured", kind="text"),
        Column("verdict", kind="verdict"),
        Column("last_epoch", "last epoch"),
        Column("terminal_epochs", "epochs in the TPT", "last epoch minus the TPT epoch"),
        Column(
            "accuracy_tpt", "test accuracy at TPT", "at the first zero-error epoch", percent=True
        ),
        Column("accuracy_last", "test accuracy at the end", "at the last epoch", percent=True),
        Column(
            "accuracy_change",
            "test accuracy change",
            "at the end minus at the TPT, in percentage points",
            percent=True,
        ),
        Column("loss_tpt", "test loss at TPT", "at the first zero-error epoch"),
        Column("loss_last", "test loss at the end", "at the last epoch"),
        Column("loss_change", "test loss change", "at the end minus at the TPT"),
        Column("means_epoch", "epoch of the means", "last epoch the class means were gathered"),
        Column(
            OPTIMUM_ANGLE,
            "best known smallest angle (°)",
            "the largest smallest angle of K unit vectors in d dimensions: exact where known, "
            "else the best of the solver's restarts (a lower bound); summary.json's "
            "spherical_code",
        ),
        Column(
            AGOP_INPUT_LAYER,
            "input measured at",
            "the layer whose output this linear layer reads (its NC1 is beside it); — : the "
            "network's input",
            kind="text",
        ),
        Column(AGOP_IN_FEATURES, "d_in", "width of the linear layer's input"),
        Column(
            AGOP_CORRELATION,
            "corr(WᵀW, AGOP)",
            "<W^T W, AGOP>_F / (||W^T W||_F ||AGOP||_F): 1 iff proportional (the neural "
            "feature ansatz, alpha = 1)",
        ),
        Column(
            AGOP_CORRELATION_SQRT,
            "corr(WᵀW, AGOP^½)",
            "the same with the AGOP's square root (alpha = 1/2)",
        ),
    )
}


def metric_unit(key: str) -> str:
    """The unit of a metric for a table header: "%" for fractions (shown as percentages),
    "feature units²" for variances, "" for dimensionless ones.

    Read from the schema entry: its ``unit`` field when it has one, else its description.
    """
    spec = schema.METRICS[key]
    unit = getattr(spec, "unit", None)
    if unit is not None:
        return str(unit)
    if "fraction" in spec.description:
        return "%"
    if "squared feature units" in spec.description:
        return "feature units²"
    return ""


def metric_column(key: str, *, suffix: str = "", table_key: str | None = None) -> Column:
    """How a table shows a metric: the schema's label (plus ``suffix``), its unit, a tooltip."""
    spec = schema.METRICS[key]
    unit = metric_unit(key)
    header = spec.label + suffix
    if unit and unit != "%":
        header += f" ({unit})"
    note = spec.description
    if spec.lower_is_better is not None:
        note += "; lower is better" if spec.lower_is_better else "; higher is better"
    return Column(table_key or key, header, note, percent=unit == "%")


def run_column(key: str) -> Column:
    """How a table shows a column of :data:`neuralcollapse.schema.RUN_COLUMNS` (losses,
    DeepFool, MSE terms, group accuracies, minority cosines): its label and description;
    fractions and accuracies as percentages."""
    spec = schema.RUN_COLUMNS[key]
    note = spec.description
    if spec.lower_is_better is not None:
        note += "; lower is better" if spec.lower_is_better else "; higher is better"
    percent = "fraction" in spec.description or schema.ACCURACY in key
    return Column(key, spec.label, note, percent=percent)


def table_column(key: str) -> Column:
    """The :class:`Column` of any key of the report's tables (metric or run column)."""
    if key in schema.METRICS:
        return metric_column(key)
    if key.endswith("_pre") and key[: -len("_pre")] in schema.METRICS:
        return metric_column(key[: -len("_pre")], suffix=", pre-ReLU", table_key=key)
    if key not in _OTHER_COLUMNS and key in schema.RUN_COLUMNS:
        return run_column(key)
    return _OTHER_COLUMNS.get(key, Column(key))
