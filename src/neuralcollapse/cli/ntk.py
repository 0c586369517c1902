"""``neuralcollapse ntk``: MLP vs ResNet NTK smoothness figures and table.

Example::

    neuralcollapse ntk --depth 5 --alpha 0.1 0.5 1 2 --out ntk-out
"""

from __future__ import annotations

import argparse


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the ``ntk`` sub-command."""
    parser = subparsers.add_parser(
        "ntk",
        help="residual vs MLP neural tangent kernels: profiles, interpolants, table",
        description=(
            "Compare the infinite-width NTK of a ReLU MLP with that of a ResNet at several "
            "residual scales alpha (Tirer, Bruna & Giryes, MSML 2021): kernel profiles on "
            "the unit circle, ridgeless interpolants of 0.5 cos t + sin 4t and their kinks, "
            "and the empirical finite-width NTK converging to the analytic one."
        ),
    )
    parser.add_argument("--depth", type=int, default=5, help="hidden layers / residual blocks")
    parser.add_argument(
        "--alpha",
        type=float,
        nargs="+",
        default=[0.1, 0.5, 1.0, 2.0],
        help="residual scales to compare (default: 0.1 0.5 1 2)",
    )
    parser.add_argument("--out", required=True, help="output folder for figures and tables")
    parser.add_argument(
        "--num-train", type=int, default=12, help="training points on the circle (default 12)"
    )
    parser.add_argument(
        "--widths",
        type=int,
        nargs="*",
        default=None,
        help="widths of the empirical NTK check (default 64 256 1024 4096, or 64 256 1024 "
        "with --quick); pass --widths with no value to skip it",
    )
    parser.add_argument("--quick", action="store_true", help="fewer seeds and widths (seconds)")
    parser.add_argument("--seed", type=int, default=0, help="first random seed (default 0)")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Run the comparison and print the table and the files written."""
    from neuralcollapse.viz.ntk_report import ntk_report_figures  # torch: only when running

    report = ntk_report_figures(
        args.out,
        depth=args.depth,
        alphas=args.alpha,
        quick=args.quick,
        num_train=args.num_train,
        widths=args.widths,
        seed=args.seed,
        progress=True,
    )
    print(report.markdown, end="")
    for point in report.convergence:
        name = "MLP" if point.alpha is None else f"ResNet alpha={point.alpha:g}"
        print(
            f"empirical NTK {name:<18} width {point.width:>5}: relative error "
            f"{point.mean_relative_error:.4f} (+- {point.std_relative_error:.4f}, "
            f"{point.num_seeds} seeds)"
        )
    for path in [*report.figures.values(), *report.tables.values()]:
        print(f"wrote {path}")
    return 0
