"""``CollapseTracker``: neural collapse through training, from any hand-written loop.

Call it once per epoch (or every ``every`` epochs); it measures the chosen layers with
:func:`~neuralcollapse.integrations.model_metrics` and appends to a run directory in the
format ``neuralcollapse train`` writes (docs/training.md), so ``neuralcollapse report RUN``
draws it unchanged:

    RUN/config.json     what is tracked (+ the caller's own config) and "version"
    RUN/epochs.jsonl    one row per call: epoch and the values the loop passes in
    RUN/metrics.jsonl   one row per (measured epoch, split, layer); schema-strict JSON
    RUN/metrics.csv     the same rows
    RUN/summary.json    tpt_epoch, epochs_done, final, finished

A metric that cannot be computed at one epoch (e.g. a layer whose class means coincide) is
written as not computed, with the reason; it never stops the training loop. Calling again
with an epoch already in the logs (a loop restarted from its own checkpoint) replaces the
rows from that epoch on, so a resumed loop never duplicates or loses rows.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import torch
from torch import nn

from neuralcollapse import schema
from neuralcollapse.checks import check_int
from neuralcollapse.integrations.capture import BatchFn, resolve_classifier
from neuralcollapse.integrations.model_metrics import (
    Data,
    ModelCollapse,
    _check_layers,
    measure_model,
)
from neuralcollapse.train import runlog

#: the run format this tracker writes (the one neuralcollapse train writes)
RUN_FORMAT_VERSION = 1


def _is_main_process() -> bool:
    if torch.distributed.is_available() and torch.distributed.is_initialized():
        return torch.distributed.get_rank() == 0
    return True


class CollapseTracker:
    """Measure named layers once per epoch and append to a run directory.

    Parameters
    ----------
    run_dir : the run directory (created). Rows already there for earlier epochs are kept.
        None: measure only, write nothing (what the callbacks use without a directory).
    model, layers, classifier, num_classes : as in :func:`measure_model`.
    data : the training data to measure on (re-iterable batches), split ``"train"``.
    eval_data : optional held-out data, split ``"test"``; its NCC accuracy and NC4 use the
        training means (Papyan et al.), as ``neuralcollapse train`` does.
    every : measure at epochs divisible by ``every`` (and at the first call).
    config : extra values recorded in ``config.json`` (hyperparameters, dataset name).
    measure_options : further keyword arguments for :func:`measure_model` (``select``,
        ``shift_labels``, ``empty_classes``, ...).

    Examples
    --------
    >>> tracker = CollapseTracker("runs/mine", model, train_loader, classifier="fc",
    ...                           layers=["layer3", "penultimate"])  # doctest: +SKIP
    >>> for epoch in range(1, epochs + 1):                           # doctest: +SKIP
    ...     train_one_epoch(model)
    ...     tracker(epoch, train_loss=loss, train_error=error)
    >>> tracker.close()                                              # doctest: +SKIP
    """

    def __init__(
        self,
        run_dir: str | Path | None,
        model: nn.Module,
        data: Data,
        *,
        layers: str | Sequence[str] | None = None,
        classifier: str | nn.Module | None = None,
        num_classes: int | None = None,
        eval_data: Data | None = None,
        every: int = 1,
        config: Mapping[str, Any] | None = None,
        batch_fn: BatchFn | None = None,
        **measure_options: Any,
    ) -> None:
        every = check_int("every", every, minimum=1, meaning="epochs")
        self.run_dir = None if run_dir is None else Path(run_dir)
        if self.run_dir is not None and self.run_dir.exists() and not self.run_dir.is_dir():
            raise ValueError(f"run_dir {self.run_dir} is a file; choose a directory")
        self.model = model
        self.data = data
        self.eval_data = eval_data
        self.every = every
        self.classifier = classifier
        linear = None if classifier is None else resolve_classifier(model, classifier)[1]
        # bad layer names fail here, before training starts, not at the first epoch
        self.layers = _check_layers(model, layers, linear)
        self.num_classes = (
            num_classes if num_classes is not None else getattr(linear, "out_features", None)
        )
        self.batch_fn = batch_fn
        self.measure_options = measure_options
        self._first_call = True
        self.tpt_epoch: int | None = None
        self.last_epoch_row: dict[str, Any] = {}
        self._config = {
            "source": "CollapseTracker",
            "model": type(model).__name__,
            "layers": list(self.layers),
            "num_classes": self.num_classes,
            **dict(config or {}),
            "version": RUN_FORMAT_VERSION,
        }
        if self._writes():
            self.run_dir.mkdir(parents=True, exist_ok=True)
            self._read_previous()

    def _writes(self) -> bool:
        return self.run_dir is not None and _is_main_process()

    # ------------------------------------------------------------------ measuring

    def due(self, epoch: int) -> bool:
        """Whether ``epoch`` is measured (every ``every``-th epoch, and the first call)."""
        return self._first_call or epoch % self.every == 0

    def measure(self) -> dict[str, ModelCollapse | str]:
        """Measure now: ``{"train": result, "test": result}``, or the reason as a string."""
        options = dict(
            layers=self.layers,
            classifier=self.classifier,
            num_classes=self.num_classes,
            batch_fn=self.batch_fn,
            errors="record",
            **self.measure_options,
        )
        results: dict[str, ModelCollapse | str] = {}
        try:
            results["train"] = measure_model(
                self.model, self.data, keep_class_stats=self.eval_data is not None, **options
            )
        except ValueError as error:  # recorded, never fatal to the loop
            results["train"] = str(error)
        if self.eval_data is not None:
            train = results["train"]
            reference = train.class_stats if isinstance(train, ModelCollapse) else None
            try:
                results["test"] = measure_model(
                    self.model, self.eval_data, reference=reference, **options
                )
            except ValueError as error:
                results["test"] = str(error)
        return results

    def __call__(self, epoch: int, **logs: Any) -> dict[str, ModelCollapse | str] | None:
        """Record ``epoch`` (1-based) with the loop's own values (``train_loss=...``, ...).

        Measures when :meth:`due`; returns the results then (None otherwise). Only rank 0
        writes under ``torch.distributed``; every rank must call it (the statistics are
        all-reduced).
        """
        epoch = check_int("epoch", epoch, minimum=0)
        values = {k: _plain(v) for k, v in logs.items()}
        measure_now = self.due(epoch)
        results = self.measure() if measure_now else None
        main = self._writes()
        if main and self._first_call:
            self._start(epoch)
        self._first_call = False
        if not main:
            return results
        epoch_row = {"epoch": epoch, **values, "tracked": measure_now}
        runlog.append_jsonl(self.run_dir / "epochs.jsonl", epoch_row)
        self.last_epoch_row = epoch_row
        if self.tpt_epoch is None and values.get("train_error") == 0:
            self.tpt_epoch = epoch
        if results is not None:
            for row in self.rows(epoch, results, values):
                runlog.append_jsonl(self.run_dir / "metrics.jsonl", row)
            runlog.write_csv_from_jsonl(
                self.run_dir / "metrics.jsonl", self.run_dir / "metrics.csv"
            )
        self._write_summary(finished=False)
        return results

    def rows(
        self, epoch: int, results: Mapping[str, ModelCollapse | str], values: Mapping[str, Any]
    ) -> list[dict[str, Any]]:
        """The metrics.jsonl rows of one measured epoch (one per split and layer)."""
        rows = []
        for split, result in results.items():
            for layer in self.layers:
                if isinstance(result, str):
                    metrics, reason = None, result
                else:
                    metrics, reason = result.get(layer), result.reasons.get(layer)
                head = {"epoch": epoch, "split": split, "layer": layer, **values}
                rows.append({**head, **schema.metric_row(metrics, reason)})
        return rows

    # ------------------------------------------------------------------ files

    def _start(self, epoch: int) -> None:
        """First call: config.json, and drop rows from ``epoch`` on (a restarted loop)."""
        config_path = self.run_dir / "config.json"
        if not config_path.exists():
            runlog.write_json(config_path, self._config)
        for name in ("epochs.jsonl", "metrics.jsonl"):
            if (self.run_dir / name).exists():
                runlog.truncate_jsonl(self.run_dir / name, epoch - 1)
        self._read_previous()

    def _read_previous(self) -> None:
        """The last logged epoch and the first with zero training error, from epochs.jsonl."""
        previous = runlog.read_jsonl(self.run_dir / "epochs.jsonl")
        self.last_epoch_row = previous[-1] if previous else {}
        self.tpt_epoch = next(
            (row["epoch"] for row in previous if row.get("train_error") == 0), None
        )

    def _write_summary(self, *, finished: bool) -> None:
        runlog.write_json(
            self.run_dir / "summary.json",
            {
                "tpt_epoch": self.tpt_epoch,
                "epochs_done": self.last_epoch_row.get("epoch", 0),
                "final": self.last_epoch_row,
                "finished": finished,
            },
        )

    def close(self, *, finished: bool = True) -> None:
        """Mark the run finished (or not) in summary.json."""
        if self._writes():
            self._write_summary(finished=finished)


def _plain(value: Any) -> Any:
    """Loop values as plain numbers (a one-element tensor such as a loss included)."""
    if isinstance(value, torch.Tensor):
        if value.numel() != 1:
            raise ValueError(f"logged values must be scalars; got a tensor of shape {value.shape}")
        return value.item()
    return value
