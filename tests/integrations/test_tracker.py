"""CollapseTracker in a hand-written loop writes a run directory the report reads."""

from __future__ import annotations

import json

import pytest
import torch
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

from neuralcollapse import schema
from neuralcollapse.integrations import CollapseTracker, measure_model
from neuralcollapse.viz.runs import load_run


def _setup(seed=0):
    torch.manual_seed(seed)
    labels = torch.arange(120) % 3
    inputs = torch.randn(120, 6) + labels.view(-1, 1).float()
    model = nn.Sequential(nn.Linear(6, 12), nn.ReLU(), nn.Linear(12, 3))
    loader = DataLoader(TensorDataset(inputs, labels), batch_size=40)
    return model, loader


def _train_epoch(model, loader):
    optimiser = torch.optim.SGD(model.parameters(), lr=0.1)
    errors = 0
    for inputs, labels in loader:
        logits = model(inputs)
        loss = nn.functional.cross_entropy(logits, labels)
        optimiser.zero_grad()
        loss.backward()
        optimiser.step()
        errors += int((logits.argmax(1) != labels).sum())
    return loss.item(), errors / len(loader.dataset)


def _rows(path):
    return [json.loads(line) for line in path.read_text().splitlines()]


def test_a_plain_loop_writes_the_run_format_and_the_report_reads_it(tmp_path):
    model, loader = _setup()
    tracker = CollapseTracker(
        tmp_path / "run",
        model,
        loader,
        eval_data=loader,
        layers="0, penultimate",
        classifier="2",
        every=2,
        config={"lr": 0.1},
    )
    for epoch in range(1, 6):
        loss, error = _train_epoch(model, loader)
        tracker(epoch, train_loss=loss, train_error=error)
    tracker.close()

    rows = _rows(tmp_path / "run" / "metrics.jsonl")
    assert sorted({row["epoch"] for row in rows}) == [1, 2, 4]  # first call, then every 2nd
    assert {(row["split"], row["layer"]) for row in rows} == {
        (split, layer) for split in ("train", "test") for layer in ("0", "penultimate")
    }
    final = measure_model(model, loader, layers=["0", "penultimate"], classifier="2")
    # epoch 4 was measured on the model as it was then; the last measured row equals a fresh
    # measurement only for the final model, so measure the final model through the tracker too
    results = tracker.measure()
    assert results["train"]["penultimate"].nc1 == pytest.approx(final["penultimate"].nc1)
    last = [r for r in rows if r["epoch"] == 4 and r["split"] == "train"]
    assert all(set(schema.METRICS) <= set(row) for row in last)
    assert json.loads((tmp_path / "run" / "summary.json").read_text())["finished"] is True
    config = json.loads((tmp_path / "run" / "config.json").read_text())
    assert config["lr"] == 0.1 and config["layers"] == ["0", "penultimate"]
    assert (tmp_path / "run" / "metrics.csv").read_text().startswith("epoch,split,layer")

    run = load_run(tmp_path / "run")
    epochs, nc1 = run.series("nc1")  # the classifier input is the report's penultimate layer
    assert list(epochs) == [1, 2, 4] and nc1[-1] == pytest.approx(last[1]["nc1"])


def test_a_restarted_loop_replaces_rows_from_its_epoch_on(tmp_path):
    model, loader = _setup()
    first = CollapseTracker(tmp_path / "run", model, loader, classifier="2")
    for epoch in (1, 2, 3):
        first(epoch, train_loss=1.0)
    second = CollapseTracker(tmp_path / "run", model, loader, classifier="2")
    second(3, train_loss=0.5)  # restarted from its own checkpoint after epoch 2
    epochs = _rows(tmp_path / "run" / "epochs.jsonl")
    assert [row["epoch"] for row in epochs] == [1, 2, 3] and epochs[-1]["train_loss"] == 0.5
    assert [row["epoch"] for row in _rows(tmp_path / "run" / "metrics.jsonl")] == [1, 2, 3]


def test_a_layer_that_cannot_be_measured_is_recorded_and_the_loop_goes_on(tmp_path):
    model, loader = _setup()
    with torch.no_grad():
        model[0].bias.fill_(-1e3)  # the ReLU layer outputs 0 everywhere
    tracker = CollapseTracker(tmp_path / "run", model, loader, layers=["1", "0"], num_classes=3)
    tracker(1)
    rows = {row["layer"]: row for row in _rows(tmp_path / "run" / "metrics.jsonl")}
    assert rows["1"]["nc1"] is None and "coincide" in rows["1"][schema.NOT_COMPUTED]["*"]
    assert rows["0"]["nc1"] is not None and schema.NOT_COMPUTED not in rows["0"]


def test_bad_layer_names_fail_before_training_starts(tmp_path):
    model, loader = _setup()
    with pytest.raises(ValueError, match="not a module"):
        CollapseTracker(tmp_path / "run", model, loader, layers=["fc9"], num_classes=3)
    with pytest.raises(ValueError, match="every must be an integer >= 1"):
        CollapseTracker(tmp_path / "run", model, loader, classifier="2", every=0)
