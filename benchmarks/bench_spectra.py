"""Benchmark: the cost of one spectral measurement against one training epoch (issue 26).

The experiment's MLP (784 -> 128 -> 64 -> 10) on mnist5k (5,000 training images), CE: one
training epoch (Adam, minibatch 128, float32) is timed, then one
:func:`neuralcollapse.spectra.spectral_summary` over the last layer (650 parameters) on a
subsample (float64: Lanczos to p steps, Hutchinson with 8 probes, Papyan's decomposition),
with :func:`estimate_cost`'s prediction beside it; the ratio is printed from the same run.

Then block against vector Lanczos above 1,024 parameters: a 784 -> 128 -> 127 -> 10 MLP
trained one epoch under MSE, G over its last layer (128 x 10 = 1,280 parameters, so
G = I_10 (x) Sigma: every eigenvalue 10 times) on the subsample; the top C^2 + C = 110
eigenvalues by vector Lanczos (default budget), vector Lanczos to p steps (``exhaust=True``,
the baseline that counts multiplicities) and block Lanczos (b = C = 10), each timed (best of
``--repeats``) with its operator products and its largest relative error against the dense
eigendecomposition (``dense_spectrum``), and the ratios against the baseline of the same run.

Usage: python benchmarks/bench_spectra.py [--subsample 512] [--params 5] [--loss ce]
    [--width 127] [--repeats 3]
"""

from __future__ import annotations

import argparse
import time
import warnings

import torch

from neuralcollapse.spectra import (
    curvature_operator,
    dense_spectrum,
    estimate_cost,
    spectral_summary,
    subsample_batches,
    top_eigenpairs,
)
from neuralcollapse.train.data import load_dataset


def mlp(width: int) -> torch.nn.Sequential:
    return torch.nn.Sequential(
        torch.nn.Flatten(),
        torch.nn.Linear(784, 128),
        torch.nn.ReLU(),
        torch.nn.Linear(128, width),
        torch.nn.ReLU(),
        torch.nn.Linear(width, 10),
    )


def train_epoch(model: torch.nn.Module, x: torch.Tensor, y: torch.Tensor, loss_name: str) -> float:
    """One epoch of Adam (minibatch 128, float32); its seconds."""
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    loss = torch.nn.CrossEntropyLoss() if loss_name == "ce" else torch.nn.MSELoss()
    start = time.perf_counter()
    order = torch.randperm(len(y))
    for i in range(0, len(y), 128):
        idx = order[i : i + 128]
        opt.zero_grad()
        out = model(x[idx])
        target = y[idx] if loss_name == "ce" else torch.nn.functional.one_hot(y[idx], 10).float()
        loss(out, target).backward()
        opt.step()
    return time.perf_counter() - start


def multiplicity_runs(values: torch.Tensor, rtol: float = 1e-6) -> str:
    """The multiplicities of the values (runs equal to ``rtol``), largest value first, as
    "m x n" for n runs of length m in a row: "10 x 11" is eleven eigenvalues ten times each."""
    runs: list[int] = []
    previous = None
    for value in values.tolist():
        if previous is not None and abs(value - previous) <= rtol * abs(previous):
            runs[-1] += 1
        else:
            runs.append(1)
            previous = value
    groups: list[list[int]] = []
    for run in runs:
        if groups and groups[-1][0] == run:
            groups[-1][1] += 1
        else:
            groups.append([run, 1])
    return ", ".join(f"{m} x {n}" if n > 1 else str(m) for m, n in groups)


class OneAtATime:
    """The operator seen through ``matvec`` only: block Lanczos then takes its b products of a
    block one pass each, which separates the gain of fewer products from that of batching."""

    def __init__(self, operator: object) -> None:
        self.operator = operator
        self.dim = operator.dim

    def matvec(self, vector: torch.Tensor) -> torch.Tensor:
        return self.operator.matvec(vector)


def block_versus_vector(
    x: torch.Tensor, y: torch.Tensor, width: int, subsample: int, repeats: int
) -> None:
    """The figure of block vs vector (+ exhaust) Lanczos above 1,024 parameters."""
    torch.manual_seed(1)
    model = mlp(width)
    train_epoch(model, x, y, "mse")
    model = model.double().eval()
    batches = [(x[i : i + 256].double(), y[i : i + 256]) for i in range(0, len(y), 256)]
    data = subsample_batches(batches, subsample)
    op = curvature_operator(model, data, kind="gauss_newton", loss="mse", params="5")
    c = op.num_classes
    k = c * c + c
    exact = dense_spectrum(op).values[:k]
    op.matvec(torch.ones(op.dim, dtype=torch.float64))  # warm-up: torch.func traces once
    op.matmat(torch.ones(op.dim, c, dtype=torch.float64))
    print(
        f"\nTop {k} eigenvalues of G over a last layer under MSE: {op.dim} parameters "
        f"(G = I_{c} (x) Sigma, each eigenvalue {c} times), {op.num_samples} samples, "
        f"best of {repeats}"
    )
    print(f"exact (dense): multiplicities {multiplicity_runs(exact)}")
    print(
        f"{'method':<34} {'seconds':>8} {'/ base':>7} {'products':>9} {'/ base':>7} "
        f"{'max rel. error':>15} {'converged':>10}  multiplicities"
    )
    methods = [
        ("vector, exhaust=True (baseline)", op, dict(exhaust=True)),
        ("vector, default budget", op, dict()),
        (f"block, b = C = {c}", op, dict(block_size=c)),
        (f"block, b = {c}, products one by one", OneAtATime(op), dict(block_size=c)),
    ]
    base_time = base_products = None
    for name, operator, options in methods:
        best = float("inf")
        for _ in range(repeats):
            op.matvecs = 0
            start = time.perf_counter()
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", RuntimeWarning)  # converged is printed
                top = top_eigenpairs(operator, k, tol=1e-10, **options)
            best = min(best, time.perf_counter() - start)
        products = op.matvecs
        if base_time is None:
            base_time, base_products = best, products
        error = float(((top.values - exact).abs() / exact.abs()).max())
        print(
            f"{name:<34} {best:>8.2f} {best / base_time:>6.3f}x {products:>9} "
            f"{products / base_products:>6.3f}x {error:>15.1e} {str(top.converged):>10}  "
            f"{multiplicity_runs(top.values)}"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--subsample", type=int, default=512)
    parser.add_argument("--params", nargs="+", default=["5"], help="names or prefixes")
    parser.add_argument("--loss", default="ce", choices=["ce", "mse"])
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--width", type=int, default=127, help="block figure: penultimate width")
    parser.add_argument("--repeats", type=int, default=3, help="block figure: best of")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    data = load_dataset("mnist5k")
    x, y = data.train_images, data.train_labels
    model = mlp(64)
    epoch = train_epoch(model, x, y, args.loss)
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
    block_versus_vector(x, y, args.width, args.subsample, args.repeats)


if __name__ == "__main__":
    main()
