"""Benchmark: what the frontier measures that ride along a training run cost per tracked epoch.

Trains the same MLP on mnist5k several times in this process, every epoch tracked, with one
ride-along option each -- ``--transfer-classes 5-9`` (CDNV and 5-way 5-shot error of the
withheld classes, 200 episodes), ``--feature-dim 8`` (K > d + 1: smallest angles and margins),
``--track-agop N`` (the feature ansatz of every linear layer) -- and once with none (the
baseline), and prints each run's wall time, the extra seconds per tracked epoch over the
baseline and the ratio. The transfer and narrow runs train on other data or another network
than the baseline, so their difference includes that (printed beside it: the mean epoch
time logged in ``epochs.jsonl``, which excludes the ride-along measurements).

Usage::

    python benchmarks/bench_ride_along.py                    # 20 epochs, torch's threads
    python benchmarks/bench_ride_along.py --epochs 10 --threads 1
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time
from pathlib import Path

import torch

from neuralcollapse.train import TrainConfig, train

RIDE_ALONG = {
    "baseline": {},
    "transfer 5-9": {"transfer_classes": "5-9"},
    "feature dim 8": {"feature_dim": 8},
    "agop 256": {"track_agop": 256},
    "agop 1024": {"track_agop": 1024},
}


def timed(options: dict, epochs: int, out: Path) -> tuple[float, float]:
    """Wall seconds of the run, and the mean logged epoch time (training + NC metrics)."""
    config = TrainConfig(
        dataset="mnist5k",
        arch="mlp",
        epochs=epochs,
        track="every",
        out=str(out),
        overwrite=True,
        progress=False,
        **options,
    )
    started = time.perf_counter()
    train(config)
    wall = time.perf_counter() - started
    rows = [json.loads(line) for line in (out / "epochs.jsonl").read_text().splitlines()]
    return wall, statistics.mean(row["seconds"] for row in rows)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=20)
    parser.add_argument("--threads", type=int, default=None)
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    print(
        f"mnist5k MLP (3 x 256, batch norm), {args.epochs} epochs, every epoch tracked, "
        f"{torch.get_num_threads()} thread(s)",
        flush=True,
    )
    results = {}
    with tempfile.TemporaryDirectory() as folder:
        for name, options in RIDE_ALONG.items():
            results[name] = timed(options, args.epochs, Path(folder) / name.replace(" ", "_"))
            wall, epoch = results[name]
            print(
                f"  {name:14s} {wall:6.1f} s wall, logged epoch {epoch * 1000:6.0f} ms", flush=True
            )
    base_wall, base_epoch = results["baseline"]
    print(
        "\nper tracked epoch: wall-time difference from the baseline, the part of it that is "
        "training and NC metrics on other data or another net (difference of the logged epoch "
        "times), and the rest, the ride-along measurement itself:"
    )
    for name, (wall, epoch) in results.items():
        if name == "baseline":
            continue
        extra = (wall - base_wall) / args.epochs
        logged = epoch - base_epoch
        print(
            f"  {name:14s} {extra * 1000:+6.0f} ms = {logged * 1000:+5.0f} ms training/metrics "
            f"{(extra - logged) * 1000:+5.0f} ms measuring  (wall {wall / base_wall:.2f}x "
            "the baseline)"
        )


if __name__ == "__main__":
    main()
