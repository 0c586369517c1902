"""Speed of the OOD scores of ``neuralcollapse.measures`` against one matrix product.

Case: N = 100,000 test features, d = 512, K = 100 (float32 features, Gaussian class clusters),
scored against statistics fitted on 20,000 training features. For each score, in the same run:
wall seconds of ``OODScorer.score`` on all N rows, and its ratio to the baseline timed right
before it (so that both see the same load on a shared machine; with ``--repeats`` > 1 the
smallest ratio is kept):

- ``product``: one (N x d)(d x K) float64 product, the logits of every test feature, with the
  same chunking as the scorer (a reused ~4 MB float64 buffer the float32 rows are copied
  into, then one BLAS call per chunk): what every logit-based score must do at least.
  Target: each score <= 3x this.
- ``whitening`` (with ``--whitening``): one (N x d)(d x d) float64 product, the floor of the
  Mahalanobis score (its quadratic form needs every feature whitened by the d x d
  precision), for reference.

The fit (class means, within-class covariance, the d x d eigendecompositions) is timed
separately: it is done once, on the training set.

Usage: python benchmarks/bench_ood.py [--n 100000] [--dim 512] [--classes 100] [--threads 2]
           [--repeats 1] [--whitening] [--json]
About a minute on 2 CPU cores with the defaults.
"""

from __future__ import annotations

import argparse
import json
import time


def _best(function, repeats: int) -> float:
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        function()
        times.append(time.perf_counter() - start)
    return min(times)


def _chunked_product(features, matrix, rows):
    import torch

    out = torch.empty(features.shape[0], matrix.shape[1], dtype=torch.float64)
    work = torch.empty(min(rows, features.shape[0]), features.shape[1], dtype=torch.float64)
    for start in range(0, features.shape[0], rows):
        part = features[start : start + rows]
        chunk = work[: part.shape[0]].copy_(part)
        torch.mm(chunk, matrix, out=out[start : start + part.shape[0]])
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--n", type=int, default=100_000)
    parser.add_argument("--train", type=int, default=20_000)
    parser.add_argument("--dim", type=int, default=512)
    parser.add_argument("--classes", type=int, default=100)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=1, help="report the fastest of these")
    parser.add_argument("--whitening", action="store_true", help="also time (N x d)(d x d)")
    parser.add_argument("--json", action="store_true", help="print one JSON object at the end")
    args = parser.parse_args()

    import torch

    from neuralcollapse.measures import SCORES, OODScorer
    from neuralcollapse.metrics.stats import default_chunk_rows

    torch.set_num_threads(args.threads)
    g = torch.Generator().manual_seed(0)
    k, d = args.classes, args.dim
    centres = 3.0 * torch.randn(k, d, generator=g)
    train_labels = torch.arange(args.train) % k
    train = centres[train_labels] + torch.randn(args.train, d, generator=g)
    test = centres[torch.randint(0, k, (args.n,), generator=g)] + torch.randn(
        args.n, d, generator=g
    )
    weights = (centres + 0.5 * torch.randn(k, d, generator=g)) / d
    bias = torch.zeros(k)

    start = time.perf_counter()
    scorer = OODScorer.fit(train, train_labels, weights, bias)
    for method in SCORES:  # the one-off d x d work (eigendecompositions) belongs to the fit
        scorer.score(train[:2], method)
    fit_seconds = time.perf_counter() - start

    rows = default_chunk_rows(max(d, k))
    w64 = weights.double().T.contiguous()
    product = _best(lambda: _chunked_product(test, w64, rows), args.repeats)
    whitening = None
    if args.whitening:
        square = torch.randn(d, d, generator=g, dtype=torch.float64)
        whitening = _best(lambda: _chunked_product(test, square, rows), args.repeats)

    print(
        f"N={args.n:,} d={d} K={k}, {args.threads} threads; fit on {args.train:,}: "
        f"{fit_seconds:.2f} s"
    )
    print(
        f"{'baseline / score':<28}{'seconds':>9}{'x product':>11}"
        "  (each ratio against a product timed just before the score)"
    )
    print(f"{'(N x d)(d x K) product':<28}{product:>9.3f}{1.0:>11.2f}")
    if whitening is not None:
        print(f"{'(N x d)(d x d) whitening':<28}{whitening:>9.3f}{whitening / product:>11.2f}")
    results = {
        "fit_seconds": fit_seconds,
        "product_seconds": product,
        "whitening_seconds": whitening,
        "scores": {},
    }
    for method in SCORES:
        ratios, seconds = [], []
        for _ in range(args.repeats):
            before = _best(lambda: _chunked_product(test, w64, rows), 1)
            seconds.append(_best(lambda m=method: scorer.score(test, m), 1))
            ratios.append(seconds[-1] / before)
        ratio = min(ratios)
        flag = "" if ratio <= 3 else "  (> 3x)"
        print(f"{method:<28}{min(seconds):>9.3f}{ratio:>11.2f}{flag}")
        results["scores"][method] = {"seconds": min(seconds), "ratio": ratio}
    # every method at once: one conversion and NaN/inf scan per chunk instead of one per method
    separate = sum(results["scores"][m]["seconds"] for m in SCORES)
    together = _best(lambda: scorer.scores(test, SCORES), args.repeats)
    print(
        f"{'all methods, one scores()':<28}{together:>9.3f}{together / product:>11.2f}"
        f"  (one score() per method: {separate:.3f} s, {separate / together:.2f}x as long)"
    )
    results["all_scores_seconds"] = together
    results["separate_scores_seconds"] = separate
    if args.json:
        print(json.dumps(results))


if __name__ == "__main__":
    main()
