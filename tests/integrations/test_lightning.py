"""The Lightning callback inside Trainer.fit logs what measure_model gives, to every logger."""

from __future__ import annotations

import csv

import pytest
import torch
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

L = pytest.importorskip("lightning")

from sklearn.datasets import load_digits  # noqa: E402

from neuralcollapse.integrations import measure_model  # noqa: E402
from neuralcollapse.integrations.lightning import NeuralCollapseCallback  # noqa: E402


class DigitsModule(L.LightningModule):
    def __init__(self):
        super().__init__()
        self.net = nn.Sequential(nn.Linear(64, 32), nn.ReLU(), nn.Linear(32, 10))

    def forward(self, x):
        return self.net(x)

    def training_step(self, batch, index):
        x, y = batch
        loss = nn.functional.cross_entropy(self(x), y)
        self.log("train_loss", loss)
        return loss

    def validation_step(self, batch, index):
        x, y = batch
        self.log("val_loss", nn.functional.cross_entropy(self(x), y))

    def configure_optimizers(self):
        return torch.optim.SGD(self.parameters(), lr=0.1)


def test_fit_with_the_callback_logs_the_final_models_metrics_to_csv(tmp_path):
    torch.manual_seed(0)
    images, labels = load_digits(return_X_y=True)
    data = TensorDataset(torch.tensor(images / 16, dtype=torch.float32), torch.tensor(labels))
    measured = DataLoader(data, batch_size=256)
    callback = NeuralCollapseCallback(
        measured, layers=["net.0", "penultimate"], classifier="net.2", run_dir=tmp_path / "run"
    )
    module = DigitsModule()
    trainer = L.Trainer(
        max_epochs=3,
        callbacks=[callback],
        logger=L.pytorch.loggers.CSVLogger(tmp_path / "logs"),
        log_every_n_steps=10,  # 29 batches per epoch: Lightning's default of 50 logs none
        enable_progress_bar=False,
        enable_model_summary=False,
        enable_checkpointing=False,
    )
    trainer.fit(module, DataLoader(data, batch_size=64, shuffle=True), measured)

    expected = measure_model(module, measured, layers=["net.0", "penultimate"], classifier="net.2")
    (metrics_file,) = (tmp_path / "logs").rglob("metrics.csv")
    rows = [row for row in csv.DictReader(metrics_file.open()) if row["nc/train/penultimate/nc1"]]
    assert len(rows) == 3  # one per validation epoch
    for key in ("nc1", "etf_gap_weights", "self_duality", "ncc_mismatch"):
        logged = float(rows[-1][f"nc/train/penultimate/{key}"])
        assert logged == pytest.approx(getattr(expected["penultimate"], key), rel=1e-5, abs=1e-7)
    assert float(rows[-1]["nc/train/net.0/nc1"]) == pytest.approx(expected["net.0"].nc1, rel=1e-5)
    # the run directory is written too, and is finished
    assert (tmp_path / "run" / "metrics.jsonl").read_text().count("\n") == 3 * 2
    assert '"finished": true' in (tmp_path / "run" / "summary.json").read_text()


def test_metrics_option_chooses_what_the_loggers_get_and_the_run_directory_keeps_all(tmp_path):
    import json

    from neuralcollapse.integrations.callback_support import DEFAULT_METRICS, METRIC_GROUPS

    torch.manual_seed(0)
    images, labels = load_digits(return_X_y=True)
    data = TensorDataset(torch.tensor(images / 16, dtype=torch.float32), torch.tensor(labels))
    measured = DataLoader(data, batch_size=512)
    chosen = NeuralCollapseCallback(measured, classifier="net.2", metrics=["NC2", "nc1"])
    default = NeuralCollapseCallback(measured, classifier="net.2", run_dir=tmp_path / "run")
    trainer = L.Trainer(
        max_epochs=1,
        callbacks=[chosen, default],
        logger=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        enable_checkpointing=False,
        limit_train_batches=5,
    )
    trainer.fit(DigitsModule(), DataLoader(data, batch_size=64, shuffle=True))
    logged = {name for name in trainer.callback_metrics if name.startswith("nc/")}
    wanted = {*METRIC_GROUPS["NC2"], "nc1"} | set(DEFAULT_METRICS)
    assert logged == {f"nc/train/penultimate/{key}" for key in wanted}
    assert not any(name.startswith("nc/") for name in trainer.progress_bar_metrics)
    (row,) = [json.loads(line) for line in (tmp_path / "run" / "metrics.jsonl").open()]
    assert {"cdnv", "gnc2_dist_mean", "equinorm_means", "ncc_accuracy"} <= set(row)
