"""Do C and C(C-1) outliers of the last layer's Gauss-Newton term separate from the bulk as
collapse grows, and does the prediction from the class means match them? (issue 26)

Small MLPs (784 -> 128 -> 64 -> 10, ReLU) on mnist5k, CE and MSE (1/2 ||z - e_y||^2), Adam with
weight decay, minibatch 128. At a few epochs, on a fixed class-balanced subsample of the
training set: NC1 of the penultimate features (neuralcollapse.measure), the exact spectrum of G
over the last layer (W and b: 650 parameters; dense, checked against Lanczos), the outlier
gaps, Papyan's C^2 Gram, and the prediction from the class means
(neuralcollapse.spectra.class_mean_prediction: exact under full collapse).

Usage: python experiments/spectra/mnist5k_outliers.py [--epochs 1 5 20 60] [--out FILE.json]
"""

from __future__ import annotations

import argparse
import json
import time

import torch

from neuralcollapse import measure
from neuralcollapse.spectra import (
    class_mean_prediction,
    curvature_operator,
    dense_spectrum,
    outlier_gaps,
    papyan_decomposition,
    top_eigenpairs,
)
from neuralcollapse.train.data import balanced_subset, load_dataset


def make_model() -> torch.nn.Sequential:
    return torch.nn.Sequential(
        torch.nn.Flatten(),
        torch.nn.Linear(784, 128),
        torch.nn.ReLU(),
        torch.nn.Linear(128, 64),
        torch.nn.ReLU(),
        torch.nn.Linear(64, 10),
    )


def loss_fn(name: str, logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    if name == "ce":
        return torch.nn.functional.cross_entropy(logits, labels)
    target = torch.nn.functional.one_hot(labels, 10).to(logits.dtype)
    return 0.5 * (logits - target).pow(2).sum(1).mean()


def measure_spectra(model, x, y, loss: str) -> dict:
    model = model.double().eval()
    x = x.double()
    with torch.no_grad():
        features = model[:5](x)
    metrics = measure(features, y, model[5].weight, model[5].bias)
    data = [(x, y)]
    op = curvature_operator(model, data, kind="gauss_newton", loss=loss, params="5")
    exact = dense_spectrum(op).values
    top = top_eigenpairs(op, k=12, exhaust=True)  # MSE: every eigenvalue repeats C times
    dec = papyan_decomposition(model, data, loss=loss, params="5")
    means = torch.stack([features[y == c].mean(0) for c in range(10)], 1)
    pred = class_mean_prediction(
        [model[5].weight.detach()],
        means,
        bias=model[5].bias.detach(),
        loss=loss,
        include_bias=True,
    ).values
    k2 = 100
    rel = ((pred[:k2] - exact[:k2]).abs() / exact[:k2]).tolist()
    gram_rel = ((dec.gram_eigenvalues[:k2] - exact[:k2]).abs() / exact[:k2]).tolist()
    fractions = dec.span_fractions(top.vectors)
    model.float().train()
    return {
        "nc1": metrics.nc1,
        "train_accuracy": metrics.accuracy,
        "top_eigenvalues": exact[:12].tolist(),
        "lanczos_vs_dense": float((top.values - exact[:12]).abs().max()),
        "eig_C": float(exact[9]),
        "eig_C+1": float(exact[10]),
        "eig_C2": float(exact[99]),
        "eig_C2+1": float(exact[100]),
        "bulk_median": float(exact.median()),
        "gaps": outlier_gaps(exact[:120], 10),
        "prediction_rel_error_top10": max(rel[:10]),
        "prediction_rel_error_top100_median": sorted(rel)[50],
        "gram_rel_error_top10": max(gram_rel[:10]),
        "between_fraction": dec.trace_between / dec.trace_total,
        "class_fraction_top10": fractions["class"][:10],
        "cross_fraction_top10": fractions["cross"][:10],
    }


def run(loss: str, epochs: list[int], x, y, xs, ys, seed: int = 0) -> list[dict]:
    torch.manual_seed(seed)
    model = make_model()
    opt = torch.optim.Adam(model.parameters(), lr=1e-3, weight_decay=1e-4)
    rows = []
    for epoch in range(1, max(epochs) + 1):
        order = torch.randperm(len(y))
        for i in range(0, len(y), 128):
            idx = order[i : i + 128]
            opt.zero_grad()
            loss_fn(loss, model(x[idx]), y[idx]).backward()
            opt.step()
        if epoch in epochs:
            start = time.perf_counter()
            row = {"loss": loss, "epoch": epoch, **measure_spectra(model, xs, ys, loss)}
            row["seconds"] = time.perf_counter() - start
            print(json.dumps({k: v for k, v in row.items() if not isinstance(v, list)}), flush=True)
            rows.append(row)
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, nargs="+", default=[1, 5, 20, 60])
    parser.add_argument("--subsample", type=int, default=50, help="samples per class")
    parser.add_argument("--out", default=None)
    args = parser.parse_args()
    torch.set_num_threads(1)
    data = load_dataset("mnist5k")
    x, y = data.train_images, data.train_labels
    keep = torch.as_tensor(balanced_subset(y, args.subsample, seed=1))
    rows = []
    for loss in ("ce", "mse"):
        rows += run(loss, args.epochs, x, y, x[keep], y[keep])
    if args.out:
        with open(args.out, "w") as handle:
            json.dump(rows, handle, indent=1)


if __name__ == "__main__":
    main()
