"""Collapse-based OOD detection on CPU: an MLP on 9 of scikit-learn's 10 digits.

One digit class is held out of training and used as the out-of-distribution set (a *near*
OOD set: same pixels, same strokes, another shape); Fashion-MNIST (downsampled to 8 x 8 with
area averaging and normalised like the digits) is a *far* OOD set when its IDX files are in
``--fashion-dir`` (Debian's ``dataset-fashion-mnist`` puts them in
/usr/share/datasets/fashion-mnist), skipped with a message otherwise.

A 4-layer batch-norm MLP (``neuralcollapse.train.build_net``) is trained with cross-entropy,
SGD (momentum 0.9, weight decay 5e-4, lr 0.05 divided by 10 at 1/3 and 2/3 of the epochs,
batch 128), well past zero training error. At a few epochs, on the penultimate features
(after the final ReLU, the classifier's input):

- every score of :mod:`neuralcollapse.measures.ood_scores`, fitted on the training features
  and the classifier, evaluated with AUROC and FPR at 95 % TPR (ID = positive) of the ID test
  digits against each OOD set;
- NC1 (training features) and NC5 = mean_k |cos(mu_k, mu_OOD)| of the training class means
  against the OOD mean (``measure(..., ood_features=...)``);
- at the last epoch, He & Su's law of data separation over the MLP's layers.

Usage: python experiments/ood/run_ood.py [--epochs 150] [--holdout 9] [--seeds 0 1 2]
           [--out DIR]   (writes DIR/results.json)
About 20-25 s per seed (one torch thread; the batches are tiny) on a busy 2-core machine.
"""

from __future__ import annotations

import argparse
import json
import math
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from neuralcollapse import measure
from neuralcollapse.measures import SCORES, OODScorer, evaluate_ood, fit_separation_law
from neuralcollapse.train import FeatureProbe, build_net, load_dataset, read_idx
from neuralcollapse.train.probe import PENULTIMATE_POST

FASHION_DIR = Path("/usr/share/datasets/fashion-mnist")
METHODS = SCORES  # every score the scorer offers


def load_fashion(directory: Path, mean: float, std: float, count: int) -> torch.Tensor | None:
    """Fashion-MNIST test images as 8 x 8 digits-like inputs, or None when absent."""
    for name in ("t10k-images-idx3-ubyte.gz", "t10k-images-idx3-ubyte"):
        if (directory / name).is_file():
            images = read_idx(directory / name)[:count].astype(np.float32) / 255.0
            small = F.interpolate(torch.from_numpy(images)[:, None], size=(8, 8), mode="area")
            return (small - mean) / std
    return None


def eval_epochs(epochs: int) -> list[int]:
    grid = {1, 3, 10, 30, epochs}
    grid |= {e for e in (100, 300) if e < epochs}
    return sorted(grid)


def run(seed: int, args: argparse.Namespace) -> dict:
    torch.manual_seed(seed)
    data = load_dataset("digits")
    keep_train = data.train_labels != args.holdout
    keep_test = data.test_labels != args.holdout
    remap = torch.full((10,), -1, dtype=torch.int64)
    remap[[c for c in range(10) if c != args.holdout]] = torch.arange(9)
    train_x, train_y = data.train_images[keep_train], remap[data.train_labels[keep_train]]
    test_x, test_y = data.test_images[keep_test], remap[data.test_labels[keep_test]]
    ood_sets = {
        f"digit {args.holdout}": torch.cat(
            [data.train_images[~keep_train], data.test_images[~keep_test]]
        )
    }
    fashion = load_fashion(args.fashion_dir, data.channel_mean[0], data.channel_std[0], 2000)
    if fashion is not None:
        ood_sets["fashion-mnist"] = fashion

    net = build_net("mlp", data.input_shape, 9, width=args.width, depth=4)
    optimizer = torch.optim.SGD(net.parameters(), lr=0.05, momentum=0.9, weight_decay=5e-4)
    milestones = [round(args.epochs / 3), round(2 * args.epochs / 3)]
    scheduler = torch.optim.lr_scheduler.MultiStepLR(optimizer, milestones, gamma=0.1)
    generator = torch.Generator().manual_seed(seed)
    rows, depth_fit = [], None
    for epoch in range(1, args.epochs + 1):
        net.train()
        order = torch.randperm(len(train_y), generator=generator)
        for start in range(0, len(order), 128):
            batch = order[start : start + 128]
            optimizer.zero_grad()
            F.cross_entropy(net(train_x[batch]), train_y[batch]).backward()
            optimizer.step()
        scheduler.step()
        if epoch not in eval_epochs(args.epochs):
            continue
        net.eval()
        with torch.no_grad(), FeatureProbe(net, net.probe_layers) as probe:
            train_out = probe.features(train_x)
            test_out = probe.features(test_x)
            ood_feats = {name: probe.features(x)[PENULTIMATE_POST] for name, x in ood_sets.items()}
        weights, bias = net.classifier.weight.detach(), net.classifier.bias.detach()
        train_h = train_out[PENULTIMATE_POST]
        scorer = OODScorer.fit(train_h, train_y, weights, bias)
        id_scores = scorer.scores(test_out[PENULTIMATE_POST], METHODS)
        row = {
            "seed": seed,
            "epoch": epoch,
            "train_error": float((train_out["logits"].argmax(1) != train_y).float().mean()),
            "test_error": float((test_out["logits"].argmax(1) != test_y).float().mean()),
        }
        base = measure(train_h, train_y, weights, bias)
        row["nc1"] = base.nc1
        for name, features in ood_feats.items():
            row[f"nc5[{name}]"] = measure(
                train_h, train_y, weights, bias, ood_features=features
            ).nc5
            ood_scores = scorer.scores(features, METHODS, name="ood_features")
            for method in METHODS:
                result = evaluate_ood(id_scores[method], ood_scores[method])
                row[f"auroc[{name}][{method}]"] = result.auroc
                row[f"fpr95[{name}][{method}]"] = result.fpr_at_95_tpr
        rows.append(row)
        if epoch == args.epochs:
            layers = {name: measure(train_out[name], train_y) for name in net.probe_layers}
            layers[PENULTIMATE_POST] = base
            depth_fit = fit_separation_law(layers).to_dict()
    return {
        "rows": rows,
        "depth_fit": depth_fit,
        "ood_sets": list(ood_sets),
        "fashion_found": fashion is not None,
    }


def print_tables(results: list[dict]) -> None:
    rows = [row for result in results for row in result["rows"]]
    ood_sets = results[0]["ood_sets"]
    epochs = sorted({row["epoch"] for row in rows})
    seeds = sorted({row["seed"] for row in rows})

    def mean(key, epoch):
        values = [row[key] for row in rows if row["epoch"] == epoch]
        return float(np.mean(values))

    print(f"\nmeans over seeds {seeds}")
    print("epoch  train_err  test_err      NC1  " + "  ".join(f"NC5[{s}]" for s in ood_sets))
    for epoch in epochs:
        nc5 = "  ".join(f"{mean(f'nc5[{s}]', epoch):>{len(s) + 5}.3f}" for s in ood_sets)
        print(
            f"{epoch:>5}  {mean('train_error', epoch):>9.4f}  {mean('test_error', epoch):>8.4f}"
            f"  {mean('nc1', epoch):>7.3g}  {nc5}"
        )
    for name in ood_sets:
        for metric in ("auroc", "fpr95"):
            print(f"\n{metric.upper()} vs {name} (ID test digits positive)")
            print(f"{'score':<16}" + "".join(f"{'ep ' + str(e):>9}" for e in epochs))
            for method in METHODS:
                cells = "".join(f"{mean(f'{metric}[{name}][{method}]', e):>9.3f}" for e in epochs)
                print(f"{method:<16}{cells}")
    for result in results:
        fit = result["depth_fit"]
        if fit:
            print(
                f"\nseed {result['rows'][0]['seed']}: law of data separation over "
                f"{', '.join(fit['layers'])}: D = "
                + ", ".join(f"{v:.3g}" for v in fit["fuzziness"])
                + f"; rho = {fit['rho']:.3f}, R^2 = {fit['r_squared']:.3f}"
            )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--epochs", type=int, default=150)
    parser.add_argument("--holdout", type=int, default=9, choices=range(10))
    parser.add_argument("--width", type=int, default=128)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0])
    parser.add_argument(
        "--threads", type=int, default=1, help="torch threads (1: tiny batches only pay for sync)"
    )
    parser.add_argument("--fashion-dir", type=Path, default=FASHION_DIR)
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    started = time.perf_counter()
    results = [run(seed, args) for seed in args.seeds]
    if not results[0]["fashion_found"]:
        print(
            f"Fashion-MNIST not found in {args.fashion_dir} (t10k-images-idx3-ubyte[.gz]); "
            "skipped — install Debian's dataset-fashion-mnist or pass --fashion-dir"
        )
    print_tables(results)
    print(f"\n{time.perf_counter() - started:.0f} s")
    if args.out is not None:
        args.out.mkdir(parents=True, exist_ok=True)
        for result in results:  # strict JSON: no NaN / inf tokens
            for row in result["rows"]:
                for key, value in row.items():
                    if isinstance(value, float) and not math.isfinite(value):
                        row[key] = None
        text = json.dumps(
            {
                "args": {
                    "epochs": args.epochs,
                    "holdout": args.holdout,
                    "width": args.width,
                    "seeds": args.seeds,
                },
                "results": results,
            },
            indent=1,
            allow_nan=False,
        )
        (args.out / "results.json").write_text(text)


if __name__ == "__main__":
    main()
