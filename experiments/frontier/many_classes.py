"""Generalized neural collapse with more classes than dimensions (issue 25, item 1).

1. The CE UFM with K > d + 1 (weight decay, the project's solver) against the Tammes optimum:
   the smallest one-vs-rest margin of its normalised classifier rows and centred class means.
2. A small MLP on scikit-learn's digits (K = 10) whose penultimate width d = 3 (so K > d + 1),
   trained with cross-entropy; the same margins at the end of training, and the means'
   margins against the classifier.
3. The tiled margins at K = 50,257 (random rows, d = 16): time and memory stay small.

    OMP_NUM_THREADS=1 .venv/bin/python experiments/frontier/many_classes.py

About 2 minutes on one CPU core.
"""

from __future__ import annotations

import time
import warnings

import torch
from torch import nn

from neuralcollapse.frontier.softmax_codes import (
    feature_margins,
    frame_margins,
    known_optimal_margin,
    solve_spherical_code,
)
from neuralcollapse.train.data import load_dataset
from neuralcollapse.ufm import UFMProblem, solve_lbfgs


def degrees(margin: float) -> float:
    return float(torch.rad2deg(torch.arccos(torch.tensor(1.0 - margin))))


def ufm_part() -> None:
    print("== CE UFM with K > d + 1 (lam_W = lam_H = 1e-3, n = 5 per class)")
    print(
        "K  d  | Tammes opt. | solver code | UFM W rows: angle, gap | UFM means: angle, gap | "
        "1/t = |w||h| | softmax code at t: angle"
    )
    for k, d in [(6, 3), (8, 3), (10, 3), (12, 3), (16, 4), (20, 3)]:
        problem = UFMProblem(
            num_classes=k, per_class=5, dim=d, loss="ce", bias="free", lam_w=1e-3, lam_h=1e-3
        )
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            solution = solve_lbfgs(problem, restarts=4, max_iter=4000)
        code = solve_spherical_code(k, d, restarts=16)
        optimum = known_optimal_margin(k, d) or code.min_margin
        w = solution.weights[-1]
        h = solution.features.T.reshape(k, 5, d).mean(dim=1)
        rows = frame_margins(w, optimum=optimum)
        means = frame_margins(h - h.mean(dim=0), optimum=optimum)
        known = known_optimal_margin(k, d)
        inverse_t = float(w.norm(dim=1).mean() * h.norm(dim=1).mean())
        at_t = solve_spherical_code(
            k, d, restarts=16, objective="softmax", temperatures=(0.3, 1.0 / inverse_t)
        )
        print(
            f"{k:2d} {d:2d} | {degrees(known) if known else float('nan'):9.4f} | "
            f"{code.min_angle_degrees:9.4f} | {rows.min_angle_degrees:9.4f} {rows.gap:+.2e} | "
            f"{means.min_angle_degrees:9.4f} {means.gap:+.2e} | {inverse_t:6.2f} | "
            f"{at_t.min_angle_degrees:9.4f}"
        )


def trained_part(width: int, epochs: int, seed: int = 0) -> None:
    torch.manual_seed(seed)
    data = load_dataset("digits")
    x = data.train_images.flatten(1)
    y = data.train_labels
    xt, yt = data.test_images.flatten(1), data.test_labels
    k = data.num_classes
    body = nn.Sequential(
        nn.Linear(64, 256), nn.ReLU(), nn.Linear(256, 256), nn.ReLU(), nn.Linear(256, width)
    )
    head = nn.Linear(width, k)
    model = nn.Sequential(body, head)
    optimiser = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9, weight_decay=5e-4)
    schedule = torch.optim.lr_scheduler.CosineAnnealingLR(optimiser, epochs)
    loss_fn = nn.CrossEntropyLoss()
    code = solve_spherical_code(k, width, restarts=16)
    optimum = known_optimal_margin(k, width) or code.min_margin
    print(
        f"== MLP on digits, K = {k}, penultimate width d = {width}; Tammes optimum "
        f"{degrees(optimum):.4f} deg (solver: {code.min_angle_degrees:.4f})"
    )
    print(
        "epoch | train acc | test acc | W: min angle, gap, mean margin | means: min angle, gap"
        " | means vs W: min margin, #negative"
    )
    for epoch in range(epochs + 1):
        if epoch:
            model.train()
            order = torch.randperm(len(x))
            for start in range(0, len(x), 128):
                batch = order[start : start + 128]
                optimiser.zero_grad()
                loss_fn(model(x[batch]), y[batch]).backward()
                optimiser.step()
            schedule.step()
        if epoch in (0, 10, 50, 100, 200, epochs):
            model.eval()
            with torch.no_grad():
                h = body(x).double()
                acc = float((head(body(x)).argmax(1) == y).float().mean())
                test = float((model(xt).argmax(1) == yt).float().mean())
            means = torch.stack([h[y == c].mean(0) for c in range(k)])
            centred = means - means.mean(0)
            w = head.weight.detach().double()
            rows = frame_margins(w, optimum=optimum)
            mm = frame_margins(centred, optimum=optimum)
            fm = feature_margins(centred, w)
            print(
                f"{epoch:5d} | {acc:.4f} | {test:.4f} | {rows.min_angle_degrees:7.3f} "
                f"{rows.gap:+.3f} {rows.mean:.3f} | {mm.min_angle_degrees:7.3f} {mm.gap:+.3f} | "
                f"{float(fm.min()):+.3f} {int((fm < 0).sum())}"
            )


def scale_part() -> None:
    generator = torch.Generator().manual_seed(0)
    rows = torch.randn(50_257, 16, generator=generator, dtype=torch.float64)
    start = time.perf_counter()
    result = frame_margins(rows, uniformity_kernels=())
    elapsed = time.perf_counter() - start
    print(
        f"== K = 50,257 random rows in R^16: min angle {result.min_angle_degrees:.3f} deg, "
        f"mean margin {result.mean:.4f}, {elapsed:.1f} s (tiled, no K x K matrix)"
    )
    start = time.perf_counter()
    margins = feature_margins(
        rows + 0.1 * torch.randn(rows.shape, generator=generator, dtype=torch.float64), rows
    )
    print(
        f"   means-vs-classifier margins at K = 50,257: min {float(margins.min()):+.4f}, "
        f"{time.perf_counter() - start:.1f} s"
    )


if __name__ == "__main__":
    torch.set_num_threads(1)
    ufm_part()
    trained_part(width=3, epochs=300)
    trained_part(width=2, epochs=300)
    scale_part()
