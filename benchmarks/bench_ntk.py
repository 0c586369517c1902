"""Speed of the NTK computations (prints figures; run: python benchmarks/bench_ntk.py).

1. Empirical NTK: the layer-wise form (``empirical_ntk``: one forward + one backward pass,
   Hadamard products of small Grams) against the baseline of full per-sample Jacobians
   (``empirical_ntk_jacobian``: ``torch.func.vmap(jacrev)``), on the same network and inputs,
   in the same run. Also checks that both give the same kernel.
2. Analytic NTK: Gram matrices of n x n input pairs per second for the MLP and the ResNet.
"""

from __future__ import annotations

import argparse
import time

import torch

from neuralcollapse.ntk import (
    ResidualReLUNet,
    empirical_ntk,
    empirical_ntk_jacobian,
    mlp_ntk,
    resnet_ntk,
)


def _best_of(repeats: int, work) -> float:
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        work()
        best = min(best, time.perf_counter() - start)
    return best


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--widths", type=int, nargs="+", default=[64, 256, 1024])
    parser.add_argument("--depth", type=int, default=3)
    parser.add_argument("--inputs", type=int, default=16)
    parser.add_argument("--gram-size", type=int, default=2000)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads")

    generator = torch.Generator().manual_seed(0)
    points = torch.randn(args.inputs, 8, generator=generator, dtype=torch.float64)
    print(f"\nEmpirical NTK, ResNet depth {args.depth}, {args.inputs} inputs (float64)")
    print(
        f"{'width':>6} {'params':>10} {'jacobian s':>11} {'layerwise s':>12} {'speed-up':>9} "
        f"{'jacobian MB':>12} {'layerwise MB':>13}"
    )
    for width in args.widths:
        network = ResidualReLUNet(8, width, args.depth, alpha=1.0, seed=0)
        params = sum(p.numel() for p in network.parameters())
        reference = empirical_ntk_jacobian(network, points)
        fast = empirical_ntk(network, points)
        assert torch.allclose(fast, reference, rtol=1e-10), "layer-wise NTK disagrees"
        slow_time = _best_of(args.repeats, lambda n=network: empirical_ntk_jacobian(n, points))
        fast_time = _best_of(args.repeats, lambda n=network: empirical_ntk(n, points))
        # what each method holds: the (n, P) Jacobian vs per-layer inputs and output gradients
        jacobian_mb = args.inputs * params * 8 / 1e6
        layers = 2 * args.depth + 2
        layerwise_mb = 2 * args.inputs * width * layers * 8 / 1e6
        print(
            f"{width:>6} {params:>10} {slow_time:>11.4f} {fast_time:>12.4f} "
            f"{slow_time / fast_time:>8.1f}x {jacobian_mb:>12.1f} {layerwise_mb:>13.2f}"
        )

    size = args.gram_size
    inputs = torch.randn(size, 8, generator=generator, dtype=torch.float64)
    print(f"\nAnalytic NTK Gram, {size} x {size} pairs, depth 5 (float64)")
    for name, kernel in (
        ("MLP", lambda: mlp_ntk(inputs, depth=5)),
        ("ResNet", lambda: resnet_ntk(inputs, depth=5, alpha=1.0)),
    ):
        seconds = _best_of(args.repeats, kernel)
        print(f"{name:>7}: {seconds:.3f} s, {size * size / seconds / 1e6:.1f} M pairs/s")


if __name__ == "__main__":
    main()
