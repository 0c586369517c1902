"""``neuralcollapse train``: terminal-phase training with neural-collapse tracking.

Options come from three layers: the defaults of :class:`TrainConfig`, then ``--config
FILE.toml`` (or .json), then the command line. Under ``torchrun`` the same command runs
one process per rank.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path
from typing import Any

from neuralcollapse.train.config import (
    LOSSES,
    SCHEDULES,
    TRACK_MODES,
    TrainConfig,
    build_config,
    read_config_file,
)
from neuralcollapse.train.names import ARCHITECTURES, DATASET_NAMES

_DEFAULTS = TrainConfig()


def _default(name: str) -> str:
    value = getattr(_DEFAULTS, name)
    return "unset" if value is None else str(value)


# (option, argparse keywords); each dest is the TrainConfig field of the same name
OPTIONS: list[tuple[str, dict[str, Any]]] = [
    # data
    ("--dataset", {"choices": list(DATASET_NAMES), "help": "dataset name (default %(D)s)"}),
    (
        "--data",
        {
            "metavar": "MODULE:FACTORY",
            "help": "your own data: a function returning (train_dataset, test_dataset), torch "
            "map-style datasets of (x, y) (test None when there is none); streamed through "
            "DataLoaders, never held (needs --num-classes; replaces --dataset)",
        },
    ),
    ("--num-classes", {"type": int, "metavar": "K", "help": "classes of --data: labels in [0, K)"}),
    (
        "--workers",
        {
            "type": int,
            "metavar": "N",
            "help": "DataLoader worker processes reading --data (default %(D)s: in-process)",
        },
    ),
    (
        "--data-dir",
        {
            "metavar": "DIR",
            "help": "folder holding the dataset files (default: per dataset, see docs/training.md)",
        },
    ),
    (
        "--download",
        {
            "action": argparse.BooleanOptionalAction,
            "help": "let torchvision download a missing dataset into --data-dir",
        },
    ),
    (
        "--per-class",
        {
            "type": int,
            "help": "class-balanced subsample: n training images per class (default: all)",
        },
    ),
    ("--test-per-class", {"type": int, "help": "the same for the test split (default: all)"}),
    # network
    ("--arch", {"choices": list(ARCHITECTURES), "help": "network (default %(D)s)"}),
    (
        "--classifier",
        {
            "choices": ["learned", "fixed-etf"],
            "help": "the last layer: learned, or fixed to a simplex ETF (Zhu et al. 2021; Yang "
            "et al. 2022; its bias learned with --bias) (default %(D)s)",
        },
    ),
    ("--width", {"type": int, "help": "MLP hidden units per layer (default %(D)s)"}),
    ("--depth", {"type": int, "help": "MLP hidden layers (default %(D)s)"}),
    (
        "--batch-norm",
        {
            "action": argparse.BooleanOptionalAction,
            "help": "batch norm in MLP/CNN (default on; VGG/ResNet always have it)",
        },
    ),
    (
        "--bias",
        {
            "action": argparse.BooleanOptionalAction,
            "help": "bias of the classifier (default on; --no-bias: logits = W h)",
        },
    ),
    (
        "--base-channels",
        {
            "type": int,
            "help": "conv channels of the first stage (default 32 for cnn, 64 for vgg/resnet)",
        },
    ),
    (
        "--stem",
        {
            "choices": ["auto", "small", "imagenet"],
            "help": "ResNet stem: small = 3x3 stride-1 conv (CIFAR/MNIST), imagenet = "
            "7x7/2 + max pool; auto picks by image size (default %(D)s)",
        },
    ),
    (
        "--feature-dim",
        {
            "type": int,
            "metavar": "D",
            "help": "width of the penultimate layer, the classifier's input (mlp, cnn, vgg; "
            "default: the architecture's own); with D < K - 1 the run also records the "
            "smallest angles and margins of K > D + 1 classes (Jiang et al. 2023)",
        },
    ),
    # loss
    (
        "--loss",
        {
            "choices": list(LOSSES),
            "help": "ce (cross-entropy) or mse on one-hot targets (default %(D)s)",
        },
    ),
    (
        "--label-smoothing",
        {"type": float, "help": "label smoothing eps in [0, 1) for either loss (default %(D)s)"},
    ),
    ("--mse-scale", {"type": float, "help": "MSE target scale s: targets s*e_y (default %(D)s)"}),
    (
        "--feature-decay",
        {
            "type": float,
            "help": "penalty lam_H/2 * mean ||h||^2 on the penultimate features (default %(D)s)",
        },
    ),
    # optimisation
    ("--epochs", {"type": int, "help": "epochs (default %(D)s)"}),
    (
        "--batch-size",
        {"type": int, "help": "global batch size, over all processes (default %(D)s)"},
    ),
    ("--lr", {"type": float, "help": "initial SGD learning rate (default %(D)s)"}),
    ("--momentum", {"type": float, "help": "SGD momentum (default %(D)s)"}),
    (
        "--weight-decay",
        {"type": float, "help": "weight decay of the feature layers (default %(D)s)"},
    ),
    (
        "--classifier-weight-decay",
        {"type": float, "help": "weight decay of the classifier (default: --weight-decay)"},
    ),
    (
        "--schedule",
        {
            "choices": list(SCHEDULES),
            "help": "papyan: lr/10 at 1/3 and 2/3 of the epochs; step: lr*gamma every "
            "--step-size epochs; cosine; constant (default %(D)s)",
        },
    ),
    (
        "--step-size",
        {"type": int, "help": "epochs between steps of --schedule step (default %(D)s)"},
    ),
    ("--gamma", {"type": float, "help": "lr factor of papyan/step schedules (default %(D)s)"}),
    # tracking
    (
        "--track",
        {
            "choices": list(TRACK_MODES),
            "help": "when to measure NC: log = first, last and ~--track-points log-spaced "
            "epochs; every; none (default %(D)s)",
        },
    ),
    (
        "--track-points",
        {"type": int, "help": "log-spaced epochs between first and last (default %(D)s)"},
    ),
    (
        "--layers",
        {
            "metavar": "NAMES",
            "help": "intermediate layers for the depth-wise NC1 profile: all (the "
            "network's own list), none, or comma-separated module names "
            "(default %(D)s)",
        },
    ),
    (
        "--eval-batch-size",
        {"type": int, "help": "batch size of the evaluation passes (default %(D)s)"},
    ),
    (
        "--robustness",
        {
            "type": int,
            "metavar": "N",
            "help": "DeepFool robustness at tracked epochs on N seeded test images "
            "(0 = off; the estimated cost is printed at the start) (default %(D)s)",
        },
    ),
    (
        "--feature-cache-mb",
        {
            "type": int,
            "help": "memory for replaying a split's evaluation features in the measuring "
            "engine's second pass instead of reading the data again (default %(D)s; 0: read "
            "again); never changes a number",
        },
    ),
    (
        "--track-spectra",
        {
            "type": int,
            "help": "the Gauss-Newton spectrum (top eigenvalues, outliers, Papyan's class / "
            "cross-class prediction) at tracked epochs on N seeded training samples, written "
            "to spectra.jsonl; its cost is printed up front (default %(D)s: off)",
        },
    ),
    (
        "--spectra-params",
        {
            "metavar": "NAMES",
            "help": "parameters of the spectrum: comma-separated names or prefixes "
            "(default %(D)s: the last layer)",
        },
    ),
    (
        "--track-agop",
        {
            "type": int,
            "help": "the neural feature ansatz at tracked epochs: the correlation of each linear "
            "layer's W^T W with the AGOP (and its square root) of the logits at its input, on N "
            "seeded training samples, written to agop.jsonl (Beaglehole et al. 2024; default "
            "%(D)s: off)",
        },
    ),
    (
        "--transfer-classes",
        {
            "metavar": "CLASSES",
            "help": "withhold these classes from training (e.g. 5-9 or 1,3,5; the others are "
            "renumbered 0..K'-1) and measure at tracked epochs how the features serve them: "
            "their CDNV, the few-shot nearest-class-centre error and its bound (Galanti et al. "
            "2022; docs/frontier.md)",
        },
    ),
    (
        "--transfer-shots",
        {"type": int, "metavar": "M", "help": "support samples per class (default %(D)s)"},
    ),
    (
        "--transfer-ways",
        {
            "type": int,
            "metavar": "K",
            "help": "classes per few-shot episode (default: every withheld class)",
        },
    ),
    (
        "--transfer-per-class",
        {
            "type": int,
            "help": "seeded training samples of each withheld class measured (default %(D)s)",
        },
    ),
    (
        "--transfer-episodes",
        {"type": int, "help": "random few-shot episodes averaged (default %(D)s)"},
    ),
    (
        "--imbalance",
        {
            "type": float,
            "metavar": "R",
            "help": "step imbalance: the last --minority-classes classes keep 1/R of their "
            "training images (test split stays balanced)",
        },
    ),
    (
        "--minority-classes",
        {"type": int, "metavar": "K_B", "help": "number of minority classes (with --imbalance)"},
    ),
    # run
    (
        "--out",
        {
            "metavar": "RUN",
            "help": "run directory (default runs/<dataset>-<arch>-<loss>-seed<seed>)",
        },
    ),
    (
        "--seed",
        {"type": int, "help": "seed of initialisation, shuffling and subsampling (default %(D)s)"},
    ),
    (
        "--device",
        {
            "metavar": "DEVICE",
            "help": "auto, cpu, cuda, cuda:N or mps (default %(D)s: the GPU if any)",
        },
    ),
    ("--checkpoint-every", {"type": int, "help": "epochs between checkpoints (default %(D)s)"}),
    (
        "--stop-after-epoch",
        {
            "type": int,
            "help": "stop after this epoch (time-boxed jobs); continue later with --resume",
        },
    ),
    (
        "--overwrite",
        {"action": argparse.BooleanOptionalAction, "help": "replace an existing run in --out"},
    ),
    (
        "--progress",
        {"action": argparse.BooleanOptionalAction, "help": "show the progress bar (default on)"},
    ),
    (
        "--tensorboard",
        {
            "action": argparse.BooleanOptionalAction,
            "help": "also write every epoch's losses and tracked metrics as TensorBoard "
            "scalars into RUN/tensorboard/ (needs `pip install tensorboard`)",
        },
    ),
]


def add_options(parser: argparse.ArgumentParser) -> None:
    """Every TrainConfig option, defaulting to 'not given' so files can fill the gaps."""
    parser.add_argument(
        "--config",
        metavar="FILE",
        help="read options from a flat TOML or "
        "JSON file (keys as the option names); the command line overrides it",
    )
    parser.add_argument(
        "--resume",
        action="store_true",
        help="continue the run in --out from its last checkpoint, with its saved options",
    )
    for flag, keywords in OPTIONS:
        name = flag[2:].replace("-", "_")
        keywords = dict(keywords)
        keywords["help"] = keywords["help"].replace("%(D)s", _default(name).replace("%", "%%"))
        if keywords.get("type") is int:
            keywords.setdefault("metavar", "N")
        elif keywords.get("type") is float:
            keywords.setdefault("metavar", "X")
        parser.add_argument(flag, dest=name, default=argparse.SUPPRESS, **keywords)


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "train",
        help="train a network past zero training error and track neural collapse",
        description=(
            "Train a network into the terminal phase (Papyan, Han & Donoho 2020; Tirer & "
            "Bruna 2022) and record NC metrics of the penultimate and intermediate layers on "
            "train and test at log-spaced epochs. Writes config.json, epochs.jsonl, "
            "metrics.jsonl, metrics.csv, summary.json and checkpoints/last.pt into --out. "
            "Multi-process: torchrun --nproc_per_node=P -m neuralcollapse train ..."
        ),
    )
    add_options(parser)
    parser.set_defaults(func=run)


def options_from_args(args: argparse.Namespace) -> dict[str, Any]:
    """The TrainConfig options given on the command line (not the dispatcher's own keys)."""
    fields = set(TrainConfig.__dataclass_fields__)
    return {k: v for k, v in vars(args).items() if k in fields}


def run(args: argparse.Namespace) -> int:
    from neuralcollapse.train.loop import TrainingDiverged, resume_config, train

    from_file = read_config_file(args.config) if args.config else {}
    from_command_line = options_from_args(args)
    if args.resume:
        out = from_command_line.get("out", from_file.get("out"))
        if not out:
            raise ValueError("--resume needs --out RUN, the run directory to continue")
        if Path(out).is_file():
            raise ValueError(f"--out {out} is a file, not a run directory; nothing to resume")
        config = resume_config(TrainConfig(out=out).run_dir(), {**from_file, **from_command_line})
    else:
        config = build_config(from_file, from_command_line)
    try:
        result = train(config, resume=args.resume)
    except TrainingDiverged as error:
        print(f"neuralcollapse train: {error}", file=sys.stderr)
        return 1
    if result.finished and config.progress:
        print(
            f"done: {result.epochs_done} epochs, terminal phase from epoch "
            f"{result.tpt_epoch}, run in {result.run_dir}"
        )
    if int(os.environ.get("WORLD_SIZE", "1")) > 1:
        # a torchrun worker whose run is written leaves without the interpreter's
        # finalization, where torch 2.13's gloo threads can abort it (leave_distributed)
        from neuralcollapse.integrations.shards import leave_distributed

        leave_distributed()
    return 0
