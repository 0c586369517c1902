"""Reading the run directory that ``neuralcollapse train`` writes.

The run directory is the contract between training and the report (docs/report.md):

- ``config.json``: the flat configuration of the run, plus ``"version"``;
- ``epochs.jsonl``: one object per epoch (``epoch``, ``lr``, ``train_loss``, ``train_error``,
  ``test_loss``, ``test_error``, ``seconds``);
- ``metrics.jsonl``: one object per (measured epoch, split, layer) holding the training
  numbers of that epoch and every field of :class:`neuralcollapse.metrics.CollapseMetrics`;
- ``summary.json``: ``tpt_epoch``, ``epochs_done``, ``final``, ``finished``.

Only ``metrics.jsonl`` is required to draw the figures; the other files are read when present
so that a run still in progress (or one whose summary was lost) can be reported on.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from neuralcollapse import runformat, schema
from neuralcollapse.schema import PENULTIMATE_POST, PENULTIMATE_PRE

_REQUIRED_METRIC_KEYS = ("epoch", "split", "layer", schema.NC1)


def _as_float(value: object) -> float:
    """A JSON value as a float: ``None`` (not computed) as NaN, the schema's non-finite strings
    (``"Infinity"``, ...) as the floats they stand for."""
    value = schema.decode_value(value)
    if value is None:
        return math.nan
    return float(value)  # type: ignore[arg-type]


@dataclass(frozen=True)
class TrainingRun:
    """One training run read back from its directory.

    Attributes
    ----------
    path : the run directory.
    name : a short label (the directory name) used in legends and tables.
    config : ``config.json`` (empty when the file is missing).
    epochs : rows of ``epochs.jsonl`` in file order (empty when missing).
    metrics : rows of ``metrics.jsonl`` in file order.
    summary : ``summary.json``, or ``None`` when missing.
    """

    path: Path
    name: str
    config: dict
    epochs: list[dict]
    metrics: list[dict]
    summary: dict | None
    _layer_order: tuple[str, ...] = field(default=(), repr=False)
    #: spectra.jsonl's rows (``train --track-spectra``): one spectral summary per tracked epoch
    spectra: list[dict] = field(default_factory=list)
    #: agop.jsonl's rows (``train --track-agop``): the feature ansatz per linear layer per
    #: tracked epoch
    agop: list[dict] = field(default_factory=list)

    @property
    def layers(self) -> tuple[str, ...]:
        """Measured layers, input side first, the penultimate features last."""
        return self._layer_order

    @property
    def intermediate_layers(self) -> tuple[str, ...]:
        return tuple(
            layer for layer in self._layer_order if layer not in (PENULTIMATE_PRE, PENULTIMATE_POST)
        )

    @property
    def splits(self) -> tuple[str, ...]:
        return tuple(dict.fromkeys(row["split"] for row in self.metrics))

    @property
    def num_classes(self) -> int | None:
        for row in self.metrics:
            if row.get(schema.NUM_CLASSES) is not None:
                return int(row[schema.NUM_CLASSES])
        return None

    def rows(self, *, layer: str, split: str = "train") -> list[dict]:
        """Rows of metrics.jsonl for one layer and split, sorted by epoch."""
        selected = [row for row in self.metrics if row["layer"] == layer and row["split"] == split]
        return sorted(selected, key=lambda row: row["epoch"])

    def series(self, key: str, *, layer: str = PENULTIMATE_POST, split: str = "train"):
        """``(epochs, values)`` arrays of one metrics.jsonl column (``None`` read as NaN)."""
        rows = self.rows(layer=layer, split=split)
        epochs = np.array([row["epoch"] for row in rows], dtype=float)
        values = np.array([_as_float(row.get(key)) for row in rows], dtype=float)
        return epochs, values

    def not_computed(
        self, key: str = schema.NC1, *, layer: str = PENULTIMATE_POST, split: str = "train"
    ) -> dict[int, str]:
        """``{epoch: reason}`` for the rows where ``key`` was not computed and the row says why
        (its ``"not_computed"`` object, :data:`neuralcollapse.schema.NOT_COMPUTED`, under the
        key or ``"*"``): e.g. a layer whose features became constant at that epoch."""
        reasons = {}
        for row in self.rows(layer=layer, split=split):
            why = row.get(schema.NOT_COMPUTED) or {}
            if row.get(key) is None and isinstance(why, dict) and (key in why or "*" in why):
                reasons[int(row["epoch"])] = str(why.get(key, why.get("*")))
        return reasons

    def last_row(self, *, layer: str = PENULTIMATE_POST, split: str = "train") -> dict | None:
        rows = self.rows(layer=layer, split=split)
        return rows[-1] if rows else None

    def describe(self) -> str:
        """A one-line description from the config: loss, classifier bias, model, dataset."""
        parts = []
        for key in ("dataset", "arch", "model", "loss"):
            if self.config.get(key) is not None:
                parts.append(str(self.config[key]))
        for key in ("bias", "classifier_bias", "fc_bias"):
            if key in self.config:
                parts.append("with bias" if self.config[key] else "no bias")
                break
        return ", ".join(parts)


def load_run(path: str | Path, *, name: str | None = None) -> TrainingRun:
    """Read a run directory written by ``neuralcollapse train``.

    Parameters
    ----------
    path : the run directory.
    name : label for legends (default: the directory name).

    Returns
    -------
    TrainingRun

    Raises
    ------
    FileNotFoundError : the directory or its ``metrics.jsonl`` does not exist.
    ValueError : a file is not valid JSON, or a metrics row lacks a required key.
    """
    directory = Path(path)
    if not directory.is_dir():
        raise FileNotFoundError(
            f"run directory {directory} does not exist; pass a directory written by "
            "`neuralcollapse train --out DIR`"
        )
    metrics_path = directory / runformat.METRICS
    if not metrics_path.is_file():
        raise FileNotFoundError(
            f"{metrics_path} is missing: {directory} is not a training run directory "
            "(or no epoch has been measured yet); pass a directory written by "
            "`neuralcollapse train --out DIR`"
        )
    files = runformat.read_run(directory)  # the version checked; a torn line is an error
    metrics = files.metrics
    if not metrics:
        raise ValueError(
            f"{metrics_path} is empty: no epoch has been measured yet; "
            "wait for the first measured epoch"
        )
    for line_number, row in enumerate(metrics, start=1):
        missing = [key for key in _REQUIRED_METRIC_KEYS if key not in row]
        if missing:
            raise ValueError(
                f"{metrics_path}, row {line_number}: missing key(s) {missing}; "
                "each row needs epoch, split, layer and the CollapseMetrics fields"
            )
        # measure_model's name for the classifier input is the report's penultimate layer
        if row["layer"] == schema.PENULTIMATE:
            row["layer"] = PENULTIMATE_POST
    return TrainingRun(
        path=directory,
        name=name if name is not None else directory.resolve().name,
        config=files.config or {},
        epochs=files.epochs,
        metrics=metrics,
        summary=files.summary,
        spectra=files.spectra,
        agop=files.agop,
        _layer_order=_order_layers(row["layer"] for row in metrics),
    )


def load_runs(paths: Iterable[str | Path]) -> list[TrainingRun]:
    """Read several run directories; labels are made unique when directory names clash."""
    runs = [load_run(path) for path in paths]
    if not runs:
        raise ValueError("no run directory given; pass at least one RUN_DIR")
    return _unique_names(runs)


def _unique_names(runs: Sequence[TrainingRun]) -> list[TrainingRun]:
    seen: dict[str, int] = {}
    unique = []
    for run in runs:
        count = seen.get(run.name, 0)
        seen[run.name] = count + 1
        if count:
            run = TrainingRun(
                path=run.path,
                name=f"{run.name} ({count + 1})",
                config=run.config,
                epochs=run.epochs,
                metrics=run.metrics,
                summary=run.summary,
                _layer_order=run.layers,
            )
        unique.append(run)
    return unique


def _layer_sort_key(name: str) -> tuple[int, int, str]:
    """Order layers input-side first: named layers by their trailing number, then penultimate."""
    if name == PENULTIMATE_PRE:
        return (2, 0, name)
    if name == PENULTIMATE_POST:
        return (2, 1, name)
    digits = ""
    for char in reversed(name):
        if not char.isdigit():
            break
        digits = char + digits
    return (1, int(digits) if digits else 0, name)


def _order_layers(names: Iterable[str]) -> tuple[str, ...]:
    unique = dict.fromkeys(names)
    return tuple(sorted(unique, key=_layer_sort_key))
