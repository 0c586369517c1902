"""Transfer of collapse to new classes as the number of source classes grows (issue 25, item 3).

Galanti, György & Hutter (ICLR 2022) treat classes as i.i.d. draws from a population: a
feature map trained on l source classes has a small CDNV on *new* classes when l is large
(their generalisation term shrinks like 1/sqrt(l)), and then nearest-class-centre (NCC)
few-shot classification of new classes works. few_shot_transfer.py trained on 5 classes and
saw no transfer; this script varies l.

Population: 100 classes (a, b), a, b in 0..9; a sample of class (a, b) is an mnist5k image of
digit a placed left of an image of digit b (28 x 56 = 1,568 pixels). Ten new classes are fixed
(seeded choice) and never trained on; their 100 samples each are built from mnist5k's *test*
images. Source classes: the first l of a random order of the other 90 (so the sets are nested
within a draw), l in (5, 10, 20, 40, 90), 100 samples each built from mnist5k's *training*
images; three draws (seeds 0, 1, 2) per l. Network: MLP 1568 -> 512 -> 512 -> 128 (ReLU
features) -> linear head with l outputs, cross-entropy, SGD (momentum 0.9, weight decay
5e-4, lr 0.05 cosine, batch 128, 60 epochs). Measured: training accuracy, CDNV of the source
classes (training samples), CDNV of the new classes, 5-way 1-shot and 5-shot NCC error on the
new classes (300 episodes, mean ± standard error) and the bound (k-1)(12 + 6/m) CDNV beside
it; baselines: raw pixels and the untrained network (same initialisation).

    OMP_NUM_THREADS=1 .venv/bin/python experiments/frontier/source_classes.py

About 5 minutes on one CPU core (4 min 48 s measured).
"""

from __future__ import annotations

import statistics
import time

import torch
from torch import nn

from neuralcollapse.frontier.transfer import (
    class_distance_variance,
    few_shot_bound,
    few_shot_error,
)
from neuralcollapse.train.data import load_dataset

SOURCE_COUNTS = (5, 10, 20, 40, 90)
SEEDS = (0, 1, 2)
PER_CLASS = 100
EPOCHS = 60
EPISODES = 300


def pair_images(
    images: torch.Tensor, labels: torch.Tensor, pairs: list[tuple[int, int]], seed: int
) -> tuple[torch.Tensor, torch.Tensor]:
    """PER_CLASS flattened 28 x 56 samples of each class (a, b) in ``pairs``; label = index."""
    generator = torch.Generator().manual_seed(seed)
    by_digit = [images[labels == d, 0] for d in range(10)]
    xs, ys = [], []
    for index, (a, b) in enumerate(pairs):
        left = by_digit[a][torch.randperm(len(by_digit[a]), generator=generator)[:PER_CLASS]]
        right = by_digit[b][torch.randperm(len(by_digit[b]), generator=generator)[:PER_CLASS]]
        xs.append(torch.cat([left, right], dim=2).flatten(1))
        ys.append(torch.full((PER_CLASS,), index))
    return torch.cat(xs), torch.cat(ys)


def make_body() -> nn.Sequential:
    return nn.Sequential(
        nn.Linear(1568, 512),
        nn.ReLU(),
        nn.Linear(512, 512),
        nn.ReLU(),
        nn.Linear(512, 128),
        nn.ReLU(),
    )


def transfer(h_new: torch.Tensor, y_new: torch.Tensor) -> dict[str, float]:
    """CDNV of the new classes, 5-way 1- and 5-shot NCC error (same episodes) and bounds."""
    h_new = h_new.double()
    cdnv = class_distance_variance((h_new, y_new)).value
    out = {"cdnv_new": cdnv}
    for shots in (1, 5):
        error = few_shot_error(h_new, y_new, shots=shots, ways=5, episodes=EPISODES, seed=0)
        out[f"err{shots}"] = error.mean
        out[f"se{shots}"] = error.stderr
        out[f"bound{shots}"] = few_shot_bound(cdnv, 5, shots)
    return out


def train(l: int, order: list[tuple[int, int]], data, x_new, y_new, seed: int) -> tuple[dict, dict]:
    """Train on the first l source classes of ``order``; results at initialisation and end."""
    x, y = pair_images(data.train_images, data.train_labels, order[:l], seed=100 + seed)
    torch.manual_seed(seed)  # the body's initialisation is the same for every l of a draw
    body = make_body()
    head = nn.Linear(128, l)
    model = nn.Sequential(body, head)
    with torch.no_grad():
        initial = transfer(body(x_new), y_new)
    optimiser = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9, weight_decay=5e-4)
    schedule = torch.optim.lr_scheduler.CosineAnnealingLR(optimiser, EPOCHS)
    for _ in range(EPOCHS):
        model.train()
        permutation = torch.randperm(len(x))
        for start in range(0, len(x), 128):
            batch = permutation[start : start + 128]
            optimiser.zero_grad()
            nn.functional.cross_entropy(model(x[batch]), y[batch]).backward()
            optimiser.step()
        schedule.step()
    model.eval()
    with torch.no_grad():
        h = body(x)
        accuracy = float((head(h).argmax(1) == y).float().mean())
        final = transfer(body(x_new), y_new)
    final["acc"] = accuracy
    final["cdnv_src"] = class_distance_variance((h.double(), y)).value
    return initial, final


def cell(row: dict, shots: int) -> str:
    return f"{row[f'err{shots}']:.3f} ± {row[f'se{shots}']:.3f} ({row[f'bound{shots}']:.3g})"


def spread(values: list[float], digits: int = 3) -> str:
    mean = statistics.fmean(values)
    if len(values) < 2:
        return f"{mean:.{digits}f}"
    return f"{mean:.{digits}f} ± {statistics.stdev(values):.{digits}f}"


def main() -> None:
    start_time = time.perf_counter()
    data = load_dataset("mnist5k")
    population = [(a, b) for a in range(10) for b in range(10)]
    chooser = torch.Generator().manual_seed(0)
    shuffled = [population[i] for i in torch.randperm(100, generator=chooser).tolist()]
    new_pairs, rest = shuffled[:10], shuffled[10:]
    x_new, y_new = pair_images(data.test_images, data.test_labels, new_pairs, seed=0)
    print("new classes:", " ".join(f"{a}{b}" for a, b in new_pairs))

    pixels = transfer(x_new, y_new)
    print(
        f"raw pixels | CDNV new {pixels['cdnv_new']:.4f} | 1-shot {cell(pixels, 1)} | "
        f"5-shot {cell(pixels, 5)}"
    )
    print(
        "seed | l | train acc | CDNV source | CDNV new | 1-shot err ± se (bound) | "
        "5-shot err ± se (bound) | init: CDNV new, 1-shot, 5-shot | s"
    )
    results: dict[int, list[dict]] = {l: [] for l in SOURCE_COUNTS}
    initials: list[dict] = []
    for seed in SEEDS:
        drawer = torch.Generator().manual_seed(1000 + seed)
        order = [rest[i] for i in torch.randperm(90, generator=drawer).tolist()]
        for l in SOURCE_COUNTS:
            began = time.perf_counter()
            initial, final = train(l, order, data, x_new, y_new, seed)
            if l == SOURCE_COUNTS[0]:
                initials.append(initial)  # same body initialisation for every l of the draw
            results[l].append(final)
            print(
                f"{seed} | {l:2d} | {final['acc']:.4f} | {final['cdnv_src']:.4f} | "
                f"{final['cdnv_new']:.4f} | {cell(final, 1)} | {cell(final, 5)} | "
                f"{initial['cdnv_new']:.3f}, {initial['err1']:.3f}, {initial['err5']:.3f} | "
                f"{time.perf_counter() - began:.1f}",
                flush=True,
            )

    print()
    print(
        f"Mean ± std across {len(SEEDS)} draws (seeds {', '.join(map(str, SEEDS))}); "
        f"5-way NCC error on the 10 new classes, {EPISODES} episodes; bound in brackets."
    )
    print()
    print(
        "| source classes l | train acc (min) | CDNV source | CDNV new | 1-shot error (bound) | "
        "5-shot error (bound) |"
    )
    print("|---|---|---|---|---|---|")

    def line(label: str, rows: list[dict], acc: str, cdnv_src: str) -> str:
        cells = []
        for shots in (1, 5):
            bounds = [r[f"bound{shots}"] for r in rows]
            bound = "1" if min(bounds) == 1.0 else spread(bounds, 2)
            cells.append(f"{spread([r[f'err{shots}'] for r in rows])} ({bound})")
        return (
            f"| {label} | {acc} | {cdnv_src} | {spread([r['cdnv_new'] for r in rows])} | "
            f"{cells[0]} | {cells[1]} |"
        )

    print(line("raw pixels", [pixels], "–", "–"))
    print(line("0 (untrained net)", initials, "–", "–"))
    for l in SOURCE_COUNTS:
        rows = results[l]
        print(
            line(
                str(l),
                rows,
                f"{min(r['acc'] for r in rows):.3f}",
                spread([r["cdnv_src"] for r in rows], 4),
            )
        )
    print(f"\nwall time {time.perf_counter() - start_time:.0f} s")


if __name__ == "__main__":
    torch.set_num_threads(1)
    main()
