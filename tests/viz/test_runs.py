import json
import math

import numpy as np
import pytest

from neuralcollapse.viz.runs import load_run, load_runs

from .fake_runs import write_fake_run


def test_load_run_reads_every_file_of_the_run_directory(fake_run):
    run = load_run(fake_run)
    assert run.name == "run_mse"
    assert run.config["loss"] == "mse"
    assert len(run.epochs) == 12
    assert run.summary["tpt_epoch"] == 5
    assert run.splits == ("train", "test")
    assert run.num_classes == 4


def test_layers_are_ordered_input_side_first_and_penultimate_last(tmp_path):
    run_dir = write_fake_run(tmp_path / "run")
    # shuffle the rows: the order must come from the names, not the file
    lines = (run_dir / "metrics.jsonl").read_text().splitlines()
    (run_dir / "metrics.jsonl").write_text("\n".join(reversed(lines)) + "\n")
    run = load_run(run_dir)
    assert run.layers == ("layer1", "layer2", "penultimate_pre", "penultimate_post")
    assert run.intermediate_layers == ("layer1", "layer2")


def test_series_is_sorted_by_epoch_and_reads_null_as_nan(fake_run):
    run = load_run(fake_run)
    epochs, nc1 = run.series("nc1")
    assert list(epochs) == [0, 1, 2, 4, 8, 11]
    assert np.all(np.diff(nc1) < 0)
    _, weights = run.series("equinorm_weights", layer="penultimate_pre")
    assert np.all(np.isnan(weights))


def test_describe_names_dataset_model_loss_and_bias(fake_run):
    assert load_run(fake_run).describe() == "fake, mlp, mse, no bias"


def test_missing_directory_says_which_and_how_to_make_one(tmp_path):
    with pytest.raises(FileNotFoundError, match=r"does not exist.*neuralcollapse train"):
        load_run(tmp_path / "nowhere")


def test_directory_without_metrics_file_is_refused_with_the_file_name(tmp_path):
    (tmp_path / "empty").mkdir()
    with pytest.raises(FileNotFoundError, match=r"metrics\.jsonl is missing"):
        load_run(tmp_path / "empty")


def test_empty_metrics_file_is_a_clear_error(tmp_path):
    (tmp_path / "run").mkdir()
    (tmp_path / "run" / "metrics.jsonl").write_text("")
    with pytest.raises(ValueError, match="no epoch has been measured yet"):
        load_run(tmp_path / "run")


def test_truncated_line_is_reported_with_its_line_number(fake_run):
    path = fake_run / "metrics.jsonl"
    count = len(path.read_text().splitlines())
    with path.open("a") as handle:
        handle.write('{"epoch": 12, "split": "tr')
    with pytest.raises(ValueError, match=rf"line {count + 1}: not valid JSON.*delete that line"):
        load_run(fake_run)


def test_row_without_required_key_names_the_key(tmp_path):
    (tmp_path / "run").mkdir()
    row = {"epoch": 0, "split": "train", "nc1": 1.0}
    (tmp_path / "run" / "metrics.jsonl").write_text(json.dumps(row) + "\n")
    with pytest.raises(ValueError, match=r"row 1: missing key\(s\) \['layer'\]"):
        load_run(tmp_path / "run")


def test_invalid_config_json_names_the_file(fake_run):
    (fake_run / "config.json").write_text("{not json")
    with pytest.raises(ValueError, match=r"config\.json is not valid JSON"):
        load_run(fake_run)


def test_run_without_summary_or_epochs_still_loads(fake_run):
    (fake_run / "summary.json").unlink()
    (fake_run / "epochs.jsonl").unlink()
    run = load_run(fake_run)
    assert run.summary is None and run.epochs == []
    assert not math.isnan(run.series("nc1")[1][0])


def test_load_runs_makes_clashing_names_unique(tmp_path):
    first = write_fake_run(tmp_path / "a" / "run")
    second = write_fake_run(tmp_path / "b" / "run")
    names = [run.name for run in load_runs([first, second])]
    assert names == ["run", "run (2)"]


def test_load_runs_needs_at_least_one_directory():
    with pytest.raises(ValueError, match="at least one RUN_DIR"):
        load_runs([])
