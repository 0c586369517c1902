"""A fixed simplex-ETF classifier against a learned one on mnist5k (issue 25, item 5).

An MLP 784 -> 256 -> 256 -> 128 (ReLU) with either a learned ``nn.Linear(128, 10)`` or
:class:`neuralcollapse.frontier.FixedETFClassifier(128, 10)` (no bias, logits scaled by 1 or
10; only the features are trained), cross-entropy, SGD momentum 0.9, weight decay 5e-4,
lr 0.05 cosine, batch 128, 60 epochs; balanced (400 images per class) and step-imbalanced
(R = 10: digits 5-9 keep 40 images each). Reported: test accuracy (all / majority 0-4 /
minority 5-9), NC1 of the training features, and the mean pairwise cosine of the minority
classes' centred training means and of their classifier rows (-1/9 at a simplex ETF, 1 when merged).

    OMP_NUM_THREADS=1 .venv/bin/python experiments/frontier/fixed_etf_mnist5k.py

About 5 minutes on one CPU core.
"""

from __future__ import annotations

import torch
from torch import nn

from neuralcollapse.frontier.fixed_etf import FixedETFClassifier
from neuralcollapse.metrics import measure
from neuralcollapse.train.data import load_dataset


def minority_cosine(rows: torch.Tensor) -> float:
    units = rows / rows.norm(dim=1, keepdim=True)
    cosines = units @ units.T
    k = len(rows)
    return float((cosines.sum() - k) / (k * (k - 1)))


def run(
    classifier: str, imbalance: float | None, epochs: int = 60, seed: int = 0, scale: float = 1.0
) -> str:
    torch.manual_seed(seed)
    if imbalance is None:
        data = load_dataset("mnist5k")
    else:
        data = load_dataset("mnist5k", imbalance=imbalance, minority_classes=5, seed=seed)
    x, y = data.train_images.flatten(1), data.train_labels
    xt, yt = data.test_images.flatten(1), data.test_labels
    body = nn.Sequential(
        nn.Linear(784, 256),
        nn.ReLU(),
        nn.Linear(256, 256),
        nn.ReLU(),
        nn.Linear(256, 128),
        nn.ReLU(),
    )
    if classifier == "fixed-etf":
        head = FixedETFClassifier(128, 10, scale=scale)
    else:
        head = nn.Linear(128, 10)
    model = nn.Sequential(body, head)
    optimiser = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9, weight_decay=5e-4)
    schedule = torch.optim.lr_scheduler.CosineAnnealingLR(optimiser, epochs)
    for _ in range(epochs):
        model.train()
        order = torch.randperm(len(x))
        for start in range(0, len(x), 128):
            batch = order[start : start + 128]
            optimiser.zero_grad()
            nn.functional.cross_entropy(model(x[batch]), y[batch]).backward()
            optimiser.step()
        schedule.step()
    model.eval()
    with torch.no_grad():
        h = body(x).double()
        predicted = model(xt).argmax(1)
        train_acc = float((model(x).argmax(1) == y).float().mean())
    correct = (predicted == yt).float()
    metrics = measure(h, y, num_classes=10)
    means = torch.stack([h[y == c].mean(0) for c in range(10)])
    centred = means - means.mean(0)
    weights = head.weight.detach().double()
    return (
        f"{classifier + (f' x{scale:g}' if classifier != 'learned' else ''):13s} | "
        f"{('R = ' + str(imbalance)) if imbalance else 'balanced':9s} | "
        f"{len(x):4d} | {train_acc:.4f} | {float(correct.mean()):.4f} | "
        f"{float(correct[yt < 5].mean()):.4f} | {float(correct[yt >= 5].mean()):.4f} | "
        f"{metrics.nc1:.4f} | {minority_cosine(centred[5:]):+.3f} | "
        f"{minority_cosine(weights[5:]):+.3f}"
    )


if __name__ == "__main__":
    torch.set_num_threads(1)
    print(
        "head      | training  | N    | train acc | test acc | majority | minority | NC1 | "
        "cos minority means | cos minority rows"
    )
    for imbalance in (None, 10.0):
        print(run("learned", imbalance), flush=True)
        for scale in (1.0, 10.0):
            print(run("fixed-etf", imbalance, scale=scale), flush=True)
