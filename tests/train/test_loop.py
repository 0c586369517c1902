"""The training loop: terminal phase, NC tracking, run directory, resume, divergence."""

from __future__ import annotations

import json

import pytest
import torch

from neuralcollapse.metrics import measure
from neuralcollapse.train import TrainConfig, TrainingDiverged, tracking_epochs, train
from neuralcollapse.train.data import load_dataset
from neuralcollapse.train.loop import per_sample_loss


def _config(tmp_path, name="run", **options):
    base = dict(
        dataset="digits",
        width=32,
        depth=2,
        epochs=6,
        batch_size=128,
        lr=0.05,
        progress=False,
        out=str(tmp_path / name),
    )
    return TrainConfig(**{**base, **options})


def _rows(path):
    return [json.loads(line) for line in path.read_text().splitlines()]


def _without_timing(rows):
    return [{k: v for k, v in row.items() if k != "seconds"} for row in rows]


def test_digits_mlp_reaches_zero_train_error_and_nc1_falls_tenfold(tmp_path):
    result = train(
        _config(
            tmp_path,
            width=128,
            depth=2,
            epochs=40,
            weight_decay=2e-2,
            track_points=4,
            layers="none",
        )
    )
    assert result.finished and result.final["train_error"] == 0.0
    assert result.tpt_epoch is not None and result.tpt_epoch <= 40
    epochs = _rows(result.run_dir / "epochs.jsonl")
    # the terminal phase starts at the first epoch with zero training error
    first_zero = next(row["epoch"] for row in epochs if row["train_error"] == 0)
    assert result.tpt_epoch == first_zero
    nc1 = [
        row["nc1"]
        for row in result.metrics_rows
        if row["split"] == "train" and row["layer"] == "penultimate_post"
    ]
    assert nc1[0] / nc1[-1] >= 10


def test_tracked_metrics_equal_measure_on_the_final_features(tmp_path):
    result = train(_config(tmp_path, epochs=3, track="every"))
    net = result.model.eval()
    dataset = load_dataset("digits")
    with torch.no_grad():
        _, post = net.forward_features(dataset.train_images)
    expected = measure(
        post, dataset.train_labels, net.classifier.weight.detach(), net.classifier.bias.detach()
    )
    logged = next(
        row
        for row in reversed(result.metrics_rows)
        if row["split"] == "train" and row["layer"] == "penultimate_post"
    )
    assert logged["epoch"] == 3
    for key in ("nc1", "etf_gap_means", "self_duality", "ncc_mismatch", "accuracy"):
        assert logged[key] == pytest.approx(getattr(expected, key), rel=1e-6, abs=1e-9)
    # the classifier's accuracy on train is 1 - the logged train error
    assert logged["accuracy"] == pytest.approx(1 - logged["train_error"])


def test_per_layer_nc1_is_recorded_for_every_chosen_layer_split_and_epoch(tmp_path):
    result = train(_config(tmp_path, depth=4, width=24, epochs=5, track="every"))
    rows = _rows(result.run_dir / "metrics.jsonl")
    layers = ["penultimate_post", "penultimate_pre", "layer1", "layer2", "layer3"]
    seen = {(r["epoch"], r["split"], r["layer"]) for r in rows}
    assert seen == {(e, s, name) for e in range(1, 6) for s in ("train", "test") for name in layers}
    assert all(r["nc1"] is not None and r["nc1"] >= 0 for r in rows)
    # only the classifier's input is measured with W: the others have no weight metrics
    for row in rows:
        has_weights = row["layer"] == "penultimate_post"
        assert (row["self_duality"] is not None) == has_weights
        assert row["dim"] == 24
    # metrics.csv holds the same rows
    csv_lines = (result.run_dir / "metrics.csv").read_text().splitlines()
    assert len(csv_lines) == len(rows) + 1 and csv_lines[0].startswith("epoch,split,layer")


def test_chosen_layers_only(tmp_path):
    result = train(_config(tmp_path, depth=4, epochs=2, layers="layer2", track="every"))
    assert {r["layer"] for r in result.metrics_rows} == {
        "penultimate_post",
        "penultimate_pre",
        "layer2",
    }


def test_run_directory_follows_the_documented_format(tmp_path):
    config = _config(tmp_path, epochs=4, track_points=1)
    result = train(config)
    run = result.run_dir
    saved = json.loads((run / "config.json").read_text())
    assert set(saved) == set(TrainConfig.__dataclass_fields__) | {"version"}
    assert saved["width"] == 32 and saved["dataset"] == "digits"
    epochs = _rows(run / "epochs.jsonl")
    assert [r["epoch"] for r in epochs] == [1, 2, 3, 4]
    assert {
        "epoch",
        "lr",
        "train_loss",
        "train_error",
        "test_loss",
        "test_error",
        "seconds",
    } <= set(epochs[0])
    metrics = _rows(run / "metrics.jsonl")
    assert {r["epoch"] for r in metrics} == set(tracking_epochs(4, "log", 1))
    assert {
        "epoch",
        "split",
        "layer",
        "train_loss",
        "train_error",
        "test_loss",
        "test_error",
        "lr",
        "nc1",
        "nc1_trace_ratio",
        "etf_gap_means",
        "accuracy",
    } <= set(metrics[0])
    summary = json.loads((run / "summary.json").read_text())
    assert summary["epochs_done"] == 4 and summary["finished"] is True
    assert summary["final"]["epoch"] == 4 and summary["tpt_epoch"] == result.tpt_epoch
    assert (run / "checkpoints" / "last.pt").is_file()
    assert not list((run / "checkpoints").glob("*.tmp"))


def test_papyan_schedule_divides_the_lr_by_ten_at_one_and_two_thirds(tmp_path):
    result = train(_config(tmp_path, epochs=6, lr=0.3, track="none"))
    lrs = [row["lr"] for row in _rows(result.run_dir / "epochs.jsonl")]
    assert lrs == pytest.approx([0.3, 0.3, 0.03, 0.03, 0.003, 0.003])


def test_step_schedule_multiplies_by_gamma_every_step_size_epochs(tmp_path):
    result = train(
        _config(tmp_path, epochs=5, lr=1.0, schedule="step", step_size=2, gamma=0.5, track="none")
    )
    lrs = [row["lr"] for row in _rows(result.run_dir / "epochs.jsonl")]
    assert lrs == pytest.approx([1.0, 1.0, 0.5, 0.5, 0.25])


def test_resume_after_interruption_ends_with_the_same_numbers(tmp_path):
    options = dict(epochs=6, batch_norm=True, track="every", loss="mse", bias=False)
    whole = train(_config(tmp_path, "whole", **options))
    first = train(_config(tmp_path, "parts", stop_after_epoch=3, **options))
    assert not first.finished and first.epochs_done == 3
    assert not json.loads((first.run_dir / "summary.json").read_text())["finished"]
    # a partly written epoch after the checkpoint must be dropped on resume
    with open(first.run_dir / "epochs.jsonl", "a") as stream:
        stream.write(json.dumps({"epoch": 4, "lr": 9.0}) + "\n")
    resumed = train(_config(tmp_path, "parts", **options), resume=True)
    assert resumed.finished and resumed.epochs_done == 6
    for name in ("epochs.jsonl", "metrics.jsonl"):
        assert _without_timing(_rows(whole.run_dir / name)) == _without_timing(
            _rows(resumed.run_dir / name)
        )
    for key, value in whole.model.state_dict().items():
        assert torch.equal(value, resumed.model.state_dict()[key]), key


def test_nan_loss_stops_with_a_clear_message_and_keeps_the_last_good_checkpoint(tmp_path):
    # lr x 1e6 after epoch 2 makes the MSE loss overflow in epoch 3
    config = _config(
        tmp_path,
        epochs=6,
        loss="mse",
        batch_norm=False,
        schedule="step",
        step_size=2,
        gamma=1e6,
        track="none",
    )
    with pytest.raises(TrainingDiverged, match="NaN or infinite in epoch 3.*checkpoint \\(epoch 2"):
        train(config)
    run = config.run_dir()
    checkpoint = torch.load(run / "checkpoints" / "last.pt", weights_only=False)
    assert checkpoint["epoch"] == 2
    assert all(torch.isfinite(v).all() for v in checkpoint["model"].values())
    summary = json.loads((run / "summary.json").read_text())
    assert summary["finished"] is False and summary["epochs_done"] == 2
    assert "NaN" in summary["stopped"]


def test_an_existing_run_is_not_overwritten_by_accident(tmp_path):
    train(_config(tmp_path, epochs=1, track="none"))
    with pytest.raises(ValueError, match="already holds a run.*--resume.*--overwrite"):
        train(_config(tmp_path, epochs=1, track="none"))
    assert train(_config(tmp_path, epochs=1, track="none", overwrite=True)).finished


def test_resume_without_a_checkpoint_says_to_start_without_resume(tmp_path):
    with pytest.raises(FileNotFoundError, match="nothing to resume.*without --resume"):
        train(_config(tmp_path, epochs=1), resume=True)


@pytest.mark.parametrize(
    ("epochs", "mode", "points"), [(350, "log", 30), (100, "log", 10), (20, "log", 30)]
)
def test_log_spaced_tracking_covers_first_last_and_about_points_more(epochs, mode, points):
    chosen = tracking_epochs(epochs, mode, points)
    assert chosen[0] == 1 and chosen[-1] == epochs
    assert chosen == sorted(set(chosen))
    assert len(chosen) == min(epochs, points + 2)
    if epochs > points + 2:  # denser early than late: log spacing
        gaps = [b - a for a, b in zip(chosen, chosen[1:], strict=False)]
        assert gaps[0] < gaps[-1]


def test_tracking_every_and_none():
    assert tracking_epochs(5, "every") == [1, 2, 3, 4, 5]
    assert tracking_epochs(5, "none") == []


def test_mse_loss_is_half_the_squared_distance_to_the_scaled_one_hot_target():
    logits = torch.tensor([[1.0, 2.0, 0.0]])
    labels = torch.tensor([1])
    config = TrainConfig(loss="mse", mse_scale=3.0)
    # target (0, 3, 0): 1/2 (1 + 1 + 0) = 1
    assert per_sample_loss(logits, labels, config, 3).item() == pytest.approx(1.0)
    smoothed = TrainConfig(loss="mse", label_smoothing=0.3)
    # target (0.1, 0.8, 0.1): 1/2 (0.81 + 1.44 + 0.01)
    assert per_sample_loss(logits, labels, smoothed, 3).item() == pytest.approx(1.13)


def test_cross_entropy_with_label_smoothing_matches_its_definition():
    logits = torch.tensor([[1.0, 2.0, 0.5]])
    config = TrainConfig(loss="ce", label_smoothing=0.2)
    log_p = torch.log_softmax(logits, dim=1)[0]
    target = torch.tensor([0.2 / 3, 0.8 + 0.2 / 3, 0.2 / 3])
    expected = -(target * log_p).sum().item()
    assert per_sample_loss(logits, torch.tensor([1]), config, 3).item() == pytest.approx(expected)


def test_feature_decay_shrinks_the_penultimate_features(tmp_path):
    def feature_norm(**options):
        result = train(
            _config(
                tmp_path, f"run{len(options)}", epochs=3, track="every", batch_norm=False, **options
            )
        )
        row = next(
            r
            for r in reversed(result.metrics_rows)
            if r["split"] == "train" and r["layer"] == "penultimate_post"
        )
        return row["within_class_variance"] + row["between_class_variance"]

    assert feature_norm(feature_decay=1.0) < 0.5 * feature_norm()


def test_classifier_weight_decay_acts_on_the_classifier_only(tmp_path):
    plain = train(_config(tmp_path, "plain", epochs=3, track="none", weight_decay=0.0)).model
    decayed = train(
        _config(
            tmp_path,
            "decayed",
            epochs=3,
            track="none",
            weight_decay=0.0,
            classifier_weight_decay=1.0,
        )
    ).model
    assert decayed.classifier.weight.norm() < 0.7 * plain.classifier.weight.norm()
    # the feature layers saw the same data and no decay, yet differ only through the
    # classifier's gradient: their first-layer norms stay comparable
    first_plain = plain.layer1[0].weight.norm().item()
    assert decayed.layer1[0].weight.norm().item() == pytest.approx(first_plain, rel=0.2)


def test_progress_bar_shows_loss_error_and_latest_nc1(tmp_path, capsys, monkeypatch):
    import sys

    # bars are drawn on a terminal only: make the captured stderr look like one
    monkeypatch.setattr(sys.stderr, "isatty", lambda: True)
    train(_config(tmp_path, epochs=2, track="every", progress=True))
    err = capsys.readouterr().err
    assert "loss=" in err and "err=" in err and "nc1=" in err


def test_test_split_nearest_centre_decides_with_the_training_means(tmp_path):
    result = train(_config(tmp_path, epochs=2, track="every", layers="none"))
    net = result.model.eval()
    dataset = load_dataset("digits")
    with torch.no_grad():
        _, train_post = net.forward_features(dataset.train_images)
        _, test_post = net.forward_features(dataset.test_images)
        logits = net(dataset.test_images)
    labels = dataset.train_labels
    train_means = torch.stack([train_post[labels == k].mean(0) for k in range(10)]).double()
    nearest = torch.cdist(test_post.double(), train_means).argmin(dim=1)
    logged = next(
        row
        for row in reversed(result.metrics_rows)
        if row["split"] == "test" and row["layer"] == "penultimate_post"
    )
    assert logged["ncc_accuracy"] == pytest.approx(
        float((nearest == dataset.test_labels).double().mean()), abs=1e-12
    )
    assert logged["ncc_mismatch"] == pytest.approx(
        float((nearest != logits.argmax(dim=1)).double().mean()), abs=1e-12
    )
    # the test set's own means decide differently on at least this barely trained net
    test_means = torch.stack(
        [test_post[dataset.test_labels == k].mean(0) for k in range(10)]
    ).double()
    own = torch.cdist(test_post.double(), test_means).argmin(dim=1)
    assert not torch.equal(own, nearest)
