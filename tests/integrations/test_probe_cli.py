"""`neuralcollapse probe` on a model factory, a checkpoint and a registered data set."""

from __future__ import annotations

import json
import re

import pytest
import torch

from neuralcollapse.cli import main
from neuralcollapse.integrations import measure_model
from tests.integrations.factories import digits_mlp

FACTORY = "tests.integrations.factories:digits_mlp"


def _strict(text):
    return json.loads(text, parse_constant=lambda token: pytest.fail(f"invalid JSON {token}"))


def test_probe_writes_table_json_run_and_report_matching_measure_model(tmp_path, capsys):
    model = digits_mlp()
    with torch.no_grad():
        model[1].weight.mul_(2.0)  # the checkpoint differs from the factory's initial state
    torch.save(model.state_dict(), tmp_path / "net.pt")
    out = tmp_path / "out"
    arguments = ["probe", "--model", FACTORY, "--checkpoint", str(tmp_path / "net.pt")]
    arguments += ["--dataset", "digits", "--layers", "1,penultimate", "--classifier", "5"]
    assert main([*arguments, "--out", str(out)]) == 0
    table = capsys.readouterr().out
    assert "penultimate" in table and "nc1" in table

    payload = _strict((out / "metrics.json").read_text())
    assert set(payload) == {"train", "test"}
    from neuralcollapse.train.data import load_dataset

    data = load_dataset("digits")
    loader = [(data.train_images, data.train_labels)]
    expected = measure_model(model, loader, layers=["1", "penultimate"], classifier="5")
    assert payload["train"]["penultimate"]["nc1"] == pytest.approx(expected["penultimate"].nc1)
    assert payload["train"]["1"]["etf_gap_means"] == pytest.approx(expected["1"].etf_gap_means)
    assert (out / "run" / "metrics.jsonl").is_file()
    html = (out / "report.html").read_text()
    assert "depth" in html.lower() and "<img" in html


def test_probe_refuses_a_checkpoint_that_needs_pickle(tmp_path):
    class Payload:
        def __reduce__(self):
            return (print, ("payload ran",))

    torch.save({"model": Payload()}, tmp_path / "bad.pt")
    status = main(
        [
            "probe",
            "--model",
            FACTORY,
            "--checkpoint",
            str(tmp_path / "bad.pt"),
            "--dataset",
            "digits",
            "--classifier",
            "5",
            "--out",
            str(tmp_path / "out"),
        ]
    )
    assert status == 2


def test_probe_names_a_bad_entry_point(tmp_path, capsys):
    base = ["probe", "--dataset", "digits", "--out", str(tmp_path / "o"), "--classifier", "5"]
    assert main([*base, "--model", "no_such_module_here:make"]) == 2
    assert "cannot import 'no_such_module_here'" in capsys.readouterr().err
    assert main([*base, "--model", "tests.integrations.factories:not_a_model"]) == 2
    assert "not an nn.Module" in capsys.readouterr().err
    assert main([*base, "--model", "tests.integrations.factories"]) == 2
    assert "MODULE:FACTORY" in capsys.readouterr().err


# ----------------------------------------------------------------------------- issue 23


def _probe(tmp_path, *extra):
    return main(
        [
            "probe",
            *extra,
            "--dataset",
            "digits",
            "--classifier",
            "5",
            "--out",
            str(tmp_path / "out"),
        ]
    )


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ("tests.integrations.factories:NeedsArguments", r"needs arguments \(width\)"),
        ("os:system", "needs arguments"),
        ("tests.integrations.factories:not_a_model", "returned str, not an nn.Module"),
        ("math:pi", "is a float, not a model factory"),
    ],
)
def test_probe_model_that_is_not_a_factory_is_one_line(tmp_path, capsys, spec, message):
    assert _probe(tmp_path, "--model", spec) == 2
    error = capsys.readouterr().err.strip()
    assert error.count("\n") == 0 and "Traceback" not in error
    assert re.search(message, error), error


def test_probe_takes_a_module_instance_as_it_is(tmp_path, capsys):
    spec = "tests.integrations.factories:digits_mlp_instance"
    assert _probe(tmp_path, "--model", spec) == 0
    assert (tmp_path / "out" / "metrics.json").is_file()


def test_probe_checkpoint_of_another_architecture_is_one_line(tmp_path, capsys):
    from tests.integrations.factories import other_architecture

    torch.save(other_architecture().state_dict(), tmp_path / "other.pt")
    status = _probe(tmp_path, "--model", FACTORY, "--checkpoint", str(tmp_path / "other.pt"))
    assert status == 2
    error = capsys.readouterr().err.strip()
    assert error.count("\n") == 0 and "does not fit the model" in error and "size mismatch" in error


def test_probe_on_a_device_this_machine_lacks_is_one_line(tmp_path, capsys):
    if torch.cuda.is_available():
        pytest.skip("this machine has CUDA")
    assert _probe(tmp_path, "--model", FACTORY, "--device", "cuda") == 2
    error = capsys.readouterr().err.strip()
    assert error.count("\n") == 0 and "not available on this machine" in error
    assert _probe(tmp_path, "--model", FACTORY, "--device", "gpu0") == 2
    assert "not a torch device" in capsys.readouterr().err


def test_probe_twice_into_one_out_keeps_only_the_second_config(tmp_path, capsys):
    assert _probe(tmp_path, "--model", FACTORY, "--layers", "1") == 0
    spec = "tests.integrations.factories:digits_mlp_instance"
    assert _probe(tmp_path, "--model", spec, "--layers", "3") == 0
    run = tmp_path / "out" / "run"
    config = json.loads((run / "config.json").read_text())
    assert config["model"] == spec and config["layers"] == ["3", "penultimate"]
    layers = {
        json.loads(line)["layer"] for line in (run / "metrics.jsonl").read_text().splitlines()
    }
    assert layers == {"3", "penultimate"}


def _hf_folder(tmp_path, architecture):
    transformers = pytest.importorskip("transformers")
    config = transformers.BertConfig(
        vocab_size=30,
        hidden_size=8,
        num_hidden_layers=1,
        num_attention_heads=2,
        intermediate_size=16,
        num_labels=3,
    )
    config.architectures = [architecture]
    folder = tmp_path / "hf"
    config.save_pretrained(folder)
    return folder


def test_probe_hf_folder_with_an_unknown_architecture_is_one_line(tmp_path, capsys):
    folder = _hf_folder(tmp_path, "NoSuchModelForAnything")
    assert (
        main(
            [
                "probe",
                "--hf-model",
                str(folder),
                "--dataset",
                "digits",
                "--out",
                str(tmp_path / "out"),
            ]
        )
        == 2
    )
    error = capsys.readouterr().err.strip()
    assert error.count("\n") == 0 and "NoSuchModelForAnything" in error


def test_probe_hf_weights_holding_a_pickle_are_refused_in_one_line(tmp_path, capsys):
    folder = _hf_folder(tmp_path, "BertForSequenceClassification")

    class Payload:
        def __reduce__(self):
            return (print, ("payload ran",))

    torch.save({"bert.embeddings.word_embeddings.weight": Payload()}, folder / "pytorch_model.bin")
    assert (
        main(
            [
                "probe",
                "--hf-model",
                str(folder),
                "--dataset",
                "digits",
                "--out",
                str(tmp_path / "out"),
            ]
        )
        == 2
    )
    captured = capsys.readouterr()
    assert "payload ran" not in captured.out
    error = captured.err.strip()
    assert error.count("\n") == 0 and "cannot be loaded" in error
