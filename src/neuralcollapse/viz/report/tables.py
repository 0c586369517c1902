"""The rows of the report's tables, and adding a table whose constant columns are named in
its caption rather than shown."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

from neuralcollapse import schema
from neuralcollapse.viz.html import Column, NotComputed, cell_text
from neuralcollapse.viz.report.columns import _MISSING_MEANS, table_column
from neuralcollapse.viz.report.values import (
    _epoch_series,
    _last_with,
    _table_value,
    generalisation_entry,
    has_imbalance,
)
from neuralcollapse.viz.runs import PENULTIMATE_POST, PENULTIMATE_PRE, TrainingRun
from neuralcollapse.viz.training_figures import tpt_epoch

#: CollapseMetrics columns shown in the summary table (the CSV of all layers has every column):
#: NC1, the NC2 measures of the class means, the two self-dualities, NC4, the OF gap and the
#: global-mean ratio
SUMMARY_METRICS: tuple[str, ...] = (
    schema.NC1,
    *(means for means, _ in schema.PAIRED_KEYS[:3]),
    *schema.PAIRED_KEYS[3],
    schema.NCC_MISMATCH,
    *schema.FRAME_KEYS[:2],
)


def summary_rows(runs: Sequence[TrainingRun]) -> list[dict]:
    """One row per run: status, final errors and the main metrics at the last measured epoch."""
    rows = []
    for run in runs:
        summary = run.summary or {}
        final_epoch = summary.get("final") or (run.epochs[-1] if run.epochs else {})
        post = run.last_row(layer=PENULTIMATE_POST) or {}
        pre = run.last_row(layer=PENULTIMATE_PRE) or {}
        row: dict[str, object] = {
            "run": run.name,
            "description": run.describe(),
            "epochs_done": summary.get("epochs_done", final_epoch.get("epoch")),
            "finished": summary.get("finished"),
            "tpt_epoch": tpt_epoch(run),
            schema.TRAIN_ERROR: final_epoch.get(schema.TRAIN_ERROR, post.get(schema.TRAIN_ERROR)),
            schema.TEST_ERROR: final_epoch.get(schema.TEST_ERROR, post.get(schema.TEST_ERROR)),
            "measured_epoch": post.get("epoch"),
        }
        for key in SUMMARY_METRICS:
            row[key] = _table_value(post, key)
        row["of_gap_means_pre"] = _table_value(pre, schema.OF_GAP_MEANS)
        row["global_mean_ratio_pre"] = _table_value(pre, schema.GLOBAL_MEAN_RATIO)
        rows.append(row)
    return rows


def final_metric_rows(runs: Sequence[TrainingRun]) -> list[dict]:
    """The last measured row of every (run, split, layer), all columns.

    Non-finite values are floats (the strings of the run files decoded), nulls a row explains
    are :class:`NotComputed`, and the row's ``not_computed`` object becomes a text column.
    """
    rows = []
    for run in runs:
        for split in run.splits:
            for layer in run.layers:
                last = run.last_row(layer=layer, split=split)
                if last is None:
                    continue
                row: dict[str, object] = {"run": run.name}
                for key in last:
                    if key != schema.NOT_COMPUTED:
                        row[key] = _table_value(last, key)
                why = last.get(schema.NOT_COMPUTED)
                if isinstance(why, Mapping) and why:
                    row[schema.NOT_COMPUTED] = "; ".join(
                        str(reason) if key == "*" else f"{key}: {reason}"
                        for key, reason in why.items()
                    )
                rows.append(row)
    return rows


def constant_columns(
    rows: Sequence[Mapping[str, object]], columns: Sequence[Column]
) -> list[Column]:
    """The columns that show the same text in every row (none for a table of fewer than 2)."""
    if len(rows) < 2:
        return []
    return [
        column
        for column in columns
        if len({cell_text(row.get(column.key), column) for row in rows}) == 1
    ]


def _constants_sentence(rows: Sequence[Mapping[str, object]], constant: Sequence[Column]) -> str:
    if not constant:
        return ""
    missing = [c.title for c in constant if rows[0].get(c.key) is None]
    not_computed = [c.title for c in constant if isinstance(rows[0].get(c.key), NotComputed)]
    same = [
        f"{c.title} = {cell_text(rows[0].get(c.key), c)}"
        for c in constant
        if c.title not in missing and c.title not in not_computed
    ]
    # a missing value that means something else than "not computed" (e.g. no TPT epoch)
    special = [c for c in constant if c.title in missing and c.key in _MISSING_MEANS]
    missing = [title for title in missing if title not in {c.title for c in special}]
    parts = []
    if same:
        parts.append("Same in every row (column left out): " + "; ".join(same) + ".")
    for column in special:
        parts.append(f"{column.title}: {_MISSING_MEANS[column.key]} in any row.")
    if not_computed + missing:
        parts.append("Not computed in any row: " + ", ".join(not_computed + missing) + ".")
    return " " + " ".join(parts)


def _special_cells_sentence(rows: Sequence[Mapping[str, object]], columns: Sequence[Column]) -> str:
    """Which cells are infinite or not computed, so that the caption matches the table."""
    infinite, not_computed = [], []
    for row in rows:
        where = ", ".join(str(row[k]) for k in ("run", "split", "layer") if row.get(k) is not None)
        for column in columns:
            value = row.get(column.key)
            if isinstance(value, float) and math.isinf(value):
                infinite.append(f"{column.title} ({where})")
        if row.get(schema.NOT_COMPUTED):
            not_computed.append(f"{where}: {row[schema.NOT_COMPUTED]}")
    parts = []
    if infinite:
        parts.append("Infinite (∞): " + "; ".join(infinite) + ".")
    if not_computed:
        parts.append("Rows with metrics not computed: " + "; ".join(not_computed) + ".")
    return (" " + " ".join(parts)) if parts else ""


def _add_table(
    section,
    name: str,
    rows: Sequence[dict],
    caption: str,
    keys: Sequence[str],
    *,
    missing: str = "not computed (e.g. classifier metrics of layers the classifier does not read)",
) -> None:
    """Add a table whose page view leaves out constant columns and says what they held.

    ``missing`` says what an empty cell ("—") means in this table.
    """
    columns = [table_column(key) for key in keys]
    constant = constant_columns(rows, columns)
    shown = [c for c in columns if c not in constant]
    caption += _constants_sentence(rows, constant) + _special_cells_sentence(rows, shown)
    caption += f" Fractions are shown as percentages; — : {missing}."
    section.add_table(name, rows, caption, columns=columns, shown=shown)


def _final_columns(rows: Sequence[dict]) -> list[str]:
    leading = ["run", "split", "layer", "epoch", schema.TRAIN_ERROR, schema.TEST_ERROR, schema.NC1]
    seen = dict.fromkeys(key for row in rows for key in row)
    trailing = [schema.NOT_COMPUTED] if schema.NOT_COMPUTED in seen else []
    middle = [key for key in seen if key not in leading and key not in trailing]
    return leading + middle + trailing


#: the MSE table: every MSE column of the schema
MSE_TABLE_KEYS = ("run", "epoch", *schema.MSE_KEYS)
GENERALISATION_KEYS = (
    "run",
    "tpt_epoch",
    "last_epoch",
    "accuracy_tpt",
    "accuracy_last",
    "accuracy_change",
    "loss_tpt",
    "loss_last",
    "loss_change",
)


#: the imbalance table: the schema's imbalance columns, and the epoch of the class means
IMBALANCE_TABLE_KEYS = ("run", "epoch", *schema.IMBALANCE_KEYS, "means_epoch")


def mse_rows(runs: Sequence[TrainingRun]) -> list[dict]:
    """The MSE terms of each MSE run at its last epoch where they were computed."""
    rows = []
    for run in runs:
        last = _last_with(run, schema.MSE_TERM_KEYS)
        if last is None:
            continue
        row: dict[str, object] = {"run": run.name, "epoch": last["epoch"]}
        for key in MSE_TABLE_KEYS[2:]:
            row[key] = _table_value(last, key)
        rows.append(row)
    return rows


def generalisation_rows(runs: Sequence[TrainingRun]) -> list[dict]:
    """One row per run: test accuracy and loss at the TPT and at the end, and the change.

    Cells of a run that never reached zero training error are "not reached"; other missing
    values are "not computed", with the reason as the tooltip.
    """
    rows = []
    for run in runs:
        entry, source = generalisation_entry(run)
        row: dict[str, object] = {"run": run.name}
        if entry is None:
            for key in GENERALISATION_KEYS[1:]:
                row[key] = NotComputed(source)
            rows.append(row)
            continue
        reasons = entry.get(schema.NOT_COMPUTED) or {}
        reached = entry.get("tpt_epoch") is not None
        for key in GENERALISATION_KEYS[1:]:
            value = schema.decode_value(entry.get(key))
            if value is None:
                reason = str(reasons.get(key, reasons.get("*", "")))
                never = not reached and entry.get("last_epoch") is not None
                value = NotComputed(reason, label="not reached" if never else "not computed")
            row[key] = value
        rows.append(row)
    return rows


def imbalance_rows(runs: Sequence[TrainingRun]) -> list[dict]:
    """Each imbalanced run's group accuracies and minority cosines at its last epoch (the
    cosine of the means at the last epoch it was gathered)."""
    rows = []
    for run in runs:
        if not has_imbalance(run):
            continue
        last = run.epochs[-1] if run.epochs else {}
        means = _epoch_series(run, schema.MINORITY_COSINE_MEANS)
        row: dict[str, object] = {"run": run.name, "epoch": last.get("epoch")}
        for key in IMBALANCE_TABLE_KEYS[2:5]:
            row[key] = _table_value(last, key)
        row[schema.MINORITY_COSINE_MEANS] = means[-1][1] if means else None
        row["means_epoch"] = means[-1][0] if means else None
        rows.append(row)
    return rows
