"""Two processes under torchrun (gloo, CPU) give the metrics of one process."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from neuralcollapse.train import TrainConfig, train

OPTIONS = dict(
    dataset="digits",
    width=32,
    depth=3,
    batch_norm=False,
    epochs=3,
    batch_size=100,
    lr=0.05,
    track="every",
    layers="all",
    progress=False,
)


def _cli_flags(options):
    flags = []
    for key, value in options.items():
        flag = "--" + key.replace("_", "-")
        if isinstance(value, bool):
            flags.append(flag if value else "--no-" + key.replace("_", "-"))
        else:
            flags += [flag, str(value)]
    return flags


@pytest.mark.slow
def test_two_process_run_equals_one_process_run(tmp_path):
    single = train(TrainConfig(**OPTIONS, out=str(tmp_path / "one")))
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    command = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--standalone",
        "--nproc_per_node=2",
        "-m",
        "neuralcollapse",
        "train",
        *_cli_flags(OPTIONS),
        "--out",
        str(tmp_path / "two"),
    ]
    completed = subprocess.run(command, env=env, capture_output=True, text=True, timeout=240)
    assert completed.returncode == 0, completed.stderr[-3000:]
    two = [json.loads(line) for line in (tmp_path / "two" / "metrics.jsonl").open()]
    one = single.metrics_rows
    assert [(r["epoch"], r["split"], r["layer"]) for r in two] == [
        (r["epoch"], r["split"], r["layer"]) for r in one
    ]
    assert {r["layer"] for r in two} == {"penultimate_post", "penultimate_pre", "layer1", "layer2"}
    compared = [
        "nc1",
        "nc1_trace_ratio",
        "within_class_variance",
        "between_class_variance",
        "equinorm_means",
        "etf_gap_means",
        "of_gap_means",
        "self_duality",
        "ncc_accuracy",
        "accuracy",
        "train_loss",
        "test_loss",
        "train_error",
    ]
    for row_two, row_one in zip(two, one, strict=True):
        assert row_two["num_samples"] == row_one["num_samples"]  # no sample lost or doubled
        for key in compared:
            if row_one[key] is None:
                assert row_two[key] is None
            else:  # float32 gradients are summed in another order: rounding only
                assert row_two[key] == pytest.approx(row_one[key], rel=1e-4, abs=1e-6), key
