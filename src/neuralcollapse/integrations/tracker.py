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
with an epoch already in the logs (a loop restarted from its own checkpoint, or a callback
called twice within one epoch, as Lightning's ``val_check_interval=0.5`` does) replaces the
rows from that epoch on: the later call wins, and no epoch is ever logged twice.

The files are :mod:`neuralcollapse.runformat`'s, through its one writer: a tracker pointed at
a directory that another writer (``neuralcollapse train``, ``probe``) or another configuration
made refuses to start, naming it, unless ``overwrite=True`` replaces that run.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from neuralcollapse import runformat, schema
from neuralcollapse.checks import check_int
from neuralcollapse.integrations.model_metrics import (
    Data,
    ModelCollapse,
    _check_layers,
    measure_model,
)
from neuralcollapse.metrics.capture import BatchFn, resolve_classifier


def _is_main_process() -> bool:
    if torch.distributed.is_available() and torch.distributed.is_initialized():
        return torch.distributed.get_rank() == 0
    return True


class CollapseTracker:
    """Measure named layers once per epoch and append to a run directory.

    Parameters
    ----------
    run_dir : the run directory (created). A run this tracker's configuration wrote before
        is continued (rows of earlier epochs kept); a run of another writer or configuration
        is refused (``overwrite=True`` replaces it). None: measure only, write nothing (what
        the callbacks use without a directory).
    model, layers, classifier, num_classes : as in :func:`measure_model`.
    data : the training data to measure on (re-iterable batches), split ``"train"``.
    eval_data : optional held-out data, split ``"test"``; its NCC accuracy and NC4 use the
        training means (Papyan et al.), as ``neuralcollapse train`` does.
    every : measure at epochs divisible by ``every`` (and at the first call).
    config : extra values recorded in ``config.json`` (hyperparameters, dataset name).
    overwrite : replace a run of another writer or configuration in ``run_dir``.
    measure_options : further keyword arguments for :func:`measure_model` (``select``,
        ``shift_labels``, ``empty_classes``, ``rtol``, ...).

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
        overwrite: bool = False,
        **measure_options: Any,
    ) -> None:
        every = check_int("every", every, minimum=1, meaning="epochs")
        self.run_dir = None if run_dir is None else Path(run_dir)
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
            schema.NUM_CLASSES: self.num_classes,
            **dict(config or {}),
        }
        self._writer: runformat.RunWriter | None = None
        if self._writes():
            # refuses another writer's run (or this writer's with another configuration)
            # before training starts, unless overwrite=True replaces it
            self._writer = runformat.RunWriter.attach(
                self.run_dir, self._config, overwrite=overwrite
            )
            self._read_previous()

    def _writes(self) -> bool:
        return self.run_dir is not None and _is_main_process()

    # ------------------------------------------------------------------ measuring

    def due(self, epoch: int) -> bool:
        """Whether ``epoch`` is measured (every ``every``-th epoch, and the first call)."""
        return self._first_call or epoch % self.every == 0

    def measure(self) -> dict[str, ModelCollapse | str]:
        """Measure now: ``{"train": result, "test": result}``, or the reason as a string."""
        options = {
            "layers": self.layers,
            "classifier": self.classifier,
            schema.NUM_CLASSES: self.num_classes,
            "batch_fn": self.batch_fn,
            "errors": "record",
            # a network early in training is near chance by right: no warning every epoch
            "chance_warning": False,
            **self.measure_options,
        }
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
        values = {k: _plain(k, v) for k, v in logs.items()}
        measure_now = self.due(epoch)
        results = self.measure() if measure_now else None
        self._first_call = False
        if self._writer is None:
            return results
        epoch_row = {"epoch": epoch, **values, "tracked": measure_now}
        rows = [] if results is None else self.rows(epoch, results, values)
        rewritten = self._writer.last_epoch is not None and epoch <= self._writer.last_epoch
        self._writer.write_epoch(epoch, epoch_row, rows)
        if rewritten:  # the rows from this epoch on were replaced: recount from the file
            self._read_previous()
        else:
            self.last_epoch_row = epoch_row
            if self.tpt_epoch is None and values.get(schema.TRAIN_ERROR) == 0:
                self.tpt_epoch = epoch
        if rows or rewritten:
            self._writer.write_csv()
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

    def _read_previous(self) -> None:
        """The last logged epoch and the first with zero training error, from epochs.jsonl."""
        previous = self._writer.epochs()
        self.last_epoch_row = previous[-1] if previous else {}
        self.tpt_epoch = next(
            (row["epoch"] for row in previous if row.get(schema.TRAIN_ERROR) == 0), None
        )

    def _write_summary(self, *, finished: bool) -> None:
        from neuralcollapse.robustness.generalisation import generalisation_table

        # the same summary as neuralcollapse train's, Papyan et al.'s Table 1 included
        self._writer.write_summary(
            tpt_epoch=self.tpt_epoch,
            epochs_done=self.last_epoch_row.get("epoch", 0),
            final=self.last_epoch_row,
            finished=finished,
            generalisation=generalisation_table(self._writer.epochs()).to_dict(),
        )

    def close(self, *, finished: bool = True) -> None:
        """Mark the run finished (or not) in summary.json."""
        if self._writer is not None:
            self._write_summary(finished=finished)


def _plain(name: str, value: Any) -> Any:
    """Loop values as plain numbers: a one-element tensor or NumPy array (a loss) included."""
    if isinstance(value, (torch.Tensor, np.ndarray, np.generic)):
        size = value.numel() if isinstance(value, torch.Tensor) else value.size
        if size != 1:
            raise ValueError(
                f"logged value {name}= must be a scalar; got an array of shape "
                f"{tuple(value.shape)}: log one number (e.g. its mean) per epoch"
            )
        value = value.item()
    if isinstance(value, (bool, int, float, str)) or value is None:
        return value
    raise ValueError(
        f"logged value {name}= must be a number, a string or None; got "
        f"{type(value).__name__}: pass a plain number (e.g. float(value))"
    )
