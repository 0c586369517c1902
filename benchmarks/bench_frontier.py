"""Benchmark: the tiled softmax-code margins at a vocabulary of classes, against a dense route.

``frontier.frame_margins`` (one tiled pass: the one-vs-rest margins of every row and the
uniformity kernels, memory O(K d + tile^2)) against the plain dense computation of the same
margins (the K x K cosine matrix, its diagonal masked, a row-wise max), measured in the same
process on the same frame. The dense route's K x K float64 matrix is 20 GB at K = 50,257, so
it runs only up to ``--dense-max`` classes; above that only the tiled route is timed.

Usage::

    python benchmarks/bench_frontier.py                       # K = 2,000, 10,000 and 50,257
    python benchmarks/bench_frontier.py --classes 5000 --dim 64
"""

from __future__ import annotations

import argparse
import resource
import time

import torch

from neuralcollapse.frontier import frame_margins


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def dense_margins(frame: torch.Tensor) -> torch.Tensor:
    """1 - max_{j != k} cos(x_k, x_j) from the full K x K cosine matrix."""
    unit = frame / frame.norm(dim=1, keepdim=True)
    cosines = unit @ unit.T
    cosines.fill_diagonal_(-2.0)
    return 1.0 - cosines.max(dim=1).values


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--classes", type=int, nargs="+", default=[2000, 10_000, 50_257])
    parser.add_argument("--dim", type=int, default=16)
    parser.add_argument("--dense-max", type=int, default=10_000)
    args = parser.parse_args()
    print(f"threads {torch.get_num_threads()}, d = {args.dim}, float64 random rows")
    print(f"{'K':>7} {'tiled s':>9} {'dense s':>9} {'dense/tiled':>12} {'max |diff|':>11}")
    for classes in args.classes:
        frame = torch.randn(
            classes,
            args.dim,
            generator=torch.Generator().manual_seed(classes),
            dtype=torch.float64,
        )
        started = time.perf_counter()
        tiled = frame_margins(frame, uniformity_kernels=()).per_class
        tiled_seconds = time.perf_counter() - started
        if classes <= args.dense_max:
            started = time.perf_counter()
            dense = dense_margins(frame)
            dense_seconds = time.perf_counter() - started
            difference = float((tiled - dense).abs().max())
            print(
                f"{classes:>7,} {tiled_seconds:>9.2f} {dense_seconds:>9.2f} "
                f"{dense_seconds / tiled_seconds:>11.2f}x {difference:>11.1e}"
            )
        else:
            gb = classes * classes * 8 / 1e9
            print(
                f"{classes:>7,} {tiled_seconds:>9.2f} {'-':>9} {'-':>12} {'-':>11}"
                f"   (dense would hold a {gb:.0f} GB K x K matrix)"
            )
    print(f"peak RSS of this process {peak_rss_mb():.0f} MB")


if __name__ == "__main__":
    main()
