"""Benchmark: one DeepFool robustness measurement against one plain evaluation pass.

The project's CNN (``build_net("cnn", ...)``: three conv stages, 32/64/128 channels, FC 128)
on mnist5k (1 x 28 x 28, K = 10), briefly trained so that the attack sees a network with a
real decision surface. In the same process and on the same model:

- *evaluation pass*: what the training loop does per epoch on the test split: one no-grad
  pass in eval mode over all test images (batches of 1,024), loss and error;
- *robustness measurement*: :func:`neuralcollapse.robustness.robustness` on a seeded
  subset of N test images (DeepFool, overshoot 0.02, at most 50 steps; each step costs one
  forward pass with graph, one batched backward pass for the K class gradients, and one
  no-grad forward to test the decision).

Prints the wall times (median of ``--repeats``), the ratio, the cost per image, the
per-image estimate of :func:`seconds_per_image` against the measured one, and the
measurement itself (mean ||r||/||x||, fraction not fooled, mean steps).

Usage::

    python benchmarks/bench_robustness.py                   # N = 100, 2 training epochs
    python benchmarks/bench_robustness.py --subset 1000 --threads 1
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch
import torch.nn.functional as F

from neuralcollapse.robustness import describe_cost, robustness, seconds_per_image
from neuralcollapse.train.data import load_dataset
from neuralcollapse.train.nets import build_net


def evaluation_pass(net, images, labels, batch_size=1024) -> tuple[float, float]:
    """Mean CE loss and error over a split, as ``evaluate_split`` computes them (no features)."""
    net.eval()
    loss = errors = 0.0
    with torch.no_grad():
        for start in range(0, len(labels), batch_size):
            logits = net(images[start : start + batch_size])
            target = labels[start : start + batch_size]
            loss += float(F.cross_entropy(logits, target, reduction="sum"))
            errors += float((logits.argmax(1) != target).sum())
    return loss / len(labels), errors / len(labels)


def brief_training(net, images, labels, epochs: int, seed: int) -> None:
    optimizer = torch.optim.SGD(net.parameters(), lr=0.05, momentum=0.9, weight_decay=5e-4)
    generator = torch.Generator().manual_seed(seed)
    for _ in range(epochs):
        net.train()
        order = torch.randperm(len(labels), generator=generator)
        for start in range(0, len(labels), 128):
            batch = order[start : start + 128]
            if len(batch) < 2:
                continue
            loss = F.cross_entropy(net(images[batch]), labels[batch])
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()


def timed(function, repeats: int) -> tuple[float, object]:
    times, value = [], None
    for _ in range(repeats):
        started = time.perf_counter()
        value = function()
        times.append(time.perf_counter() - started)
    return statistics.median(times), value


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--subset", type=int, default=100, help="test images attacked (N)")
    parser.add_argument("--train-epochs", type=int, default=2)
    parser.add_argument("--train-images", type=int, default=4000)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument(
        "--threads", type=int, default=1, help="torch intra-op threads (0: torch's default)"
    )
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    data = load_dataset("mnist5k")
    torch.manual_seed(args.seed)
    net = build_net("cnn", data.input_shape, data.num_classes)
    train_x, train_y = (
        data.train_images[: args.train_images],
        data.train_labels[: args.train_images],
    )
    started = time.perf_counter()
    brief_training(net, train_x, train_y, args.train_epochs, args.seed)
    print(
        f"CNN on mnist5k, trained {args.train_epochs} epoch(s) on {len(train_y)} images in "
        f"{time.perf_counter() - started:.1f} s; torch threads: {torch.get_num_threads()}"
    )
    test_x, test_y = data.test_images, data.test_labels
    estimate = seconds_per_image(net, test_x, probe=16, seed=args.seed + 1)

    eval_seconds, (loss, error) = timed(lambda: evaluation_pass(net, test_x, test_y), args.repeats)
    attack_seconds, result = timed(
        lambda: robustness(net, test_x, test_y, subset=args.subset, seed=args.seed),
        args.repeats,
    )
    print(
        f"evaluation pass: {len(test_y)} test images in {eval_seconds:.3f} s "
        f"({1e3 * eval_seconds / len(test_y):.3f} ms per image); test error {error:.3f}, "
        f"loss {loss:.3f}"
    )
    print(
        f"robustness:      {result.count} test images in {attack_seconds:.3f} s "
        f"({1e3 * attack_seconds / result.count:.2f} ms per image); mean ||r||/||x|| "
        f"{result.mean_ratio:.4f}, not fooled {result.failed_fraction:.3f}, mean steps "
        f"{result.mean_steps:.2f}, subset accuracy {result.accuracy:.3f}"
    )
    print(
        f"ratio: one robustness measurement = {attack_seconds / eval_seconds:.1f} x one "
        f"evaluation pass of the test split; per image "
        f"{(attack_seconds / result.count) / (eval_seconds / len(test_y)):.0f} x"
    )
    print(
        f"estimate from 16 images before the run: {1e3 * estimate:.2f} ms per image "
        f"(measured {1e3 * attack_seconds / result.count:.2f}); "
        + describe_cost(estimate, args.subset, 32)
    )


if __name__ == "__main__":
    main()
