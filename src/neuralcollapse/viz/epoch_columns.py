"""Reading a run's per-epoch columns for the report's measure sections (transfer, many
classes): values as logged (strict-JSON strings decoded), series over the tracked epochs, the
reasons a value was not computed, and the table cell that shows one."""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence

import numpy as np

from neuralcollapse import schema
from neuralcollapse.viz.html import NotComputed
from neuralcollapse.viz.runs import TrainingRun


def number(value: object) -> float | None:
    """A logged value as a float (the schema's strings decoded); None when absent."""
    value = schema.decode_value(value)
    if value is None or isinstance(value, bool):
        return None
    try:
        return float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return None


def epoch_series(run: TrainingRun, key: str) -> list[tuple[int, float]]:
    """``(epoch, value)`` of an ``epochs.jsonl`` column where it is a finite number, by epoch
    (untracked epochs hold None and are skipped)."""
    series = []
    for row in sorted(run.epochs, key=lambda row: row["epoch"]):
        value = number(row.get(key))
        if value is not None and math.isfinite(value):
            series.append((int(row["epoch"]), value))
    return series


def arrays(series: Sequence[tuple[int, float]]) -> tuple[np.ndarray, np.ndarray]:
    """A series as (epochs, values) float arrays, for plotting."""
    return (
        np.array([e for e, _ in series], dtype=float),
        np.array([v for _, v in series], dtype=float),
    )


def not_computed_sentence(run: TrainingRun, keys: Sequence[str]) -> str:
    """The epochs at which one of ``keys`` was not computed, grouped by the reason given."""
    by_reason: dict[str, list[int]] = {}
    for row in sorted(run.epochs, key=lambda row: row["epoch"]):
        why = row.get(schema.NOT_COMPUTED)
        if not isinstance(why, Mapping):
            continue
        reasons = {str(why[key]) for key in keys if key in why}
        for reason in sorted(reasons):
            by_reason.setdefault(reason, []).append(int(row["epoch"]))
    return " ".join(
        f"Not computed at epoch(s) {', '.join(map(str, epochs))}: {reason}."
        for reason, epochs in by_reason.items()
    )


def epoch_axis_sentence(epoch_axis: str, epochs: Iterable[float]) -> str:
    """What the epoch axis is, for a caption (a measured epoch 0 forces a symmetric-log axis);
    every report caption that names its epoch axis says it with this sentence."""
    if epoch_axis == "linear":
        return "Epochs on a linear axis."
    finite = [e for e in epochs if math.isfinite(e)]
    if finite and min(finite) <= 0:
        return "Epochs on a symmetric-log axis (linear below epoch 1, as epoch 0 is measured)."
    return "Epochs on a log axis."


def cell(row: Mapping[str, object], key: str) -> object:
    """A row's value for a table; a null the row explains becomes :class:`NotComputed`."""
    value = schema.decode_value(row.get(key))
    if value is None:
        why = row.get(schema.NOT_COMPUTED)
        if isinstance(why, Mapping) and (key in why or "*" in why):
            return NotComputed(str(why.get(key, why.get("*"))))
    return value
