"""The measures that ride along training: imbalance, MSE terms, DeepFool, generalisation."""

from __future__ import annotations

import json

import pytest
import torch

from neuralcollapse import schema
from neuralcollapse.train import TrainConfig, train
from neuralcollapse.train.data import load_dataset


def _rows(path):
    def refuse(token):
        raise ValueError(f"invalid JSON token {token}")

    return [json.loads(line, parse_constant=refuse) for line in path.read_text().splitlines()]


@pytest.fixture(scope="module")
def imbalanced_mse_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("runs") / "imbalanced"
    config = TrainConfig(
        dataset="digits",
        width=32,
        depth=2,
        epochs=4,
        lr=0.05,
        loss="mse",
        bias=False,
        track="every",
        layers="none",
        imbalance=10.0,
        minority_classes=3,
        robustness=12,
        progress=False,
        out=str(out),
    )
    return train(config), out


def test_the_training_split_has_the_requested_step_imbalance(imbalanced_mse_run):
    balanced = load_dataset("digits")
    data = load_dataset("digits", imbalance=10.0, minority_classes=3)
    counts = torch.bincount(data.train_labels, minlength=10)
    full = torch.bincount(balanced.train_labels, minlength=10)
    assert torch.equal(counts[:7], full[:7])
    n_a = int(full[:7].min())  # the smallest majority class sets the minority size
    assert counts[7:].tolist() == [max(1, round(n_a / 10))] * 3
    assert torch.equal(torch.bincount(data.test_labels), torch.bincount(balanced.test_labels))


def test_group_accuracy_minority_cosine_and_deepfool_are_logged_per_epoch(imbalanced_mse_run):
    _, out = imbalanced_mse_run
    epochs = _rows(out / "epochs.jsonl")
    assert len(epochs) == 4
    for row in epochs:
        for key in ("accuracy_majority", "accuracy_minority", "minority_cosine_weights"):
            assert key in schema.RUN_COLUMNS and row[key] is not None, key
        assert -1.0 <= row["minority_cosine_weights"] <= 1.0
        assert row["deepfool_count"] == 12 and row["deepfool_ratio"] > 0
    # the test split is balanced: the overall accuracy is the mean of the two groups, weighted
    last = epochs[-1]
    overall = 1 - last["test_error"]
    mixed = (7 * last["accuracy_majority"] + 3 * last["accuracy_minority"]) / 10
    assert overall == pytest.approx(mixed, abs=0.02)


def test_mse_runs_log_han_et_al_terms_that_sum_to_the_least_squares_loss(imbalanced_mse_run):
    _, out = imbalanced_mse_run
    rows = [r for r in _rows(out / "metrics.jsonl") if r["layer"] == "penultimate_post"]
    assert rows
    for row in rows:
        assert row["mse_loss_ls"] == pytest.approx(row["mse_nc1"] + row["mse_nc2_3"], rel=1e-9)
        assert row["mse_ls_perp"] >= -1e-12
        # the network's own classifier can only be worse than the least-squares one
        assert row["mse_loss"] >= row["mse_loss_ls"] - 1e-9


def test_summary_holds_the_generalisation_table(imbalanced_mse_run):
    _, out = imbalanced_mse_run
    summary = json.loads((out / "summary.json").read_text())
    table = summary["generalisation"]
    epochs = _rows(out / "epochs.jsonl")
    assert table["last_epoch"] == epochs[-1]["epoch"]
    tpt = next((row["epoch"] for row in epochs if row["train_error"] == 0), None)
    assert table["tpt_epoch"] == tpt
    if tpt is None:  # a 4-epoch run need not reach zero training error: said, not invented
        assert table["accuracy_last"] is None
        assert "zero training error" in table["not_computed"]["*"]
    else:
        assert table["accuracy_last"] == pytest.approx(1 - epochs[-1]["test_error"])


@pytest.mark.parametrize(
    "options,message",
    [
        ({"robustness": 100_000}, "larger than|exceeds|only"),
        ({"robustness": -1}, "robustness must be an integer >= 0"),
        ({"imbalance": 10.0}, "needs both --imbalance"),
        ({"imbalance": 0.5, "minority_classes": 2}, "imbalance must be a finite number >= 1"),
    ],
)
def test_bad_options_are_refused_up_front(tmp_path, options, message):
    config = TrainConfig(
        dataset="digits", epochs=1, progress=False, out=str(tmp_path / "r"), **options
    )
    with pytest.raises(ValueError, match=message):
        train(config)


def test_robustness_prints_its_cost_even_without_progress(tmp_path, capsys):
    config = TrainConfig(
        dataset="digits",
        width=8,
        depth=1,
        epochs=1,
        robustness=5,
        progress=False,
        out=str(tmp_path / "r"),
    )
    train(config)
    assert "DeepFool on 5 images" in capsys.readouterr().err
