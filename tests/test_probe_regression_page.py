"""``neuralcollapse probe --regression`` writes a page beside metrics.json (the regression
snapshot page, neuralcollapse.viz.regression_page).

The ``--model`` / ``--data`` entry points live in this module
(``tests.test_probe_regression_page:...``).
"""

from __future__ import annotations

import csv
import html
import json
import re
from pathlib import Path

import pytest
import torch
from torch import nn

from neuralcollapse.cli import main
from neuralcollapse.integrations import measure_regression
from neuralcollapse.schema import PENULTIMATE

MODULE = "tests.test_probe_regression_page"

# ----------------------------------------------------------------------------- entry points


def _inputs_and_targets() -> tuple[torch.Tensor, torch.Tensor]:
    generator = torch.Generator().manual_seed(5)
    inputs = torch.randn(96, 5, generator=generator)
    targets = torch.stack([inputs[:, 0] - inputs[:, 1], 0.5 * inputs[:, 2]], dim=1)
    return inputs, targets


def batches() -> list[tuple[torch.Tensor, torch.Tensor]]:
    """(inputs (B, 5), float targets (B, 2))."""
    inputs, targets = _inputs_and_targets()
    return [(inputs[i : i + 32], targets[i : i + 32]) for i in range(0, 96, 32)]


def class_batches() -> list[tuple[torch.Tensor, torch.Tensor]]:
    """Integer labels: not regression targets."""
    inputs, _ = _inputs_and_targets()
    return [(inputs, torch.arange(96) % 2)]


def spread_net() -> nn.Module:
    """A random MLP whose last layers are out of order in named_modules (the head, ``out``,
    is registered first): nothing is collapsed."""
    torch.manual_seed(0)
    model = nn.Module()
    model.out = nn.Linear(8, 2)
    model.body = nn.Sequential(nn.Linear(5, 16), nn.Tanh(), nn.Linear(16, 8), nn.Tanh())

    def forward(x: torch.Tensor) -> torch.Tensor:
        return model.out(model.body(x))

    model.forward = forward
    return model


def collapsed_net() -> nn.Module:
    """The head's input is exactly in a 2-dim (= n) subspace of R^6, the head's rows span it
    and W W^T = Sigma_Y^{1/2} of the training targets: NRC1 = NRC2 = NRC3 = 0 to rounding."""
    torch.manual_seed(0)
    model = nn.Sequential(
        nn.Linear(5, 4), nn.Tanh(), nn.Linear(4, 2), nn.Linear(2, 6, bias=False), nn.Linear(6, 2)
    )
    _, targets = _inputs_and_targets()
    y = targets.double() - targets.double().mean(dim=0)
    values, vectors = torch.linalg.eigh(y.T @ y / len(y))
    fourth_root = (vectors * values.clamp_min(0).pow(0.25)) @ vectors.T
    expand, _ = torch.linalg.qr(torch.randn(6, 2, dtype=torch.float64))
    with torch.no_grad():
        model[3].weight.copy_(expand)
        model[4].weight.copy_(fourth_root @ expand.T)
    return model


# ----------------------------------------------------------------------------- helpers


def _probe(out: Path, model: str, *extra: str, data: str = "batches") -> int:
    return main(
        [
            "probe", "--model", f"{MODULE}:{model}", "--data", f"{MODULE}:{data}",
            "--regression", *extra, "--out", str(out),
        ]
    )  # fmt: skip


def _csv(out: Path, name: str) -> list[dict]:
    with (out / "tables" / f"{name}.csv").open() as handle:
        return list(csv.DictReader(handle))


def _page_text(out: Path) -> str:
    """report.html as a reader sees it: tags dropped, entities decoded, spaces collapsed."""
    page = (out / "report.html").read_text()
    return " ".join(html.unescape(re.sub(r"<[^>]+>", " ", page)).split())


def _strict(text: str) -> dict:
    def refuse(constant: str) -> None:
        raise ValueError(f"not strict JSON: {constant}")

    return json.loads(text, parse_constant=refuse)


@pytest.fixture(scope="module")
def spread(tmp_path_factory) -> dict:
    out = tmp_path_factory.mktemp("spread") / "out"
    # layers named against the model's order: the page draws them in the model's order
    arguments = ["--classifier", "out", "--layers", "body.3,body.1,body.0"]
    assert _probe(out, "spread_net", *arguments) == 0
    page = (out / "report.html").read_text()
    return {"out": out, "page": page, "text": _page_text(out)}


# ----------------------------------------------------------------------------- tests


def test_metrics_json_is_unchanged_and_the_page_is_beside_it(spread, capsys):
    out = spread["out"]
    payload = _strict((out / "metrics.json").read_text())
    expected = measure_regression(
        spread_net(), batches(), head="out", layers=["body.3", "body.1", "body.0"]
    )
    assert payload == {"train": _strict(json.dumps(expected.to_dict()))}
    assert set(payload["train"]) == {"head", "nrc1"}  # no weights or flags added to the file
    assert sorted(path.name for path in out.iterdir()) == [
        "figures",
        "metrics.json",
        "report.html",
        "tables",
    ]  # no run directory: a regression snapshot is not a run of classes
    assert sorted(path.name for path in (out / "figures").iterdir()) == [
        "nrc1_depth.png",
        "nrc3_spectrum.png",
    ]
    assert spread["page"].count('src="data:image/png;base64,') == 2


def test_the_page_names_the_values_of_metrics_json(spread):
    out, text = spread["out"], spread["text"]
    head = _strict((out / "metrics.json").read_text())["train"]["head"]
    rows = {row["measurement"]: row for row in _csv(out, "regression_summary")}
    named = (("NRC1", "nrc1"), ("NRC2", "nrc2"), ("NRC3", "nrc3"), ("fitted γ", "nrc3_gamma"))
    for name, key in named:
        assert float(rows[name]["train"]) == head[key]
        assert f"{head[key]:.3g}" in text
    assert int(rows["n"]["train"]) == len(head["target_eigenvalues"]) == 2
    assert int(rows["N"]["train"]) == head["num_samples"] == 96
    nrc1 = _strict((out / "metrics.json").read_text())["train"]["nrc1"]
    layers = {row["layer"]: float(row["train"]) for row in _csv(out, "nrc1_layers")}
    assert layers == {
        "body.0": nrc1["body.0"],
        "body.1": nrc1["body.1"],
        f"{PENULTIMATE} (= body.3)": nrc1[PENULTIMATE],
    }
    # the model's order (body before the head's input), not the order --layers named them
    assert list(layers) == ["body.0", "body.1", f"{PENULTIMATE} (= body.3)"]
    assert "Layers measured, in the model's order: body.0, body.1, body.3, penultimate." in text


def test_the_page_states_the_settings(spread):
    text = spread["text"]
    assert f"Model: {MODULE}:spread_net. Data: {MODULE}:batches." in text
    assert f"Preprocessing: as {MODULE}:batches returns the batches (none added by probe)." in text
    assert "Regression head out: n = 2 outputs from d = 8 features" in text
    assert "centred covariance Σ_Y (the head has a bias)" in text


def test_printed_output_mentions_the_page(tmp_path, capsys):
    out = tmp_path / "out"
    assert _probe(out, "spread_net", "--classifier", "out") == 0
    captured = capsys.readouterr()
    assert "NRC3" in captured.out and PENULTIMATE in captured.out
    assert f"wrote {out / 'metrics.json'} and {out / 'report.html'}" in captured.err


def test_captions_say_collapse_only_where_the_numbers_show_it(spread, tmp_path):
    out = tmp_path / "collapsed"
    assert _probe(out, "collapsed_net", "--classifier", "4", "--layers", "1") == 0
    head = _strict((out / "metrics.json").read_text())["train"]["head"]
    assert head["nrc1"] < 1e-9 and head["nrc2"] < 1e-9 and head["nrc3"] < 1e-5
    text = _page_text(out)
    assert "0 to rounding (≤ 1e-09): no centred variance outside the top 2" in text
    assert "no centred variance outside the span of the head's rows" in text
    assert "W Wᵀ has the UFM's form" in text

    text = spread["text"]
    head = _strict((spread["out"] / "metrics.json").read_text())["train"]["head"]
    assert head["nrc1"] > 0.01 and head["nrc3"] > 0.01
    assert "0 to rounding" not in text and "has the UFM's form" not in text
    assert f"{100 * head['nrc1']:.3g}% of the centred variance lies outside the top 2" in text


@pytest.mark.parametrize(
    ("model", "extra", "data", "message"),
    [
        ("spread_net", (), "batches", r"--regression needs --classifier"),
        ("spread_net", ("--classifier", "out"), "class_batches", r"integer targets"),
    ],
)
def test_bad_input_is_one_line_exit_2_and_writes_nothing(
    tmp_path, capsys, model, extra, data, message
):
    out = tmp_path / "out"
    capsys.readouterr()
    assert _probe(out, model, *extra, data=data) == 2
    lines = [line for line in capsys.readouterr().err.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("neuralcollapse probe: error: ")
    assert re.search(message, lines[0]), lines[0]
    assert not out.exists()


def test_measure_regression_keeps_the_heads_weights_as_measured():
    model = collapsed_net()
    result = measure_regression(model, batches(), head="4")
    assert result.centred_targets is True  # nn.Linear has a bias
    assert result.weights.dtype == torch.float64 and result.weights.device.type == "cpu"
    assert torch.equal(result.weights, model[4].weight.detach().double())
    with torch.no_grad():  # training on after the call does not change what was measured
        model[4].weight.mul_(3.0)
    assert not torch.equal(result.weights, model[4].weight.detach().double())
    no_bias = measure_regression(model, batches(), head="4", centred_targets=False)
    assert no_bias.centred_targets is False
