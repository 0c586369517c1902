"""A small synthetic run directory in the format ``neuralcollapse train`` writes.

The numbers are made up (a run collapsing geometrically over epochs); these tests check how the
report reads and draws them, not what the metrics are.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

METRIC_KEYS = (
    "nc1",
    "nc1_trace_ratio",
    "cdnv",
    "within_class_variance",
    "between_class_variance",
    "equinorm_means",
    "equinorm_weights",
    "equiangular_means",
    "equiangular_weights",
    "maxangle_means",
    "maxangle_weights",
    "etf_gap_means",
    "etf_gap_weights",
    "of_gap_means",
    "of_gap_weights",
    "global_mean_ratio",
    "self_duality",
    "self_duality_uncentred",
    "ncc_mismatch",
    "ncc_accuracy",
    "accuracy",
)
LAYERS = ("layer1", "layer2", "penultimate_pre", "penultimate_post")


def write_fake_run(
    directory: Path,
    *,
    epochs: int = 12,
    num_classes: int = 4,
    measured=(0, 1, 2, 4, 8, 11),
    finished: bool = True,
) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    config = {
        "dataset": "fake",
        "model": "mlp",
        "loss": "mse",
        "bias": False,
        "epochs": epochs,
        "version": "0.1.0",
    }
    (directory / "config.json").write_text(json.dumps(config))
    epoch_rows = []
    for epoch in range(epochs):
        train_error = max(0.0, 0.5 - 0.1 * epoch)
        epoch_rows.append(
            {
                "epoch": epoch,
                "lr": 0.1,
                "train_loss": math.exp(-epoch),
                "train_error": train_error,
                "test_loss": 1.0,
                "test_error": 0.2,
                "seconds": 0.5,
            }
        )
    with (directory / "epochs.jsonl").open("w") as handle:
        for row in epoch_rows:
            handle.write(json.dumps(row) + "\n")
    with (directory / "metrics.jsonl").open("w") as handle:
        for epoch in measured:
            for split in ("train", "test"):
                for depth, layer in enumerate(LAYERS):
                    scale = math.exp(-0.4 * epoch) * (1.0 + 1.0 / (depth + 1))
                    row = {
                        "epoch": epoch,
                        "split": split,
                        "layer": layer,
                        **{k: v for k, v in epoch_rows[epoch].items() if k != "epoch"},
                    }
                    row.pop("seconds")
                    for key in METRIC_KEYS:
                        row[key] = scale
                    if layer != "penultimate_post":
                        for key in METRIC_KEYS:
                            if key.endswith("_weights") or key in (
                                "self_duality",
                                "self_duality_uncentred",
                                "ncc_mismatch",
                                "accuracy",
                            ):
                                row[key] = None
                    row.update(num_classes=num_classes, num_samples=40, dim=8)
                    handle.write(json.dumps(row) + "\n")
    tpt = next((row["epoch"] for row in epoch_rows if row["train_error"] == 0), None)
    summary = {
        "tpt_epoch": tpt,
        "epochs_done": epochs,
        "final": epoch_rows[-1],
        "finished": finished,
    }
    (directory / "summary.json").write_text(json.dumps(summary))
    return directory
