"""Resuming a run directory never unpickles arbitrary objects (issue 16, item 1)."""

from __future__ import annotations

import os

import pytest
import torch

from neuralcollapse.cli import main
from neuralcollapse.runformat import UnsafeCheckpoint, load_checkpoint
from neuralcollapse.train import TrainConfig, train


class _WritesAFile:
    """A pickle payload: rebuilding it calls os.system, as a crafted checkpoint would."""

    def __init__(self, marker: str) -> None:
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


def _config(tmp_path, **options):
    base = dict(dataset="digits", width=16, depth=1, epochs=2, progress=False)
    return TrainConfig(**{**base, "out": str(tmp_path / "run"), **options})


def test_a_checkpoint_written_by_training_loads_with_weights_only(tmp_path):
    result = train(_config(tmp_path))
    checkpoint = torch.load(
        result.run_dir / "checkpoints" / "last.pt", map_location="cpu", weights_only=True
    )
    assert checkpoint["epoch"] == 2
    assert torch.equal(checkpoint["model"]["classifier.weight"], result.model.classifier.weight)


def test_a_crafted_checkpoint_is_refused_and_its_payload_never_runs(tmp_path):
    train(_config(tmp_path, epochs=1))
    marker = tmp_path / "payload-ran"
    path = tmp_path / "run" / "checkpoints" / "last.pt"
    state = torch.load(path, weights_only=True)
    state["rng"]["torch"] = _WritesAFile(str(marker))
    torch.save(state, path)

    with pytest.raises(UnsafeCheckpoint, match="refusing to resume.*arbitrary code.*Delete"):
        load_checkpoint(tmp_path / "run")
    assert not marker.exists()

    # the command line says the same, without a traceback, and runs nothing
    status = main(["train", "--resume", "--out", str(tmp_path / "run"), "--no-progress"])
    assert status == 2
    assert not marker.exists()
