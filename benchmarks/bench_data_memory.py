"""Benchmark: ``neuralcollapse train --data`` keeps its memory flat as the data set grows.

A factory data set whose samples are generated from their index (class templates plus
seeded noise, 3 x 32 x 32 float32 images) is never held: 500,000 such images would take
6.1 GB as one tensor. The same one-epoch run (an MLP, every epoch tracked: the measuring
engine's two passes over train and test) is made on N and on N / 10 images, each in a fresh
process, and the peak resident memory of each is printed with their ratio; flat memory means
a ratio near 1 while the data grows 10x. Time per epoch is printed too.

Usage::

    python benchmarks/bench_data_memory.py                 # N = 500,000 against 50,000
    python benchmarks/bench_data_memory.py --size 200000 --workers 2
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch
from torch.utils.data import Dataset

NUM_CLASSES = 10
SHAPE = (3, 32, 32)


class GeneratedImages(Dataset):
    """``size`` images generated from their index: nothing but the K templates is held."""

    def __init__(self, size: int, seed: int) -> None:
        self.size, self.seed = size, seed
        generator = torch.Generator().manual_seed(1234)
        self.templates = torch.randn(NUM_CLASSES, *SHAPE, generator=generator)

    def __len__(self) -> int:
        return self.size

    def __getitem__(self, index: int):
        label = index % NUM_CLASSES
        generator = torch.Generator().manual_seed(self.seed * 10_000_019 + index)
        return self.templates[label] + 2.0 * torch.randn(*SHAPE, generator=generator), label


def factory():
    """The ``--data`` factory: the size comes from the environment (set by main())."""
    size = int(os.environ["NC_BENCH_SIZE"])
    return GeneratedImages(size, seed=0), GeneratedImages(max(size // 10, NUM_CLASSES), seed=1)


def _one_run(size: int, workers: int, out: Path) -> dict:
    """Train one epoch in a fresh process; its peak RSS (MB) and wall time (s)."""
    command = [
        sys.executable, "-m", "neuralcollapse", "train",
        "--data", "bench_data_memory:factory", "--num-classes", str(NUM_CLASSES),
        "--arch", "mlp", "--width", "64", "--depth", "2", "--epochs", "1", "--track", "every",
        "--batch-size", "512", "--eval-batch-size", "2048", "--workers", str(workers),
        "--no-progress", "--out", str(out),
    ]  # fmt: skip
    environment = {
        **os.environ,
        "NC_BENCH_SIZE": str(size),
        "PYTHONPATH": str(Path(__file__).parent) + os.pathsep + os.environ.get("PYTHONPATH", ""),
    }
    started = time.perf_counter()
    process = subprocess.Popen(command, env=environment, stdout=subprocess.DEVNULL)
    _, status, usage = os.wait4(process.pid, 0)
    seconds = time.perf_counter() - started
    if status != 0:
        raise SystemExit(f"the run on {size} images failed (status {status})")
    epochs = [json.loads(line) for line in (out / "epochs.jsonl").read_text().splitlines()]
    return {
        "size": size,
        "peak_mb": usage.ru_maxrss / 1024,
        "seconds": seconds,
        "train_loss": epochs[-1]["train_loss"],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=500_000, help="the large data set (N)")
    parser.add_argument("--workers", type=int, default=0, help="DataLoader processes")
    args = parser.parse_args()
    held_gb = args.size * 4 * int(torch.tensor(SHAPE).prod()) / 1e9
    print(f"N = {args.size:,} images of {SHAPE} float32 would hold {held_gb:.1f} GB as a tensor")
    with tempfile.TemporaryDirectory() as folder:
        small = _one_run(args.size // 10, args.workers, Path(folder) / "small")
        large = _one_run(args.size, args.workers, Path(folder) / "large")
    for run in (small, large):
        print(
            f"N = {run['size']:>9,}: peak RSS {run['peak_mb']:7.1f} MB, one tracked epoch "
            f"{run['seconds']:6.1f} s (train loss {run['train_loss']:.4f})"
        )
    print(
        f"peak RSS ratio large / small = {large['peak_mb'] / small['peak_mb']:.3f} for 10x the "
        f"data (time ratio {large['seconds'] / small['seconds']:.2f})"
    )


if __name__ == "__main__":
    main()
