"""Issue 23: no traceback escapes any command on bad input.

Each case is what a careful but hostile user would try against one command or option. The
rule (docs/reliability.md, "No tracebacks on bad input"): exit status 2, exactly one line on
stderr naming the problem and the fix, no traceback.

The ``--data`` factories and datasets used by the ``train`` cases live in this module
(``tests.test_cli_bad_input:...``).
"""

from __future__ import annotations

import json
import re
import shutil

import numpy as np
import pytest
import torch
from torch.utils.data import Dataset

from neuralcollapse.cli import main

MODULE = "tests.test_cli_bad_input"

# ----------------------------------------------------------------------------- --data factories


class Blobs(Dataset):
    """A tiny map-style dataset: 4 classes of Gaussian blobs, 1 x 2 x 3 "images"."""

    def __init__(self, size: int = 40, seed: int = 0) -> None:
        generator = torch.Generator().manual_seed(seed)
        self.labels = torch.arange(size) % 4
        centres = 3.0 * torch.nn.functional.pad(torch.eye(4)[self.labels], (0, 2))
        self.inputs = (torch.randn(size, 6, generator=generator) + centres).reshape(size, 1, 2, 3)

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, index: int):
        return self.inputs[index], int(self.labels[index])


class RaisesAt(Blobs):
    """Reading sample 17 raises (a corrupt file on disk, say)."""

    def __getitem__(self, index: int):
        if index == 17:
            raise OSError(f"cannot read sample {index}: file damaged")
        return super().__getitem__(index)


class LiesAboutLength(Blobs):
    """``__len__`` says 60, but only 40 samples exist: IndexError mid-epoch."""

    def __len__(self) -> int:
        return 60

    def __getitem__(self, index: int):
        return self.inputs[index], int(self.labels[index])


class StringLabelAt(Blobs):
    def __getitem__(self, index: int):
        x, y = super().__getitem__(index)
        return (x, "cat") if index == 23 else (x, y)


class ShapeChangesAt(Blobs):
    def __getitem__(self, index: int):
        x, y = super().__getitem__(index)
        return (x[:, :1], y) if index == 23 else (x, y)


class NoneInputAt(Blobs):
    def __getitem__(self, index: int):
        x, y = super().__getitem__(index)
        return (None, y) if index == 23 else (x, y)


class TripleAt(Blobs):
    def __getitem__(self, index: int):
        x, y = super().__getitem__(index)
        return (x, y, 0) if index == 23 else (x, y)


class LabelVectors(Blobs):
    """Each label a (1,) tensor: batches of (B, 1) labels."""

    def __getitem__(self, index: int):
        x, y = super().__getitem__(index)
        return x, torch.tensor([y])


def blobs():
    return Blobs(), Blobs(24, seed=1)


def raising_factory():
    raise RuntimeError("the data server is down")


def factory_needing_arguments(root):
    return Blobs(), None


def raises_mid_epoch():
    return RaisesAt(), None


def lies_about_length():
    return LiesAboutLength(), None


def string_label_mid_epoch():
    return StringLabelAt(), None


def shape_changes_mid_epoch():
    return ShapeChangesAt(), None


def none_input_mid_epoch():
    return NoneInputAt(), None


def triple_mid_epoch():
    return TripleAt(), None


def label_vectors():
    return LabelVectors(), None


def bad_test_set():
    return Blobs(), RaisesAt()


# ----------------------------------------------------------------------------- helpers

TRAIN = ["train", "--arch", "mlp", "--width", "8", "--depth", "1", "--epochs", "2"]
TRAIN += ["--batch-size", "8", "--no-progress", "--track", "every", "--layers", "none"]


def _data(factory: str, classes: int = 4) -> list[str]:
    return ["--data", f"{MODULE}:{factory}", "--num-classes", str(classes)]


def _npz(path, **arrays):
    np.savez(path, **arrays)
    return str(path)


def _good_arrays(n=20, d=5, k=4, seed=0):
    rng = np.random.default_rng(seed)
    labels = np.arange(n) % k
    features = rng.normal(size=(n, d)) + 4 * np.eye(k, d)[labels]
    return {"features": features, "labels": labels}


def _good_npz(tmp_path, name="good.npz", **overrides):
    arrays = {**_good_arrays(), **overrides}
    return _npz(tmp_path / name, **{k: v for k, v in arrays.items() if v is not None})


@pytest.fixture(scope="module")
def trained_run(tmp_path_factory):
    """A small run written by `neuralcollapse train`, stopped after epoch 1 of 2 so that it
    can be resumed (copied, then damaged, per case)."""
    out = tmp_path_factory.mktemp("run") / "run"
    assert main([*TRAIN, *_data("blobs"), "--stop-after-epoch", "1", "--out", str(out)]) == 0
    return out


def _copy_run(tmp_path, trained_run, name="run"):
    target = tmp_path / name
    shutil.copytree(trained_run, target)
    return target


def _file_under_file(tmp_path):
    blocker = tmp_path / "blocker"
    blocker.write_text("a file, not a folder\n")
    return blocker / "out"


CASES = []


def case(name: str, message: str, *, needs_run: bool = False):
    """Register ``make(tmp_path, run) -> argv`` as a case whose one line matches ``message``
    (``run``: a copy of a trained run's directory when ``needs_run``, else None)."""

    def register(make):
        CASES.append(pytest.param(make, message, needs_run, id=name))
        return make

    return register


# ----------------------------------------------------------------------------- measure


@case("measure-missing-file", r"no such file: .*nothere\.npz")
def _(tmp_path, run):
    return ["measure", str(tmp_path / "nothere.npz")]


@case("measure-empty-file", r"not an \.npz file \(empty\)")
def _(tmp_path, run):
    (tmp_path / "empty.npz").write_bytes(b"")
    return ["measure", str(tmp_path / "empty.npz")]


@case("measure-text-file", r"not an \.npz file \(not a zip archive\)")
def _(tmp_path, run):
    (tmp_path / "f.npz").write_text("features,labels\n1,2\n")
    return ["measure", str(tmp_path / "f.npz")]


@case("measure-directory", r"is a folder, not an \.npz file")
def _(tmp_path, run):
    (tmp_path / "folder.npz").mkdir()
    return ["measure", str(tmp_path / "folder.npz")]


@case("measure-truncated-npz", r"not a readable \.npz file|cannot be read")
def _(tmp_path, run):
    path = tmp_path / "t.npz"
    _good_npz(tmp_path, "t.npz")
    path.write_bytes(path.read_bytes()[:300])
    return ["measure", str(path)]


@case("measure-plain-zip", r"lacks features, labels")
def _(tmp_path, run):
    import zipfile

    with zipfile.ZipFile(tmp_path / "z.npz", "w") as archive:
        archive.writestr("readme.txt", "hello")
    return ["measure", str(tmp_path / "z.npz")]


@case("measure-object-array", r"object arrays")
def _(tmp_path, run):
    features = np.empty((4, 2), dtype=object)
    features[:] = 1.0
    return ["measure", _npz(tmp_path / "o.npz", features=features, labels=np.arange(4) % 2)]


@case("measure-missing-labels", r"lacks labels")
def _(tmp_path, run):
    return ["measure", _npz(tmp_path / "m.npz", features=np.ones((4, 2)))]


@case("measure-features-1d", r"features must be a 2-D array")
def _(tmp_path, run):
    return ["measure", _good_npz(tmp_path, features=np.arange(20.0))]


@case("measure-features-3d", r"features must be a 2-D array")
def _(tmp_path, run):
    return ["measure", _good_npz(tmp_path, features=np.ones((20, 2, 3)))]


@case("measure-features-scalar", r"features must be a 2-D array")
def _(tmp_path, run):
    return ["measure", _good_npz(tmp_path, features=np.float64(3.0))]


@case("measure-features-empty", r"features is empty")
def _(tmp_path, run):
    return ["measure", _good_npz(tmp_path, features=np.ones((0, 5)), labels=np.ones(0, int))]


@case("measure-features-strings", r"features must be .*numeric|features must be real")
def _(tmp_path, run):
    return ["measure", _good_npz(tmp_path, features=np.full((20, 5), "a"))]


@case("measure-features-complex", r"features must be real numbers")
def _(tmp_path, run):
    return ["measure", _good_npz(tmp_path, features=np.ones((20, 5), complex))]


@case("measure-features-nan", r"features contains NaN or inf .*first at index 3")
def _(tmp_path, run):
    features = _good_arrays()["features"]
    features[3, 1] = np.nan
    return ["measure", _good_npz(tmp_path, features=features)]


@case("measure-features-inf", r"features contains NaN or inf")
def _(tmp_path, run):
    features = _good_arrays()["features"]
    features[5, 0] = np.inf
    return ["measure", _good_npz(tmp_path, features=features)]


@case("measure-labels-2d", r"labels must be a 1-D array")
def _(tmp_path, run):
    return ["measure", _good_npz(tmp_path, labels=np.eye(4)[np.arange(20) % 4])]


@case("measure-labels-length", r"labels has 19 entries but features has 20 rows")
def _(tmp_path, run):
    return ["measure", _good_npz(tmp_path, labels=np.arange(19) % 4)]


@case("measure-labels-negative", r"labels must be >= 0")
def _(tmp_path, run):
    labels = np.arange(20) % 4
    labels[7] = -1
    return ["measure", _good_npz(tmp_path, labels=labels)]


@case("measure-labels-above-num-classes", r"labels must lie in \[0, 3\)")
def _(tmp_path, run):
    return ["measure", _good_npz(tmp_path), "--num-classes", "3"]


@case("measure-labels-huge", r"K = .* classes would be inferred")
def _(tmp_path, run):
    labels = np.arange(20) % 4
    labels[0] = 2**40
    return ["measure", _good_npz(tmp_path, labels=labels)]


@case("measure-labels-fractional", r"labels must be integer class indices")
def _(tmp_path, run):
    return ["measure", _good_npz(tmp_path, labels=np.arange(20) % 4 + 0.5)]


@case("measure-labels-nan", r"labels must be integer class indices")
def _(tmp_path, run):
    labels = (np.arange(20) % 4).astype(float)
    labels[2] = np.nan
    return ["measure", _good_npz(tmp_path, labels=labels)]


@case("measure-labels-strings", r"labels must be .*numeric|labels must be integer")
def _(tmp_path, run):
    return ["measure", _good_npz(tmp_path, labels=np.array(["a", "b", "c", "d"] * 5))]


@case("measure-labels-one-class", r"at least 2 classes")
def _(tmp_path, run):
    return ["measure", _good_npz(tmp_path, labels=np.zeros(20, int))]


@case("measure-empty-class", r"class|sample")
def _(tmp_path, run):
    return ["measure", _good_npz(tmp_path), "--num-classes", "6"]


@case("measure-num-classes-zero", r"at least 2 classes")
def _(tmp_path, run):
    return ["measure", _good_npz(tmp_path), "--num-classes", "0"]


@case("measure-weights-shape", r"weights must have shape \(num_classes, dim\) = \(4, 5\)")
def _(tmp_path, run):
    return ["measure", _good_npz(tmp_path, weights=np.ones((3, 5)))]


@case("measure-weights-nan", r"weights contains NaN or inf")
def _(tmp_path, run):
    weights = np.ones((4, 5))
    weights[1, 1] = np.nan
    return ["measure", _good_npz(tmp_path, weights=weights)]


@case("measure-bias-shape", r"bias must have shape \(num_classes,\) = \(4,\)")
def _(tmp_path, run):
    return ["measure", _good_npz(tmp_path, weights=np.eye(4, 5), bias=np.ones(7))]


@case("measure-bias-without-weights", r"bias was given without weights")
def _(tmp_path, run):
    return ["measure", _good_npz(tmp_path, bias=np.ones(4))]


@case("measure-ood-other-dimension", r"ood_features.*(dimension|dim|columns|shape)")
def _(tmp_path, run):
    return ["measure", _good_npz(tmp_path, ood_features=np.ones((6, 3)))]


@case("measure-ood-nan", r"ood_features contains NaN or inf")
def _(tmp_path, run):
    ood = np.ones((6, 5))
    ood[2, 2] = np.nan
    return ["measure", _good_npz(tmp_path, ood_features=ood)]


@case("measure-ood-1d", r"ood_features must be a 2-D array")
def _(tmp_path, run):
    return ["measure", _good_npz(tmp_path, ood_features=np.ones(5))]


@case("measure-reference-other-dimension", r"--reference.*(dimension|dim|columns)|d = 7|dim 7")
def _(tmp_path, run):
    reference = _npz(tmp_path / "ref.npz", **_good_arrays(d=7))
    return ["measure", _good_npz(tmp_path), "--reference", reference]


@case("measure-reference-missing", r"no such file: .*absent\.npz")
def _(tmp_path, run):
    return ["measure", _good_npz(tmp_path), "--reference", str(tmp_path / "absent.npz")]


@case("measure-reference-not-npz", r"not an \.npz file")
def _(tmp_path, run):
    (tmp_path / "ref.npz").write_text("hello")
    return ["measure", _good_npz(tmp_path), "--reference", str(tmp_path / "ref.npz")]


@case("measure-reference-fewer-classes", r"class|labels")
def _(tmp_path, run):
    reference = _npz(tmp_path / "ref.npz", **_good_arrays(k=2))
    return ["measure", _good_npz(tmp_path), "--reference", reference]


@case("measure-reference-labels-2d", r"labels must be a 1-D array")
def _(tmp_path, run):
    arrays = _good_arrays()
    arrays["labels"] = arrays["labels"][:, None]
    reference = _npz(tmp_path / "ref.npz", **arrays)
    return ["measure", _good_npz(tmp_path), "--reference", reference]


@case("measure-reference-labels-strings", r"labels must be .*numeric|labels must be integer")
def _(tmp_path, run):
    arrays = _good_arrays()
    arrays["labels"] = np.array(["a", "b", "c", "d"] * 5)
    reference = _npz(tmp_path / "ref.npz", **arrays)
    return ["measure", _good_npz(tmp_path), "--reference", reference]


@case("measure-rtol-negative", r"rtol")
def _(tmp_path, run):
    return ["measure", _good_npz(tmp_path), "--rtol", "-1"]


@case("measure-rtol-nan", r"rtol")
def _(tmp_path, run):
    return ["measure", _good_npz(tmp_path), "--rtol", "nan"]


@case("measure-per-class-under-file", r"cannot use .*blocker")
def _(tmp_path, run):
    return ["measure", _good_npz(tmp_path), "--per-class", str(_file_under_file(tmp_path))]


@case("measure-per-class-a-folder", r"cannot use .*folder|is a folder")
def _(tmp_path, run):
    (tmp_path / "folder").mkdir()
    return ["measure", _good_npz(tmp_path), "--per-class", str(tmp_path / "folder")]


@case("measure-per-class-missing-folder", r"cannot use .*nofolder|does not exist")
def _(tmp_path, run):
    return ["measure", _good_npz(tmp_path), "--per-class", str(tmp_path / "nofolder" / "p.csv")]


@case("measure-figure-unknown-format", r"format .*xyz|xyz.*format")
def _(tmp_path, run):
    return ["measure", _good_npz(tmp_path), "--per-class-figure", str(tmp_path / "f.xyz")]


@case("measure-figure-under-file", r"cannot use .*blocker")
def _(tmp_path, run):
    path = str(_file_under_file(tmp_path)) + ".png"
    return ["measure", _good_npz(tmp_path), "--per-class-figure", path]


@case("measure-reference-labels-huge", r"--reference .*largest label")
def _(tmp_path, run):
    arrays = _good_arrays()
    arrays["labels"][0] = 2**40
    reference = _npz(tmp_path / "ref.npz", **arrays)
    return ["measure", _good_npz(tmp_path), "--reference", reference]


@case("measure-reference-features-nan", r"--reference .*features contains NaN")
def _(tmp_path, run):
    arrays = _good_arrays()
    arrays["features"][4, 4] = np.nan
    reference = _npz(tmp_path / "ref.npz", **arrays)
    return ["measure", _good_npz(tmp_path), "--reference", reference]


# ----------------------------------------------------------------------------- ufm, ufm-sweep

UFM = ["ufm", "--restarts", "1", "--num-classes", "3", "--dim", "4"]


@case("ufm-one-class", r"num_classes|classes")
def _(tmp_path, run):
    return ["ufm", "--num-classes", "1"]


@case("ufm-negative-classes", r"num_classes|classes")
def _(tmp_path, run):
    return ["ufm", "--num-classes", "-3"]


@case("ufm-zero-per-class", r"per_class|per-class")
def _(tmp_path, run):
    return [*UFM, "--per-class", "0"]


@case("ufm-class-sizes-count", r"per_class|per-class|sizes")
def _(tmp_path, run):
    return [*UFM, "--per-class", "5", "6"]


@case("ufm-zero-dim", r"dim")
def _(tmp_path, run):
    return [*UFM, "--dim", "0"]


@case("ufm-negative-lambda-w", r"lam_w|lambda")
def _(tmp_path, run):
    return [*UFM, "--lambda-w", "-1"]


@case("ufm-nan-lambda-h", r"lam_h|lambda")
def _(tmp_path, run):
    return [*UFM, "--lambda-h", "nan"]


@case("ufm-inf-lambda-w", r"lam_w|lambda")
def _(tmp_path, run):
    return [*UFM, "--lambda-w", "inf"]


@case("ufm-lambda-w-per-layer-count", r"lam_w|lambda|layer")
def _(tmp_path, run):
    return [*UFM, "--lambda-w", "1e-3", "1e-3", "1e-3"]


@case("ufm-zero-depth", r"depth")
def _(tmp_path, run):
    return [*UFM, "--depth", "0"]


@case("ufm-hidden-count", r"hidden")
def _(tmp_path, run):
    return [*UFM, "--depth", "3", "--hidden", "4"]


@case("ufm-hidden-zero", r"hidden")
def _(tmp_path, run):
    return [*UFM, "--depth", "2", "--hidden", "0"]


@case("ufm-negative-bias", r"bias|lam_b")
def _(tmp_path, run):
    return [*UFM, "--bias", "-1"]


@case("ufm-nan-bias", r"bias|lam_b")
def _(tmp_path, run):
    return [*UFM, "--bias", "nan"]


@case("ufm-zero-restarts", r"restarts")
def _(tmp_path, run):
    return [*UFM, "--restarts", "0"]


@case("ufm-gd-zero-steps", r"steps")
def _(tmp_path, run):
    return [*UFM, "--solver", "gd", "--steps", "0"]


@case("ufm-gd-negative-lr", r"lr")
def _(tmp_path, run):
    return [*UFM, "--solver", "gd", "--lr", "-1", "--steps", "10"]


@case("ufm-gd-nan-lr", r"lr")
def _(tmp_path, run):
    return [*UFM, "--solver", "gd", "--lr", "nan", "--steps", "10"]


@case("ufm-gd-zero-record-every", r"record.every")
def _(tmp_path, run):
    return [*UFM, "--solver", "gd", "--steps", "10", "--record-every", "0"]


@case("ufm-implicit-bias-zero-steps", r"steps")
def _(tmp_path, run):
    zero = ["--lambda-w", "0", "--lambda-h", "0", "--loss", "ce", "--solver", "gd"]
    return [*UFM, *zero, "--steps", "0"]


@case("ufm-plot-under-file", r"cannot use .*blocker")
def _(tmp_path, run):
    return [*UFM, "--plot", str(_file_under_file(tmp_path)) + ".png"]


SWEEP = ["ufm-sweep", "--restarts", "1", "--num-classes", "3", "--dim", "4"]


@case("sweep-no-range", r"give at least one of --lambda-w-range")
def _(tmp_path, run):
    return [*SWEEP, "--out", str(tmp_path / "s")]


@case("sweep-three-ranges", r"at most two penalties")
def _(tmp_path, run):
    ranges = ["1e-3", "1e-2", "2"]
    return [
        *SWEEP,
        "--lambda-w-range",
        *ranges,
        "--lambda-h-range",
        *ranges,
        "--lambda-b-range",
        *ranges,
        "--bias",
        "1",
        "--out",
        str(tmp_path / "s"),
    ]


@case("sweep-zero-count", r"NUM must be a positive integer")
def _(tmp_path, run):
    return [*SWEEP, "--lambda-w-range", "1e-3", "1e-2", "0", "--out", str(tmp_path / "s")]


@case("sweep-fractional-count", r"NUM must be a positive integer")
def _(tmp_path, run):
    return [*SWEEP, "--lambda-w-range", "1e-3", "1e-2", "2.5", "--out", str(tmp_path / "s")]


@case("sweep-nan-count", r"NUM must be a positive integer")
def _(tmp_path, run):
    return [*SWEEP, "--lambda-w-range", "1e-3", "1e-2", "nan", "--out", str(tmp_path / "s")]


@case("sweep-inf-count", r"NUM must be a positive integer|NUM")
def _(tmp_path, run):
    return [*SWEEP, "--lambda-w-range", "1e-3", "1e-2", "inf", "--out", str(tmp_path / "s")]


@case("sweep-zero-bound", r"bounds must be finite and > 0")
def _(tmp_path, run):
    return [*SWEEP, "--lambda-w-range", "0", "1e-2", "2", "--out", str(tmp_path / "s")]


@case("sweep-nan-bound", r"bounds must be")
def _(tmp_path, run):
    return [*SWEEP, "--lambda-w-range", "nan", "1e-2", "2", "--out", str(tmp_path / "s")]


@case("sweep-inf-bound", r"bounds must be")
def _(tmp_path, run):
    return [*SWEEP, "--lambda-w-range", "1e-3", "inf", "2", "--out", str(tmp_path / "s")]


@case("sweep-out-under-file", r"cannot use .*blocker")
def _(tmp_path, run):
    return [
        *SWEEP,
        "--lambda-w-range",
        "1e-3",
        "1e-2",
        "2",
        "--out",
        str(_file_under_file(tmp_path)),
    ]


# ----------------------------------------------------------------------------- ntk

NTK = ["ntk", "--quick", "--widths"]


@case("ntk-zero-depth", r"depth")
def _(tmp_path, run):
    return [*NTK, "--depth", "0", "--out", str(tmp_path / "n")]


@case("ntk-negative-depth", r"depth")
def _(tmp_path, run):
    return [*NTK, "--depth", "-2", "--out", str(tmp_path / "n")]


@case("ntk-nan-alpha", r"alpha")
def _(tmp_path, run):
    return [*NTK, "--alpha", "nan", "--out", str(tmp_path / "n")]


@case("ntk-negative-alpha", r"alpha")
def _(tmp_path, run):
    return [*NTK, "--alpha", "-1", "--out", str(tmp_path / "n")]


@case("ntk-zero-num-train", r"num_points must be an integer >= 2 \(training points")
def _(tmp_path, run):
    return [*NTK, "--num-train", "0", "--out", str(tmp_path / "n")]


@case("ntk-one-num-train", r"num_points must be an integer >= 2 \(training points")
def _(tmp_path, run):
    return [*NTK, "--num-train", "1", "--out", str(tmp_path / "n")]


@case("ntk-zero-width", r"width")
def _(tmp_path, run):
    return ["ntk", "--quick", "--widths", "0", "--out", str(tmp_path / "n")]


@case("ntk-out-under-file", r"cannot use .*blocker")
def _(tmp_path, run):
    return [*NTK, "--out", str(_file_under_file(tmp_path))]


@case("ntk-out-is-a-file", r"cannot use .*blocker|blocker.* file")
def _(tmp_path, run):
    return [*NTK, "--out", str(_file_under_file(tmp_path).parent)]


# ----------------------------------------------------------------------------- train


def _config(tmp_path, name, text):
    path = tmp_path / name
    path.write_bytes(text if isinstance(text, bytes) else text.encode())
    return ["--config", str(path)]


def _train_with(tmp_path, *options):
    return [*TRAIN, *_data("blobs"), *options, "--out", str(tmp_path / "out")]


@case("train-config-missing", r"config file not found: .*absent\.toml")
def _(tmp_path, run):
    return _train_with(tmp_path, "--config", str(tmp_path / "absent.toml"))


@case("train-config-directory", r"--config .*is a folder")
def _(tmp_path, run):
    (tmp_path / "conf.toml").mkdir()
    return _train_with(tmp_path, "--config", str(tmp_path / "conf.toml"))


@case("train-config-yaml", r"must end in \.toml or \.json")
def _(tmp_path, run):
    return _train_with(tmp_path, *_config(tmp_path, "c.yaml", "epochs: 3\n"))


@case("train-config-toml-syntax", r"invalid TOML")
def _(tmp_path, run):
    return _train_with(tmp_path, *_config(tmp_path, "c.toml", "epochs = = 3\n"))


@case("train-config-json-syntax", r"invalid JSON")
def _(tmp_path, run):
    return _train_with(tmp_path, *_config(tmp_path, "c.json", '{"epochs": 3,'))


@case("train-config-empty-json", r"invalid JSON")
def _(tmp_path, run):
    return _train_with(tmp_path, *_config(tmp_path, "c.json", ""))


@case("train-config-json-list", r"expected a table of options")
def _(tmp_path, run):
    return _train_with(tmp_path, *_config(tmp_path, "c.json", "[1, 2]"))


@case("train-config-json-string", r"expected a table of options")
def _(tmp_path, run):
    return _train_with(tmp_path, *_config(tmp_path, "c.json", '"epochs"'))


@case("train-config-not-utf8", r"c\.toml.*(UTF-8|utf-8)")
def _(tmp_path, run):
    return _train_with(tmp_path, *_config(tmp_path, "c.toml", b'arch = "\xff\xfe"\n'))


@case("train-config-json-not-utf8", r"c\.json.*(UTF-8|utf-8)")
def _(tmp_path, run):
    return _train_with(tmp_path, *_config(tmp_path, "c.json", b'{"arch": "\xff"}'))


@case("train-config-unknown-key", r"unknown option 'epoch' \(did you mean epochs")
def _(tmp_path, run):
    return _train_with(tmp_path, *_config(tmp_path, "c.toml", "epoch = 3\n"))


@case("train-config-nested-table", r"flat key = value")
def _(tmp_path, run):
    return _train_with(tmp_path, *_config(tmp_path, "c.toml", "[optim]\nlr = 0.1\n"))


@case("train-config-string-for-int", r"epochs")
def _(tmp_path, run):
    return _train_with(tmp_path, *_config(tmp_path, "c.toml", 'epochs = "ten"\n'))


@case("train-config-float-for-int", r"epochs")
def _(tmp_path, run):
    return _train_with(tmp_path, *_config(tmp_path, "c.toml", "epochs = 2.5\n"))


@case("train-config-bool-for-int", r"epochs")
def _(tmp_path, run):
    return _train_with(tmp_path, *_config(tmp_path, "c.json", '{"epochs": true}'))


@case("train-config-list-for-float", r"lr")
def _(tmp_path, run):
    return _train_with(tmp_path, *_config(tmp_path, "c.toml", "lr = [0.1, 0.2]\n"))


@case("train-config-string-for-float", r"lr")
def _(tmp_path, run):
    return _train_with(tmp_path, *_config(tmp_path, "c.json", '{"lr": "fast"}'))


@case("train-config-nan-float", r"lr")
def _(tmp_path, run):
    return _train_with(tmp_path, *_config(tmp_path, "c.toml", "lr = nan\n"))


@case("train-config-int-for-bool", r"batch_norm")
def _(tmp_path, run):
    return _train_with(tmp_path, *_config(tmp_path, "c.json", '{"batch_norm": 1}'))


@case("train-config-int-for-string", r"arch")
def _(tmp_path, run):
    return _train_with(tmp_path, *_config(tmp_path, "c.json", '{"arch": 5}'))


@case("train-config-null-for-int", r"epochs.*null")
def _(tmp_path, run):
    return _train_with(tmp_path, *_config(tmp_path, "c.json", '{"epochs": null}'))


@case("train-config-toml-date", r"seed")
def _(tmp_path, run):
    return _train_with(tmp_path, *_config(tmp_path, "c.toml", "seed = 2024-01-01\n"))


@case("train-config-huge-seed", r"seed")
def _(tmp_path, run):
    return _train_with(tmp_path, *_config(tmp_path, "c.json", '{"seed": 1' + "0" * 30 + "}"))


@case("train-huge-seed", r"seed")
def _(tmp_path, run):
    return _train_with(tmp_path, "--seed", str(2**64))


@case("train-config-unknown-loss", r"loss must be one of")
def _(tmp_path, run):
    return _train_with(tmp_path, *_config(tmp_path, "c.toml", 'loss = "hinge"\n'))


@case("train-zero-epochs", r"epochs")
def _(tmp_path, run):
    return _train_with(tmp_path, "--epochs", "0")


@case("train-negative-lr", r"lr")
def _(tmp_path, run):
    return _train_with(tmp_path, "--lr", "-0.1")


@case("train-momentum-one", r"momentum")
def _(tmp_path, run):
    return _train_with(tmp_path, "--momentum", "1")


@case("train-bad-device", r"device must be")
def _(tmp_path, run):
    return _train_with(tmp_path, "--device", "tpu")


@case("train-cuda-without-cuda", r"cuda")
def _(tmp_path, run):
    if torch.cuda.is_available():
        pytest.skip("this machine has CUDA")
    return _train_with(tmp_path, "--device", "cuda")


@case("train-unknown-layer", r"layer|nosuch")
def _(tmp_path, run):
    return _train_with(tmp_path, "--layers", "nosuch")


@case("train-unknown-spectra-params", r"nosuch")
def _(tmp_path, run):
    return _train_with(tmp_path, "--track-spectra", "8", "--spectra-params", "nosuch")


@case("train-transfer-classes-not-a-range", r"--transfer-classes 'a-b': 'a-b' is not a class")
def _(tmp_path, run):
    return _train_with(tmp_path, "--transfer-classes", "a-b")


@case("train-transfer-one-class", r"withholds 1 class; .* withhold at least 2")
def _(tmp_path, run):
    return _train_with(tmp_path, "--transfer-classes", "2")


@case("train-transfer-class-outside-the-data", r"names \[7\], outside the 4 classes")
def _(tmp_path, run):
    return _train_with(tmp_path, "--transfer-classes", "2,7")


@case("train-transfer-leaves-one-class", r"withholds 3 of the 4 classes .* at least 2")
def _(tmp_path, run):
    return _train_with(tmp_path, "--transfer-classes", "1-3")


@case("train-transfer-more-ways-than-classes", r"transfer_ways .* at most the 2 withheld")
def _(tmp_path, run):
    return _train_with(tmp_path, "--transfer-classes", "2-3", "--transfer-ways", "3")


@case("train-feature-dim-on-resnet", r"--feature-dim does not apply to resnet18")
def _(tmp_path, run):
    return _train_with(tmp_path, "--arch", "resnet18", "--feature-dim", "3")  # last --arch wins


@case("train-negative-track-agop", r"track_agop must be an integer >= 0")
def _(tmp_path, run):
    return _train_with(tmp_path, "--track-agop", "-5")


@case("train-out-under-file", r"cannot use .*blocker|blocker.*file")
def _(tmp_path, run):
    return [*TRAIN, *_data("blobs"), "--out", str(_file_under_file(tmp_path))]


@case("train-out-is-a-file", r"blocker.*(is a file|file)")
def _(tmp_path, run):
    return [*TRAIN, *_data("blobs"), "--out", str(_file_under_file(tmp_path).parent)]


@case("train-resume-without-out", r"--resume needs --out")
def _(tmp_path, run):
    return ["train", "--resume", "--no-progress"]


@case("train-resume-missing-folder", r"nothing to resume|not a run|does not exist")
def _(tmp_path, run):
    return ["train", "--resume", "--out", str(tmp_path / "absent"), "--no-progress"]


@case("train-resume-empty-folder", r"nothing to resume|not a run")
def _(tmp_path, run):
    (tmp_path / "empty").mkdir()
    return ["train", "--resume", "--out", str(tmp_path / "empty"), "--no-progress"]


@case("train-resume-a-file", r"blocker.*(file|folder)")
def _(tmp_path, run):
    return ["train", "--resume", "--out", str(_file_under_file(tmp_path).parent)]


@case("train-resume-folder-of-other-files", r"nothing to resume|not a run")
def _(tmp_path, run):
    (tmp_path / "photos").mkdir()
    (tmp_path / "photos" / "cat.jpg").write_bytes(b"\xff\xd8")
    return ["train", "--resume", "--out", str(tmp_path / "photos"), "--no-progress"]


@case("train-resume-config-a-list", r"config\.json must hold a JSON object", needs_run=True)
def _(tmp_path, run):
    (run / "config.json").write_text("[1, 2, 3]")
    return ["train", "--resume", "--out", str(run), "--no-progress"]


@case("train-resume-config-not-json", r"config\.json.*not valid JSON", needs_run=True)
def _(tmp_path, run):
    (run / "config.json").write_text("{not json")
    return ["train", "--resume", "--out", str(run), "--no-progress"]


@case("train-resume-config-not-utf8", r"config\.json.*(UTF-8|utf-8)", needs_run=True)
def _(tmp_path, run):
    (run / "config.json").write_bytes(b'{"arch": "\xff"}')
    return ["train", "--resume", "--out", str(run), "--no-progress"]


@case("train-resume-config-wrong-type", r"config\.json.*epochs|epochs", needs_run=True)
def _(tmp_path, run):
    config = json.loads((run / "config.json").read_text())
    config["epochs"] = "many"
    (run / "config.json").write_text(json.dumps(config))
    return ["train", "--resume", "--out", str(run), "--no-progress"]


@case("train-resume-config-version-string", r"version", needs_run=True)
def _(tmp_path, run):
    config = json.loads((run / "config.json").read_text())
    config["version"] = "1"
    (run / "config.json").write_text(json.dumps(config))
    return ["train", "--resume", "--out", str(run), "--no-progress"]


@case("train-resume-checkpoint-garbage", r"last\.pt", needs_run=True)
def _(tmp_path, run):
    (run / "checkpoints" / "last.pt").write_bytes(b"not a checkpoint")
    return ["train", "--resume", "--out", str(run), "--no-progress"]


@case("train-resume-checkpoint-empty", r"last\.pt", needs_run=True)
def _(tmp_path, run):
    (run / "checkpoints" / "last.pt").write_bytes(b"")
    return ["train", "--resume", "--out", str(run), "--no-progress"]


@case("train-resume-checkpoint-a-folder", r"last\.pt", needs_run=True)
def _(tmp_path, run):
    (run / "checkpoints" / "last.pt").unlink()
    (run / "checkpoints" / "last.pt").mkdir()
    return ["train", "--resume", "--out", str(run), "--no-progress"]


@case("train-resume-epochs-torn-middle", r"epochs\.jsonl, line 1: not valid JSON", needs_run=True)
def _(tmp_path, run):
    text = (run / "epochs.jsonl").read_text()
    (run / "epochs.jsonl").write_text('{"epoch": 1, "lr"\n' + text)  # a torn line, then rows
    return ["train", "--resume", "--out", str(run), "--no-progress"]


@case("train-resume-epochs-string-epoch", r"epochs\.jsonl.*epoch", needs_run=True)
def _(tmp_path, run):
    rows = [json.loads(line) for line in (run / "epochs.jsonl").read_text().splitlines()]
    rows[0]["epoch"] = "one"
    (run / "epochs.jsonl").write_text("".join(json.dumps(row) + "\n" for row in rows))
    return ["train", "--resume", "--out", str(run), "--no-progress"]


@case("train-data-not-module-factory", r"MODULE:FACTORY")
def _(tmp_path, run):
    return [*TRAIN, "--data", "nocolon", "--num-classes", "4", "--out", str(tmp_path / "o")]


@case("train-data-missing-module", r"cannot import 'no_such_module_xyz'")
def _(tmp_path, run):
    return [*TRAIN, "--data", "no_such_module_xyz:f", "--num-classes", "4", "--out", str(tmp_path)]


@case("train-data-factory-raises", r"--data .*raising_factory.*RuntimeError: the data server")
def _(tmp_path, run):
    return [*TRAIN, *_data("raising_factory"), "--out", str(tmp_path / "o")]


@case("train-data-factory-needs-arguments", r"--data .*factory_needing_arguments.*argument")
def _(tmp_path, run):
    return [*TRAIN, *_data("factory_needing_arguments"), "--out", str(tmp_path / "o")]


@case("train-data-not-callable", r"not a factory")
def _(tmp_path, run):
    return [*TRAIN, *_data("MODULE"), "--out", str(tmp_path / "o")]


@case("train-data-getitem-raises", r"sample.*17|17.*sample|damaged")
def _(tmp_path, run):
    return [*TRAIN, *_data("raises_mid_epoch"), "--out", str(tmp_path / "o")]


@case("train-data-getitem-raises-workers", r"sample.*17|17.*sample|damaged")
def _(tmp_path, run):
    return [*TRAIN, *_data("raises_mid_epoch"), "--workers", "1", "--out", str(tmp_path / "o")]


@case("train-data-test-getitem-raises", r"test|damaged")
def _(tmp_path, run):
    return [*TRAIN, *_data("bad_test_set"), "--out", str(tmp_path / "o")]


@case("train-data-length-lies", r"IndexError|index|length|__len__")
def _(tmp_path, run):
    return [*TRAIN, *_data("lies_about_length"), "--out", str(tmp_path / "o")]


@case("train-data-string-label", r"label")
def _(tmp_path, run):
    return [*TRAIN, *_data("string_label_mid_epoch"), "--out", str(tmp_path / "o")]


@case("train-data-shape-changes", r"shape|size")
def _(tmp_path, run):
    return [*TRAIN, *_data("shape_changes_mid_epoch"), "--out", str(tmp_path / "o")]


@case("train-data-none-input", r"None|input|type")
def _(tmp_path, run):
    return [*TRAIN, *_data("none_input_mid_epoch"), "--out", str(tmp_path / "o")]


@case("train-data-triple", r"pair|\(x, y\)")
def _(tmp_path, run):
    return [*TRAIN, *_data("triple_mid_epoch"), "--out", str(tmp_path / "o")]


@case("train-data-label-vectors", r"label")
def _(tmp_path, run):
    return [*TRAIN, *_data("label_vectors"), "--out", str(tmp_path / "o")]


@case("train-data-too-few-classes", r"label [4-7], outside \[0, 2\)|num-classes")
def _(tmp_path, run):
    return [*TRAIN, *_data("blobs", classes=2), "--out", str(tmp_path / "o")]


# ----------------------------------------------------------------------------- report, demo


def _report(tmp_path, *runs):
    return ["report", *map(str, runs), "--out", str(tmp_path / "report")]


def _rewrite_rows(path, change):
    rows = [json.loads(line) for line in path.read_text().splitlines()]
    change(rows)
    path.write_text("".join(json.dumps(row) + "\n" for row in rows))


@case("report-missing-dir", r"absent.*does not exist")
def _(tmp_path, run):
    return _report(tmp_path, tmp_path / "absent")


@case("report-empty-dir", r"metrics\.jsonl is missing")
def _(tmp_path, run):
    (tmp_path / "empty").mkdir()
    return _report(tmp_path, tmp_path / "empty")


@case("report-a-file", r"blocker.*(is a file|not a folder|does not exist)")
def _(tmp_path, run):
    return _report(tmp_path, _file_under_file(tmp_path).parent)


@case("report-config-a-list", r"config\.json must hold a JSON object; got list", needs_run=True)
def _(tmp_path, run):
    (run / "config.json").write_text("[1, 2]")
    return _report(tmp_path, run)


@case("report-config-not-json", r"config\.json is not valid JSON", needs_run=True)
def _(tmp_path, run):
    (run / "config.json").write_text('{"version": 1,')
    return _report(tmp_path, run)


@case("report-config-empty", r"config\.json is not valid JSON", needs_run=True)
def _(tmp_path, run):
    (run / "config.json").write_text("")
    return _report(tmp_path, run)


@case("report-config-not-utf8", r"config\.json .*(UTF-8|utf-8)", needs_run=True)
def _(tmp_path, run):
    (run / "config.json").write_bytes(b'{"version": 1, "arch": "\xff"}')
    return _report(tmp_path, run)


@case("report-config-a-folder", r"config\.json", needs_run=True)
def _(tmp_path, run):
    (run / "config.json").unlink()
    (run / "config.json").mkdir()
    return _report(tmp_path, run)


@case("report-version-string", r'no integer run-format "version" \(got .1.\)', needs_run=True)
def _(tmp_path, run):
    config = json.loads((run / "config.json").read_text())
    config["version"] = "1"
    (run / "config.json").write_text(json.dumps(config))
    return _report(tmp_path, run)


@case("report-version-newer", r"newer than this neuralcollapse reads", needs_run=True)
def _(tmp_path, run):
    config = json.loads((run / "config.json").read_text())
    config["version"] = 99
    (run / "config.json").write_text(json.dumps(config))
    return _report(tmp_path, run)


@case("report-metrics-torn-middle", r"metrics\.jsonl, line 2: not valid JSON", needs_run=True)
def _(tmp_path, run):
    lines = (run / "metrics.jsonl").read_text().splitlines()
    lines[1] = lines[1][: len(lines[1]) // 2]
    (run / "metrics.jsonl").write_text("\n".join(lines) + "\n")
    return _report(tmp_path, run)


@case("report-metrics-torn-last", r"metrics\.jsonl, line \d+: not valid JSON", needs_run=True)
def _(tmp_path, run):
    with open(run / "metrics.jsonl", "a") as stream:
        stream.write('{"epoch": 2, "spl')
    return _report(tmp_path, run)


@case("report-metrics-not-utf8", r"metrics\.jsonl.*(UTF-8|utf-8)", needs_run=True)
def _(tmp_path, run):
    with open(run / "metrics.jsonl", "ab") as stream:
        stream.write(b'{"epoch": 1, "split": "\xff\xfe"}\n')
    return _report(tmp_path, run)


@case("report-metrics-binary", r"metrics\.jsonl", needs_run=True)
def _(tmp_path, run):
    (run / "metrics.jsonl").write_bytes(bytes(range(256)) * 4)
    return _report(tmp_path, run)


@case(
    "report-metrics-a-list-row", r"metrics\.jsonl, line 1: expected a JSON object", needs_run=True
)
def _(tmp_path, run):
    (run / "metrics.jsonl").write_text("[1, 2]\n{}\n")
    return _report(tmp_path, run)


@case("report-metrics-empty", r"metrics\.jsonl is empty", needs_run=True)
def _(tmp_path, run):
    (run / "metrics.jsonl").write_text("")
    return _report(tmp_path, run)


@case("report-metrics-row-without-epoch", r"metrics\.jsonl, row 2: missing key", needs_run=True)
def _(tmp_path, run):
    _rewrite_rows(run / "metrics.jsonl", lambda rows: rows[1].pop("epoch"))
    return _report(tmp_path, run)


@case(
    "report-metrics-row-without-split", r"metrics\.jsonl, row 1: missing key.*split", needs_run=True
)
def _(tmp_path, run):
    _rewrite_rows(run / "metrics.jsonl", lambda rows: rows[0].pop("split"))
    return _report(tmp_path, run)


@case("report-metrics-row-without-nc1", r"metrics\.jsonl, row 3: missing key.*nc1", needs_run=True)
def _(tmp_path, run):
    _rewrite_rows(run / "metrics.jsonl", lambda rows: rows[2].pop("nc1"))
    return _report(tmp_path, run)


@case(
    "report-metrics-epoch-string",
    r'metrics\.jsonl, row 1: "epoch" must be an integer',
    needs_run=True,
)
def _(tmp_path, run):
    _rewrite_rows(run / "metrics.jsonl", lambda rows: rows[0].update(epoch="1"))
    return _report(tmp_path, run)


@case(
    "report-metrics-epoch-float",
    r'metrics\.jsonl, row 1: "epoch" must be an integer',
    needs_run=True,
)
def _(tmp_path, run):
    _rewrite_rows(run / "metrics.jsonl", lambda rows: rows[0].update(epoch=1.5))
    return _report(tmp_path, run)


@case("report-metrics-epoch-negative", r'metrics\.jsonl, row 1: "epoch"', needs_run=True)
def _(tmp_path, run):
    _rewrite_rows(run / "metrics.jsonl", lambda rows: rows[0].update(epoch=-4))
    return _report(tmp_path, run)


@case("report-metrics-nc1-string", r"metrics\.jsonl, row 1: .*nc1.*number", needs_run=True)
def _(tmp_path, run):
    _rewrite_rows(run / "metrics.jsonl", lambda rows: rows[0].update(nc1="low"))
    return _report(tmp_path, run)


@case("report-metrics-nc1-list", r"metrics\.jsonl, row 1: .*nc1.*number", needs_run=True)
def _(tmp_path, run):
    _rewrite_rows(run / "metrics.jsonl", lambda rows: rows[0].update(nc1=[1, 2]))
    return _report(tmp_path, run)


@case("report-metrics-split-number", r"metrics\.jsonl, row 1: .*split.*string", needs_run=True)
def _(tmp_path, run):
    _rewrite_rows(run / "metrics.jsonl", lambda rows: rows[0].update(split=3))
    return _report(tmp_path, run)


@case("report-metrics-layer-null", r"metrics\.jsonl, row 1: .*layer.*string", needs_run=True)
def _(tmp_path, run):
    _rewrite_rows(run / "metrics.jsonl", lambda rows: rows[0].update(layer=None))
    return _report(tmp_path, run)


@case("report-epochs-torn-middle", r"epochs\.jsonl, line 1: not valid JSON", needs_run=True)
def _(tmp_path, run):
    text = (run / "epochs.jsonl").read_text()
    (run / "epochs.jsonl").write_text("{oops\n" + text)
    return _report(tmp_path, run)


@case(
    "report-epochs-epoch-string",
    r'epochs\.jsonl, row 1: "epoch" must be an integer',
    needs_run=True,
)
def _(tmp_path, run):
    _rewrite_rows(run / "epochs.jsonl", lambda rows: rows[0].update(epoch="one"))
    return _report(tmp_path, run)


@case("report-epochs-loss-string", r"epochs\.jsonl, row 1: .*train_loss.*number", needs_run=True)
def _(tmp_path, run):
    _rewrite_rows(run / "epochs.jsonl", lambda rows: rows[0].update(train_loss="big"))
    return _report(tmp_path, run)


@case("report-summary-a-list", r"summary\.json must hold a JSON object", needs_run=True)
def _(tmp_path, run):
    (run / "summary.json").write_text("[]")
    return _report(tmp_path, run)


@case("report-summary-not-utf8", r"summary\.json .*(UTF-8|utf-8)", needs_run=True)
def _(tmp_path, run):
    (run / "summary.json").write_bytes(b"\xff\xfe{}")
    return _report(tmp_path, run)


@case("report-summary-tpt-string", r"summary\.json.*tpt_epoch", needs_run=True)
def _(tmp_path, run):
    summary = json.loads((run / "summary.json").read_text())
    summary["tpt_epoch"] = "soon"
    (run / "summary.json").write_text(json.dumps(summary))
    return _report(tmp_path, run)


@case("report-out-under-file", r"cannot use .*blocker", needs_run=True)
def _(tmp_path, run):
    return ["report", str(run), "--out", str(_file_under_file(tmp_path))]


@case("report-out-is-a-file", r"blocker", needs_run=True)
def _(tmp_path, run):
    return ["report", str(run), "--out", str(_file_under_file(tmp_path).parent)]


@case("demo-out-under-file", r"cannot use .*blocker")
def _(tmp_path, run):
    return ["demo", "--quick", "--no-progress", "--out", str(_file_under_file(tmp_path))]


@case("demo-out-is-a-file", r"blocker")
def _(tmp_path, run):
    return ["demo", "--quick", "--no-progress", "--out", str(_file_under_file(tmp_path).parent)]


@case("demo-negative-seed", r"seed")
def _(tmp_path, run):
    return ["demo", "--quick", "--no-progress", "--seed", "-1", "--out", str(tmp_path / "d")]


# ----------------------------------------------------------------------------- the test


@pytest.mark.parametrize(("make", "message", "needs_run"), CASES)
def test_bad_input_is_one_line_exit_2(tmp_path, capsys, request, make, message, needs_run):
    run = _copy_run(tmp_path, request.getfixturevalue("trained_run")) if needs_run else None
    argv = make(tmp_path, run)
    capsys.readouterr()
    status = main(argv)
    captured = capsys.readouterr()
    lines = [line for line in captured.err.splitlines() if line.strip()]
    assert "Traceback" not in captured.err
    assert status == 2, captured.err
    assert len(lines) == 1, captured.err
    assert lines[0].startswith(f"neuralcollapse {argv[0]}: error: "), lines[0]
    assert re.search(message, lines[0]), lines[0]
