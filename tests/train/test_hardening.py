"""Issue 16 on training: no lost runs, no silently untrained runs, messages not tracebacks.

Every test here failed on the code before the fix it covers (the item number is in its name).
"""

from __future__ import annotations

import json
import math
import os

import numpy as np
import pytest

from neuralcollapse import schema
from neuralcollapse.cli import main
from neuralcollapse.train import TrainConfig, train
from neuralcollapse.train.config import build_config
from neuralcollapse.viz.runs import load_run

FAST = dict(dataset="digits", width=16, depth=1, epochs=1, progress=False, track="none")


def _config(tmp_path, name="run", **options):
    return TrainConfig(**{**FAST, "out": str(tmp_path / name), **options})


def _strict_rows(path):
    """Every line of a JSONL file, parsed as strict JSON (no NaN / Infinity tokens)."""

    def refuse(token):
        raise ValueError(f"invalid JSON token {token} in {path}")

    return [json.loads(line, parse_constant=refuse) for line in path.read_text().splitlines()]


# ----------------------------------------------------------------------------- item 8, 7


def test_item8_a_layer_whose_features_die_is_logged_as_not_computed_and_training_goes_on(
    tmp_path,
):
    # the command: lr 0.5 without batch norm kills every ReLU of the penultimate layer
    # at epoch 6, whose class means then coincide; the run used to exit 2 there
    config = _config(
        tmp_path,
        epochs=8,
        lr=0.5,
        batch_norm=False,
        width=64,
        depth=2,
        schedule="constant",
        track="every",
        layers="none",
    )
    result = train(config)
    assert result.finished and result.epochs_done == 8
    run = result.run_dir
    summary = json.loads((run / "summary.json").read_text())
    assert summary["finished"] is True and "stopped" not in summary
    rows = _strict_rows(run / "metrics.jsonl")  # item 7: the run log is strict JSON
    dead = [row for row in rows if row.get(schema.NOT_COMPUTED)]
    assert dead, "the features did not die: the test no longer exercises the failure"
    for row in dead:
        assert row["nc1"] is None and row["etf_gap_means"] is None
        assert "all class means coincide" in row[schema.NOT_COMPUTED]["*"]
    assert {row["epoch"] for row in dead} == set(range(dead[0]["epoch"], 9))
    # the other layer at the same epochs was still measured
    alive = [r for r in rows if r["epoch"] == dead[0]["epoch"] and not r.get(schema.NOT_COMPUTED)]
    assert alive and all(r["nc1"] is not None for r in alive)
    # the report reads such rows: not computed is NaN in a series
    loaded = load_run(run)
    epochs, values = loaded.series("nc1", layer=dead[0]["layer"])
    assert np.isnan(values[epochs >= dead[0]["epoch"]]).all()
    assert np.isfinite(values[epochs < dead[0]["epoch"]]).all()
    reasons = loaded.not_computed("nc1", layer=dead[0]["layer"])
    assert set(reasons) == {row["epoch"] for row in dead if row["split"] == "train"}
    assert all("all class means coincide" in reason for reason in reasons.values())


# ----------------------------------------------------------------------------- item 9, 11


def test_item9_resume_drops_a_torn_last_line_and_says_so(tmp_path, capsys):
    train(_config(tmp_path, epochs=2, stop_after_epoch=1, track="every", layers="none"))
    metrics = tmp_path / "run" / "metrics.jsonl"
    whole = metrics.read_text()
    with open(metrics, "a") as stream:  # a kill during the write of an epoch-2 row
        stream.write('{"epoch": 2, "split": "train", "layer": "penul')
    result = train(_config(tmp_path, epochs=2, track="every", layers="none"), resume=True)
    assert result.finished
    assert "dropped the torn last line" in capsys.readouterr().err
    rows = _strict_rows(metrics)
    assert metrics.read_text().startswith(whole)
    per_epoch = [sum(row["epoch"] == epoch for row in rows) for epoch in (1, 2)]
    assert per_epoch[0] == per_epoch[1] == len(whole.splitlines())


def test_item9_a_damaged_line_before_the_last_names_file_and_line(tmp_path):
    train(_config(tmp_path, epochs=2, stop_after_epoch=1, track="every", layers="none"))
    metrics = tmp_path / "run" / "metrics.jsonl"
    lines = metrics.read_text().splitlines()
    metrics.write_text("\n".join(["{not json", *lines]) + "\n")
    with pytest.raises(ValueError, match="metrics.jsonl, line 1: not valid JSON.*edited"):
        train(_config(tmp_path, epochs=2, track="every", layers="none"), resume=True)


def test_item11_orphaned_temporary_files_are_removed(tmp_path, capsys):
    train(_config(tmp_path, epochs=2, stop_after_epoch=1))
    run = tmp_path / "run"
    orphans = [run / "checkpoints" / ".last.pt.k2j4h1.tmp", run / ".summary.json.x8a.tmp"]
    for path in orphans:
        path.write_bytes(b"half a file")
    foreign = run / "checkpoints" / ".other.tmp"  # not a name of ours: kept
    foreign.write_bytes(b"")
    train(_config(tmp_path, epochs=2), resume=True)
    assert not any(path.exists() for path in orphans)
    assert foreign.exists()
    assert "left by a run killed while writing it" in capsys.readouterr().err


# ----------------------------------------------------------------------------- item 10


def test_item10_overwrite_keeps_a_foreign_checkpoints_folder(tmp_path):
    foreign = tmp_path / "run" / "checkpoints" / "other-model.ckpt"
    foreign.parent.mkdir(parents=True)
    foreign.write_bytes(b"another model's weights")
    notes = tmp_path / "run" / "notes.txt"
    notes.write_text("mine")
    train(_config(tmp_path))  # a folder of someone else's is not a run: no --overwrite needed
    train(_config(tmp_path, overwrite=True))
    assert foreign.read_bytes() == b"another model's weights"
    assert notes.read_text() == "mine"
    assert (tmp_path / "run" / "checkpoints" / "last.pt").is_file()


def test_item10_overwrite_refuses_files_that_are_not_a_run_of_ours(tmp_path):
    (tmp_path / "run").mkdir()
    (tmp_path / "run" / "metrics.jsonl").write_text('{"step": 1}\n')
    with pytest.raises(
        ValueError, match="no config.json written by neuralcollapse, so --overwrite will not delete"
    ):
        train(_config(tmp_path, overwrite=True))
    assert (tmp_path / "run" / "metrics.jsonl").read_text() == '{"step": 1}\n'


# ----------------------------------------------------------------------------- item 5


def test_item5_batch_size_one_with_batch_norm_is_refused_up_front(tmp_path):
    with pytest.raises(ValueError, match="--batch-size 1 with batch norm.*>= 2.*--no-batch-norm"):
        train(_config(tmp_path, batch_size=1))
    assert not (tmp_path / "run" / "config.json").exists()


def test_item5_batch_size_one_without_batch_norm_trains(tmp_path):
    config = _config(tmp_path, batch_size=1, batch_norm=False, epochs=2, lr=0.01, per_class=20)
    result = train(config)
    epochs = _strict_rows(result.run_dir / "epochs.jsonl")
    # every batch used to be skipped: the loss stayed exactly the same each epoch
    assert epochs[1]["train_loss"] < epochs[0]["train_loss"] < math.log(10)
    assert epochs[1]["train_error"] < 0.5


# ----------------------------------------------------------------------------- item 15


@pytest.mark.parametrize("option", ["lr", "momentum", "weight_decay", "gamma", "mse_scale"])
@pytest.mark.parametrize("value", ["nan", "inf"])
def test_item15_non_finite_hyperparameters_are_refused(tmp_path, capsys, option, value):
    with pytest.raises(ValueError, match=f"{option} must be a finite number; got {value}"):
        build_config({option: float(value)})
    flag = "--" + option.replace("_", "-")
    out = str(tmp_path / "run")
    assert main(["train", "--dataset", "digits", flag, value, "--out", out, "--no-progress"]) == 2
    assert "must be a finite number" in capsys.readouterr().err
    assert not (tmp_path / "run").exists()


# ----------------------------------------------------------------------------- item 14


def test_item14_out_that_is_a_file_is_a_message(tmp_path, capsys):
    blocker = tmp_path / "run"
    blocker.write_text("a file")
    assert main(["train", "--dataset", "digits", "--out", str(blocker), "--no-progress"]) == 2
    err = capsys.readouterr().err
    assert "is a file, not a folder" in err and "Traceback" not in err


@pytest.mark.skipif(hasattr(os, "geteuid") and os.geteuid() == 0, reason="root writes anywhere")
def test_item14_out_that_is_read_only_is_a_message(tmp_path, capsys):
    locked = tmp_path / "locked"
    locked.mkdir()
    locked.chmod(0o555)
    try:
        options = ["--width", "16", "--depth", "1", "--epochs", "1", "--no-progress"]
        out = str(locked / "run")
        assert main(["train", "--dataset", "digits", *options, "--out", out]) == 2
    finally:
        locked.chmod(0o755)
    assert "Permission denied" in capsys.readouterr().err


# ----------------------------------------------------------------------------- tensorboard


def test_tensorboard_scalars_equal_the_run_log(tmp_path):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    result = train(_config(tmp_path, epochs=2, track="every", tensorboard=True))
    events = EventAccumulator(str(result.run_dir / "tensorboard"), size_guidance={"scalars": 0})
    events.Reload()
    tags = set(events.Tags()["scalars"])
    checked = 0
    for row in _strict_rows(result.run_dir / "metrics.jsonl"):
        for key, value in schema.decode_row(row).items():
            if key not in schema.METRICS or key in schema.SIZE_KEYS or value is None:
                continue
            # one layer vocabulary in every logger: the classifier input is "penultimate"
            layer = schema.PENULTIMATE if row["layer"] == schema.PENULTIMATE_POST else row["layer"]
            tag = f"nc/{row['split']}/{layer}/{key}"
            assert tag in tags
            logged = {event.step: event.value for event in events.Scalars(tag)}
            assert logged[row["epoch"]] == np.float32(value)  # TensorBoard stores float32
            checked += 1
    assert checked > 100
    for row in _strict_rows(result.run_dir / "epochs.jsonl"):
        for tag, key in (("train/loss", "train_loss"), ("test/error", "test_error"), ("lr", "lr")):
            logged = {event.step: event.value for event in events.Scalars(tag)}
            assert logged[row["epoch"]] == np.float32(row[key])


def test_tensorboard_missing_is_a_message_up_front(tmp_path, monkeypatch):
    import importlib.util

    real = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util, "find_spec", lambda name, *a: None if name == "tensorboard" else real(name)
    )
    with pytest.raises(
        ValueError, match="pip install tensorboard.*neuralcollapse\\[tensorboard\\]"
    ):
        train(_config(tmp_path, tensorboard=True))
    assert not (tmp_path / "run").exists()
