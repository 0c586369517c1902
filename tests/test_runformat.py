"""The run format has one owner: no writer touches rows it did not write (issues 22, 23).

Every writer (``neuralcollapse train``, CollapseTracker and the callbacks through it,
``probe``) goes through :class:`neuralcollapse.runformat.RunWriter`; the reader checks the
version. These tests hold each writer to that.
"""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

from neuralcollapse import runformat, schema
from neuralcollapse.cli import main
from neuralcollapse.integrations import CollapseTracker


def _rows(path):
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def _snapshot(run_dir):
    return {
        name: (run_dir / name).read_bytes()
        for name in runformat.LOG_NAMES
        if (run_dir / name).is_file()
    }


@pytest.fixture(scope="module")
def train_run(tmp_path_factory):
    """A 3-epoch `neuralcollapse train` run (digits, small MLP)."""
    out = tmp_path_factory.mktemp("train") / "run"
    status = main(
        [
            "train",
            "--dataset",
            "digits",
            "--arch",
            "mlp",
            "--width",
            "16",
            "--depth",
            "2",
            "--epochs",
            "3",
            "--track",
            "every",
            "--out",
            str(out),
            "--no-progress",
        ]
    )
    assert status == 0
    return out


def _tracker_setup():
    torch.manual_seed(0)
    labels = torch.arange(90) % 3
    inputs = torch.randn(90, 6) + labels.view(-1, 1).float()
    model = nn.Sequential(nn.Linear(6, 12), nn.ReLU(), nn.Linear(12, 3))
    return model, DataLoader(TensorDataset(inputs, labels), batch_size=30)


def test_a_tracker_refuses_a_training_run_and_leaves_every_byte(train_run, tmp_path):
    before = _snapshot(train_run)
    assert len(_rows(train_run / runformat.EPOCHS)) == 3
    model, loader = _tracker_setup()
    with pytest.raises(ValueError, match=r"written by `neuralcollapse train`.*overwrite=True"):
        CollapseTracker(train_run, model, loader, classifier="2")
    assert _snapshot(train_run) == before


def test_the_callbacks_and_probe_refuse_a_training_run_too(train_run, tmp_path):
    before = _snapshot(train_run)
    model, loader = _tracker_setup()
    with pytest.raises(ValueError, match="neuralcollapse train"):
        CollapseTracker(train_run, model, loader, classifier="2", config={"source": "lightning"})
    assert _snapshot(train_run) == before


def test_overwrite_replaces_another_writers_run_with_a_new_one(tmp_path):
    model, loader = _tracker_setup()
    first = CollapseTracker(tmp_path / "run", model, loader, classifier="2", config={"lr": 0.1})
    for epoch in (1, 2, 3):
        first(epoch, train_loss=1.0)
    with pytest.raises(ValueError, match=r"another configuration \(lr differ\)"):
        CollapseTracker(tmp_path / "run", model, loader, classifier="2", config={"lr": 0.2})
    assert len(_rows(tmp_path / "run" / runformat.EPOCHS)) == 3
    second = CollapseTracker(
        tmp_path / "run", model, loader, classifier="2", config={"lr": 0.2}, overwrite=True
    )
    second(1, train_loss=0.5)
    assert [row["epoch"] for row in _rows(tmp_path / "run" / runformat.EPOCHS)] == [1]
    config = json.loads((tmp_path / "run" / runformat.CONFIG).read_text())
    assert config["lr"] == 0.2 and config["version"] == runformat.VERSION


def test_an_epoch_recorded_twice_keeps_the_later_call_only(tmp_path):
    model, loader = _tracker_setup()
    tracker = CollapseTracker(tmp_path / "run", model, loader, classifier="2")
    tracker(1, train_loss=1.0)
    tracker(2, train_loss=0.9)
    tracker(2, train_loss=0.8)  # e.g. Lightning's val_check_interval=0.5: twice per epoch
    epochs = _rows(tmp_path / "run" / runformat.EPOCHS)
    assert [row["epoch"] for row in epochs] == [1, 2] and epochs[-1]["train_loss"] == 0.8
    metrics = _rows(tmp_path / "run" / runformat.METRICS)
    assert [row["epoch"] for row in metrics] == [1, 2]
    assert metrics[-1]["train_loss"] == 0.8
    summary = json.loads((tmp_path / "run" / runformat.SUMMARY).read_text())
    assert summary["epochs_done"] == 2 and summary["final"]["train_loss"] == 0.8
    # the CSV follows the rewritten rows
    assert (tmp_path / "run" / runformat.METRICS_CSV).read_text().count("\n") == 3


def test_a_tracker_and_train_write_the_same_summary_keys(train_run, tmp_path):
    model, loader = _tracker_setup()
    tracker = CollapseTracker(tmp_path / "run", model, loader, classifier="2")
    tracker(1, train_loss=1.0, train_error=0.5)
    tracker.close()
    ours = json.loads((tmp_path / "run" / runformat.SUMMARY).read_text())
    theirs = json.loads((train_run / runformat.SUMMARY).read_text())
    assert set(ours) == set(theirs)


@pytest.mark.parametrize(
    ("value", "message"),
    [
        (np.array([1.0, 2.0]), r"train_loss= must be a scalar; got an array of shape \(2,\)"),
        (object(), "train_loss= must be a number, a string or None; got object"),
    ],
)
def test_logged_values_that_are_not_numbers_are_named(tmp_path, value, message):
    model, loader = _tracker_setup()
    tracker = CollapseTracker(tmp_path / "run", model, loader, classifier="2")
    with pytest.raises(ValueError, match=message):
        tracker(1, train_loss=value)


def test_numpy_scalars_are_logged_as_numbers(tmp_path):
    model, loader = _tracker_setup()
    tracker = CollapseTracker(tmp_path / "run", model, loader, classifier="2")
    tracker(1, train_loss=np.float32(0.25), step=np.int64(7), size=np.array([3]))
    row = _rows(tmp_path / "run" / runformat.EPOCHS)[0]
    assert row["train_loss"] == 0.25 and row["step"] == 7 and row["size"] == 3


@pytest.mark.parametrize(
    ("version", "message"),
    [
        (runformat.VERSION + 1, "newer than this neuralcollapse reads.*upgrade"),
        (runformat.VERSION - 1, "older than this neuralcollapse's.*release that wrote it"),
        ("1", "no integer run-format"),
        (None, "no integer run-format"),
    ],
)
def test_the_reader_checks_the_version_and_says_what_to_do(tmp_path, version, message):
    run = tmp_path / "run"
    run.mkdir()
    config = {} if version is None else {"version": version}
    (run / runformat.CONFIG).write_text(json.dumps(config))
    (run / runformat.METRICS).write_text('{"epoch": 1, "split": "train", "layer": "x"}\n')
    with pytest.raises(ValueError, match=message):
        runformat.read_run(run)
    assert main(["report", str(run), "--out", str(tmp_path / "report")]) == 2


def test_a_row_whose_epoch_is_a_string_is_one_line_from_report(tmp_path, capsys):
    run = tmp_path / "run"
    run.mkdir()
    (run / runformat.CONFIG).write_text(json.dumps({"version": runformat.VERSION}))
    row = {"epoch": "3", "split": "train", "layer": "penultimate", "nc1": 0.1}
    (run / runformat.METRICS).write_text(schema.dumps(row) + "\n")
    assert main(["report", str(run), "--out", str(tmp_path / "report")]) == 2
    error = capsys.readouterr().err.strip()
    assert error.count("\n") == 0
    assert "row 1: \"epoch\" must be an integer; got '3'" in error


def test_train_resume_refuses_a_run_of_a_newer_format(train_run, tmp_path):
    import shutil

    copy = tmp_path / "run"
    shutil.copytree(train_run, copy)
    config = json.loads((copy / runformat.CONFIG).read_text())
    (copy / runformat.CONFIG).write_text(json.dumps({**config, "version": runformat.VERSION + 1}))
    assert main(["train", "--resume", "--out", str(copy)]) == 2
