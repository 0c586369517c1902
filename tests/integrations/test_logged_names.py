"""One naming of what is logged: ``nc/<split>/<layer>/<metric>``, one layer vocabulary.

A Lightning run and a Hugging Face run write the same TensorBoard tags for the same metric;
``neuralcollapse train --tensorboard`` too; ``metrics=`` chooses them.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from torch import nn

from neuralcollapse import measure, schema
from neuralcollapse.integrations.callback_support import (
    DEFAULT_METRICS,
    METRIC_GROUPS,
    resolve_metrics,
)


def _metrics(seed=0):
    generator = torch.Generator().manual_seed(seed)
    labels = torch.arange(60) % 3
    features = torch.randn(60, 6, generator=generator) + 3 * torch.eye(3, 6)[labels]
    return measure(features, labels, torch.randn(3, 6, generator=generator))


def _tags(folder: Path) -> set[str]:
    event_accumulator = pytest.importorskip(
        "tensorboard.backend.event_processing.event_accumulator"
    )
    tags: set[str] = set()
    for events in folder.rglob("events.out.tfevents.*"):
        accumulator = event_accumulator.EventAccumulator(str(events)).Reload()
        tags.update(accumulator.Tags()["scalars"])
    return tags


# ----------------------------------------------------------------------------- scalar_logs


def test_scalar_logs_name_the_classifier_input_penultimate_in_every_vocabulary():
    result = _metrics()
    logs = schema.scalar_logs(
        {"penultimate_post": result, "penultimate_pre": result, "block1": result}, split="train"
    )
    layers = {name.split("/")[2] for name in logs}
    assert layers == {"penultimate", "penultimate_pre", "block1"}
    assert logs["nc/train/penultimate/nc1"] == result.nc1
    assert schema.scalar_logs({"penultimate": result}, split="train") == {
        name: value for name, value in logs.items() if "/penultimate/" in name
    }


def test_scalar_logs_refuse_two_names_for_the_classifier_input():
    result = _metrics()
    with pytest.raises(ValueError, match="both be logged as 'penultimate'"):
        schema.scalar_logs({"penultimate_post": result, "penultimate": result})


def test_scalar_logs_keep_only_the_keys_asked_for():
    result = _metrics()
    logs = schema.scalar_logs({"penultimate": result}, split="test", keys=DEFAULT_METRICS)
    assert set(logs) == {f"nc/test/penultimate/{key}" for key in DEFAULT_METRICS}
    for key in DEFAULT_METRICS:
        assert logs[f"nc/test/penultimate/{key}"] == getattr(result, key)


# ----------------------------------------------------------------------------- metrics=


def test_every_metric_is_in_exactly_one_nc_group_and_all_is_every_metric():
    measured = [key for key in schema.METRICS if key not in schema.SIZE_KEYS]
    nc_groups = [keys for name, keys in METRIC_GROUPS.items() if name not in ("default", "all")]
    grouped = [key for keys in nc_groups for key in keys]
    assert sorted(grouped) == sorted(measured)
    assert resolve_metrics("all") == tuple(measured)
    assert resolve_metrics(None) == DEFAULT_METRICS == resolve_metrics("default")


def test_metric_names_and_groups_combine_in_order_without_repeats():
    assert resolve_metrics(["nc1", "NC1", "self_duality"]) == (
        *METRIC_GROUPS["NC1"],
        "self_duality",
    )
    assert resolve_metrics("nc1, ncc_mismatch") == ("nc1", "ncc_mismatch")


def test_an_unknown_metric_name_suggests_the_closest():
    with pytest.raises(ValueError, match="did you mean 'self_duality'"):
        resolve_metrics(["self_dualty"])
    with pytest.raises(ValueError, match="empty"):
        resolve_metrics([])


# ----------------------------------------------------------------------------- across tools


def _lightning_tags(tmp_path, data, eval_data):
    L = pytest.importorskip("lightning")
    pytest.importorskip("tensorboard")
    from neuralcollapse.integrations.lightning import NeuralCollapseCallback

    class Module(L.LightningModule):
        def __init__(self):
            super().__init__()
            self.net = nn.Sequential(nn.Linear(8, 16), nn.ReLU(), nn.Linear(16, 3))

        def forward(self, x):
            return self.net(x)

        def training_step(self, batch, index):
            x, y = batch
            return nn.functional.cross_entropy(self.net(x), y)

        def configure_optimizers(self):
            return torch.optim.SGD(self.parameters(), lr=0.1)

    callback = NeuralCollapseCallback(data, eval_data=eval_data, classifier="net.2")
    trainer = L.Trainer(
        max_epochs=1,
        callbacks=[callback],
        logger=L.pytorch.loggers.TensorBoardLogger(tmp_path / "lightning"),
        enable_progress_bar=False,
        enable_model_summary=False,
        enable_checkpointing=False,
    )
    trainer.fit(Module(), data)
    assert not any(name.startswith("nc/") for name in trainer.progress_bar_metrics)
    return _tags(tmp_path / "lightning")


def _huggingface_tags(tmp_path, rows, capsys):
    transformers = pytest.importorskip("transformers")
    pytest.importorskip("tensorboard")
    from neuralcollapse.integrations.huggingface import NeuralCollapseCallback

    torch.manual_seed(0)
    model = transformers.BertForSequenceClassification(
        transformers.BertConfig(
            vocab_size=30,
            hidden_size=16,
            num_hidden_layers=1,
            num_attention_heads=2,
            intermediate_size=32,
            num_labels=3,
            max_position_embeddings=8,
        )
    )
    args = transformers.TrainingArguments(
        output_dir=str(tmp_path / "hf"),
        num_train_epochs=1,
        per_device_train_batch_size=12,
        eval_strategy="epoch",
        logging_strategy="epoch",
        report_to=["tensorboard"],
        use_cpu=True,
        save_strategy="no",
        disable_tqdm=True,  # the Trainer prints each log dict: ours must not be among them
    )
    trainer = transformers.Trainer(model=model, args=args, train_dataset=rows, eval_dataset=rows)
    loader = torch.utils.data.DataLoader(rows, batch_size=12)
    NeuralCollapseCallback(loader, eval_data=loader, classifier="classifier").attach(trainer)
    capsys.readouterr()
    trainer.train()
    printed = capsys.readouterr().out
    assert "eval_loss" in printed  # the Trainer printed its own logs ...
    assert "nc/" not in printed  # ... and none of ours
    return _tags(tmp_path / "hf")


def test_lightning_and_hugging_face_write_the_same_tensorboard_tags(tmp_path, capsys):
    generator = torch.Generator().manual_seed(0)
    labels = torch.arange(48) % 3
    inputs = torch.randn(48, 8, generator=generator) + 2 * torch.eye(3, 8)[labels]
    data = torch.utils.data.DataLoader(torch.utils.data.TensorDataset(inputs, labels), 12)
    ids = torch.randint(0, 30, (48, 8), generator=generator)
    rows = [{"input_ids": ids[i], "labels": labels[i]} for i in range(48)]

    lightning = {tag for tag in _lightning_tags(tmp_path, data, data) if "nc/" in tag}
    huggingface = {tag for tag in _huggingface_tags(tmp_path, rows, capsys) if "nc/" in tag}
    expected = {
        f"nc/{split}/penultimate/{key}" for split in ("train", "test") for key in DEFAULT_METRICS
    }
    assert lightning == expected
    assert huggingface == expected


def test_neuralcollapse_train_tensorboard_names_the_classifier_input_penultimate(tmp_path):
    pytest.importorskip("tensorboard")
    from neuralcollapse.train.loop import TensorBoardLog

    result = _metrics()
    log = TensorBoardLog(tmp_path, start_epoch=0)
    row = {"train_loss": 0.5, "train_error": 0.1, "lr": 0.1}
    log.write(1, row, {"train": {"penultimate_post": result, "penultimate_pre": result}})
    log.close()
    tags = {tag for tag in _tags(tmp_path) if tag.startswith("nc/")}
    assert "nc/train/penultimate/nc1" in tags
    assert "nc/train/penultimate_pre/nc1" in tags
    assert not any("penultimate_post" in tag for tag in tags)


def test_the_groups_hold_what_docs_integrations_md_says():
    assert METRIC_GROUPS["NC1"] == (
        "nc1",
        "nc1_trace_ratio",
        "cdnv",
        "within_class_variance",
        "between_class_variance",
    )
    assert set(METRIC_GROUPS["NC2"]) == {
        f"{name}_{frame}"
        for name in ("equinorm", "equiangular", "maxangle", "etf_gap", "of_gap")
        for frame in ("means", "weights")
    } | {"global_mean_ratio"}
    assert METRIC_GROUPS["NC3"] == ("self_duality", "self_duality_uncentred")
    assert METRIC_GROUPS["NC4"] == ("ncc_mismatch", "ncc_accuracy", "accuracy")
    assert METRIC_GROUPS["NC5"] == ("nc5",)
    assert METRIC_GROUPS["UNC3"] == ("unc3", "unc3_cv")
    assert all(key.startswith("gnc2_") for key in METRIC_GROUPS["GNC2"])
    assert DEFAULT_METRICS == (
        "nc1",
        "etf_gap_means",
        "etf_gap_weights",
        "self_duality",
        "ncc_mismatch",
    )
