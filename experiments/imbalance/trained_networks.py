"""Trained networks on the minority-collapse phase picture (issue 14, item 5).

Reads step-imbalanced training runs (``neuralcollapse train --imbalance R --minority-classes 5``),
takes each run's last epoch (minority cosine of the classifier rows and of the centred training
class means, majority and minority test accuracy on the balanced test split), and draws them
against log10 R next to the Layer-Peeled Model curves that ``minority_collapse.py`` wrote
(``lpm_E{E}.csv``, Fang et al.'s K = 10, K_A = K_B = 5). The runs of docs/imbalance.md:

    CFG=experiments/cpu/mnist5k_mlp_ce_imbalance.toml
    for R in 1 10 30 100 400; do
      OMP_NUM_THREADS=1 neuralcollapse train --config $CFG --imbalance $R --device cpu \\
          --out /tmp/results-runs/imb_R$R
    done
    OMP_NUM_THREADS=1 neuralcollapse train --config $CFG --imbalance 100 --seed 1 --device cpu \\
        --out /tmp/results-runs/imb_R100_seed1
    .venv/bin/python experiments/imbalance/trained_networks.py \\
        /tmp/results-runs/imb_R{1,10,30,100,400} /tmp/results-runs/imb_R100_seed1

The figure draws the first run given for each R (the others, e.g. a second seed, are in the
table only). Writes ``trained_networks.csv`` (one row per run, with the minority cosines at
the first tracked epoch and at the first tracked epoch in the terminal phase) and
``trained_networks.png`` into ``--out`` (default experiments/imbalance/results) and prints
the table. A few seconds.
"""

from __future__ import annotations

import argparse
import csv
import json
import math
from pathlib import Path

from neuralcollapse.runformat import read_jsonl
from neuralcollapse.viz.imbalance_training_figures import (
    imbalance_run_point,
    imbalance_run_trajectory,
    trained_minority_figure,
)

HERE = Path(__file__).resolve().parent


def _trajectory(run: Path, tpt_epoch: int | None) -> dict:
    """Minority cosines at the first tracked epoch and at (or just after) the TPT epoch."""
    rows = [r for r in read_jsonl(run / "epochs.jsonl", torn="error") if r.get("tracked")]
    first = rows[0]
    at_tpt = next((r for r in rows if tpt_epoch is not None and r["epoch"] >= tpt_epoch), None)
    return {
        "first_epoch": first["epoch"],
        "first_cosine_weights": first.get("minority_cosine_weights"),
        "first_cosine_means": first.get("minority_cosine_means"),
        "tpt_tracked_epoch": None if at_tpt is None else at_tpt["epoch"],
        "tpt_cosine_weights": None if at_tpt is None else at_tpt.get("minority_cosine_weights"),
        "tpt_cosine_means": None if at_tpt is None else at_tpt.get("minority_cosine_means"),
    }


def _lpm_curve(path: Path) -> dict:
    with path.open() as handle:
        rows = list(csv.DictReader(handle))
    return {
        "ratio": [float(r["ratio"]) for r in rows],
        "cosine": [float(r["convex_cosine"]) if r["convex_cosine"] else math.nan for r in rows],
    }


def _fmt(value) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "-"
    return f"{value:.3f}" if isinstance(value, float) else str(value)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("runs", nargs="+", help="run directories trained with --imbalance")
    parser.add_argument("--out", default=str(HERE / "results"))
    parser.add_argument("--lpm-dir", default=str(HERE / "results"),
                        help="folder holding minority_collapse.py's lpm_E*.csv")  # fmt: skip
    parser.add_argument("--budgets", type=float, nargs="+", default=[1.0, 3.0, 10.0])
    args = parser.parse_args()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)

    points, drawn, trajectories = [], {}, []
    for run in args.runs:
        point = imbalance_run_point(run)
        point["seed"] = json.loads((Path(run) / "config.json").read_text()).get("seed")
        point.update(_trajectory(Path(run), point["tpt_epoch"]))
        points.append(point)
        if point["ratio"] not in drawn:  # the figure: the first run given per R
            drawn[point["ratio"]] = point
            trajectories.append(imbalance_run_trajectory(run))
    points.sort(key=lambda p: (p["ratio"], p["seed"]))

    curves = {}
    for e in args.budgets:
        path = Path(args.lpm_dir) / f"lpm_E{e:g}.csv"
        if path.exists():
            curves[f"LPM (convex), E_W = E_H = {e:g}"] = _lpm_curve(path)
        else:
            print(f"note: {path} not found (run minority_collapse.py); curve left out")

    fields = ["run", "ratio", "seed", "minority_classes", "epoch", "tpt_epoch", "train_error",
              "test_error", "accuracy_majority", "accuracy_minority", "cosine_weights",
              "cosine_means", "first_epoch", "first_cosine_weights", "first_cosine_means",
              "tpt_tracked_epoch", "tpt_cosine_weights", "tpt_cosine_means"]  # fmt: skip
    with (out / "trained_networks.csv").open("w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=fields, extrasaction="ignore")
        writer.writeheader()
        writer.writerows(points)

    figure = trained_minority_figure(
        list(drawn.values()),
        curves,
        num_classes=10,
        trajectories=trajectories,
        title="Minority collapse: LPM (K_A = K_B = 5, d = 20) and MLPs on mnist5k (CE, K_B = 5)",
    )
    figure.set_dpi(90)
    figure.savefig(out / "trained_networks.png")

    print("R | seed | TPT | cos W: first, TPT, last | cos means: first, TPT, last | acc maj, min")
    for p in points:
        print(
            f"{p['ratio']:g} | {p['seed']} | {p['tpt_epoch']} | {_fmt(p['first_cosine_weights'])}, "
            f"{_fmt(p['tpt_cosine_weights'])}, {_fmt(p['cosine_weights'])} | "
            f"{_fmt(p['first_cosine_means'])}, {_fmt(p['tpt_cosine_means'])}, "
            f"{_fmt(p['cosine_means'])} | {_fmt(p['accuracy_majority'])}, "
            f"{_fmt(p['accuracy_minority'])}"
        )
    print(f"wrote {out / 'trained_networks.csv'} and {out / 'trained_networks.png'}")


if __name__ == "__main__":
    main()
