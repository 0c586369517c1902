"""A PyTorch Lightning callback that measures neural collapse during ``Trainer.fit``.

Needs the ``lightning`` package (``pip install 'neuralcollapse[lightning]'``). At the end
of every ``every_n_epochs``-th validation epoch (or training epoch, when the trainer runs
no validation) it measures the chosen layers of the LightningModule with
:func:`~neuralcollapse.integrations.model_metrics` and logs the chosen metrics (``metrics=``;
default NC1-NC4 in five numbers, :data:`~.callback_support.DEFAULT_METRICS`) through
``LightningModule.log_dict`` -- so TensorBoard, CSVLogger, W&B and any other logger of the
trainer get them -- under ``nc/<split>/<layer>/<key>`` (:func:`neuralcollapse.schema.scalar_logs`),
never on the progress bar. ``run_dir=`` keeps every metric, whatever ``metrics=`` says.

Under multi-process DDP each process measures an exact shard of the data
(:func:`~neuralcollapse.integrations.shards.shard_loader`: no padded duplicates), the
statistics are all-reduced, and the values are logged once, from rank 0.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from torch import nn

from neuralcollapse.checks import check_int
from neuralcollapse.integrations.callback_support import (
    logged_scalars,
    require,
    resolve_metrics,
)
from neuralcollapse.integrations.model_metrics import Data, ModelCollapse
from neuralcollapse.integrations.shards import shard_loader, world_and_rank
from neuralcollapse.integrations.tracker import CollapseTracker

Callback = require("lightning.pytorch.callbacks", "the Lightning callback", "lightning").Callback


class NeuralCollapseCallback(Callback):
    """Measure neural collapse in a Lightning ``Trainer`` and log it through its loggers.

    Parameters
    ----------
    data : batches to measure on (split ``"train"``); default the data set of the
        trainer's training dataloader, re-batched in order (no shuffling, no dropping).
    layers, classifier, num_classes : as in :func:`measure_model`; names are those of the
        LightningModule's ``named_modules()`` (e.g. ``"net.fc"`` when it holds ``self.net``).
    eval_data : optional held-out batches (split ``"test"``, NC4 with the training means).
    every_n_epochs : measure at every n-th epoch (1-based epoch numbers).
    run_dir : also write the run directory of :class:`CollapseTracker` (report-ready), with
        every metric.
    metrics : what the loggers get: metric keys and group names (``"nc1"``, ``"NC2"``,
        ``"all"``; :data:`~.callback_support.METRIC_GROUPS`). Default ``nc1``,
        ``etf_gap_means``, ``etf_gap_weights``, ``self_duality``, ``ncc_mismatch``.
    measure_options : passed to :func:`measure_model` (``select=``, ``shift_labels=``...).
    """

    def __init__(
        self,
        data: Data | None = None,
        *,
        layers: str | Sequence[str] | None = None,
        classifier: str | nn.Module | None = None,
        num_classes: int | None = None,
        eval_data: Data | None = None,
        every_n_epochs: int = 1,
        run_dir: str | Path | None = None,
        metrics: str | Sequence[str] | None = None,
        **measure_options: Any,
    ) -> None:
        super().__init__()
        #: the metric keys logged (the run directory has them all)
        self.metrics = resolve_metrics(metrics)
        every_n_epochs = check_int("every_n_epochs", every_n_epochs, minimum=1, meaning="epochs")
        self.data = data
        self.eval_data = eval_data
        self.every_n_epochs = every_n_epochs
        self.options = dict(
            layers=layers, classifier=classifier, num_classes=num_classes, **measure_options
        )
        self.run_dir = run_dir
        self.tracker: CollapseTracker | None = None
        #: the last measurement ({"train": ModelCollapse, ...}), for inspection
        self.last_results: dict[str, ModelCollapse | str] | None = None

    def _tracker(self, trainer: Any, pl_module: nn.Module) -> CollapseTracker:
        if self.tracker is None:
            world, rank = world_and_rank()
            data = self.data if self.data is not None else trainer.train_dataloader
            if data is None:
                raise ValueError("no data to measure: pass data= to NeuralCollapseCallback")
            eval_data = self.eval_data
            self.tracker = CollapseTracker(
                self.run_dir,
                pl_module,
                shard_loader(data, world, rank),
                eval_data=None if eval_data is None else shard_loader(eval_data, world, rank),
                config={"source": "lightning"},
                **self.options,
            )
        return self.tracker

    def _measure(self, trainer: Any, pl_module: nn.Module) -> None:
        if trainer.sanity_checking:
            return
        epoch = trainer.current_epoch + 1
        if epoch % self.every_n_epochs != 0 and epoch != trainer.max_epochs:
            return
        tracker = self._tracker(trainer, pl_module)
        logged = {
            name: float(value)
            for name, value in trainer.callback_metrics.items()
            if getattr(value, "numel", lambda: 1)() == 1 and not name.startswith("nc/")
        }
        results = tracker(epoch, **logged)  # its every=1: this callback chooses the epochs
        self.last_results = results
        scalars = logged_scalars(results, self.metrics)
        pl_module.log_dict(
            scalars, on_step=False, on_epoch=True, prog_bar=False, rank_zero_only=True
        )

    def on_validation_epoch_end(self, trainer: Any, pl_module: nn.Module) -> None:
        self._measure(trainer, pl_module)

    def on_train_epoch_end(self, trainer: Any, pl_module: nn.Module) -> None:
        # no validation loop: measure at the end of the training epoch instead
        if not sum(trainer.num_val_batches or [0]):
            self._measure(trainer, pl_module)

    def on_fit_end(self, trainer: Any, pl_module: nn.Module) -> None:
        if self.tracker is not None:
            self.tracker.close(finished=True)
