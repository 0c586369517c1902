"""Terminal-phase training with neural-collapse tracking, in one readable loop.

``train(config)`` trains a network past zero training error and records, epoch by
epoch, the loss and error on train and test, and at the tracked epochs (log-spaced by
default) the full neural-collapse metric set (:func:`neuralcollapse.metrics.measure_batches`)
of the penultimate features before and after the final ReLU and of every chosen
intermediate layer, on both splits. The setting follows Papyan, Han & Donoho (PNAS 2020:
SGD with momentum 0.9, weight decay 5e-4, batch 128, lr divided by 10 at 1/3 and 2/3 of
the epochs, 350 epochs) and Tirer & Bruna (ICML 2022: MSE loss without classifier bias,
lr divided by 10 every 40 epochs).

Under ``torchrun`` (``WORLD_SIZE > 1``) each process trains on its share of every global
batch with DistributedDataParallel; the losses are scaled so that the averaged gradient is
exactly the gradient of the mean loss over the global batch, and the metric statistics are
all-reduced, so P processes compute what one process computes (up to float rounding).

Order of work per epoch: train on the shuffled global batches; evaluate the train and test
splits in one no-grad pass each (capturing features only at tracked epochs); log; save a
checkpoint atomically. A non-finite loss stops the run and keeps the last good checkpoint.
"""

from __future__ import annotations

import dataclasses
import importlib.util
import math
import os
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch.utils.data import Dataset, TensorDataset
from tqdm.auto import tqdm

from neuralcollapse import runformat, schema
from neuralcollapse.metrics import ClassStats, CollapseMetrics
from neuralcollapse.metrics.capture import eval_mode
from neuralcollapse.metrics.engine import LayerSpec, aligned_batches, measure_layers
from neuralcollapse.progress import bar_disabled
from neuralcollapse.train.config import (
    RESUMABLE_OVERRIDES,
    TrainConfig,
    config_to_dict,
    parse_classes,
    validate,
)
from neuralcollapse.train.data import load_dataset
from neuralcollapse.train.epoch_measures import (
    SPHERICAL_CODE,
    agop_row,
    code_columns,
    group_columns,
    many_classes,
    merge_columns,
    minority_columns,
    mse_columns,
    robustness_columns,
    spectra_columns,
    spherical_code_reference,
    transfer_columns,
)
from neuralcollapse.train.nets import CollapseNet, build_net
from neuralcollapse.train.probe import PENULTIMATE_POST, PENULTIMATE_PRE, FeatureProbe
from neuralcollapse.train.probe import resolve_layers as _resolve_layers
from neuralcollapse.train.splits import (
    DataSplits,
    batches,
    dataset_splits,
    factory_splits,
    gather,
    registered_splits,
    shard_batches,
    withhold_classes,
)


class TrainingDiverged(RuntimeError):
    """The loss became NaN or infinite; the last good checkpoint is kept."""


@dataclass
class TrainResult:
    """What :func:`train` returns (rank 0 also wrote it all into ``run_dir``)."""

    run_dir: Path
    epochs_done: int
    tpt_epoch: int | None
    finished: bool
    final: dict[str, Any]
    model: CollapseNet
    metrics_rows: list[dict[str, Any]] = field(default_factory=list)


# ----------------------------------------------------------------------------- pieces


def tracking_epochs(epochs: int, mode: str, points: int = 30) -> list[int]:
    """Epochs (1-based) at which the NC metrics are measured.

    ``log``: the first and last epoch and about ``points`` more, log-spaced in between
    (distinct integers, so early epochs, where things change fast, are dense);
    ``every``: all epochs; ``none``: no epoch.
    """
    if mode == "none":
        return []
    if mode == "every" or epochs <= points + 2:
        return list(range(1, epochs + 1))
    wanted = points + 2
    count = wanted
    while True:  # rounding merges early points: ask for more until enough distinct remain
        grid = np.unique(np.round(np.geomspace(1, epochs, count)).astype(int))
        if len(grid) >= wanted or count > 4 * epochs:
            return sorted(set(grid.tolist()) | {1, epochs})
        count += 1


def make_scheduler(optimizer: torch.optim.Optimizer, config: TrainConfig):
    """Per-epoch lr schedule.

    papyan: lr / 10 (``gamma``) at 1/3 and 2/3 of the epochs (Papyan et al. 2020);
    step: lr x gamma every ``step_size`` epochs (Tirer & Bruna 2022: 0.1 every 40);
    cosine: cosine annealing to 0 over the run; constant: no change.
    """
    sched = torch.optim.lr_scheduler
    if config.schedule == "papyan":
        thirds = (round(config.epochs / 3), round(2 * config.epochs / 3))
        milestones = sorted({max(1, epoch) for epoch in thirds})
        return sched.MultiStepLR(optimizer, milestones=milestones, gamma=config.gamma)
    if config.schedule == "step":
        return sched.StepLR(optimizer, step_size=config.step_size, gamma=config.gamma)
    if config.schedule == "cosine":
        return sched.CosineAnnealingLR(optimizer, T_max=config.epochs)
    return sched.LambdaLR(optimizer, lambda epoch: 1.0)


def per_sample_loss(
    logits: torch.Tensor, labels: torch.Tensor, config: TrainConfig, num_classes: int
) -> torch.Tensor:
    """Loss of each sample (no reduction).

    ce: cross-entropy, with label smoothing ``eps`` when set (targets (1-eps) e_y + eps/K).
    mse: ``1/2 ||z - s t||^2`` with t the one-hot target (smoothed likewise) and s
    ``mse_scale``; the 1/2 and the sum over classes match the UFM objective
    ``1/(2N) ||W H + b 1^T - Y||_F^2`` of docs/theory.md.
    """
    if config.loss == "ce":
        return F.cross_entropy(
            logits, labels, reduction="none", label_smoothing=config.label_smoothing
        )
    target = F.one_hot(labels, num_classes).to(logits.dtype)
    if config.label_smoothing:
        target = (1 - config.label_smoothing) * target + config.label_smoothing / num_classes
    return 0.5 * (logits - config.mse_scale * target).pow(2).sum(dim=1)


@dataclass
class Processes:
    """Where this process sits: rank, world size, device, and whether DDP is on."""

    rank: int
    world: int
    device: torch.device
    started_group: bool

    @property
    def distributed(self) -> bool:
        return self.world > 1


def pick_device(requested: str, local_rank: int) -> torch.device:
    if requested == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda", local_rank)
        return torch.device("cpu")
    if requested.startswith("cuda"):
        if not torch.cuda.is_available():
            raise ValueError(
                f"device {requested!r} requested but no CUDA GPU is available; use --device cpu"
            )
        if requested == "cuda":
            return torch.device("cuda", local_rank)
    if requested == "mps" and not torch.backends.mps.is_available():
        raise ValueError("device 'mps' requested but MPS is not available; use --device cpu")
    return torch.device(requested)


def start_processes(config: TrainConfig) -> Processes:
    """Join the torchrun process group when WORLD_SIZE > 1 (gloo on CPU, nccl on GPU)."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    device = pick_device(config.device, local_rank)
    if world == 1:
        return Processes(0, 1, device, started_group=False)
    dist = torch.distributed
    started = False
    if not dist.is_initialized():
        backend = "nccl" if device.type == "cuda" else "gloo"
        if device.type == "cuda":
            torch.cuda.set_device(device)
        dist.init_process_group(backend=backend)
        started = True
    return Processes(dist.get_rank(), dist.get_world_size(), device, started_group=started)


def _all_reduce(values: torch.Tensor, processes: Processes) -> torch.Tensor:
    if processes.distributed:
        torch.distributed.all_reduce(values, op=torch.distributed.ReduceOp.SUM)
    return values


@dataclass
class SplitResult:
    """One split evaluated at one epoch (what :func:`evaluate_split` returns).

    loss, error : mean loss and error rate over the split (all processes).
    rows : layer -> its metrics.jsonl columns (schema rows; MSE terms on the classifier input
        of MSE runs).
    class_stats : layer -> pass-1 statistics (when asked for: the test split's reference).
    metrics : layer -> CollapseMetrics, or None where it could not be computed.
    correct_per_class, count_per_class : (K,) correct decisions and samples of each class.
    """

    loss: float
    error: float
    rows: dict[str, dict[str, Any]]
    class_stats: dict[str, ClassStats]
    metrics: dict[str, CollapseMetrics | None]
    correct_per_class: torch.Tensor
    count_per_class: torch.Tensor


def evaluate_split(
    net: CollapseNet,
    dataset: Dataset,
    *,
    config: TrainConfig,
    num_classes: int,
    layers: tuple[str, ...],
    measure_now: bool,
    processes: Processes,
    reference: dict[str, ClassStats] | None = None,
    keep_class_stats: bool = False,
    mse_ridge: float | None = None,
) -> SplitResult:
    """Mean loss, error and (if ``measure_now``) NC metrics per layer of one split.

    This process's shard (every ``world``-th sample) is streamed in batches of
    ``config.eval_batch_size`` through the network in eval mode, no grad. Without
    measurement that is one pass for the loss and the error. With it, the measuring engine
    (:func:`neuralcollapse.metrics.engine.measure_layers`) reads the stream twice (class
    means, then the within-class statistics) for every layer at once, the loss and the
    error coming from the first pass; no split's features are ever held, so the memory of
    measuring does not grow with the split (and, the stream being cut where the
    concatenated features would be, the numbers are those of the concatenated features).
    The statistics are all-reduced under torchrun.

    ``keep_class_stats`` also returns each layer's class statistics (all-reduced), so the
    training split can serve as the ``reference`` of the test split: there, as in Papyan
    et al., the nearest-class-centre rule (NCC accuracy, NC4) decides with the training
    means.

    A layer whose metrics cannot be computed at this epoch (its features became constant,
    so all class means coincide; or they are not finite) gets the row
    :func:`neuralcollapse.schema.metric_row` ``(None, reason)``: every metric null and the
    reason under ``not_computed["*"]``; training goes on (issue 16).

    ``mse_ridge`` (MSE runs: the classifier's weight decay) adds Han, Papyan & Donoho's MSE
    decomposition of the classifier input to its row (:func:`.epoch_measures.mse_columns`;
    two more passes of the classifier input).
    """
    net.eval()
    device = processes.device
    shard = shard_batches(len(dataset), processes.rank, processes.world, config.eval_batch_size)
    loss_sum = torch.zeros((), dtype=torch.float64, device=device)
    errors = torch.zeros((), dtype=torch.float64, device=device)
    correct_per_class = torch.zeros(num_classes, dtype=torch.float64, device=device)
    count_per_class = torch.zeros(num_classes, dtype=torch.float64, device=device)
    passes = 0
    # the first pass's features, replayed by the later passes while they fit in a fixed
    # budget (a small split costs one forward pass, as when features were concatenated; a
    # large one is read again: memory stays bounded either way)
    replay: list[tuple[dict[str, torch.Tensor], torch.Tensor]] | None = []
    replay_bytes, replay_complete = 0, False

    def read():
        return batches(
            dataset, shard, workers=config.workers, device=device, num_classes=num_classes
        )

    def stream(names: tuple[str, ...], captured_layers: tuple[str, ...]):
        """The features of ``names`` per batch; the first pass also sums loss and errors."""
        nonlocal passes, replay, replay_bytes, replay_complete
        passes += 1
        first = passes == 1
        if not first and replay is not None and replay_complete:
            for features, batch_labels in replay:
                yield {name: features[name] for name in names}, batch_labels
            return
        with FeatureProbe(net, captured_layers) as probe:
            for batch_images, batch_labels in read():
                out = probe.features(batch_images)
                if first:
                    count_per_class.add_(torch.bincount(batch_labels, minlength=num_classes))
                    logits = out["logits"]
                    loss_sum.add_(per_sample_loss(logits, batch_labels, config, num_classes).sum())
                    wrong = logits.argmax(dim=1) != batch_labels
                    errors.add_(wrong.sum())
                    correct_per_class.add_(
                        torch.bincount(batch_labels[~wrong], minlength=num_classes)
                    )
                features = {name: out[name] for name in names}
                if first and replay is not None:
                    replay_bytes += sum(t.numel() * t.element_size() for t in features.values())
                    if replay_bytes <= config.feature_cache_mb * 2**20:
                        replay.append((features, batch_labels))
                    else:
                        replay = None  # over the budget: later passes read the data again
                yield features, batch_labels
        replay_complete = first

    names = (PENULTIMATE_POST, PENULTIMATE_PRE, *layers) if measure_now else ()
    rows: dict[str, dict[str, Any]] = {}
    results: dict[str, CollapseMetrics | None] = {}
    class_stats: dict[str, ClassStats] = {}
    if not names:
        for _ in stream((), ()):  # the loss and the error only
            pass
    else:
        classifier = net.classifier
        specs: dict[str, LayerSpec] = {}
        for name in names:
            spec = LayerSpec()
            if name == PENULTIMATE_POST:
                spec.weights = classifier.weight.detach()
                spec.bias = None if classifier.bias is None else classifier.bias.detach()
            if reference is not None:
                if name not in reference:
                    reason = (
                        "the training split's statistics of this layer could not be gathered, "
                        "so the nearest-class-centre rule has no training means"
                    )
                    results[name], rows[name] = None, schema.metric_row(None, reason)
                    continue
                spec.reference = reference[name]
            specs[name] = spec
        if not specs:  # no layer has training means: the loss and the error only
            for _ in stream((), ()):
                pass
        # the geometry comes from all-reduced statistics, so a degenerate layer fails alike on
        # every rank (NaN features fail before the all-reduce, but a NaN loss stops first)
        measured = (
            measure_layers(
                lambda: stream(tuple(specs), layers),
                specs,
                num_classes=num_classes,
                errors="record",
                distributed=processes.distributed,
                keep_class_stats=keep_class_stats,
            )
            if specs
            else None
        )
        class_stats = {} if measured is None else measured.class_stats
        for name in names:
            if name not in specs:
                continue
            results[name] = measured[name]
            if measured[name] is None:
                rows[name] = schema.metric_row(None, measured.reasons[name])
            else:
                rows[name] = measured[name].to_dict()
        rows = {name: rows[name] for name in names}
        results = {name: results[name] for name in names}
        post = rows[PENULTIMATE_POST]
        if mse_ridge is not None and results[PENULTIMATE_POST] is not None:
            classifier_input = (PENULTIMATE_POST,)
            rows[PENULTIMATE_POST] = merge_columns(
                post,
                mse_columns(
                    lambda: aligned_batches(
                        (features[PENULTIMATE_POST], labels)
                        for features, labels in stream(classifier_input, ())
                    ),
                    num_classes=num_classes,
                    weights=specs[PENULTIMATE_POST].weights,
                    bias=specs[PENULTIMATE_POST].bias,
                    ridge=mse_ridge,
                    target_scale=config.mse_scale,
                    label_smoothing=config.label_smoothing,
                    distributed=processes.distributed,
                ),
            )
    count = torch.tensor(
        float(sum(len(indices) for indices in shard)), dtype=torch.float64, device=device
    )
    totals = _all_reduce(torch.stack([loss_sum, errors, count]), processes)
    loss, error = (totals[0] / totals[2]).item(), (totals[1] / totals[2]).item()
    _all_reduce(correct_per_class, processes)
    _all_reduce(count_per_class, processes)
    return SplitResult(loss, error, rows, class_stats, results, correct_per_class, count_per_class)


def check_run_dir(run_dir: Path) -> None:
    """``--out`` must be a folder (or not exist yet): say so before any work."""
    if run_dir.exists() and not run_dir.is_dir():
        raise ValueError(f"--out {run_dir} is a file, not a folder; choose another --out")


def resume_config(run_dir: Path, requested: dict[str, Any]) -> TrainConfig:
    """The saved configuration of ``run_dir``, with only harmless options changed.

    Raises ValueError if ``requested`` changes an option that affects the numbers.
    """
    from neuralcollapse.train.config import read_config_file

    config_path = run_dir / runformat.CONFIG
    if not config_path.is_file():
        raise FileNotFoundError(
            f"nothing to resume: {config_path} does not exist; start the run without --resume"
        )
    runformat.read_config(run_dir)  # the run-format version
    saved = read_config_file(config_path)
    # an earlier time-boxed stop applies to that invocation only
    saved["stop_after_epoch"] = None
    for name, value in requested.items():
        if name in RESUMABLE_OVERRIDES or name not in saved or saved[name] == value:
            continue
        raise ValueError(
            f"--resume continues {run_dir} with its saved options, but {name}={value!r} "
            f"differs from the saved {saved[name]!r}; drop that option or start a new run"
        )
    allowed = {k: v for k, v in requested.items() if k in RESUMABLE_OVERRIDES}
    return validate(TrainConfig(**{**saved, **allowed}))


def _capture_rng(device: torch.device) -> dict[str, Any]:
    # only torch's generators drive training (shuffling uses its own seeded generator);
    # numpy draws (subsampling) are seeded explicitly, so their global state is not needed
    state: dict[str, Any] = {"torch": torch.get_rng_state()}
    if device.type == "cuda":
        state["cuda"] = torch.cuda.get_rng_state(device)
    return state


def _restore_rng(state: dict[str, Any], device: torch.device) -> None:
    torch.set_rng_state(state["torch"])
    if device.type == "cuda" and "cuda" in state:
        torch.cuda.set_rng_state(state["cuda"], device)


def has_batch_norm(net: torch.nn.Module) -> bool:
    return any(isinstance(m, torch.nn.modules.batchnorm._BatchNorm) for m in net.modules())


def check_batch_size(batch_size: int, world: int, batch_norm: bool) -> int:
    """The smallest global batch that is trained on; refuse a batch size that trains nothing.

    A global batch smaller than ``2 * world`` is skipped (BatchNorm needs 2 samples per
    process in training mode): with ``--batch-size 1`` every batch was skipped and the run
    "finished" untrained (issue 16). Batch sizes of at least ``2 * world`` keep that rule
    (only a short last batch is skipped, as before). A smaller one is refused for a network
    with batch norm and, without batch norm, trains on every batch that gives each process
    at least one sample.
    """
    if batch_size >= 2 * world:
        return 2 * world
    if batch_norm:
        raise ValueError(
            f"--batch-size {batch_size} with batch norm: BatchNorm needs at least 2 samples "
            f"per process in each batch, so every batch would be skipped; use --batch-size "
            f">= {2 * world}, or --no-batch-norm (mlp and cnn; vgg and resnet always have it)"
        )
    if batch_size < world:
        raise ValueError(
            f"--batch-size {batch_size} is smaller than the {world} processes: each needs at "
            f"least one sample per batch; use --batch-size >= {world}"
        )
    return world


def require_tensorboard() -> None:
    """``--tensorboard`` needs the tensorboard package: say so before any work."""
    if importlib.util.find_spec("tensorboard") is None:
        raise ValueError(
            "--tensorboard needs the tensorboard package, which is not installed: "
            "pip install tensorboard (or the extra: pip install 'neuralcollapse[tensorboard]')"
        )


class TensorBoardLog:
    """Every epoch's losses, errors and lr, and every tracked metric, as TensorBoard scalars.

    Written with :class:`torch.utils.tensorboard.SummaryWriter` into ``RUN/tensorboard/``;
    the step is the epoch. Metric names are :func:`neuralcollapse.schema.scalar_logs`'s
    ``nc/<split>/<layer>/<key>``, the one naming of every logger (``penultimate_post`` is
    logged as ``penultimate``; a layer not computed at an epoch is left out there);
    the losses are ``train/loss``, ``train/error``, ``test/loss``, ``test/error``, ``lr``.
    A resumed run purges the events after its checkpoint's epoch, as it does its logs.
    """

    def __init__(self, run_dir: Path, start_epoch: int) -> None:
        from torch.utils.tensorboard import SummaryWriter

        self.writer = SummaryWriter(
            log_dir=str(run_dir / runformat.TENSORBOARD_DIR),
            purge_step=start_epoch + 1 if start_epoch else None,
        )

    def write(
        self,
        epoch: int,
        epoch_row: dict[str, Any],
        results: dict[str, dict[str, CollapseMetrics | None]],
    ) -> None:
        for split in ("train", "test"):
            for part in ("loss", "error"):
                value = epoch_row.get(f"{split}_{part}")
                if value is not None:
                    self.writer.add_scalar(f"{split}/{part}", value, epoch)
        self.writer.add_scalar("lr", epoch_row["lr"], epoch)
        for split, by_layer in results.items():
            for name, value in schema.scalar_logs(by_layer, split=split).items():
                self.writer.add_scalar(name, value, epoch)
        self.writer.flush()  # an epoch's scalars survive a kill, as its log rows do

    def close(self) -> None:
        self.writer.close()


# ----------------------------------------------------------------------------- the loop


def train(
    config: TrainConfig,
    *,
    resume: bool = False,
    datasets: tuple[Dataset, Dataset | None] | None = None,
) -> TrainResult:
    """Train ``config.arch`` on ``config.dataset`` and track neural collapse.

    Parameters
    ----------
    config : every option (:class:`TrainConfig`); validated here.
    resume : continue the run in ``config.run_dir()`` from its last checkpoint. The result
        equals that of an uninterrupted run (same seed, same device type).
    datasets : your own ``(train_dataset, test_dataset)`` (map-style datasets of ``(x, y)``,
        test None when there is none), as ``--data`` takes them from a factory; with
        ``config.num_classes`` set. Streamed, never held (docs/training.md). A resumed run
        needs the same datasets again.

    Returns
    -------
    :class:`TrainResult`. Rank 0 writes the run directory (docs/training.md).

    Raises
    ------
    ValueError, FileNotFoundError : bad options, missing data, a run directory in the way.
    TrainingDiverged : the loss became NaN/inf (the last good checkpoint is kept).

    References
    ----------
    Papyan, Han & Donoho, PNAS 2020; Tirer & Bruna, ICML 2022.
    """
    if datasets is not None:
        if not (isinstance(datasets, (tuple, list)) and len(datasets) == 2):
            raise TypeError(
                "datasets must be a pair (train_dataset, test_dataset), test_dataset None when "
                f"there is none; got {type(datasets).__name__}"
            )
        if config.data is None:  # config.json records what the run was given
            config = dataclasses.replace(config, data=f"<{type(datasets[0]).__name__}>")
    config = validate(config)
    run_dir = config.run_dir()
    if config.tensorboard:
        require_tensorboard()
    if not resume:
        check_run_dir(run_dir)
    processes = start_processes(config)
    try:
        result = _train(config, run_dir, resume, processes, datasets)
        if processes.started_group:
            # rank 0 writes the last files while the others are done: every rank waits, so
            # none leaves (and torchrun ends the job) before the run directory is complete
            torch.distributed.barrier()
        return result
    finally:
        if processes.started_group:
            torch.distributed.destroy_process_group()


@dataclass
class _Optimisation:
    """What one run trains: the network (and its DDP wrapper), optimiser and schedule."""

    net: CollapseNet
    model: torch.nn.Module  # ``net``, or its DistributedDataParallel wrapper
    optimizer: torch.optim.Optimizer
    scheduler: Any
    layers: tuple[str, ...]
    smallest_batch: int
    mse_ridge: float | None


def _load_splits(
    config: TrainConfig, device: torch.device, datasets: tuple | None = None
) -> DataSplits:
    """The run's data: the datasets given to :func:`train`, the ``--data`` factory's, or a
    registered set's tensors on the device (batches are then index slices)."""
    if datasets is not None:
        return dataset_splits(datasets[0], datasets[1], config.num_classes, "datasets=")
    if config.data is not None:
        return factory_splits(config.data, config.num_classes)
    data = load_dataset(
        config.dataset,
        data_dir=config.data_dir,
        download=config.download,
        per_class=config.per_class,
        test_per_class=config.test_per_class,
        seed=config.seed,
        imbalance=config.imbalance,
        minority_classes=config.minority_classes,
    )
    for name in ("train_images", "train_labels", "test_images", "test_labels"):
        tensor = getattr(data, name)
        if tensor is not None:
            setattr(data, name, tensor.to(device))
    return registered_splits(data, config.dataset)


def _withhold_classes(config: TrainConfig, splits: DataSplits) -> tuple[DataSplits, Any]:
    """``--transfer-classes``: the splits without those classes and the withheld samples the
    transfer measures read (:func:`.splits.withhold_classes`); ``(splits, None)`` when off."""
    if config.transfer_classes is None:
        return splits, None
    return withhold_classes(
        splits,
        parse_classes(config.transfer_classes),
        per_class=config.transfer_per_class,
        shots=config.transfer_shots,
        seed=config.seed + 5,  # its own stream: the other seeded subsets are not moved
        workers=config.workers,
    )


def _robustness_data(
    splits: DataSplits, config: TrainConfig
) -> tuple[torch.Tensor, torch.Tensor, int] | None:
    """DeepFool's images: ``(images, labels, subset)`` for :func:`robustness_columns`.

    A registered set's whole test tensors with the seeded subset size (as always); any
    other dataset's seeded subset gathered once (``subset`` then covers all of it, in the
    same order), so no test split is held.
    """
    if not config.robustness:
        return None
    from neuralcollapse.robustness import subset_indices

    if splits.test is None:
        raise ValueError(
            f"--robustness needs a test split; {splits.name} has none (use --robustness 0)"
        )
    if isinstance(splits.test, TensorDataset):
        images, labels = splits.test.tensors
        return images, labels, config.robustness
    indices = subset_indices(len(splits.test), config.robustness, config.seed)  # names the size
    images, labels = gather(splits.test, indices)
    return images, labels, len(indices)


def _build_optimisation(
    config: TrainConfig, input_shape: Any, num_classes: int, processes: Processes
) -> _Optimisation:
    """Network, SGD with a separate weight decay on the classifier, schedule, DDP wrapper."""
    torch.manual_seed(config.seed)
    net = build_net(
        config.arch,
        input_shape,
        num_classes,
        width=config.width,
        depth=config.depth,
        batch_norm=config.batch_norm,
        bias=config.bias,
        base_channels=config.base_channels,
        stem=config.stem,
        feature_dim=config.feature_dim,
    ).to(processes.device)
    if config.classifier == "fixed-etf":
        from neuralcollapse.frontier.fixed_etf import FixedETFClassifier

        # Zhu et al. 2021, Yang et al. 2022: the last layer fixed to a simplex ETF (a buffer,
        # never updated; its learnable bias only with --bias), the features trained alone
        net.classifier = FixedETFClassifier(net.feature_dim, num_classes, bias=config.bias).to(
            processes.device
        )
    layers = _resolve_layers(net, config.layers)
    smallest_batch = check_batch_size(config.batch_size, processes.world, has_batch_norm(net))
    classifier_decay = (
        config.weight_decay
        if config.classifier_weight_decay is None
        else config.classifier_weight_decay
    )
    groups = [
        {"params": net.feature_parameters(), "weight_decay": config.weight_decay},
        {"params": list(net.classifier.parameters()), "weight_decay": classifier_decay},
    ]
    optimizer = torch.optim.SGD(
        [group for group in groups if group["params"]],  # a fixed classifier may have none
        lr=config.lr,
        momentum=config.momentum,
    )
    model: torch.nn.Module = net
    if processes.distributed:
        device = processes.device
        model = torch.nn.parallel.DistributedDataParallel(
            net, device_ids=[device.index] if device.type == "cuda" else None
        )
    return _Optimisation(
        net=net,
        model=model,
        optimizer=optimizer,
        scheduler=make_scheduler(optimizer, config),
        layers=layers,
        smallest_batch=smallest_batch,
        # the least-squares classifier of Han et al.'s decomposition is ridge-regularised
        # like ours
        mse_ridge=classifier_decay if config.loss == "mse" else None,
    )


def _open_run_dir(
    run_dir: Path,
    config: TrainConfig,
    resume: bool,
    optimisation: _Optimisation,
    processes: Processes,
) -> tuple[int, int | None, runformat.RunWriter | None]:
    """A fresh run directory, or the state of its last checkpoint: ``(start_epoch, tpt,
    writer)`` (the writer on rank 0 only).

    A fresh run refuses to clobber an existing one unless ``--overwrite``, which deletes only
    the files a run writes, and only of a run of ours (:meth:`runformat.RunWriter.create`).
    On resume the log rows written after the checkpoint are dropped (they are recomputed),
    and a torn last line is reported; orphaned temporaries of a killed run are removed.
    """
    is_main = processes.rank == 0
    start_epoch, tpt_epoch, writer = 0, None, None
    if resume:
        checkpoint = runformat.load_checkpoint(run_dir)
        optimisation.net.load_state_dict(checkpoint["model"])
        optimisation.optimizer.load_state_dict(checkpoint["optimizer"])
        optimisation.scheduler.load_state_dict(checkpoint["scheduler"])
        _restore_rng(checkpoint["rng"], processes.device)
        start_epoch, tpt_epoch = checkpoint["epoch"], checkpoint["tpt_epoch"]
        if is_main:
            writer, notes = runformat.RunWriter.resume(run_dir, start_epoch)
            for note in notes:
                print(note, file=sys.stderr)
    elif is_main:
        check_run_dir(run_dir)
        writer = runformat.RunWriter.create(
            run_dir, config_to_dict(config), overwrite=config.overwrite
        )
    if is_main:
        for path in runformat.remove_orphaned_temporaries(run_dir):
            print(f"removed {path}, left by a run killed while writing it", file=sys.stderr)
    if processes.distributed:
        torch.distributed.barrier()
    return start_epoch, tpt_epoch, writer


def _train_one_epoch(
    optimisation: _Optimisation,
    splits: DataSplits,
    config: TrainConfig,
    epoch: int,
    processes: Processes,
) -> float:
    """One epoch of SGD on the shuffled global batches (the same order for any world size);
    returns the summed training loss over all processes. The batches are read from the
    dataset as they come (:func:`.splits.batches`: ``--workers`` loader processes)."""
    model, optimizer = optimisation.model, optimisation.optimizer
    rank, world, device = processes.rank, processes.world, processes.device
    n_train = len(splits.train)
    model.train()
    order = torch.randperm(
        n_train, generator=torch.Generator().manual_seed(config.seed * 1_000_003 + epoch)
    )
    global_batches = [
        batch
        for batch in torch.split(order, config.batch_size)
        if len(batch) >= optimisation.smallest_batch
    ]
    local_batches = [batch[rank::world] for batch in global_batches]
    running_loss = torch.zeros((), dtype=torch.float64, device=device)
    read = batches(
        splits.train,
        local_batches,
        workers=config.workers,
        device=device,
        num_classes=splits.num_classes,
    )
    for global_batch, (images, labels) in zip(global_batches, read, strict=True):
        logits, features = model(images, return_features=True)
        losses = per_sample_loss(logits, labels, config, splits.num_classes)
        objective = losses.sum()
        if config.feature_decay:
            objective = objective + 0.5 * config.feature_decay * features.pow(2).sum()
        # DDP averages gradients over processes: scaling the local sum by world/B makes
        # that average exactly the gradient of the mean over the global batch of B
        loss = objective * (world / len(global_batch))
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        running_loss += losses.detach().sum()
    return _all_reduce(running_loss, processes).item()


def _evaluate_epoch(
    optimisation: _Optimisation,
    splits: DataSplits,
    config: TrainConfig,
    measure_now: bool,
    processes: Processes,
) -> dict[str, SplitResult]:
    """Evaluate train and test (features captured only at tracked epochs); the test split's
    NCC uses the training means."""
    common = dict(
        config=config,
        num_classes=splits.num_classes,
        layers=optimisation.layers,
        measure_now=measure_now,
        processes=processes,
        mse_ridge=optimisation.mse_ridge,
    )
    results = {
        "train": evaluate_split(
            optimisation.net,
            splits.train,
            # the training means serve the test split's NCC, the minority cosine of the
            # means and, with K > d + 1 classes, their smallest angle and margin
            keep_class_stats=splits.has_test
            or bool(config.minority_classes)
            or many_classes(optimisation.net.feature_dim, splits.num_classes),
            **common,
        )
    }
    if splits.has_test:
        results["test"] = evaluate_split(
            optimisation.net,
            splits.test,
            reference=results["train"].class_stats,
            **common,
        )
    return results


def _epoch_row(
    epoch: int,
    lr: float,
    results: dict[str, SplitResult],
    seconds: float,
    measure_now: bool,
) -> dict[str, Any]:
    """The epochs.jsonl row of the losses and errors (the extra measures are merged in)."""
    test = results.get("test")
    return {
        "epoch": epoch,
        schema.LR: lr,
        schema.TRAIN_LOSS: results["train"].loss,
        schema.TRAIN_ERROR: results["train"].error,
        schema.TEST_LOSS: test.loss if test is not None else None,
        schema.TEST_ERROR: test.error if test is not None else None,
        "seconds": seconds,
        "tracked": measure_now,
    }


def _extra_columns(
    config: TrainConfig,
    net: CollapseNet,
    splits: DataSplits,
    deepfool_data: tuple[torch.Tensor, torch.Tensor, int] | None,
    withheld: Any,
    results: dict[str, SplitResult],
    measure_now: bool,
    is_main: bool,
) -> list[dict[str, Any]]:
    """The extra measures of this epoch: each adds its columns (schema.RUN_COLUMNS) and
    never stops the run."""
    extras: list[dict[str, Any]] = []
    if config.minority_classes:
        evaluated = results["test" if splits.has_test else "train"]
        extras.append(
            group_columns(
                evaluated.correct_per_class, evaluated.count_per_class, config.minority_classes
            )
        )
        train_stats = results["train"].class_stats.get(PENULTIMATE_POST)
        extras.append(
            minority_columns(net.classifier.weight.detach(), train_stats, config.minority_classes)
        )
    if many_classes(net.feature_dim, splits.num_classes):
        extras.append(
            code_columns(
                net.classifier.weight,
                results["train"].class_stats.get(PENULTIMATE_POST),
                measure_now=measure_now,
            )
        )
    if deepfool_data is not None:
        images, labels, subset = deepfool_data
        extras.append(
            robustness_columns(
                net,
                images,
                labels,
                subset=subset,
                seed=config.seed,
                measure_now=measure_now and is_main,
            )
        )
    extras.append(
        transfer_columns(
            net,
            withheld,
            shots=config.transfer_shots,
            ways=config.transfer_ways,
            episodes=config.transfer_episodes,
            seed=config.seed,
            batch_size=config.eval_batch_size,
            measure_now=measure_now and is_main,
        )
    )
    return extras


def _metrics_rows(
    epoch: int, epoch_row: dict[str, Any], results: dict[str, SplitResult]
) -> list[dict[str, Any]]:
    """The metrics.jsonl rows of one epoch: one per split and layer, with the losses."""
    columns = (schema.TRAIN_LOSS, schema.TRAIN_ERROR, schema.TEST_LOSS, schema.TEST_ERROR)
    losses_part = {key: epoch_row[key] for key in (*columns, schema.LR)}
    return [
        {"epoch": epoch, "split": split, "layer": layer, **losses_part, **values}
        for split, result in results.items()
        for layer, values in result.rows.items()
    ]


def _save_checkpoint(
    run_dir: Path,
    epoch: int,
    tpt_epoch: int | None,
    optimisation: _Optimisation,
    config: TrainConfig,
    device: torch.device,
) -> None:
    runformat.save_checkpoint(
        run_dir,
        {
            "epoch": epoch,
            "tpt_epoch": tpt_epoch,
            "model": optimisation.net.state_dict(),
            "optimizer": optimisation.optimizer.state_dict(),
            "scheduler": optimisation.scheduler.state_dict(),
            "rng": _capture_rng(device),
            "config": config_to_dict(config),
            "version": runformat.VERSION,
        },
    )


def _train(
    config: TrainConfig,
    run_dir: Path,
    resume: bool,
    processes: Processes,
    datasets: tuple | None = None,
) -> TrainResult:
    device, is_main = processes.device, processes.rank == 0
    splits, withheld = _withhold_classes(config, _load_splits(config, device, datasets))
    optimisation = _build_optimisation(config, splits.input_shape, splits.num_classes, processes)
    start_epoch, tpt_epoch, writer = _open_run_dir(run_dir, config, resume, optimisation, processes)
    board = TensorBoardLog(run_dir, start_epoch) if (config.tensorboard and is_main) else None

    tracked = set(tracking_epochs(config.epochs, config.track, config.track_points))
    deepfool_data = _robustness_data(splits, config)
    spectra_data = _spectra_data(optimisation.net, splits, config, tracked, start_epoch, is_main)
    agop_images = _agop_images(splits, config)
    if deepfool_data is not None:
        _announce_robustness(
            optimisation.net, deepfool_data[0], config, tracked, start_epoch, is_main
        )
    # K > d + 1: the best known smallest angle of K unit vectors in R^d, for the report
    code_reference = {}
    feature_dim = optimisation.net.feature_dim
    if is_main and many_classes(feature_dim, splits.num_classes):
        code_reference[SPHERICAL_CODE] = spherical_code_reference(
            splits.num_classes, feature_dim, config.seed
        )
    last_epoch_row: dict[str, Any] = {}
    if resume and is_main:
        previous = writer.epochs()
        last_epoch_row = previous[-1] if previous else {}
    metrics_rows: list[dict[str, Any]] = []
    latest_nc1 = float("nan")
    stop_epoch = config.epochs
    if config.stop_after_epoch is not None:
        stop_epoch = min(config.epochs, config.stop_after_epoch)
    bar = tqdm(
        total=config.epochs,
        initial=start_epoch,
        desc=f"train {config.arch}/{config.dataset}",
        unit="epoch",
        disable=bar_disabled(config.progress and is_main),
        dynamic_ncols=True,
    )

    epoch = checkpoint_epoch = start_epoch
    for epoch in range(start_epoch + 1, stop_epoch + 1):
        started = time.perf_counter()
        lr = optimisation.optimizer.param_groups[0]["lr"]
        running_loss = _train_one_epoch(optimisation, splits, config, epoch, processes)
        optimisation.scheduler.step()
        measure_now = epoch in tracked
        # a NaN/inf loss stops the run before its epoch is logged; training's sum is checked
        # before evaluation (which would only repeat it), the evaluated loss after
        results = (
            _evaluate_epoch(optimisation, splits, config, measure_now, processes)
            if math.isfinite(running_loss)
            else None
        )
        if results is None or not math.isfinite(results["train"].loss):
            if board is not None:
                board.close()
            _stop_diverged(
                run_dir, writer, epoch, lr, tpt_epoch, last_epoch_row, checkpoint_epoch, bar
            )
        if tpt_epoch is None and results["train"].error == 0:
            tpt_epoch = epoch  # the terminal phase of training starts here

        # ---- log (rank 0 writes)
        epoch_row = _epoch_row(epoch, lr, results, time.perf_counter() - started, measure_now)
        extras = _extra_columns(
            config,
            optimisation.net,
            splits,
            deepfool_data,
            withheld,
            results,
            measure_now,
            is_main,
        )
        spectra_row, spectra_summary = spectra_columns(
            optimisation.net,
            spectra_data,
            params=_spectra_params(config),
            loss=config.loss,
            seed=config.seed,
            measure_now=measure_now and is_main,
        )
        epoch_row = last_epoch_row = merge_columns(epoch_row, *extras, spectra_row)
        rows = _metrics_rows(epoch, epoch_row, results)
        metrics_rows += rows
        if measure_now:
            latest = results["train"].rows[PENULTIMATE_POST][schema.NC1]
            latest_nc1 = float("nan") if latest is None else latest  # None: not computed
        if is_main:
            writer.write_epoch(epoch, epoch_row, rows)
            if spectra_summary is not None:
                writer.write_spectra(epoch, spectra_summary)
            ansatz = agop_row(
                optimisation.net,
                agop_images,
                batch_size=config.eval_batch_size,
                measure_now=measure_now,
            )
            if ansatz is not None:
                writer.write_agop(epoch, ansatz)
        if board is not None:
            board.write(epoch, epoch_row, {split: part.metrics for split, part in results.items()})

        # ---- checkpoint (atomic), then summary
        if is_main and (epoch % config.checkpoint_every == 0 or epoch == stop_epoch):
            _save_checkpoint(run_dir, epoch, tpt_epoch, optimisation, config, device)
            checkpoint_epoch = epoch
            _write_summary(writer, tpt_epoch, epoch, epoch_row, finished=False, **code_reference)
        bar.update(1)
        train_loss, train_error = results["train"].loss, results["train"].error
        bar.set_postfix(loss=f"{train_loss:.3g}", err=f"{train_error:.3g}", nc1=f"{latest_nc1:.3g}")
    bar.close()
    if board is not None:
        board.close()

    epochs_done = max(epoch, start_epoch)
    finished = epochs_done >= config.epochs
    if is_main:
        _write_summary(
            writer, tpt_epoch, epochs_done, last_epoch_row, finished=finished, **code_reference
        )
        writer.write_csv()
        if not finished:
            tqdm.write(
                f"stopped after epoch {epochs_done} of {config.epochs}; continue with "
                f"`neuralcollapse train --resume --out {run_dir}`"
            )
    return TrainResult(
        run_dir, epochs_done, tpt_epoch, finished, last_epoch_row, optimisation.net, metrics_rows
    )


def _training_subset(splits: DataSplits, size: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """``(images, labels)`` of ``size`` seeded training samples (all when fewer), gathered
    once: the fixed samples the spectra and the AGOP are measured on."""
    from neuralcollapse.robustness import subset_indices

    size = min(size, len(splits.train))
    return gather(splits.train, subset_indices(len(splits.train), size, seed))


def _agop_images(splits: DataSplits, config: TrainConfig) -> torch.Tensor | None:
    """``--track-agop N``: N seeded training images, gathered once (None when off)."""
    if not config.track_agop:
        return None
    return _training_subset(splits, config.track_agop, config.seed + 7)[0]


def _spectra_params(config: TrainConfig) -> list[str]:
    return [name.strip() for name in config.spectra_params.split(",") if name.strip()]


def _spectra_data(
    net: CollapseNet,
    splits: DataSplits,
    config: TrainConfig,
    tracked: set[int],
    start_epoch: int,
    is_main: bool,
) -> list[tuple[torch.Tensor, torch.Tensor]] | None:
    """``--track-spectra N``: N seeded training samples, gathered once; the cost printed."""
    if not config.track_spectra:
        return None
    from neuralcollapse.spectra import estimate_cost

    data = [_training_subset(splits, config.track_spectra, config.seed + 3)]
    if is_main:
        with eval_mode(net):
            cost = estimate_cost(
                net, data, params=_spectra_params(config), loss=config.loss, subsample=None
            )
        # the summary, and the SLQ density's 4 probes of up to 60 products each
        density_products = 4 * min(60, cost["num_parameters"])
        each = cost["estimated_seconds"] + density_products * cost["seconds_per_product"]
        remaining = len([epoch for epoch in tracked if epoch > start_epoch])
        print(
            f"spectra: G over {cost['num_parameters']} parameters on {cost['num_samples']} "
            f"samples: ~{each:.3g} s per measurement, ~{each * remaining:.3g} s for "
            f"{remaining} measurements (estimate)",
            file=sys.stderr,
            flush=True,
        )
    return data


def _announce_robustness(
    net: CollapseNet,
    test_images: torch.Tensor,
    config: TrainConfig,
    tracked: set[int],
    start_epoch: int,
    is_main: bool,
) -> None:
    """``--robustness N``: check N against the test split and print what it will cost
    (always, on rank 0: a user sizing N needs it most when the run goes to a log file)."""
    from neuralcollapse.robustness import describe_cost, seconds_per_image, subset_indices

    subset_indices(len(test_images), config.robustness, config.seed)  # names the split size
    if is_main:
        probe = min(16, config.robustness)
        each = seconds_per_image(net, test_images, probe=probe, seed=config.seed)
        remaining = len([epoch for epoch in tracked if epoch > start_epoch])
        print(describe_cost(each, config.robustness, remaining), file=sys.stderr, flush=True)


def _write_summary(
    writer: runformat.RunWriter,
    tpt_epoch: int | None,
    epochs_done: int,
    final: dict[str, Any],
    *,
    finished: bool,
    **extra: Any,
) -> None:
    from neuralcollapse.robustness import generalisation_table

    # Papyan et al.'s Table 1: test accuracy at the first zero-error epoch and at the last
    writer.write_summary(
        tpt_epoch=tpt_epoch,
        epochs_done=epochs_done,
        final=final,
        finished=finished,
        generalisation=generalisation_table(writer.epochs()).to_dict(),
        **extra,
    )


def _stop_diverged(
    run_dir: Path,
    writer: runformat.RunWriter | None,
    epoch: int,
    lr: float,
    tpt_epoch: int | None,
    last_good_row: dict[str, Any],
    checkpoint_epoch: int,
    bar: Any,
) -> None:
    """Record the failure and raise; checkpoints/last.pt still holds the last good epoch."""
    bar.close()
    good_epoch = last_good_row.get("epoch", 0)
    kept = (
        f"The last good checkpoint (epoch {checkpoint_epoch}) is kept in "
        f"{run_dir / runformat.CHECKPOINTS / runformat.CHECKPOINT_NAME}"
        if checkpoint_epoch
        else "No checkpoint was written before that"
    )
    message = (
        f"the training loss became NaN or infinite in epoch {epoch} (lr={lr:g}); stopped. "
        f"{kept}; lower --lr (or the weight decay / mse_scale) and start again"
    )
    if writer is not None:  # rank 0
        _write_summary(
            writer, tpt_epoch, good_epoch, last_good_row, finished=False, stopped=message
        )
        writer.write_csv()
    raise TrainingDiverged(message)
