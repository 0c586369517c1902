"""Collapse on training classes and few-shot error on new classes (issue 25, item 3).

mnist5k: an MLP 784 -> 512 -> 512 -> 128 (ReLU) with a linear head is trained with
cross-entropy on digits 0-4 only (its 2,000 training images; SGD, momentum 0.9, weight decay
5e-4, lr 0.05 cosine, batch 128, 100 epochs). Through training: NC1 and CDNV of the training
classes (training images), CDNV of the new classes 5-9 (their 2,000 training images, never
seen), the 5-way m-shot nearest-class-centre error on the new classes (m = 1, 5; 300 random
episodes each, mean and standard error) and the bound (k-1)(12 + 6/m) CDNV beside it.

    OMP_NUM_THREADS=1 .venv/bin/python experiments/frontier/few_shot_transfer.py

About 2 minutes on one CPU core.
"""

from __future__ import annotations

import torch
from torch import nn

from neuralcollapse.frontier.transfer import (
    class_distance_variance,
    few_shot_bound,
    few_shot_error,
)
from neuralcollapse.metrics import measure
from neuralcollapse.train.data import load_dataset


def main(epochs: int = 100, seed: int = 0) -> None:
    torch.manual_seed(seed)
    data = load_dataset("mnist5k")
    x, y = data.train_images.flatten(1), data.train_labels
    old, new = y < 5, y >= 5
    x_old, y_old, x_new, y_new = x[old], y[old], x[new], y[new]
    xt, yt = data.test_images.flatten(1), data.test_labels
    body = nn.Sequential(
        nn.Linear(784, 512),
        nn.ReLU(),
        nn.Linear(512, 512),
        nn.ReLU(),
        nn.Linear(512, 128),
        nn.ReLU(),
    )
    head = nn.Linear(128, 5)
    model = nn.Sequential(body, head)
    optimiser = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9, weight_decay=5e-4)
    schedule = torch.optim.lr_scheduler.CosineAnnealingLR(optimiser, epochs)
    loss_fn = nn.CrossEntropyLoss()
    print(
        "epoch | train acc (0-4) | NC1 (0-4) | CDNV 0-4 | CDNV 5-9 | 1-shot err ± se (bound) | "
        "5-shot err ± se (bound) | 5-shot err on 0-4 test"
    )
    for epoch in range(epochs + 1):
        if epoch:
            model.train()
            order = torch.randperm(len(x_old))
            for start in range(0, len(x_old), 128):
                batch = order[start : start + 128]
                optimiser.zero_grad()
                loss_fn(model(x_old[batch]), y_old[batch]).backward()
                optimiser.step()
            schedule.step()
        if epoch not in (0, 1, 3, 10, 30, 60, epochs):
            continue
        model.eval()
        with torch.no_grad():
            h_old, h_new = body(x_old).double(), body(x_new).double()
            h_test_old = body(xt[yt < 5]).double()
            accuracy = float((head(body(x_old)).argmax(1) == y_old).float().mean())
        nc1 = measure(h_old, y_old, num_classes=5).nc1
        cdnv_old = class_distance_variance((h_old, y_old)).value
        cdnv_new = class_distance_variance((h_new, y_new)).value
        cells = []
        for shots in (1, 5):
            error = few_shot_error(h_new, y_new, shots=shots, ways=5, episodes=300, seed=epoch)
            bound = few_shot_bound(cdnv_new, 5, shots)
            cells.append(f"{error.mean:.4f} ± {error.stderr:.4f} ({bound:.3g})")
        control = few_shot_error(h_test_old, yt[yt < 5], shots=5, episodes=300, seed=epoch)
        print(
            f"{epoch:5d} | {accuracy:.4f} | {nc1:.4f} | {cdnv_old:.4f} | {cdnv_new:.4f} | "
            f"{cells[0]} | {cells[1]} | {control.mean:.4f}"
        )
    with torch.no_grad():
        raw = class_distance_variance((x_new.double(), y_new)).value
    pixels = few_shot_error(x_new, y_new, shots=5, episodes=300)
    print(
        f"raw pixels (no network): CDNV 5-9 {raw:.4f}, 5-shot error {pixels.mean:.4f} ± "
        f"{pixels.stderr:.4f}"
    )


if __name__ == "__main__":
    torch.set_num_threads(1)
    main()
