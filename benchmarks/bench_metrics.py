"""Speed and memory of ``measure`` against the dense approach and the unavoidable work.

Cases (synthetic Gaussian class clusters, float32 features, no classifier):
    (a) N=50,000   d=512   K=10
    (b) N=100,000  d=2,048 K=100
    (c) N=100,000  d=1,024 K=1,000
    (k10k) N=50,000 d=256  K=10,000 (opt-in: --cases k10k; a full K x K float64 Gram
           would be 800 MB, the tiled pairwise work stays within a few hundred MB)
    (d)  N=100,514 d=768  K=50,257, two samples a class, WITH a classifier (opt-in:
         --cases d; a GPT-2-sized vocabulary; ~10 minutes on 2 cores). Methods: ``measure``
         (every metric, the issue-8 measures included, NC5 with OOD features) and
         ``floor``: the unavoidable work — one K x K x d Gram product of the class means
         (in row blocks, never held) plus one (N x d)(d x K) product of the scores, float64.
         Targets: peak memory above the inputs <= 1 GB; time <= 2x the floor.

For each case, in the same run and each in a fresh process (so peak memory is its own):

- ``measure``: this package, default settings (two passes, float64, NCC rule on);
- ``measure-nc1``: the same with ``nearest_centre=False`` (NC1 & co only);
- ``dense``: the common dense approach — class means, the full d x d Sigma_W accumulated
  as R^T R in float64, ``torch.linalg.pinv`` of the d x d Sigma_B, ``Tr(Sigma_W Sigma_B^+)/K``
  — written as carefully as ``measure`` (reused buffers, one BLAS call per chunk), so the
  ratio measures the method, not the implementation;
- ``floor``: the unavoidable work — one pass of class sums plus one (N x d)(d x K)
  product, both in float64 like the others, with the same chunking as ``measure``.

Printed: wall seconds (fastest of ``--repeats``), peak resident memory above the loaded
data (MB), and the ratios dense/measure (target >= 5x at (a), >= 10x at (b), (c)) and
measure/floor (target <= 2x).

Usage: python benchmarks/bench_metrics.py [--cases a b c] [--threads 2]
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import time

CASES = {
    "a": (50_000, 512, 10),
    "b": (100_000, 2048, 100),
    "c": (100_000, 1024, 1000),
    "k10k": (50_000, 256, 10_000),  # vocabulary-sized K: peak memory of the tiled K x K work
    "d": (100_514, 768, 50_257),  # a GPT-2 vocabulary, two samples a class, with a classifier
}
WITH_CLASSIFIER = {"d"}
DEFAULT_CASES = ["a", "b", "c"]
METHODS = ("measure", "measure-nc1", "dense", "floor")
CHUNK = 8192


def _rss_mb(field: str) -> float:
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith(field):
                return int(line.split()[1]) / 1024
    return float("nan")


def _reset_peak() -> None:
    # writing 5 to clear_refs resets VmHWM (the peak) to the current RSS (Linux >= 4.0)
    try:
        with open("/proc/self/clear_refs", "w") as handle:
            handle.write("5")
    except OSError:
        pass


def _make_data(n: int, d: int, k: int, classifier: bool = False):
    """Gaussian class clusters (float32); with ``classifier``, also W (K x d, float32) near
    the class centres and OOD features (1,000 x d) around a random direction."""
    import torch

    g = torch.Generator().manual_seed(0)
    if n == 2 * k:
        labels = torch.arange(k).repeat(2)
    else:
        labels = torch.randint(0, k, (n,), generator=g)
        labels[:k] = torch.arange(k)
    centres = 3.0 * torch.randn(k, d, generator=g)
    features = centres[labels] + torch.randn(n, d, generator=g)
    if not classifier:
        return features, labels, None, None
    weights = centres + 0.5 * torch.randn(k, d, generator=g)
    ood = torch.randn(1000, d, generator=g) + torch.randn(d, generator=g)
    return features, labels, weights, ood


def _class_sums(features, labels, k, rows):
    """Pass 1 as every method needs it: float64 class sums through one reused buffer."""
    import torch

    n, d = features.shape
    sums = torch.zeros(k, d, dtype=torch.float64)
    work = torch.empty(min(rows, n), d, dtype=torch.float64)
    for start in range(0, n, rows):
        part = features[start : start + rows]
        chunk = work[: part.shape[0]].copy_(part)
        sums.index_put_((labels[start : start + rows],), chunk, accumulate=True)
    return sums


def _dense_nc1(features, labels, k):
    """The dense approach, given the same care as ``measure`` (reused float64 buffers).

    Sigma_W accumulated as R^T R with ``addmm_`` (8192-row chunks: its product has the
    chunk as inner dimension, so big chunks are fastest), then ``pinv`` of the d x d Sigma_B.
    """
    import torch

    n, d = features.shape
    means = (
        _class_sums(features, labels, k, CHUNK)
        / torch.bincount(labels, minlength=k).unsqueeze(1).double()
    )
    sigma_w = torch.zeros(d, d, dtype=torch.float64)
    residuals = torch.empty(min(CHUNK, n), d, dtype=torch.float64)
    centres = torch.empty_like(residuals)
    for start in range(0, n, CHUNK):
        chunk_labels = labels[start : start + CHUNK]
        size = chunk_labels.shape[0]
        block = torch.index_select(means, 0, chunk_labels, out=centres[:size])
        residual = torch.sub(features[start : start + CHUNK], block, out=residuals[:size])
        sigma_w.addmm_(residual.T, residual)
    sigma_w /= n
    centred = means - means.mean(0)
    sigma_b = centred.T @ centred / k
    return float(torch.trace(sigma_w @ torch.linalg.pinv(sigma_b))) / k


def _floor(features, labels, k):
    """The unavoidable work: class sums, then one (N x d)(d x K) float64 product.

    Same chunking as ``measure`` (``default_chunk_rows``: ~4 MB chunks, in cache).
    """
    import torch

    from neuralcollapse.metrics.stats import default_chunk_rows

    n, d = features.shape
    rows = default_chunk_rows(d)
    _class_sums(features, labels, k, rows)
    projection = torch.randn(d, k, dtype=torch.float64)
    work = torch.empty(min(rows, n), d, dtype=torch.float64)
    total = 0.0
    for start in range(0, n, rows):
        part = features[start : start + rows]
        total += float((work[: part.shape[0]].copy_(part) @ projection).sum())
    return total


def _floor_with_gram(features, labels, k, weights):
    """Case (d)'s unavoidable work: the class means, one K x K x d Gram product of them
    (row blocks of ~64 MB, reduced and dropped, never the 20 GB whole) and the scores
    (N x d)(d x K) against the classifier, all float64, in the chunking ``measure`` uses
    for the scores (about 4 MB of scores a chunk, at least 64 rows)."""
    import torch

    from neuralcollapse.metrics.stats import default_chunk_rows

    n, d = features.shape
    sums = _class_sums(features, labels, k, default_chunk_rows(d))
    means = sums / torch.bincount(labels, minlength=k).unsqueeze(1).double()
    block = max(1, 2**23 // k)
    total = 0.0
    for start in range(0, k, block):
        total += float((means[start : start + block] @ means.T).sum())
    classifier = weights.to(torch.float64)
    rows = default_chunk_rows(max(d, k))
    work = torch.empty(min(rows, n), d, dtype=torch.float64)
    for start in range(0, n, rows):
        part = features[start : start + rows]
        total += float((work[: part.shape[0]].copy_(part) @ classifier.T).argmax(dim=1).sum())
    return total


def _worker(case: str, method: str, threads: int, repeats: int, queue) -> None:
    import torch

    from neuralcollapse.metrics import measure

    torch.set_num_threads(threads)
    n, d, k = CASES[case]
    features, labels, weights, ood = _make_data(n, d, k, classifier=case in WITH_CLASSIFIER)
    if case in WITH_CLASSIFIER:
        methods = {
            "measure": lambda: (
                measure(features, labels, weights, num_classes=k, ood_features=ood).nc1
            ),
            "floor": lambda: _floor_with_gram(features, labels, k, weights),
        }
    else:
        methods = {
            "measure": lambda: measure(features, labels, num_classes=k).nc1,
            "measure-nc1": lambda: (
                measure(features, labels, num_classes=k, nearest_centre=False).nc1
            ),
            "dense": lambda: _dense_nc1(features, labels, k),
            "floor": lambda: _floor(features, labels, k),
        }
    _reset_peak()
    before = _rss_mb("VmRSS")
    times = []
    # the fastest of a few runs (other jobs share this machine); short cases repeat for at
    # least two seconds, as a 0.1 s run is at the mercy of a single interruption
    while len(times) < repeats or (sum(times) < 2.0 and len(times) < 50):
        start = time.perf_counter()
        value = methods[method]()
        times.append(time.perf_counter() - start)
    queue.put({"seconds": min(times), "peak_mb": _rss_mb("VmHWM") - before, "nc1": value})


def run(case: str, method: str, threads: int, repeats: int) -> dict:
    context = multiprocessing.get_context("spawn")
    queue = context.Queue()
    process = context.Process(target=_worker, args=(case, method, threads, repeats, queue))
    process.start()
    result = queue.get()
    process.join()
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cases", nargs="+", default=DEFAULT_CASES, choices=list(CASES))
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=3, help="report the fastest of these")
    parser.add_argument("--json", help="also write the results to this JSON file")
    args = parser.parse_args()
    rows = []
    header = (
        f"{'case':<5}{'N':>8}{'d':>6}{'K':>6}  {'method':<12}{'seconds':>9}{'peak MB':>9}"
        f"{'NC1':>12}"
    )
    print(header)
    print("-" * len(header))
    for case in args.cases:
        n, d, k = CASES[case]
        results = {}
        methods = ("measure", "floor") if case in WITH_CLASSIFIER else METHODS
        # a ten-minute case is timed once
        repeats = 1 if case in WITH_CLASSIFIER else args.repeats
        for method in methods:
            results[method] = run(case, method, args.threads, repeats)
            r = results[method]
            nc1 = f"{r['nc1']:.6g}" if method != "floor" else "-"
            print(
                f"{case:<5}{n:>8}{d:>6}{k:>6}  {method:<12}{r['seconds']:>9.2f}"
                f"{r['peak_mb']:>9.0f}{nc1:>12}",
                flush=True,
            )
        if case in WITH_CLASSIFIER:
            over_floor = results["measure"]["seconds"] / results["floor"]["seconds"]
            print(
                f"  -> measure/floor {over_floor:.2f}x (target <= 2x); peak memory above the "
                f"inputs {results['measure']['peak_mb']:.0f} MB (target <= 1,024 MB)"
            )
            rows.append({"case": case, "N": n, "d": d, "K": k, **results})
            continue
        speedup = results["dense"]["seconds"] / results["measure"]["seconds"]
        speedup_nc1 = results["dense"]["seconds"] / results["measure-nc1"]["seconds"]
        over_floor = results["measure"]["seconds"] / results["floor"]["seconds"]
        over_floor_nc1 = results["measure-nc1"]["seconds"] / results["floor"]["seconds"]
        agreement = abs(results["measure"]["nc1"] - results["dense"]["nc1"]) / abs(
            results["dense"]["nc1"]
        )
        print(
            f"  -> dense/measure {speedup:.1f}x (nc1-only {speedup_nc1:.1f}x); "
            f"measure/floor {over_floor:.2f}x (nc1-only {over_floor_nc1:.2f}x); "
            f"NC1 relative difference to dense {agreement:.1e}"
        )
        rows.append({"case": case, "N": n, "d": d, "K": k, **results})
    if args.json:
        with open(args.json, "w") as handle:
            json.dump(rows, handle, indent=2)


if __name__ == "__main__":
    main()
