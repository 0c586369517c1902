"""`neuralcollapse probe` on a model factory, a checkpoint and a registered data set."""

from __future__ import annotations

import json

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
