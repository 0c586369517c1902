"""``neuralcollapse measure FILE.npz [--json] [--per-class CSV]``: the metrics of saved features."""

from __future__ import annotations

import argparse
import math
import zipfile
from pathlib import Path
from typing import TYPE_CHECKING

from neuralcollapse import schema

if TYPE_CHECKING:  # numpy and torch are imported when a command runs: `--help` stays instant
    import numpy as np

    from neuralcollapse.metrics.collapse import CollapseMetrics


def format_table(result: CollapseMetrics) -> str:
    """A readable table of every metric of :data:`neuralcollapse.schema.METRICS`, in schema
    order: its label, its value (``-`` where not computed) and its key."""
    values = result.to_dict()
    width = max(len(spec.label) for spec in schema.METRICS.values())
    lines = []
    for key, spec in schema.METRICS.items():
        value = values[key]
        if value is None:
            shown = "-"
        elif isinstance(value, int):
            shown = str(value)
        elif math.isinf(value):
            shown = "inf"
        else:
            shown = f"{value:.6g}"
        lines.append(f"{spec.label:<{width}}  {shown:>14}  {key}")
    return "\n".join(lines)


def load_npz(path: str | Path) -> dict[str, np.ndarray]:
    """Read ``features``, ``labels`` and optional ``weights``, ``bias`` from an .npz file."""
    import numpy as np

    path = Path(path)
    if path.is_dir():
        raise ValueError(f"{path} is a folder, not an .npz file; pass the file inside it")
    if not path.is_file():
        raise FileNotFoundError(f"no such file: {path}")
    # an .npz is a zip archive of .npy arrays: anything else (an empty or text file, a
    # pickle) would fail inside np.load with a misleading "contains pickled data" or an
    # EOFError / BadZipFile traceback (issue 16)
    with open(path, "rb") as stream:
        magic = stream.read(4)
    if magic != b"PK\x03\x04":
        what = "empty" if not magic else "not a zip archive"
        raise ValueError(
            f"{path} is not an .npz file ({what}); write one with "
            "np.savez(path, features=..., labels=...)"
        )
    try:
        archive = np.load(path, allow_pickle=False)
    except (EOFError, OSError, zipfile.BadZipFile) as error:
        raise ValueError(
            f"{path} is not a readable .npz file (truncated or damaged: {error}); "
            "write it again with np.savez(path, features=..., labels=...)"
        ) from None
    with archive:
        missing = [key for key in ("features", "labels") if key not in archive.files]
        if missing:
            raise ValueError(
                f"{path} lacks {', '.join(missing)}; it must hold arrays 'features' (N, d) and "
                f"'labels' (N,), optionally 'weights' (K, d), 'bias' (K,) and 'ood_features' "
                f"(M, d); found "
                f"{archive.files}. Save with np.savez(path, features=..., labels=...)"
            )
        try:
            return {key: archive[key] for key in archive.files}
        except (EOFError, OSError, zipfile.BadZipFile) as error:
            raise ValueError(
                f"{path}: an array in the archive cannot be read (truncated or damaged: "
                f"{error}); write it again with np.savez(path, features=..., labels=...)"
            ) from None
        except ValueError as error:  # an object array needs pickle, which is never used
            raise ValueError(
                f"{path}: {error}; save plain numeric arrays (not object arrays)"
            ) from None


def _reference_stats(path: str, labels: np.ndarray, num_classes: int | None):
    """``--reference TRAIN.npz``: its class means, every class present, K shared with FILE.

    K is ``--num-classes``, else the largest label of either file + 1; the checks of the
    reference's arrays name that file.
    """
    from neuralcollapse.metrics.stats import ClassStats

    train = load_npz(path)
    if num_classes is None:
        largest = _largest_label(labels, "labels", "the measured file")  # FILE's own: no prefix
    try:
        if num_classes is None:
            num_classes = 1 + max(
                largest, _largest_label(train["labels"], "labels", "the reference")
            )
        stats = ClassStats(num_classes).update(train["features"], train["labels"])
        stats.check_all_classes_present()
    except ValueError as error:  # the checks' own messages, naming the file they concern
        raise ValueError(f"--reference {path}: {error}") from None
    return stats


def _largest_label(labels: np.ndarray, name: str, where: str) -> int:
    """The largest of ``labels`` after the door's label checks; refused where it would make
    K larger than the number of samples (every class needs one; a stray label 2**40 would
    otherwise ask for a K x d allocation)."""
    from neuralcollapse.metrics.validation import as_tensor, check_labels

    tensor = as_tensor(labels, name)
    checked = check_labels(tensor, tensor.shape[0] if tensor.ndim else 0, None, tensor.device)
    if not checked.numel():
        raise ValueError(f"{name} is empty; nothing to measure")
    largest = int(checked.max())
    if largest >= checked.numel():
        raise ValueError(
            f"the largest label is {largest}, so K = {largest + 1:,} classes would be inferred "
            f"from only {checked.numel():,} samples of {where} (every class needs one); remap "
            "the labels to 0..K-1, or pass --num-classes"
        )
    return largest


def _check_figure_format(path: str) -> None:
    """``--per-class-figure``: a file format matplotlib can write, by the name's suffix."""
    suffix = Path(path).suffix.lstrip(".").lower()
    if not suffix:
        return  # matplotlib writes its default format (PNG)
    from matplotlib.figure import Figure

    formats = Figure().canvas.get_supported_filetypes()
    if suffix not in formats:
        raise ValueError(
            f"--per-class-figure {path}: matplotlib cannot write the format {suffix!r}; end "
            f"the name in one of {', '.join(sorted(formats))} (e.g. .png)"
        )


def run_measure(args: argparse.Namespace) -> int:
    from neuralcollapse.metrics.measuring import measure

    if args.per_class_figure:
        _check_figure_format(args.per_class_figure)  # before the work, not after it
    arrays = load_npz(args.file)
    reference = None
    if args.reference:
        # held-out NC4 (Papyan et al.): the nearest-class-centre rule with the training means
        reference = _reference_stats(args.reference, arrays["labels"], args.num_classes)
        args.num_classes = reference.num_classes
    result = measure(
        arrays["features"],
        arrays["labels"],
        arrays.get("weights"),
        arrays.get("bias"),
        num_classes=args.num_classes,
        ood_features=arrays.get("ood_features"),
        reference=reference,
        rtol=args.rtol,
    )
    if args.per_class:
        result.per_class.write_csv(args.per_class)
    if args.per_class_figure:
        # matplotlib only when a figure is asked for: the metrics need none of it
        from neuralcollapse.viz.per_class_figures import per_class_figure

        per_class_figure(result.per_class, title=f"Per-class collapse: {args.file}").savefig(
            args.per_class_figure
        )
    if args.json:
        print(schema.dumps(result.to_dict(), indent=2))
    else:
        print(format_table(result))
    return 0


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "measure",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
        help="neural-collapse metrics of features saved in an .npz file",
        description=(
            "Compute NC1-NC4 and related metrics of FILE.npz, which holds 'features' (N, d) "
            "and 'labels' (N,), optionally the classifier 'weights' (K, d) and 'bias' (K,), "
            "and out-of-distribution features 'ood_features' (M, d) for NC5."
        ),
    )
    parser.add_argument("file", help="path to an .npz file")
    parser.add_argument("--json", action="store_true", help="print JSON instead of a table")
    parser.add_argument(
        "--num-classes", type=int, default=None, help="K (default: largest label + 1)"
    )
    parser.add_argument(
        "--reference",
        metavar="TRAIN.npz",
        help="features and labels of the training set: NCC accuracy and NC4 then decide "
        "with its class means (held-out data, as Papyan et al.)",
    )
    parser.add_argument(
        "--rtol",
        type=float,
        default=None,
        help="relative singular-value cut-off of the centred class means (default: "
        "float64's, as torch.linalg.pinv; see docs/metrics.md, low-precision features)",
    )
    parser.add_argument(
        "--per-class",
        metavar="CSV",
        help="also write the per-class table (count, variance, norms, duality, CDNV) here",
    )
    parser.add_argument(
        "--per-class-figure",
        metavar="PNG",
        help="also draw the per-class columns against the class size (any matplotlib format)",
    )
    parser.set_defaults(func=run_measure)
