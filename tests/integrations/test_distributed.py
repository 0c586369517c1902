"""Two gloo processes, each on an exact shard, give every rank the one-process result."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from neuralcollapse.integrations import measure_model
from tests.integrations.distributed_worker import build


@pytest.mark.slow
def test_two_processes_equal_one_process(tmp_path):
    worker = Path(__file__).with_name("distributed_worker.py")
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(Path(__file__).parents[2])}
    command = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--standalone",
        "--nproc_per_node=2",
        str(worker),
        str(tmp_path / "result"),
    ]
    completed = subprocess.run(command, env=env, capture_output=True, text=True, timeout=240)
    assert completed.returncode == 0, completed.stderr[-3000:]
    model, loader = build()
    single = measure_model(model, loader, layers=["0", "penultimate"], classifier="2").to_dict()
    for rank in (0, 1):
        per_rank = json.loads((tmp_path / f"result.{rank}").read_text())
        assert per_rank.keys() == single.keys()
        for layer, values in single.items():
            assert per_rank[layer]["num_samples"] == 150  # no sample lost or repeated
            for key, value in values.items():
                if value is None:
                    assert per_rank[layer][key] is None
                else:
                    assert per_rank[layer][key] == pytest.approx(value, rel=1e-10, abs=1e-12), key
