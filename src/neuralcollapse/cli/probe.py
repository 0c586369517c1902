"""``neuralcollapse probe``: neural collapse at named layers of your own model, from the shell.

    neuralcollapse probe --model mypkg.models:make_net [--checkpoint net.pt] \\
        --dataset digits --layers layer2,layer3 --classifier fc --out probe-out
    neuralcollapse probe --hf-model ./my-bert --data mypkg.data:loader \\
        --layers bert.encoder.layer.5 --classifier classifier --out probe-out

Writes OUT/metrics.json (strict JSON, one object per split and layer), OUT/run/ (the run
format, read by ``neuralcollapse report``), OUT/report.html (the snapshot page: per-layer
tables, depth profile, frame geometry of the classifier input, classifier metrics; see
:func:`neuralcollapse.viz.report.build_snapshot_report`), and prints the per-layer table.
With ``--regression`` (float targets): OUT/metrics.json and OUT/report.html (NRC1-NRC3, NRC1
across depth, the head's W W^T against the UFM; see
:func:`neuralcollapse.viz.regression_page.build_regression_report`), no run directory.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from neuralcollapse.entry_points import load_entry_point, required_arguments


def _table_keys() -> tuple[str, ...]:
    """The metrics the printed table shows (the JSON and CSV hold every metric)."""
    from neuralcollapse import schema

    return (
        schema.NC1,
        schema.ETF_GAP_MEANS,
        schema.OF_GAP_MEANS,
        schema.SELF_DUALITY,
        schema.NCC_MISMATCH,
        schema.ACCURACY,
    )


def register(subparsers) -> None:
    """Add the ``probe`` sub-command."""
    probe = subparsers.add_parser(
        "probe",
        help="measure neural collapse at named layers of any PyTorch / Hugging Face model",
        description="Load a model (a Python factory or a local Hugging Face directory) and a "
        "data set, measure the named layers, and write OUT/metrics.json, OUT/run/ and "
        "OUT/report.html.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    source = probe.add_mutually_exclusive_group(required=True)
    source.add_argument(
        "--model", metavar="MODULE:FACTORY", help="a function returning the nn.Module"
    )
    source.add_argument(
        "--hf-model", type=Path, metavar="DIR", help="a local Hugging Face model directory"
    )
    probe.add_argument(
        "--checkpoint",
        type=Path,
        help="state dict to load into --model (read with weights_only=True; a dict with a "
        "'model' entry, as neuralcollapse train writes, also works)",
    )
    data = probe.add_mutually_exclusive_group(required=True)
    data.add_argument(
        "--dataset",
        help="a registered data set (see neuralcollapse train). Preprocessing, as in training: "
        "pixels scaled to [0, 1], then normalised per channel with the mean and std of the "
        "training split (after --per-class), the same applied to the test split; digits and "
        "mnist5k have no official test split and hold out a fixed stratified 25%% / 20%% of "
        "each class. A model trained on other preprocessing (e.g. ImageNet statistics, resized "
        "inputs) needs --data with its own loader",
    )
    data.add_argument(
        "--data", metavar="MODULE:FACTORY", help="a function returning a loader of batches"
    )
    probe.add_argument("--per-class", type=int, default=None, help="training images per class")
    probe.add_argument("--batch-size", type=int, default=256, help="batch size (--dataset)")
    probe.add_argument(
        "--layers",
        default=None,
        help="comma-separated module names; 'penultimate' = classifier input",
    )
    probe.add_argument("--classifier", default=None, help="name of the final nn.Linear")
    probe.add_argument("--num-classes", type=int, default=None, help="K (default: classifier's)")
    probe.add_argument(
        "--shift-labels", action="store_true", help="next-token labels for causal LMs"
    )
    probe.add_argument(
        "--regression",
        action="store_true",
        help="float targets (B, n): neural regression collapse (NRC1 per layer, NRC1-NRC3 at "
        "the input of --classifier, the regression head); writes OUT/metrics.json and "
        "OUT/report.html (no run directory)",
    )
    probe.add_argument(
        "--drop-empty-classes", action="store_true", help="leave out classes with no sample"
    )
    probe.add_argument(
        "--rtol",
        type=float,
        default=None,
        help="relative singular-value cut-off of the class means (default: float64's)",
    )
    probe.add_argument("--out", type=Path, required=True, help="output directory")
    probe.add_argument("--device", default="cpu", help="torch device for the model")
    probe.set_defaults(func=run)


def _build_model(spec: str):
    """``--model MODULE:NAME``: a model factory called without arguments, or a module itself."""
    from torch import nn

    target = load_entry_point(spec, "--model")
    if isinstance(target, nn.Module):  # a module instance: use it as it is
        return target
    if not callable(target):
        raise ValueError(
            f"--model {spec} is a {type(target).__name__}, not a model factory: point to a "
            "function (or nn.Module class) that builds the model with no arguments"
        )
    # a builtin without a signature (os:system, say) is refused too: no factory of a model
    required = required_arguments(target)
    if required is None or required:
        needs = "arguments" if required is None else f"arguments ({', '.join(required)})"
        raise ValueError(
            f"--model {spec} needs {needs}, so it is not a model factory: write a function "
            "that builds the model with no arguments (e.g. def make_net(): return Net(10)) "
            "and point --model to it"
        )
    model = target()
    if not isinstance(model, nn.Module):
        raise ValueError(
            f"--model {spec} returned {type(model).__name__}, not an nn.Module: point to a "
            "function that returns the model"
        )
    return model


def load_model(args: argparse.Namespace):
    import torch

    if args.hf_model is not None:
        return _load_hf_model(args.hf_model)
    model = _build_model(args.model)
    if args.checkpoint is not None:
        if not args.checkpoint.is_file():
            raise FileNotFoundError(f"--checkpoint {args.checkpoint} does not exist")
        try:
            state = torch.load(args.checkpoint, map_location="cpu", weights_only=True)
        except Exception as error:  # UnpicklingError and friends: say why and what to do
            raise ValueError(
                f"--checkpoint {args.checkpoint} cannot be read with weights_only=True "
                f"({str(error).splitlines()[0]}); a file that needs a full unpickle can run "
                "arbitrary code and is refused: save model.state_dict() with torch.save"
            ) from None
        if isinstance(state, dict) and "model" in state and isinstance(state["model"], dict):
            state = state["model"]
        if not isinstance(state, dict):
            raise ValueError(
                f"--checkpoint {args.checkpoint} holds a {type(state).__name__}, not a state "
                "dict: save model.state_dict() with torch.save"
            )
        try:
            model.load_state_dict(state)
        except RuntimeError as error:  # missing / unexpected keys, mismatched shapes
            detail = " ".join(str(error).split())
            shown = detail if len(detail) <= 300 else detail[:297] + "..."
            raise ValueError(
                f"--checkpoint {args.checkpoint} does not fit the model of --model "
                f"{args.model}: {shown}. Use the checkpoint of this architecture (or the "
                "factory that built the checkpointed model)"
            ) from None
    return model


def check_device(name: str):
    """``--device``: a torch device that exists on this machine."""
    import torch

    try:
        device = torch.device(name)
    except RuntimeError as error:
        raise ValueError(f"--device {name!r} is not a torch device ({error})") from None
    available = {
        "cuda": torch.cuda.is_available,
        "mps": lambda: (
            getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available()
        ),
    }
    if device.type in available and not available[device.type]():
        raise ValueError(
            f"--device {name} is not available on this machine (torch sees no {device.type} "
            "device); use --device cpu"
        )
    if device.type == "cuda" and device.index is not None:
        if device.index >= torch.cuda.device_count():
            raise ValueError(
                f"--device {name}: this machine has {torch.cuda.device_count()} CUDA device(s)"
            )
    return device


def _load_hf_model(directory: Path):
    if not (directory / "config.json").is_file():
        raise FileNotFoundError(f"--hf-model {directory} has no config.json (not a model folder)")
    try:
        import transformers
    except ModuleNotFoundError:
        raise ValueError("--hf-model needs transformers: pip install transformers") from None
    import pickle

    try:
        config = transformers.AutoConfig.from_pretrained(directory, local_files_only=True)
        architecture = (config.architectures or ["AutoModel"])[0]
        model_class = getattr(transformers, architecture, None)
        if model_class is None:
            raise ValueError(
                f"--hf-model {directory}: config.json names the architecture {architecture!r}, "
                f"which transformers {transformers.__version__} does not have; fix "
                "'architectures' in config.json or upgrade transformers"
            )
        return model_class.from_pretrained(directory, local_files_only=True)
    except (OSError, ValueError, KeyError, RuntimeError, pickle.UnpicklingError) as error:
        if str(error).startswith("--hf-model"):
            raise
        detail = " ".join(str(error).split()) or type(error).__name__
        shown = detail if len(detail) <= 300 else detail[:297] + "..."
        # transformers loads weights with weights_only=True: a pickled payload is refused there
        raise ValueError(
            f"--hf-model {directory} cannot be loaded ({type(error).__name__}: {shown}); a "
            "weights file that needs a full unpickle is refused (it could run code): save the "
            "model with save_pretrained (safetensors)"
        ) from None


def load_data(args: argparse.Namespace):
    """(train batches, test batches or None)."""
    if args.data is not None:
        loader = load_entry_point(args.data, "--data")()
        return loader, None
    import torch
    from torch.utils.data import DataLoader, TensorDataset

    from neuralcollapse.train.data import load_dataset

    dataset = load_dataset(args.dataset, per_class=args.per_class)

    def loader(images: torch.Tensor, labels: torch.Tensor) -> DataLoader:
        return DataLoader(TensorDataset(images, labels), batch_size=args.batch_size)

    test = None
    if dataset.test_images is not None:
        test = loader(dataset.test_images, dataset.test_labels)
    return loader(dataset.train_images, dataset.train_labels), test


def format_table(results: dict[str, Any]) -> str:
    """One line per (split, layer) with the headline metrics."""
    header = f"{'split':<6} {'layer':<28}" + "".join(f"{key:>15}" for key in _table_keys())
    lines = [header]
    for split, result in results.items():
        for layer, metrics in result.items():
            if metrics is None:
                cells = f"  not computed: {result.reasons.get(layer, '')}"
            else:
                values = metrics.to_dict()
                cells = "".join(
                    f"{'-':>15}" if values[key] is None else f"{values[key]:>15.4g}"
                    for key in _table_keys()
                )
            lines.append(f"{split:<6} {layer:<28}{cells}")
    return "\n".join(lines)


def run(args: argparse.Namespace) -> int:
    from neuralcollapse import schema
    from neuralcollapse.atomic import atomic_write_bytes
    from neuralcollapse.integrations.model_metrics import ModelCollapse
    from neuralcollapse.integrations.tracker import CollapseTracker
    from neuralcollapse.viz.report import build_snapshot_report

    if args.out.exists() and not args.out.is_dir():
        raise ValueError(f"--out {args.out} is a file; choose a directory")
    device = check_device(args.device)
    model = load_model(args).to(device)
    train, test = load_data(args)
    if args.regression:
        return _run_regression(args, model, train, test)
    options: dict[str, Any] = {}
    if args.shift_labels:
        options["shift_labels"] = True
    if args.drop_empty_classes:
        options["empty_classes"] = "drop"
    if args.rtol is not None:
        options["rtol"] = args.rtol
    options["chance_warning"] = True  # a snapshot of a trained model: near chance is suspect
    tracker = CollapseTracker(
        args.out / "run",
        model,
        train,
        eval_data=test,
        layers=args.layers,
        classifier=args.classifier,
        num_classes=args.num_classes,
        config=_probe_config(args),
        # a probe is a snapshot: probing again into the same --out replaces the earlier
        # probe's run (its config included); a run of any other writer is refused
        overwrite=_is_probe_run(args.out / "run"),
        **options,
    )
    results = tracker(0)
    tracker.close()
    failed = [split for split, result in results.items() if not isinstance(result, ModelCollapse)]
    if failed:
        raise ValueError(f"nothing could be measured on {failed[0]}: {results[failed[0]]}")
    print(format_table(results))
    payload = {split: result.to_dict() for split, result in results.items()}
    atomic_write_bytes(args.out / "metrics.json", (schema.dumps(payload, indent=2) + "\n").encode())
    report = build_snapshot_report(args.out / "run", args.out, title="Neural collapse probe")
    print(f"wrote {args.out / 'metrics.json'}, {args.out / 'run'}/ and {report}", file=sys.stderr)
    return 0


def dataset_preprocessing(name: str, per_class: int | None = None) -> str:
    """What ``--dataset NAME`` does to the images before the model sees them (for the page)."""
    from neuralcollapse.train.data import DATASETS

    source = DATASETS[name].description if name in DATASETS else name
    subset = f", {per_class} training images per class" if per_class is not None else ""
    text = (
        f"{source}{subset}; pixels scaled to [0, 1], then normalised per channel with the "
        "training split's mean and standard deviation (the same values applied to the test "
        "split), as neuralcollapse train does"
    )
    if name in ("digits", "mnist5k"):
        share = "25%" if name == "digits" else "20%"
        text += f"; the test split is a fixed stratified {share} of each class (no official one)"
    return text + "."


def _probe_config(args: argparse.Namespace) -> dict[str, Any]:
    config: dict[str, Any] = {"source": "probe", "model": args.model or str(args.hf_model)}
    if args.dataset is not None:
        config["dataset"] = args.dataset
        config["preprocessing"] = dataset_preprocessing(args.dataset, args.per_class)
    elif args.data is not None:
        config["data"] = args.data
        config["preprocessing"] = f"as {args.data} returns the batches (none added by probe)."
    return config


def _is_probe_run(run_dir: Path) -> bool:
    from neuralcollapse import runformat

    try:
        config = runformat.read_config(run_dir)
    except ValueError:
        return False
    return config is not None and runformat.source_of(config) == "probe"


def _run_regression(args: argparse.Namespace, model: Any, train: Any, test: Any) -> int:
    """``probe --regression``: NRC1 of every layer, NRC1-NRC3 at the head's input."""
    from neuralcollapse import schema
    from neuralcollapse.atomic import atomic_write_bytes
    from neuralcollapse.integrations.regression import measure_regression
    from neuralcollapse.viz.regression_page import build_regression_report

    if args.classifier is None:
        raise ValueError("--regression needs --classifier NAME: the regression head (n outputs)")
    layers = [name.strip() for name in (args.layers or "").split(",") if name.strip()] or None
    results = {
        split: measure_regression(model, data, head=args.classifier, layers=layers)
        for split, data in (("train", train), ("test", test))
        if data is not None
    }
    print(f"{'split':<6} {'layer':<28}{'NRC1':>12}{'NRC2':>12}{'NRC3':>12}")
    for split, result in results.items():
        for layer, value in result.nrc1.items():
            head = result.head if layer == schema.PENULTIMATE else None
            cells = f"{value:>12.4g}" + (
                f"{head.nrc2:>12.4g}{head.nrc3:>12.4g}" if head else f"{'-':>12}{'-':>12}"
            )
            print(f"{split:<6} {layer:<28}{cells}")
    args.out.mkdir(parents=True, exist_ok=True)
    payload = {split: result.to_dict() for split, result in results.items()}
    atomic_write_bytes(args.out / "metrics.json", (schema.dumps(payload, indent=2) + "\n").encode())
    config = _probe_config(args)
    config["head"] = args.classifier
    if args.checkpoint is not None:
        config["checkpoint"] = str(args.checkpoint)
    report = build_regression_report(
        results,
        args.out,
        layers=_model_order(model, next(iter(results.values())).nrc1),
        config=config,
        title="Neural regression collapse probe",
    )
    print(f"wrote {args.out / 'metrics.json'} and {report}", file=sys.stderr)
    return 0


def _model_order(model: Any, layers: Iterable[str]) -> list[str]:
    """The measured layers in the model's order (``named_modules``, i.e. registration order),
    the head's input (penultimate) last: the order the depth figure draws."""
    from neuralcollapse import schema
    from neuralcollapse.metrics.capture import resolve_module

    # by module, not name: a compiled or DDP-wrapped model prefixes the names the user gave
    position: dict[int, int] = {}
    for index, (_, module) in enumerate(model.named_modules()):
        position.setdefault(id(module), index)
    # registration order may put the head before its input's modules (a head defined first
    # in __init__): the head's input goes last, after every layer that feeds it
    last = len(position)

    def key(name: str) -> int:
        if name == schema.PENULTIMATE:
            return last
        return position[id(resolve_module(model, name))]

    return sorted(layers, key=key)
