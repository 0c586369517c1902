"""`neuralcollapse train`: options, config files, resume, and the messages for bad input."""

from __future__ import annotations

import json

import pytest

from neuralcollapse.cli import main

FAST = ["--dataset", "digits", "--width", "16", "--depth", "2", "--no-progress", "--track", "none"]


def _config(run):
    return json.loads((run / "config.json").read_text())


def test_command_line_options_reach_the_saved_config(tmp_path):
    run = tmp_path / "run"
    status = main(
        [
            "train",
            *FAST,
            "--epochs",
            "2",
            "--loss",
            "mse",
            "--no-bias",
            "--lr",
            "0.01",
            "--label-smoothing",
            "0.1",
            "--out",
            str(run),
        ]
    )
    assert status == 0
    saved = _config(run)
    assert (saved["loss"], saved["bias"], saved["lr"], saved["epochs"]) == ("mse", False, 0.01, 2)
    assert saved["label_smoothing"] == 0.1 and saved["weight_decay"] == 5e-4  # a default


def test_config_toml_supplies_options_and_the_command_line_overrides_it(tmp_path):
    config = tmp_path / "exp.toml"
    config.write_text(
        'dataset = "digits"\nwidth = 16\ndepth = 2\nepochs = 3\n'
        'loss = "mse"\nbias = false\nschedule = "step"\nstep-size = 1\n'
        'progress = false\ntrack = "none"\n'
    )
    run = tmp_path / "run"
    assert main(["train", "--config", str(config), "--epochs", "2", "--out", str(run)]) == 0
    saved = _config(run)
    assert saved["epochs"] == 2 and saved["loss"] == "mse" and saved["step_size"] == 1
    assert saved["bias"] is False
    # the saved config.json is itself a valid --config file reproducing the run
    again = tmp_path / "again"
    assert main(["train", "--config", str(run / "config.json"), "--out", str(again)]) == 0
    assert {k: v for k, v in _config(again).items() if k != "out"} == {
        k: v for k, v in saved.items() if k != "out"
    }


def test_resume_continues_with_the_saved_options(tmp_path, capsys):
    run = tmp_path / "run"
    assert (
        main(["train", *FAST, "--epochs", "3", "--stop-after-epoch", "1", "--out", str(run)]) == 0
    )
    assert "continue with" in capsys.readouterr().out
    assert main(["train", "--resume", "--out", str(run), "--no-progress"]) == 0
    summary = json.loads((run / "summary.json").read_text())
    assert summary["epochs_done"] == 3 and summary["finished"] is True


def test_resume_with_a_changed_option_is_refused(tmp_path, capsys):
    run = tmp_path / "run"
    main(["train", *FAST, "--epochs", "2", "--stop-after-epoch", "1", "--out", str(run)])
    assert main(["train", "--resume", "--out", str(run), "--lr", "0.5"]) == 2
    assert "lr=0.5 differs from the saved 0.05" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("options", "message"),
    [
        (["--epochs", "0"], "epochs must be an integer >= 1; got 0"),
        (["--lr", "-1"], "lr must be a finite number > 0; got -1.0"),
        (
            ["--momentum", "1"],
            "momentum must be a finite number in [0, 1) (SGD momentum); got 1.0",
        ),
        (["--label-smoothing", "1.5"], "label_smoothing must be a finite number in [0, 1)"),
        (["--per-class", "500"], "class 0 has only 134 samples"),
        (["--layers", "layer7"], "layer 'layer7' is not a module of MLP"),
        (["--device", "gpu"], "device must be auto, cpu, cuda, cuda:N or mps"),
        (
            ["--dataset", "fashion-mnist", "--data-dir", "EMPTY"],
            "apt-get install dataset-fashion-mnist",
        ),
        (["--resume"], "nothing to resume"),
    ],
)
def test_bad_options_give_a_clean_error_naming_the_problem(tmp_path, capsys, options, message):
    (tmp_path / "EMPTY").mkdir()
    options = [str(tmp_path / "EMPTY") if o == "EMPTY" else o for o in options]
    status = main(["train", *FAST, "--epochs", "1", "--out", str(tmp_path / "run"), *options])
    assert status == 2
    assert message in capsys.readouterr().err


def test_cuda_requested_without_a_gpu_says_to_use_cpu(tmp_path, capsys):
    pytest.importorskip("torch")
    import torch

    if torch.cuda.is_available():
        pytest.skip("a GPU is present")
    assert main(["train", *FAST, "--device", "cuda", "--out", str(tmp_path / "r")]) == 2
    assert "no CUDA GPU is available; use --device cpu" in capsys.readouterr().err


def test_unknown_choice_is_rejected_by_the_parser(tmp_path, capsys):
    with pytest.raises(SystemExit) as info:
        main(["train", "--loss", "hinge"])
    assert info.value.code == 2
    assert "invalid choice: 'hinge'" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("widht = 3\n", "unknown option 'widht' (did you mean width?)"),
        ('epochs = "ten"\n', "epochs must be an integer; got 'ten'"),
        ("[train]\nepochs = 3\n", "options must be flat key = value pairs"),
        ("epochs = \n", "invalid TOML"),
    ],
)
def test_bad_config_files_name_the_key_and_the_problem(tmp_path, capsys, content, message):
    config = tmp_path / "bad.toml"
    config.write_text(content)
    assert main(["train", "--config", str(config), "--out", str(tmp_path / "r")]) == 2
    assert message in capsys.readouterr().err


def test_missing_config_file_is_reported(tmp_path, capsys):
    assert main(["train", "--config", str(tmp_path / "nope.toml")]) == 2
    assert "config file not found" in capsys.readouterr().err


def test_help_explains_the_options(capsys):
    with pytest.raises(SystemExit):
        main(["train", "--help"])
    text = capsys.readouterr().out
    for phrase in ("--no-bias", "--resume", "--config", "papyan", "--track", "--layers"):
        assert phrase in text


def test_a_diverging_run_exits_1_with_the_message(tmp_path, capsys):
    status = main(
        [
            "train",
            *FAST,
            "--epochs",
            "4",
            "--loss",
            "mse",
            "--no-batch-norm",
            "--schedule",
            "step",
            "--step-size",
            "1",
            "--gamma",
            "1e6",
            "--out",
            str(tmp_path / "run"),
        ]
    )
    assert status == 1
    err = capsys.readouterr().err
    assert "NaN or infinite in epoch" in err and "lower --lr" in err
