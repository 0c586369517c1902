"""A Hugging Face ``transformers`` callback that measures neural collapse at evaluation.

Needs the ``transformers`` package (``pip install 'neuralcollapse[transformers]'``). At each
evaluation of a ``Trainer`` it measures the chosen layers with
:func:`~neuralcollapse.integrations.model_metrics` and logs the scalars under
``nc/<split>/<layer>/<key>``. Attached with :meth:`NeuralCollapseCallback.attach` (or given the
trainer as ``trainer=``) they go through ``Trainer.log``: into ``state.log_history`` and
to every reporter the trainer has (TensorBoard, W&B, ...). Without the trainer they are
appended to ``state.log_history`` only.

Batches are the Trainer's: dicts with ``labels`` (the other entries are the model's keyword
arguments), so ``measure_model``'s Hugging Face conventions apply (ignore index -100,
``attention_mask``, ``shift_labels=True`` for causal LMs).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from torch import nn

from neuralcollapse.integrations.callback_support import logged_scalars, require
from neuralcollapse.integrations.model_metrics import Data, ModelCollapse
from neuralcollapse.integrations.shards import shard_loader, world_and_rank
from neuralcollapse.integrations.tracker import CollapseTracker

TrainerCallback = require(
    "transformers", "the Hugging Face callback", "transformers"
).TrainerCallback


class NeuralCollapseCallback(TrainerCallback):
    """Measure neural collapse at each evaluation of a Hugging Face ``Trainer``.

    Parameters
    ----------
    data : batches to measure on (split ``"train"``): a DataLoader or list of dict batches.
        Default: the Trainer's training dataloader as it is (it shuffles, which is fine; under
        distributed training its shards may repeat a few samples to even them out -- pass
        ``data=`` a plain DataLoader for exact numbers: it is sharded without repeats).
    layers, classifier, num_classes : as in :func:`measure_model` (names from the model's
        ``named_modules()``, e.g. ``"bert.encoder.layer.1"``, ``"classifier"``, ``"lm_head"``).
    eval_data : optional held-out batches (split ``"test"``).
    run_dir : also write the run directory of :class:`CollapseTracker`. Its ``epoch`` column
        is the Trainer's epoch (rounded) when evaluating per epoch, the global step otherwise.
    trainer : the Trainer, so the values go through ``Trainer.log`` (see :meth:`attach`).
    measure_options : passed to :func:`measure_model` (``shift_labels=True``, ...).
    """

    def __init__(
        self,
        data: Data | None = None,
        *,
        layers: str | Sequence[str] | None = None,
        classifier: str | nn.Module | None = None,
        num_classes: int | None = None,
        eval_data: Data | None = None,
        run_dir: str | Path | None = None,
        trainer: Any = None,
        **measure_options: Any,
    ) -> None:
        self.data = data
        self.eval_data = eval_data
        self.run_dir = run_dir
        self.trainer = trainer
        self.options = dict(
            layers=layers, classifier=classifier, num_classes=num_classes, **measure_options
        )
        self.tracker: CollapseTracker | None = None
        #: the last measurement ({"train": ModelCollapse, ...}), for inspection
        self.last_results: dict[str, ModelCollapse | str] | None = None

    def attach(self, trainer: Any) -> NeuralCollapseCallback:
        """Add this callback to ``trainer`` and log through ``trainer.log``."""
        self.trainer = trainer
        trainer.add_callback(self)
        return self

    def _tracker(self, model: nn.Module, train_dataloader: Any) -> CollapseTracker:
        if self.tracker is None:
            world, rank = world_and_rank()
            if self.data is not None:
                data = shard_loader(self.data, world, rank)
            elif train_dataloader is not None:
                data = train_dataloader  # already this process's shard
            else:
                raise ValueError("no data to measure: pass data= to NeuralCollapseCallback")
            eval_data = self.eval_data
            self.tracker = CollapseTracker(
                self.run_dir,
                model,
                data,
                eval_data=None if eval_data is None else shard_loader(eval_data, world, rank),
                config={"source": "transformers"},
                **self.options,
            )
        return self.tracker

    def on_evaluate(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        model = kwargs.get("model")
        if model is None:
            raise ValueError("the Trainer passed no model to the callback")
        tracker = self._tracker(model, kwargs.get("train_dataloader"))
        per_epoch = str(getattr(args, "eval_strategy", "")).endswith("epoch")
        index = int(round(state.epoch or 0)) if per_epoch else int(state.global_step)
        metrics = kwargs.get("metrics") or {}
        logged = {
            k: float(v)
            for k, v in metrics.items()
            if isinstance(v, (int, float)) and k not in ("epoch", "step")
        }
        results = tracker(index, step=int(state.global_step), **logged)
        self.last_results = results
        scalars = logged_scalars(results)
        if self.trainer is not None:
            self.trainer.log(scalars)
        elif state.is_world_process_zero:
            state.log_history.append({**scalars, "step": state.global_step, "epoch": state.epoch})

    def on_train_end(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        if self.tracker is not None:
            self.tracker.close(finished=True)
