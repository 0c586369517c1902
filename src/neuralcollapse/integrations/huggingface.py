"""A Hugging Face ``transformers`` callback that measures neural collapse during training.

Needs the ``transformers`` package (``pip install 'neuralcollapse[transformers]'``).

**When.** At each evaluation when the Trainer evaluates (``eval_strategy="steps"`` or
``"epoch"``); at the end of each epoch when it does not (``eval_strategy="no"``); every
``every_n_steps`` optimizer steps (and at the last one) when that is given, whatever the
evaluation. A ``trainer.evaluate()`` called outside training measures too. When the
arguments mean that no measurement will ever happen (an ``eval_delay`` past the end of
training), a warning says so once, at the start of training.

**What, and where.** Every metric goes into the run directory (``run_dir=``, the format of
:class:`~neuralcollapse.integrations.CollapseTracker`). The ``metrics=`` chosen (default
NC1-NC4 in five numbers, :data:`~.callback_support.DEFAULT_METRICS`) are logged under
``nc/<split>/<layer>/<metric>`` (:func:`neuralcollapse.schema.scalar_logs`, the names the
Lightning callback uses):

- into ``trainer.state.log_history`` (always);
- with the trainer known (:meth:`NeuralCollapseCallback.attach`, or ``trainer=``) into
  TensorBoard under exactly those tags, through the writer of the Trainer's
  ``TensorBoardCallback`` (its ``on_log`` would prefix them ``train/``), and to every other
  reporter of the Trainer (W&B, Comet, Neptune, MLflow, ...) through its own ``on_log``, with
  the names kept: the reporters that rename (``transformers``' ``rewrite_logs``, which puts
  ``train/`` before every key not starting ``eval_``/``test_``) get an identity rewrite for
  the duration of that one call (:func:`_names_kept`), so W&B shows ``nc/train/...`` as
  TensorBoard and Lightning do;
- never to the console: ``Trainer.log`` would print each dict (``disable_tqdm=True``) or
  write it under the progress bar, so the values bypass it.

Batches are the Trainer's: dicts with ``labels`` (the other entries are the model's keyword
arguments), so ``measure_model``'s Hugging Face conventions apply (ignore index -100,
``attention_mask``, ``shift_labels=True`` for causal LMs).
"""

from __future__ import annotations

import warnings
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
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

TrainerCallback = require(
    "transformers", "the Hugging Face callback", "transformers"
).TrainerCallback


class NoMeasurementWarning(UserWarning):
    """The Trainer's arguments mean that the callback will never measure."""


def _strategy(args: Any) -> str:
    """The evaluation strategy as a plain string ("no", "steps", "epoch")."""
    value = getattr(args, "eval_strategy", None)
    if value is None:  # transformers < 4.41 named it evaluation_strategy
        value = getattr(args, "evaluation_strategy", "no")
    return str(getattr(value, "value", value))


class NeuralCollapseCallback(TrainerCallback):
    """Measure neural collapse in a Hugging Face ``Trainer`` and log it (module docstring).

    Parameters
    ----------
    data : batches to measure on (split ``"train"``): a DataLoader or list of dict batches.
        Default: the Trainer's training dataloader as it is (it shuffles, which is fine; under
        distributed training its shards may repeat a few samples to even them out -- pass
        ``data=`` a plain DataLoader for exact numbers: it is sharded without repeats).
    layers, classifier, num_classes : as in :func:`measure_model` (names from the model's
        ``named_modules()``, e.g. ``"bert.encoder.layer.1"``, ``"classifier"``, ``"lm_head"``).
    eval_data : optional held-out batches (split ``"test"``).
    run_dir : also write the run directory of :class:`CollapseTracker`, with every metric.
        Its ``epoch`` column is the Trainer's epoch (rounded) when measuring per epoch (at
        the end of epochs, or at per-epoch evaluations), the global step otherwise;
        ``config.json`` says which (``"index"``).
    trainer : the Trainer, so the values reach its reporters (see :meth:`attach`).
    metrics : what is logged: metric keys and group names (``"nc1"``, ``"NC2"``, ``"all"``;
        :data:`~.callback_support.METRIC_GROUPS`); default ``nc1``, ``etf_gap_means``,
        ``etf_gap_weights``, ``self_duality``, ``ncc_mismatch``.
    every_n_steps : measure every n optimizer steps (and at the last step) instead of at
        evaluations or epoch ends.
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
        metrics: str | Sequence[str] | None = None,
        every_n_steps: int | None = None,
        **measure_options: Any,
    ) -> None:
        self.data = data
        self.eval_data = eval_data
        self.run_dir = run_dir
        self.trainer = trainer
        #: the metric keys logged (the run directory has them all)
        self.metrics = resolve_metrics(metrics)
        self.every_n_steps = (
            None
            if every_n_steps is None
            else check_int("every_n_steps", every_n_steps, minimum=1, meaning="steps")
        )
        self.options = dict(
            layers=layers, classifier=classifier, num_classes=num_classes, **measure_options
        )
        self.tracker: CollapseTracker | None = None
        #: the last measurement ({"train": ModelCollapse, ...}), for inspection
        self.last_results: dict[str, ModelCollapse | str] | None = None
        #: how many times the callback has measured
        self.measurements = 0
        self._training = False
        self._warned = False

    def attach(self, trainer: Any) -> NeuralCollapseCallback:
        """Add this callback to ``trainer`` and log to its reporters (TensorBoard, W&B, ...)."""
        self.trainer = trainer
        trainer.add_callback(self)
        return self

    # ------------------------------------------------------------------ when

    def schedule(self, args: Any) -> str:
        """When this callback measures under ``args``: "steps", "evaluate" or "epoch"."""
        if self.every_n_steps is not None:
            return "steps"
        return "epoch" if _strategy(args) == "no" else "evaluate"

    def _never_measures(self, args: Any, state: Any) -> str | None:
        """Why no measurement will happen in this training run, or None."""
        max_steps = int(getattr(state, "max_steps", 0) or 0)
        schedule = self.schedule(args)
        if schedule != "evaluate" or max_steps <= 0:
            return None  # every n steps and every epoch end include the last one
        delay = float(getattr(args, "eval_delay", 0) or 0)
        strategy = _strategy(args)
        if strategy == "steps" and delay > max_steps:
            return (
                f'eval_strategy="steps" with eval_delay={delay:g}, but training stops after '
                f"{max_steps} steps: the Trainer never evaluates"
            )
        epochs = float(getattr(state, "num_train_epochs", 0) or args.num_train_epochs)
        if strategy == "epoch" and delay > epochs:
            return (
                f'eval_strategy="epoch" with eval_delay={delay:g}, but training runs '
                f"{epochs:g} epochs: the Trainer never evaluates"
            )
        return None

    def _warn_never(self, reason: str) -> None:
        if self._warned:
            return
        self._warned = True
        warnings.warn(
            f"NeuralCollapseCallback will not measure in this run: {reason}. Lower eval_delay, "
            'or use eval_strategy="no" (it then measures at the end of each epoch) or '
            "every_n_steps=",
            NoMeasurementWarning,
            stacklevel=2,
        )

    # ------------------------------------------------------------------ events

    def on_train_begin(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        self._training = True
        reason = self._never_measures(args, state)
        if reason is not None and state.is_world_process_zero:
            self._warn_never(reason)
        reporters = [r for r in (getattr(args, "report_to", None) or []) if r != "none"]
        if self.trainer is None and reporters and state.is_world_process_zero:
            warnings.warn(
                f"NeuralCollapseCallback does not know the Trainer, so its values go into "
                f"state.log_history only, not to {', '.join(reporters)}: add it with "
                "NeuralCollapseCallback(...).attach(trainer) (or pass trainer=)",
                UserWarning,
                stacklevel=2,
            )

    def on_step_end(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        if self.every_n_steps is None:
            return
        step = int(state.global_step)
        if step % self.every_n_steps == 0 or step >= int(state.max_steps or 0):
            self._measure(args, state, control, kwargs, index=step, per_epoch=False)

    def on_epoch_end(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        if self.schedule(args) == "epoch":
            index = int(round(state.epoch or 0))
            self._measure(args, state, control, kwargs, index=index, per_epoch=True)

    def on_evaluate(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        # during training only at the evaluations this schedule uses; outside training
        # (trainer.evaluate() on its own) always
        if self._training and self.schedule(args) != "evaluate":
            return
        per_epoch = self._training and _strategy(args) == "epoch"
        index = int(round(state.epoch or 0)) if per_epoch else int(state.global_step)
        metrics = kwargs.get("metrics") or {}
        values = {
            k: float(v)
            for k, v in metrics.items()
            if isinstance(v, (int, float)) and k not in ("epoch", "step")
        }
        self._measure(args, state, control, kwargs, index=index, per_epoch=per_epoch, **values)

    def on_train_end(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        self._training = False
        if self.measurements == 0 and state.is_world_process_zero:
            self._warn_never(
                f"training ended after {state.global_step} steps without a measurement "
                f"(eval_strategy={_strategy(args)!r})"
            )
        if self.tracker is not None:
            self.tracker.close(finished=True)

    # ------------------------------------------------------------------ measuring

    def _tracker(self, model: nn.Module, train_dataloader: Any, per_epoch: bool) -> CollapseTracker:
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
                config={"source": "transformers", "index": "epoch" if per_epoch else "step"},
                **self.options,
            )
        return self.tracker

    def _measure(
        self,
        args: Any,
        state: Any,
        control: Any,
        event: Mapping[str, Any],
        *,
        index: int,
        per_epoch: bool,
        **values: float,
    ) -> None:
        model = event.get("model")
        if model is None:
            raise ValueError("the Trainer passed no model to the callback")
        tracker = self._tracker(model, event.get("train_dataloader"), per_epoch)
        results = tracker(index, step=int(state.global_step), **values)
        self.last_results = results
        self.measurements += 1
        if state.is_world_process_zero:
            self._log(logged_scalars(results, self.metrics), args, state, control, event)

    def _log(
        self,
        scalars: dict[str, float],
        args: Any,
        state: Any,
        control: Any,
        event: Mapping[str, Any],
    ) -> None:
        """Into log_history and the reporters, under our names, bypassing the console."""
        entry: dict[str, Any] = dict(scalars)
        if state.epoch is not None:
            entry["epoch"] = state.epoch
        state.log_history.append({**entry, "step": state.global_step})
        if self.trainer is None:
            return
        from transformers.integrations.integration_utils import (
            INTEGRATION_TO_CALLBACK,
            TensorBoardCallback,
        )

        reporters = tuple(INTEGRATION_TO_CALLBACK.values())
        forwarded = {k: v for k, v in event.items() if k not in ("metrics", "logs")}
        for callback in self.trainer.callback_handler.callbacks:
            if isinstance(callback, TensorBoardCallback):
                _write_tensorboard(callback, scalars, args, state.global_step)
            elif isinstance(callback, reporters) and callback is not self:
                with _names_kept():
                    callback.on_log(args, state, control, logs=dict(entry), **forwarded)


@contextmanager
def _names_kept() -> Iterator[None]:
    """``transformers``' ``rewrite_logs`` as the identity while one reporter logs our values.

    W&B, Comet, Neptune, SwanLab and Trackio pass every dict through
    ``integration_utils.rewrite_logs``, which prefixes ``train/`` to our ``nc/<split>/...``
    names; they look the function up in that module at call time, so replacing it there for
    one call keeps our names and leaves the Trainer's own logs (outside this block) as they
    are. A ``transformers`` whose reporters no longer use it just renames as before.
    """
    from transformers.integrations import integration_utils

    original = getattr(integration_utils, "rewrite_logs", None)
    if original is None:
        yield
        return
    integration_utils.rewrite_logs = dict  # a copy with the same keys
    try:
        yield
    finally:
        integration_utils.rewrite_logs = original


def _write_tensorboard(callback: Any, scalars: Mapping[str, float], args: Any, step: int) -> None:
    """The scalars under their own tags, with the writer of the Trainer's TensorBoardCallback."""
    if getattr(callback, "tb_writer", None) is None:
        # after training the callback closes its writer; its on_log opens one again the same way
        init = getattr(callback, "_init_summary_writer", None)
        if init is not None:
            init(args)
    writer = getattr(callback, "tb_writer", None)
    if writer is None:
        return
    for tag, value in scalars.items():
        writer.add_scalar(tag, value, step)
    writer.flush()
