"""``neuralcollapse report`` and ``neuralcollapse demo``."""

from __future__ import annotations

import argparse
from pathlib import Path


def register(subparsers) -> None:
    """Add the ``report`` and ``demo`` sub-commands."""
    report = subparsers.add_parser(
        "report",
        help="build an HTML report (figures + tables) from training run directories",
        description="Read run directories written by `neuralcollapse train` and write "
        "OUT/report.html (self-contained), OUT/figures/*.png and OUT/tables/*.csv.",
    )
    report.add_argument("runs", nargs="+", type=Path, metavar="RUN_DIR", help="run directories")
    report.add_argument("--out", type=Path, required=True, help="output directory")
    report.add_argument("--title", default=None, help="page title")
    report.add_argument(
        "--epoch-axis",
        choices=("log", "linear"),
        default="log",
        help="scale of the epoch axes: log (symmetric-log when epoch 0 is measured; the "
        "early decades) or linear (the late, terminal-phase epochs at their real share) "
        "(default: %(default)s)",
    )
    report.set_defaults(func=_run_report)

    demo = subparsers.add_parser(
        "demo",
        help="run the neural collapse demo (UFM, phase diagram, MLP on MNIST, depth profile)",
        description="Reproduce the main pictures of neural collapse on CPU (about 5 minutes on "
        "2 cores; --quick: under a minute) and write OUT/report.html, figures and tables.",
    )
    demo.add_argument("--out", type=Path, default=Path("demo-out"), help="output directory")
    demo.add_argument(
        "--quick", action="store_true", help="a reduced run (smaller problems, fewer epochs)"
    )
    demo.add_argument("--seed", type=int, default=0, help="random seed")
    demo.add_argument("--no-progress", action="store_true", help="hide the progress bar")
    demo.set_defaults(func=_run_demo)


def _run_report(args: argparse.Namespace) -> int:
    from neuralcollapse.viz.report import build_run_report

    for run in args.runs:
        if run.exists() and not run.is_dir():
            raise ValueError(
                f"{run} is a file, not a run directory; pass the folder that "
                "`neuralcollapse train --out DIR` wrote"
            )

    path = build_run_report(args.runs, args.out, title=args.title, epoch_axis=args.epoch_axis)
    print(f"wrote {path}")
    return 0


def _run_demo(args: argparse.Namespace) -> int:
    from neuralcollapse.checks import check_int
    from neuralcollapse.viz.demo import run_demo

    # checked here, before minutes of work: the demo's training runs take the same seeds
    check_int("--seed", args.seed, minimum=0, maximum=2**32 - 1, meaning="random seed")

    path = run_demo(args.out, quick=args.quick, seed=args.seed, progress=not args.no_progress)
    print(f"wrote {path}")
    return 0
