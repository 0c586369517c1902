"""measure_regression: neural regression collapse (NRC1-NRC3) of any model, streamed."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from neuralcollapse.frontier.regression import RegressionStats, nrc1, regression_collapse
from neuralcollapse.integrations import measure_regression


def _regressor():
    torch.manual_seed(0)
    model = nn.Sequential(
        nn.Linear(5, 16),
        nn.BatchNorm1d(16),
        nn.ReLU(),
        nn.Linear(16, 8),
        nn.ReLU(),
        nn.Linear(8, 2),
    )
    inputs = torch.randn(120, 5)
    targets = torch.stack([inputs[:, 0] + inputs[:, 1], inputs[:, 2] * 0.5], dim=1)
    batches = [(inputs[i : i + 32], targets[i : i + 32]) for i in range(0, 120, 32)]
    return model, inputs, targets, batches


def test_it_equals_the_frontier_measures_on_hand_captured_features():
    model, inputs, targets, batches = _regressor()
    model.train()
    model[1].eval()  # a frozen BatchNorm: its mode must come back
    result = measure_regression(model, batches, head="5", layers=["2"])
    with torch.no_grad():
        model.eval()
        hidden = model[2](model[1](model[0](inputs)))
        penultimate = model[4](model[3](hidden))
    expected = regression_collapse((penultimate, targets), model[5].weight)
    assert result.head.nrc1 == pytest.approx(expected.nrc1, rel=1e-9)
    assert result.head.nrc2 == pytest.approx(expected.nrc2, rel=1e-9)
    assert result.head.nrc3 == pytest.approx(expected.nrc3, rel=1e-9)
    assert result.nrc1["2"] == pytest.approx(
        nrc1(RegressionStats().update(hidden, targets)), rel=1e-9
    )
    assert set(result.nrc1) == {"2", "penultimate"}


def test_modes_come_back_and_class_labels_are_sent_to_measure_model():
    model, _, _, batches = _regressor()
    model.train()
    model[1].eval()
    modes = [m.training for m in model.modules()]
    measure_regression(model, batches, head="5")
    assert [m.training for m in model.modules()] == modes
    with pytest.raises(ValueError, match="integer targets.*use measure_model"):
        measure_regression(model, [(torch.randn(8, 5), torch.arange(8))], head="5")


def test_probe_regression_prints_and_writes_the_nrc_of_measure_regression(tmp_path, capsys):
    import json

    from neuralcollapse.cli import main
    from tests.integrations.factories import regression_batches, regressor

    status = main(
        [
            "probe",
            "--model",
            "tests.integrations.factories:regressor",
            "--data",
            "tests.integrations.factories:regression_batches",
            "--regression",
            "--classifier",
            "4",
            "--layers",
            "1",
            "--out",
            str(tmp_path / "out"),
        ]
    )
    assert status == 0
    table = capsys.readouterr().out
    assert "NRC3" in table and "penultimate" in table
    payload = json.loads((tmp_path / "out" / "metrics.json").read_text())
    expected = measure_regression(regressor(), regression_batches(), head="4", layers=["1"])
    assert payload["train"]["head"]["nrc3"] == pytest.approx(expected.head.nrc3, rel=1e-12)
    assert payload["train"]["nrc1"]["1"] == pytest.approx(expected.nrc1["1"], rel=1e-12)
    assert (
        main(
            [
                "probe",
                "--model",
                "tests.integrations.factories:regressor",
                "--data",
                "tests.integrations.factories:regression_batches",
                "--regression",
                "--out",
                str(tmp_path / "bad"),
            ]
        )
        == 2
    )
