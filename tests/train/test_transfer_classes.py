"""``neuralcollapse train --transfer-classes``: classes withheld from training, and how the
features serve them (CDNV, few-shot error and its bound; Galanti, György & Hutter 2022)."""

from __future__ import annotations

import json
import re

import numpy as np
import pytest
import torch

from neuralcollapse import runformat, schema
from neuralcollapse.cli import main
from neuralcollapse.frontier.transfer import few_shot_bound, few_shot_error
from neuralcollapse.train.config import TrainConfig, build_config, parse_classes
from neuralcollapse.train.data import load_dataset
from neuralcollapse.train.epoch_measures import transfer_columns
from neuralcollapse.train.loop import train
from neuralcollapse.train.splits import Withheld, dataset_splits, withhold_classes
from tests.train.factories import Samples

COMMON = ["--arch", "mlp", "--width", "16", "--depth", "2", "--epochs", "3", "--track", "every"]
COMMON += ["--no-progress", "--seed", "4"]
WITHHELD = (2, 5)


def _rows(run, name, drop=()):
    rows = [json.loads(line) for line in (run / name).read_text().splitlines()]
    for row in rows:
        for key in ("seconds", *drop):
            row.pop(key, None)
    return rows


def _assert_same_rows(rows, expected):
    """The same keys and values; floats to 1e-4 (float32 training with 2 threads is not
    bitwise reproducible between processes, and no test may depend on it)."""
    assert len(rows) == len(expected)
    for row, want in zip(rows, expected, strict=True):
        assert row.keys() == want.keys()
        for key, value in want.items():
            if isinstance(value, float):
                assert row[key] == pytest.approx(value, rel=1e-4, abs=1e-9), (row["epoch"], key)
            else:
                assert row[key] == value, (row["epoch"], key)


def _train(tmp_path, name, *options):
    out = tmp_path / name
    assert main(["train", *COMMON, *options, "--out", str(out)]) == 0
    return out


@pytest.fixture(scope="module")
def withheld_run(tmp_path_factory):
    """digits with 2 and 5 withheld, every withheld training sample measured."""
    out = tmp_path_factory.mktemp("transfer") / "run"
    options = ["--dataset", "digits", "--transfer-classes", "2,5", "--transfer-per-class", "1000"]
    assert main(["train", *COMMON, *options, "--out", str(out)]) == 0
    return out


def test_withheld_classes_train_exactly_as_a_dataset_without_them(withheld_run, tmp_path):
    """The run equals one given the digits without 2 and 5, the others renumbered 0..7."""
    data = load_dataset("digits")

    def without(images, labels):
        keep = (labels != 2) & (labels != 5)
        renumber = torch.tensor([0, 1, -1, 2, 3, -1, 4, 5, 6, 7])
        return Samples(images[keep], renumber[labels[keep]])

    datasets = (
        without(data.train_images, data.train_labels),
        without(data.test_images, data.test_labels),
    )
    options = dict(arch="mlp", width=16, depth=2, epochs=3, track="every", progress=False)
    config = TrainConfig(**options, seed=4, num_classes=8, out=str(tmp_path / "api"))
    result = train(config, datasets=datasets)
    assert result.model.classifier.out_features == 8
    transfer = schema.TRANSFER_KEYS
    _assert_same_rows(
        _rows(withheld_run, runformat.EPOCHS, transfer), _rows(result.run_dir, runformat.EPOCHS)
    )
    _assert_same_rows(
        _rows(withheld_run, runformat.METRICS), _rows(result.run_dir, runformat.METRICS)
    )


def test_a_users_dataset_withholds_the_same_samples(withheld_run, tmp_path):
    """A --data factory's plain dataset (relabelled sample by sample) gives the same rows,
    the transfer columns included."""
    factory = _train(
        tmp_path,
        "factory",
        "--data",
        "tests.train.factories:digits",
        "--num-classes",
        "10",
        "--transfer-classes",
        "2,5",
        "--transfer-per-class",
        "1000",
    )
    _assert_same_rows(_rows(factory, runformat.EPOCHS), _rows(withheld_run, runformat.EPOCHS))
    _assert_same_rows(_rows(factory, runformat.METRICS), _rows(withheld_run, runformat.METRICS))


def _cdnv(features: np.ndarray, labels: np.ndarray) -> float:
    """Mean over ordered pairs of (V_i + V_j) / (2 ||mu_i - mu_j||^2), written out."""
    classes = np.unique(labels)
    means = [features[labels == c].mean(0) for c in classes]
    variances = [
        ((features[labels == c] - m) ** 2).sum(1).mean()
        for c, m in zip(classes, means, strict=True)
    ]
    values = [
        (variances[i] + variances[j]) / (2 * ((means[i] - means[j]) ** 2).sum())
        for i in range(len(classes))
        for j in range(len(classes))
        if i != j
    ]
    return float(np.mean(values))


def test_transfer_columns_equal_an_independent_computation(withheld_run):
    """The last epoch's columns from the saved network: the withheld classes' training
    samples (all of them, in order) through the penultimate layer."""
    from neuralcollapse.train.nets import build_net

    checkpoint = runformat.load_checkpoint(withheld_run)
    data = load_dataset("digits")
    net = build_net("mlp", tuple(data.input_shape), 8, width=16, depth=2)
    net.load_state_dict(checkpoint["model"])
    net.eval()
    keep = (data.train_labels == 2) | (data.train_labels == 5)
    with torch.no_grad():
        features = net(data.train_images[keep], return_features=True)[1].double()
    labels = data.train_labels[keep]
    last = _rows(withheld_run, runformat.EPOCHS)[-1]
    cdnv = _cdnv(features.numpy(), labels.numpy())
    assert last["transfer_cdnv"] == pytest.approx(cdnv, rel=1e-7)
    error = few_shot_error(features, labels, shots=5, episodes=200, seed=4)
    assert last["transfer_error"] == pytest.approx(error.mean, abs=1e-12)
    assert last["transfer_error_stderr"] == pytest.approx(error.stderr, abs=1e-12)
    assert last["transfer_bound"] == pytest.approx(few_shot_bound(cdnv, 2, 5), rel=1e-7)
    assert 0.0 <= last["transfer_error"] <= 1.0


def test_untracked_epochs_hold_nulls_and_a_run_resumes_to_the_same_rows(tmp_path):
    spec = ["--dataset", "digits", "--transfer-classes", "7-9", "--track", "log"]
    spec += ["--track-points", "2", "--epochs", "6"]
    whole = _train(tmp_path, "whole", *spec)
    rows = _rows(whole, runformat.EPOCHS)
    tracked = [row for row in rows if row["tracked"]]
    untracked = [row for row in rows if not row["tracked"]]
    assert tracked and untracked
    assert all(row["transfer_error"] is not None for row in tracked)
    assert all(all(row[key] is None for key in schema.TRANSFER_KEYS) for row in untracked)
    parts = tmp_path / "parts"
    assert main(["train", *COMMON, *spec, "--out", str(parts), "--stop-after-epoch", "4"]) == 0
    assert main(["train", "--resume", "--out", str(parts), "--no-progress"]) == 0
    _assert_same_rows(_rows(parts, runformat.EPOCHS), rows)


def test_withholding_keeps_order_size_and_labels():
    data = load_dataset("digits")
    splits = dataset_splits(
        Samples(data.train_images, data.train_labels),
        Samples(data.test_images, data.test_labels),
        10,
        "digits",
    )
    left, withheld = withhold_classes(splits, (0, 9), per_class=30, shots=5, seed=1)
    assert left.num_classes == 8 and len(left.train) == int(((data.train_labels % 9) != 0).sum())
    renumbered = torch.tensor([left.train[i][1] for i in range(len(left.train))])
    original = data.train_labels[(data.train_labels % 9) != 0]
    assert torch.equal(renumbered, original - 1)
    assert torch.equal(torch.bincount(withheld.labels), torch.tensor([30] + [0] * 8 + [30]))
    # each chosen image is a training image of its class, in the dataset's order
    for c in (0, 9):
        pool = data.train_images[data.train_labels == c].flatten(1)
        chosen = withheld.images[withheld.labels == c].flatten(1)
        positions = [int((pool == image).all(1).nonzero()[0]) for image in chosen]
        assert positions == sorted(positions)
    assert all(left.test[i][1] < 8 for i in range(len(left.test)))


class _Features(torch.nn.Module):
    """A stand-in network whose penultimate features are ``value`` for every input."""

    def __init__(self, value: float) -> None:
        super().__init__()
        self.value = torch.nn.Parameter(torch.tensor(value))

    def forward(self, x, return_features=False):
        features = torch.zeros(len(x), 3) + self.value
        return features, features


def _columns(net, withheld=None, measure_now=True):
    withheld = withheld or Withheld(torch.randn(12, 4), torch.tensor([3] * 6 + [4] * 6), (3, 4))
    return transfer_columns(
        net,
        withheld,
        shots=2,
        ways=None,
        episodes=4,
        seed=0,
        batch_size=5,
        measure_now=measure_now,
    )


def test_collapsed_or_broken_features_never_stop_a_run():
    # every withheld sample on one point: the classes cannot be told apart, the bound says 1
    row = _columns(_Features(0.0))
    assert row["transfer_cdnv"] == float("inf") and row["transfer_bound"] == 1.0
    assert row["transfer_error"] == pytest.approx(0.5)  # ties go to one class of two
    # NaN features: recorded as not computed, with the reason
    row = _columns(_Features(float("nan")))
    assert all(row[key] is None for key in schema.TRANSFER_KEYS)
    assert "not finite" in row[schema.NOT_COMPUTED]["transfer_cdnv"]
    assert _columns(_Features(0.0), measure_now=False) == dict.fromkeys(schema.TRANSFER_KEYS)
    assert (
        transfer_columns(
            _Features(0.0),
            None,
            shots=2,
            ways=None,
            episodes=4,
            seed=0,
            batch_size=5,
            measure_now=True,
        )
        == {}
    )


def test_parse_classes():
    assert parse_classes("5-9") == (5, 6, 7, 8, 9)
    assert parse_classes("7, 1,3-4,3") == (1, 3, 4, 7)
    for bad, message in (("a", "not a class index"), ("5-3", "low <= high"), ("-2", "range")):
        with pytest.raises(ValueError, match=message):
            parse_classes(bad)


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"transfer_classes": "4"}, "withhold at least 2"),
        ({"transfer_classes": "4-5", "imbalance": 2.0, "minority_classes": 2}, "do not combine"),
        ({"transfer_classes": "4-5", "transfer_per_class": 5}, "transfer_per_class"),
        ({"transfer_classes": "4-5", "transfer_ways": 3}, "at most the 2 withheld"),
        ({"transfer_classes": "4-5", "transfer_shots": 0}, "transfer_shots"),
        ({"transfer_classes": "4-5", "transfer_episodes": 1}, "transfer_episodes"),
    ],
)
def test_bad_options_name_the_problem(options, message):
    with pytest.raises(ValueError, match=message):
        build_config(options)


@pytest.mark.parametrize(
    ("classes", "message"),
    [("8-12", r"names \[10, 11, 12\], outside the 10 classes"), ("1-9", "at least 2 must be left")],
)
def test_classes_the_data_does_not_have_are_named(tmp_path, capsys, classes, message):
    status = main(
        [
            "train",
            *COMMON,
            "--dataset",
            "digits",
            "--transfer-classes",
            classes,
            "--out",
            str(tmp_path / "run"),
        ]
    )
    assert status == 2
    assert re.search(message, capsys.readouterr().err)


def test_the_report_draws_a_transfer_run(withheld_run, tmp_path):
    """From a real run: the section, its caption's numbers and its table row."""
    out = tmp_path / "report"
    assert main(["report", str(withheld_run), "--out", str(out)]) == 0
    page = (out / "report.html").read_text()
    assert "Transfer to new classes" in page
    last = _rows(withheld_run, runformat.EPOCHS)[-1]
    table = (out / "tables" / "transfer.csv").read_text().splitlines()
    assert len(table) == 2 and table[1].split(",")[1] == str(last["epoch"])
    assert float(table[1].split(",")[4]) == pytest.approx(last["transfer_error"], rel=1e-6)
