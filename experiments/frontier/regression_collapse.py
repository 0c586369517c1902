"""Neural regression collapse in a trained MLP regressor (issue 25, item 2).

Synthetic multivariate regression: x ~ N(0, I_20), n = 3 targets
``y = A tanh(B x / sqrt(20))`` (fixed Gaussian A, B: targets with three distinct variances),
N = 1000 training samples. An MLP 20 -> 128 -> 128 -> d = 32 -> 3 (ReLU, bias in the head),
MSE + weight decay 1e-3 or 1e-2 (an L2 penalty on every parameter), full-batch Adam for 3000
steps. Tracked: NRC1-NRC3
(:mod:`neuralcollapse.frontier.regression`, streaming sums) and, as the UFM's alternatives,
the normalised distance of W W^T to Sigma_Y^{1/2} (gamma = 0), to Sigma_Y and to I.
The regression UFM on the same targets (d = 32, lam_W = lam_H = 1e-3) is solved and checked
against its closed form.

    OMP_NUM_THREADS=1 .venv/bin/python experiments/frontier/regression_collapse.py

About 2 minutes on one CPU core.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from neuralcollapse.frontier.agop import symmetric_power
from neuralcollapse.frontier.regression import (
    RegressionStats,
    RegressionUFM,
    regression_collapse,
    solve_regression_ufm,
)


def normalised_distance(a: torch.Tensor, b: torch.Tensor) -> float:
    return float(torch.linalg.matrix_norm(a / a.norm() - b / b.norm()))


def main(steps: int = 3000, weight_decay: float = 1e-3, seed: int = 0) -> None:
    torch.manual_seed(seed)
    generator = torch.Generator().manual_seed(1)
    a = torch.randn(3, 8, generator=generator) * torch.tensor([[2.0], [1.0], [0.5]])
    b = torch.randn(8, 20, generator=generator)
    x = torch.randn(1000, 20, generator=generator)
    y = torch.tanh(x @ b.T / math.sqrt(20)) @ a.T
    xt = torch.randn(500, 20, generator=generator)
    yt = torch.tanh(xt @ b.T / math.sqrt(20)) @ a.T
    body = nn.Sequential(
        nn.Linear(20, 128), nn.ReLU(), nn.Linear(128, 128), nn.ReLU(), nn.Linear(128, 32), nn.ReLU()
    )
    head = nn.Linear(32, 3)
    model = nn.Sequential(body, head)
    optimiser = torch.optim.AdamW(model.parameters(), lr=1e-3, weight_decay=0.0)
    centred = (y - y.mean(dim=0)).double()
    sigma_y = centred.T @ centred / len(y)
    print(
        "target covariance eigenvalues:",
        [round(v, 4) for v in torch.linalg.eigvalsh(sigma_y).flip(0).tolist()],
    )
    root = symmetric_power(sigma_y, 0.5)
    print(
        "step | train MSE | test MSE | NRC1 | NRC2 | NRC3 (fitted gamma) | "
        "dist to Sigma^1/2, Sigma, I"
    )
    for step in range(steps + 1):
        if step:
            optimiser.zero_grad()
            loss = nn.functional.mse_loss(model(x), y)
            # weight decay as an L2 penalty on every parameter (the UFM's lam_W on the head)
            penalty = sum(p.pow(2).sum() for p in model.parameters())
            (loss + weight_decay / 2 * penalty).backward()
            optimiser.step()
        if step in (0, 100, 300, 1000, 2000, steps):
            with torch.no_grad():
                features = body(x).double()
                train = float(nn.functional.mse_loss(model(x), y))
                test = float(nn.functional.mse_loss(model(xt), yt))
            stats = RegressionStats()
            for start in range(0, 1000, 250):  # streaming: four batches
                stats.update(features[start : start + 250], y[start : start + 250])
            w = head.weight.detach().double()
            nrc = regression_collapse(stats, w)
            gram = w @ w.T
            print(
                f"{step:5d} | {train:.4f} | {test:.4f} | {nrc.nrc1:.2e} | {nrc.nrc2:.2e} | "
                f"{nrc.nrc3:.2e} ({nrc.gamma:.3g}) | {normalised_distance(gram, root):.3f}, "
                f"{normalised_distance(gram, sigma_y):.3f}, "
                f"{normalised_distance(gram, torch.eye(3, dtype=torch.float64)):.3f}"
            )
    with torch.no_grad():
        features = body(x).double()
    stats = RegressionStats().update(features, y)
    paper = stats.per_sample_nrc([features], head.weight.detach())
    print(f"per-sample normalised (paper's) NRC1, NRC2 at the end: {paper[0]:.2e}, {paper[1]:.2e}")
    problem = RegressionUFM(y.double(), dim=32, lam_w=1e-3, lam_h=1e-3)
    solution = solve_regression_ufm(problem)
    ufm_nrc = regression_collapse((solution.features.T, y.double()), solution.weights)
    print(
        f"regression UFM (N = 1000, d = 32, lam_W = lam_H = 1e-3, gamma = N lam_W lam_H = "
        f"{problem.gamma:g}): relative gap to the closed form {solution.rel_gap:.1e}, W W^T "
        f"error {solution.gram_error:.1e}; its NRC1 {ufm_nrc.nrc1:.1e}, NRC2 {ufm_nrc.nrc2:.1e}, "
        f"NRC3 {ufm_nrc.nrc3:.1e} at fitted gamma {ufm_nrc.gamma:.4g}"
    )


if __name__ == "__main__":
    torch.set_num_threads(1)
    for decay in (1e-3, 1e-2):
        print(f"==== weight decay {decay:g}")
        main(weight_decay=decay)
