"""Benchmark: ``measure_model`` on the project's ResNet18 against a plain evaluation pass.

Measures 3 intermediate layers plus the penultimate layer of a narrow ResNet18 on mnist5k
(5,000 images) and compares with one plain no-grad eval pass over the same loader, in the
same process. Two passes over the data are the floor for exact streaming statistics without
storing features, so the target (issue 12) is <= 2.2x the plain pass. Memory: the run's
peak RSS growth over the plain pass, against what storing every layer's features would take
(N d float64 per layer) and what the statistics take (a few K x d float64 arrays per layer).

Usage::

    python benchmarks/bench_probe.py                    # mnist5k, ResNet18 with 16 channels
    python benchmarks/bench_probe.py --repeats 3 --base-channels 8
"""

from __future__ import annotations

import argparse
import resource
import statistics
import time

import torch
from torch.utils.data import DataLoader, TensorDataset

from neuralcollapse.integrations import measure_model
from neuralcollapse.train.data import load_dataset
from neuralcollapse.train.nets import build_net

LAYERS = ["layer1", "layer2", "layer3", "penultimate"]


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def plain_pass(model: torch.nn.Module, loader: DataLoader) -> float:
    started = time.perf_counter()
    model.eval()
    with torch.no_grad():
        for images, _ in loader:
            model(images)
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--base-channels", type=int, default=16)
    parser.add_argument("--batch-size", type=int, default=500)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, default=None)
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    data = load_dataset("mnist5k")
    loader = DataLoader(
        TensorDataset(data.train_images, data.train_labels), batch_size=args.batch_size
    )
    torch.manual_seed(0)
    model = build_net(
        "resnet18", data.input_shape, data.num_classes, base_channels=args.base_channels
    )
    plain_pass(model, loader)  # warm-up: allocator and kernels
    plain_times, probe_times = [], []
    rss_plain = peak_rss_mb()
    result = None
    for _ in range(args.repeats):
        plain_times.append(plain_pass(model, loader))
        started = time.perf_counter()
        result = measure_model(
            model, loader, layers=LAYERS, classifier="classifier", chance_warning=False
        )
        probe_times.append(time.perf_counter() - started)
    rss_growth = peak_rss_mb() - rss_plain
    plain, probe = statistics.median(plain_times), statistics.median(probe_times)
    n = len(data.train_labels)
    dims = {layer: result[layer].dim for layer in LAYERS}
    stored = sum(n * d * 8 for d in dims.values()) / 2**20
    statistics_mb = sum(4 * data.num_classes * d * 8 for d in dims.values()) / 2**20
    print(f"threads {torch.get_num_threads()}, N = {n}, K = {data.num_classes}, dims {dims}")
    print(f"plain eval pass        {plain:8.2f} s (median of {args.repeats})")
    print(f"measure_model, 4 layers {probe:7.2f} s (median of {args.repeats})")
    print(f"ratio                  {probe / plain:8.2f} x   (target <= 2.2; floor 2: two passes)")
    print(
        f"peak RSS growth over the plain pass {rss_growth:.1f} MB; storing the features would "
        f"take {stored:.1f} MB, the statistics take ~{statistics_mb:.2f} MB"
    )


if __name__ == "__main__":
    main()
