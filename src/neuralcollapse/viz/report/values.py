"""Reading values out of runs: one row's number, a layer's series over epochs, the last
row where some columns were computed, and which optional measures a run has."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

from neuralcollapse import schema
from neuralcollapse.viz.epoch_columns import number
from neuralcollapse.viz.html import NotComputed
from neuralcollapse.viz.robustness_figures import epoch_values
from neuralcollapse.viz.runs import PENULTIMATE_POST, TrainingRun


def _value(row: Mapping[str, object] | None, key: str) -> float | None:
    """A row's value as a float (schema strings decoded); None when absent or not computed."""
    return None if row is None else number(row.get(key))


def nc1_by_layer(run: TrainingRun, split: str, epoch: int) -> list[tuple[str, float]]:
    """``(layer, NC1)`` at ``epoch`` of every layer, input side first, where it was computed."""
    values = []
    for layer in run.layers:
        row = next((r for r in run.rows(layer=layer, split=split) if r["epoch"] == epoch), None)
        value = _value(row, schema.NC1)
        if value is not None:
            values.append((layer, value))
    return values


def _finite_series(
    run: TrainingRun, key: str, *, layer: str = PENULTIMATE_POST, split: str = "train"
) -> list[tuple[int, float]]:
    """``(epoch, value)`` of the rows where ``key`` is a finite number, by epoch."""
    epochs, values = run.series(key, layer=layer, split=split)
    return [
        (int(e), float(v))
        for e, v in zip(epochs.tolist(), values.tolist(), strict=True)
        if math.isfinite(v)
    ]


def _last_with(
    run: TrainingRun, keys: Sequence[str], *, layer: str = PENULTIMATE_POST, split: str = "train"
) -> dict | None:
    """The last row (by epoch) in which every one of ``keys`` is a finite number."""
    for row in reversed(run.rows(layer=layer, split=split)):
        values = [_value(row, key) for key in keys]
        if all(v is not None and math.isfinite(v) for v in values):
            return row
    return None


def _last_train_error(run: TrainingRun) -> tuple[int, float] | None:
    rows = [row for row in run.epochs if _value(row, schema.TRAIN_ERROR) is not None]
    if rows:
        return int(rows[-1]["epoch"]), float(_value(rows[-1], schema.TRAIN_ERROR))  # type: ignore
    series = _finite_series(run, schema.TRAIN_ERROR)
    return series[-1] if series else None


def _not_computed_reason(row: Mapping[str, object], key: str) -> str | None:
    why = row.get(schema.NOT_COMPUTED)
    if isinstance(why, Mapping) and (key in why or "*" in why):
        return str(why.get(key, why.get("*")))
    return None


def _table_value(row: Mapping[str, object], key: str) -> object:
    """A row's value for a table: schema strings decoded, a null the row explains as
    :class:`NotComputed` (with the reason)."""
    value = schema.decode_value(row.get(key))
    if value is None:
        reason = _not_computed_reason(row, key)
        if reason is not None:
            return NotComputed(reason)
    return value


def _positive_series(run: TrainingRun, key: str) -> list[tuple[int, float]]:
    """``(epoch, value)`` of the penultimate training rows where ``key`` is finite and > 0
    (what a log axis draws)."""
    return [(e, v) for e, v in _finite_series(run, key) if v > 0]


def _epoch_series(run: TrainingRun, key: str) -> list[tuple[int, float]]:
    """``(epoch, value)`` of an epochs.jsonl column where it is a finite number."""
    epochs, values = epoch_values(run, key)
    return [(int(e), float(v)) for e, v in zip(epochs.tolist(), values.tolist(), strict=True)]


def has_mse_terms(run: TrainingRun) -> bool:
    """Whether the run's penultimate training rows hold any MSE term (an MSE run)."""
    return any(_finite_series(run, key) for key in schema.MSE_TERM_KEYS)


def has_robustness(run: TrainingRun) -> bool:
    """Whether any epoch of the run has a DeepFool measurement (``deepfool_ratio``)."""
    return bool(_epoch_series(run, schema.DEEPFOOL_RATIO))


def has_generalisation(run: TrainingRun) -> bool:
    """Whether summary.json holds the generalisation table (runs of ``neuralcollapse train``)."""
    return isinstance((run.summary or {}).get("generalisation"), Mapping)


def has_imbalance(run: TrainingRun) -> bool:
    """Whether any epoch of the run has ``minority_cosine_weights`` (an imbalanced run)."""
    return bool(_epoch_series(run, schema.MINORITY_COSINE_WEIGHTS))


def generalisation_entry(run: TrainingRun) -> tuple[dict | None, str]:
    """The run's generalisation table (Papyan et al., Table 1) and where it comes from:
    summary.json's ``generalisation``, else computed from epochs.jsonl by
    :func:`neuralcollapse.robustness.generalisation_table` (the function the training loop
    uses); None when the run has neither."""
    entry = (run.summary or {}).get("generalisation")
    if isinstance(entry, Mapping):
        return dict(entry), "summary.json"
    if run.epochs:
        from neuralcollapse.robustness import generalisation_table

        try:
            return generalisation_table(run.epochs).to_dict(), "epochs.jsonl"
        except ValueError as error:
            return None, str(error)
    return None, "no summary.json generalisation entry and no epochs.jsonl"
