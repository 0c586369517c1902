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


def test_leave_distributed_flushes_destroys_and_exits_with_the_code(tmp_path):
    """One-process gloo group: the output printed before is flushed, the group destroyed
    (a later is_initialized is never reached), the exit code is the one given."""
    script = tmp_path / "leave.py"
    script.write_text(
        "import torch.distributed as dist\n"
        "from neuralcollapse.integrations.shards import leave_distributed\n"
        "dist.init_process_group('gloo', rank=0, world_size=1)\n"
        "dist.all_reduce(__import__('torch').ones(3))\n"
        "print('done before leaving', end='')  # no newline: only a flush writes it\n"
        "leave_distributed(3)\n"
        "print('never printed')\n"
    )
    env = {
        **os.environ,
        "MASTER_ADDR": "127.0.0.1",
        "MASTER_PORT": "29531",
        "PYTHONPATH": str(Path(__file__).parents[2]),
    }
    completed = subprocess.run(
        [sys.executable, str(script)], env=env, capture_output=True, text=True, timeout=120
    )
    assert completed.returncode == 3, completed.stderr[-2000:]
    assert completed.stdout == "done before leaving"
