"""Benchmark: the cost of one spectral measurement against one training epoch (issue 26).

The experiment's MLP (784 -> 128 -> 64 -> 10) on mnist5k (5,000 training images), CE: one
training epoch (Adam, minibatch 128, float32) is timed, then one
:func:`neuralcollapse.spectra.spectral_summary` over the last layer (650 parameters) on a
subsample (float64: Lanczos to p steps, Hutchinson with 8 probes, Papyan's decomposition),
with :func:`estimate_cost`'s prediction beside it; the ratio is printed from the same run.

Usage: python benchmarks/bench_spectra.py [--subsample 512] [--params 5] [--loss ce]
"""

from __future__ import annotations

import argparse
import time

import torch

from neuralcollapse.spectra import estimate_cost, spectral_summary
from neuralcollapse.train.data import load_dataset


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--subsample", type=int, default=512)
    parser.add_argument("--params", nargs="+", default=["5"], help="names or prefixes")
    parser.add_argument("--loss", default="ce", choices=["ce", "mse"])
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    data = load_dataset("mnist5k")
    x, y = data.train_images, data.train_labels
    model = torch.nn.Sequential(
        torch.nn.Flatten(),
        torch.nn.Linear(784, 128),
        torch.nn.ReLU(),
        torch.nn.Linear(128, 64),
        torch.nn.ReLU(),
        torch.nn.Linear(64, 10),
    )
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    loss = torch.nn.CrossEntropyLoss() if args.loss == "ce" else torch.nn.MSELoss()
    start = time.perf_counter()
    order = torch.randperm(len(y))
    for i in range(0, len(y), 128):
        idx = order[i : i + 128]
        opt.zero_grad()
        out = model(x[idx])
        target = y[idx] if args.loss == "ce" else torch.nn.functional.one_hot(y[idx], 10).float()
        loss(out, target).backward()
        opt.step()
    epoch = time.perf_counter() - start
    model = model.double().eval()
    batches = [(x[i : i + 256].double(), y[i : i + 256]) for i in range(0, len(y), 256)]
    estimate = estimate_cost(
        model, batches, params=args.params, loss=args.loss, subsample=args.subsample
    )
    start = time.perf_counter()
    summary = spectral_summary(
        model, batches, params=args.params, loss=args.loss, subsample=args.subsample
    )
    measured = time.perf_counter() - start
    print(f"parameters in the spectrum: {summary['num_parameters']}, samples: {args.subsample}")
    print(f"one training epoch (5,000 images, float32): {epoch:.2f} s")
    print(
        f"one spectral measurement: {measured:.2f} s (estimated {estimate['estimated_seconds']:.2f}"
        f" s; {summary['cost']['lanczos_products']} Lanczos + "
        f"{summary['cost']['trace_products']} trace products, 1 Jacobian pass)"
    )
    print(f"ratio measurement / epoch: {measured / epoch:.1f}")


if __name__ == "__main__":
    main()
