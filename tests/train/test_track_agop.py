"""``neuralcollapse train --track-agop N``: the neural feature ansatz of every linear layer at
tracked epochs (Beaglehole et al., NeurIPS 2024), in agop.jsonl beside the NC1 of each
layer's input."""

from __future__ import annotations

import json

import pytest
import torch

from neuralcollapse import runformat, schema
from neuralcollapse.cli import main
from neuralcollapse.frontier.agop import feature_ansatz
from neuralcollapse.robustness import subset_indices
from neuralcollapse.train.data import load_dataset
from neuralcollapse.train.epoch_measures import agop_row
from neuralcollapse.train.nets import build_net

COMMON = ["--arch", "mlp", "--width", "16", "--depth", "3", "--epochs", "3", "--track", "every"]
COMMON += ["--no-progress", "--seed", "3", "--dataset", "digits"]


def _jsonl(path):
    return [json.loads(line) for line in path.read_text().splitlines()]


@pytest.fixture(scope="module")
def agop_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("agop") / "run"
    assert main(["train", *COMMON, "--track-agop", "64", "--out", str(out)]) == 0
    return out


def test_rows_equal_the_ansatz_of_the_saved_network(agop_run):
    data = load_dataset("digits")
    net = build_net("mlp", tuple(data.input_shape), 10, width=16, depth=3)
    net.load_state_dict(runformat.load_checkpoint(agop_run)["model"])
    indices = subset_indices(len(data.train_images), 64, 3 + 7)
    expected = {layer.name: layer for layer in feature_ansatz(net, data.train_images[indices])}
    rows = _jsonl(agop_run / runformat.AGOP)
    assert [row["epoch"] for row in rows] == [1, 2, 3]
    last = rows[-1]
    assert last["samples"] == 64
    assert [layer["name"] for layer in last["layers"]] == list(expected)
    for layer in last["layers"]:
        assert layer["correlation"] == pytest.approx(expected[layer["name"]].correlation, 1e-9)
        assert layer["correlation_sqrt"] == pytest.approx(
            expected[layer["name"]].correlation_sqrt, 1e-9
        )
    # the last layer's AGOP is W^T W exactly: a check of the whole chain
    assert last["layers"][-1]["correlation"] == pytest.approx(1.0, abs=1e-12)
    assert runformat.read_run(agop_run).agop == rows


def test_each_layer_names_the_measured_input_it_reads(agop_run):
    layers = _jsonl(agop_run / runformat.AGOP)[0]["layers"]
    assert {layer["name"]: layer["input_layer"] for layer in layers} == {
        "layer1.0": None,
        "layer2.0": "layer1",
        "penultimate.0": "layer2",
        "classifier": schema.PENULTIMATE_POST,
    }
    metric_layers = {row["layer"] for row in _jsonl(agop_run / runformat.METRICS)}
    assert {layer["input_layer"] for layer in layers} - {None} <= metric_layers


@pytest.mark.parametrize(
    ("arch", "shape", "options"),
    [
        ("mlp", (1, 6, 6), {"depth": 3, "width": 8}),
        ("cnn", (1, 8, 8), {"base_channels": 4}),
        ("vgg11", (1, 8, 8), {"base_channels": 2}),
        ("resnet18", (1, 8, 8), {"base_channels": 2}),
    ],
)
def test_the_named_input_is_what_the_linear_layer_reads(arch, shape, options):
    """Independently of the mapping: the tensor entering each linear layer equals the named
    layer's output as the metrics measure it (conv maps averaged over space)."""
    torch.manual_seed(0)
    net = build_net(arch, shape, 4, **options).eval()
    seen_inputs, outputs = {}, {}
    modules = dict(net.named_modules())
    handles = []
    mapping = net.linear_inputs()
    for name, source in mapping.items():
        handles.append(
            modules[name].register_forward_pre_hook(
                lambda m, args, name=name: seen_inputs.__setitem__(name, args[0])
            )
        )
        if source in net.probe_layers:
            handles.append(
                modules[source].register_forward_hook(
                    lambda m, args, out, source=source: outputs.__setitem__(source, out)
                )
            )
    x = torch.randn(5, *shape)
    with torch.no_grad():
        _, post = net.forward_features(x)
        net(x)
    for handle in handles:
        handle.remove()
    assert mapping["classifier"] == schema.PENULTIMATE_POST
    assert torch.allclose(seen_inputs["classifier"], post)
    for name, source in mapping.items():
        if source in net.probe_layers:
            measured = outputs[source]
            if measured.ndim == 4:  # the metrics average a conv map over space
                measured = measured.mean(dim=(2, 3))
            assert torch.allclose(seen_inputs[name], measured.flatten(1), atol=1e-6), name
    if arch == "resnet18":
        assert mapping == {"classifier": schema.PENULTIMATE_POST}


def test_training_is_untouched_and_a_run_resumes_to_the_same_file(agop_run, tmp_path):
    # both runs here, one after the other: float32 results on 2 threads can move by ~1e-4
    # after unrelated work in the same process (other tests' conv nets), which no test may
    # depend on
    plain, tracked = tmp_path / "plain", tmp_path / "tracked"
    assert main(["train", *COMMON, "--out", str(plain)]) == 0
    assert main(["train", *COMMON, "--track-agop", "64", "--out", str(tracked)]) == 0
    for name in (runformat.EPOCHS, runformat.METRICS):
        ours, theirs = _jsonl(tracked / name), _jsonl(plain / name)
        for row in ours + theirs:
            row.pop("seconds", None)
        assert len(ours) == len(theirs)
        for a, b in zip(ours, theirs, strict=True):
            assert a.keys() == b.keys()
            for key, value in b.items():
                assert a[key] == (
                    pytest.approx(value, rel=1e-4) if isinstance(value, float) else value
                )
    parts = tmp_path / "parts"
    options = [*COMMON, "--track-agop", "64", "--out", str(parts)]
    assert main(["train", *options, "--stop-after-epoch", "2"]) == 0
    assert main(["train", "--resume", "--out", str(parts), "--no-progress"]) == 0
    resumed, whole = _jsonl(parts / runformat.AGOP), _jsonl(tracked / runformat.AGOP)
    assert [row["epoch"] for row in resumed] == [1, 2, 3]
    for a, b in zip(resumed, whole, strict=True):
        for x, y in zip(a["layers"], b["layers"], strict=True):
            assert x["correlation"] == pytest.approx(y["correlation"], rel=1e-4)


def test_an_undefined_correlation_is_recorded_not_fatal():
    net = build_net("mlp", (1, 4, 4), 3, width=6, depth=2)
    with torch.no_grad():
        net.classifier.weight.zero_()  # W^T W = 0 and every AGOP 0: no direction
    row = agop_row(net, torch.randn(8, 1, 4, 4), batch_size=3, measure_now=True)
    assert row["samples"] == 8
    assert all(layer["correlation"] is None for layer in row["layers"])
    assert all("zero matrix" in layer[schema.NOT_COMPUTED] for layer in row["layers"])
    assert agop_row(net, None, batch_size=3, measure_now=True) is None
    assert agop_row(net, torch.randn(2, 1, 4, 4), batch_size=3, measure_now=False) is None


def test_the_report_draws_an_agop_run(agop_run, tmp_path):
    out = tmp_path / "report"
    assert main(["report", str(agop_run), "--out", str(out)]) == 0
    assert "The AGOP mechanism" in (out / "report.html").read_text()
    table = (out / "tables" / "agop.csv").read_text().splitlines()
    last = _jsonl(agop_run / runformat.AGOP)[-1]
    assert len(table) == 1 + len(last["layers"])
    header = table[0].split(",")
    for line, layer in zip(table[1:], last["layers"], strict=True):
        cells = dict(zip(header, line.split(","), strict=True))
        assert cells["layer"] == layer["name"]
        assert float(cells["correlation_sqrt"]) == pytest.approx(layer["correlation_sqrt"])
