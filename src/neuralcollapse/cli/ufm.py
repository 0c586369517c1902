"""``neuralcollapse ufm`` (solve one UFM, theory next to the solution) and ``ufm-sweep``
(phase diagram over a grid of penalties, written as CSV + PNG)."""

from __future__ import annotations

import argparse
import math
import sys
import warnings

from neuralcollapse import schema

# numpy, torch and the solvers are imported inside the commands: `--help` stays instant


def _bias(text: str) -> str | float:
    if text in ("none", "free"):
        return text
    try:
        return float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"--bias must be 'none', 'free' or a number lam_b > 0; got {text!r}"
        ) from None


def _add_problem_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--loss", choices=("mse", "ce"), default="mse", help="loss")
    parser.add_argument(
        "--bias",
        type=_bias,
        default="none",
        help="none, free, or a number lam_b > 0 (regularised bias)",
    )
    # the same flag names as `measure` and `train`; the short paper-style ones stay as aliases
    parser.add_argument(
        "--num-classes", "--K", dest="K", type=int, default=4, help="number of classes K"
    )
    parser.add_argument(
        "--per-class",
        "--n",
        dest="n",
        type=int,
        nargs="+",
        default=[5],
        help="samples per class: one value, or K class sizes (imbalanced; MSE without bias "
        "at depth 1 then has a closed form too)",
    )
    parser.add_argument("--dim", "--d", dest="d", type=int, default=20, help="feature dimension d")
    parser.add_argument(
        "--lambda-w",
        type=float,
        nargs="+",
        default=[5e-3],
        help="weight decay: one value, or one per layer",
    )
    parser.add_argument("--lambda-h", type=float, default=1e-2, help="feature decay")
    parser.add_argument("--depth", type=int, default=1, help="number of weight layers L")
    parser.add_argument(
        "--activation", choices=("linear", "relu"), default="linear", help="between the layers"
    )
    parser.add_argument(
        "--hidden",
        type=int,
        nargs="+",
        default=None,
        help="hidden widths (depth-1 values; default d)",
    )
    parser.add_argument("--restarts", type=int, default=3, help="L-BFGS restarts")
    parser.add_argument(
        "--init",
        choices=("auto", "aligned", "random"),
        default="auto",
        help="L-BFGS starts: auto (restart 0 aligned to a balanced frame at theory's scale, "
        "the rest Gaussian; default), aligned, or random (Gaussian only)",
    )
    parser.add_argument("--seed", type=int, default=0, help="random seed of the starts")


def _problem(args: argparse.Namespace):
    from neuralcollapse.ufm.problem import UFMProblem

    lam_w = args.lambda_w[0] if len(args.lambda_w) == 1 else tuple(args.lambda_w)
    return UFMProblem(
        num_classes=args.K,
        per_class=args.n[0] if len(args.n) == 1 else tuple(args.n),
        dim=args.d,
        loss=args.loss,
        bias=args.bias,
        lam_w=lam_w,
        lam_h=args.lambda_h,
        depth=args.depth,
        activation=args.activation,
        hidden_dims=None if args.hidden is None else tuple(args.hidden),
    )


def register(subparsers) -> None:
    """Add the ``ufm`` and ``ufm-sweep`` commands."""
    ufm = subparsers.add_parser(
        "ufm",
        help="solve an unconstrained features model and compare with theory",
        description="Solve a UFM numerically and print theory next to the solution.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    _add_problem_arguments(ufm)
    ufm.add_argument("--solver", choices=("lbfgs", "gd"), default="lbfgs", help="solver")
    ufm.add_argument("--lr", type=float, default=1.0, help="GD step size")
    ufm.add_argument("--steps", type=int, default=5000, help="GD steps")
    ufm.add_argument("--record-every", type=int, default=50, help="GD recording interval")
    ufm.add_argument("--json", action="store_true", help="print the full summary as JSON")
    ufm.add_argument("--plot", default=None, help="write a figure (PNG) to this path")
    ufm.set_defaults(func=run_ufm)

    grid = subparsers.add_parser(
        "ufm-sweep",
        help="phase diagram of a UFM over a grid of penalties (CSV + PNG)",
        description="Solve a grid of UFMs with batched L-BFGS; each range is LO HI NUM "
        "(log-spaced). Sweep one or two penalties.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    _add_problem_arguments(grid)
    for name in ("w", "h", "b"):
        grid.add_argument(
            f"--lambda-{name}-range",
            type=float,
            nargs=3,
            default=None,
            metavar=("LO", "HI", "NUM"),
            help=f"log-spaced grid for lambda_{name}",
        )
    grid.add_argument("--out", default="ufm-sweep", help="output prefix: PREFIX.csv, PREFIX.png")
    grid.set_defaults(func=run_sweep)


def _format(value) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:.10g}"
    return str(value)


def _banner(messages: list[str]) -> None:
    """Failed solves are said loudly: on stderr, framed, besides the JSON / table."""
    for message in messages:
        print(f"{'!' * 78}\nWARNING: {message}\n{'!' * 78}", file=sys.stderr)


def _run_implicit_bias(args: argparse.Namespace) -> int:
    """lambda_W = lambda_H = 0: no minimiser; report the GD direction, not an objective."""
    from neuralcollapse.ufm.implicit_bias import describe, implicit_bias_gd, validate_zero_decay

    validate_zero_decay(
        loss=args.loss,
        solver=args.solver,
        bias=args.bias,
        depth=args.depth,
        balanced=len(args.n) == 1,
    )
    result = implicit_bias_gd(
        args.K, args.n[0], args.d, steps=args.steps, lr=args.lr, seed=args.seed
    )
    print(schema.dumps(result.summary(), indent=2) if args.json else describe(result))
    if args.plot:
        from neuralcollapse.viz.robustness_figures import plot_implicit_bias
        from neuralcollapse.viz.style import save_figure

        print(f"figure: {save_figure(plot_implicit_bias(result), args.plot)}", file=sys.stderr)
    return 0


def run_ufm(args: argparse.Namespace) -> int:
    if args.lambda_h == 0 and all(value == 0 for value in args.lambda_w):
        return _run_implicit_bias(args)
    from neuralcollapse.ufm.closed_forms import closed_form
    from neuralcollapse.ufm.memory import check_solve_memory, solve_bytes
    from neuralcollapse.ufm.solve import solve_gd, solve_lbfgs

    problem = _problem(args)
    jobs = 1 if args.solver == "gd" else args.restarts
    # before anything K x K is built: refuse, with the sizes and the fixes, what cannot fit
    check_solve_memory(problem, jobs)
    reference = closed_form(problem)  # includes the imbalanced MSE closed form
    estimate = solve_bytes(problem, jobs)
    if estimate > 2**30:
        # big solves take minutes: say what they need before starting
        print(
            f"note: this solve needs up to {estimate / 2**30:.1f} GB and may take minutes",
            file=sys.stderr,
        )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # reported below, more visibly
        if args.solver == "gd":
            solution = solve_gd(
                problem,
                lr=args.lr,
                steps=args.steps,
                record_every=args.record_every,
                seed=args.seed,
                reference=reference,
            )
        else:
            solution = solve_lbfgs(
                problem,
                restarts=args.restarts,
                seed=args.seed,
                init=args.init,
                reference=reference,
            )
    _banner(solution.warnings)
    summary = solution.summary()
    if args.json:
        print(schema.dumps(summary, indent=2))
    else:
        reference = solution.theory
        print(
            f"UFM K={problem.num_classes} n={problem.per_class} d={problem.dim} "
            f"loss={problem.loss} bias={problem.bias} depth={problem.depth} "
            f"activation={problem.activation} solver={solution.solver}"
        )
        if not reference.available:
            print(f"theory: no closed form ({reference.reason})")
        result = solution.result  # NC metrics of the last-layer input; None at zero
        nc1, of_gap, etf_gap = (
            (None, None, None)
            if result is None
            else (result.nc1, result.of_gap_means, result.etf_gap_means)
        )
        table = [
            ("objective", reference.f_star, solution.objective),
            ("rel. gap", 0.0 if reference.available else None, solution.rel_gap),
            ("minimiser is zero", reference.is_zero, solution.geometry == "zero"),
            ("geometry of class means", reference.geometry, solution.geometry),
            (
                "geometry of last-layer input",
                reference.geometry_features,
                solution.measurement.geometry_features,
            ),
            (
                f"{reference.control_name or 'control'} (threshold {_format(reference.threshold)})",
                reference.control,
                None,
            ),
            ("NC1", 0.0 if reference.is_zero is False else None, nc1),
            ("OF gap of means", None, of_gap),
            ("ETF gap of centred means", None, etf_gap),
            (
                "reached the global minimum",
                True if reference.available else None,
                solution.reached_global_minimum,
            ),
        ]
        print(f"{'':38s} {'theory':>18s} {'solution':>18s}")
        for name, expected, found in table:
            print(f"{name:38s} {_format(expected):>18s} {_format(found):>18s}")
        for message in solution.warnings:
            print(f"WARNING: {message}")
    if args.plot:
        from neuralcollapse.viz.style import save_figure
        from neuralcollapse.viz.ufm_figures import plot_trajectories

        figure = plot_trajectories(solution, gram=True)
        print(f"figure: {save_figure(figure, args.plot)}")
    return 0


def _range(values: list[float] | None, name: str) -> list[float] | None:
    if values is None:
        return None
    low, high, count = values
    # NaN and inf first: int(nan) and int(inf) raise, and inf bounds make a grid of NaN
    if not (math.isfinite(count) and count >= 1 and count == int(count)):
        raise ValueError(f"--lambda-{name}-range NUM must be a positive integer; got {count}")
    if not (0 < low < math.inf and 0 < high < math.inf):
        raise ValueError(f"--lambda-{name}-range bounds must be finite and > 0; got {low}, {high}")
    import numpy as np

    return np.logspace(math.log10(low), math.log10(high), int(count)).tolist()


def run_sweep(args: argparse.Namespace) -> int:
    from neuralcollapse.ufm.sweeps import sweep
    from neuralcollapse.viz.style import save_figure
    from neuralcollapse.viz.ufm_figures import plot_phase_diagram

    grids = {
        f"lam_{name}": _range(getattr(args, f"lambda_{name}_range"), name)
        for name in ("w", "h", "b")
    }
    grids = {key: value for key, value in grids.items() if value is not None}
    if not grids:
        raise ValueError(
            "give at least one of --lambda-w-range, --lambda-h-range, --lambda-b-range (LO HI NUM)"
        )
    if len(grids) > 2:
        raise ValueError("sweep at most two penalties at once (the figure is 1-D or 2-D)")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # counted and reported below
        result = sweep(
            _problem(args), restarts=args.restarts, seed=args.seed, init=args.init, **grids
        )
    csv_path = result.to_csv(f"{args.out}.csv")
    png_path = save_figure(plot_phase_diagram(result), f"{args.out}.png")
    worst = max((abs(r["rel_gap"]) for r in result.rows if r["rel_gap"] is not None), default=None)
    failed = [row for row in result.rows if row["reached_global_minimum"] is False]
    if failed:
        listed = "; ".join(
            f"lam_w={row['lam_w']:.4g} lam_h={row['lam_h']:.4g}"
            + (f" lam_b={row['lam_b']:.4g}" if row["lam_b"] else "")
            + f": gap {row['rel_gap']:.2e}"
            for row in failed[:10]
        )
        more = f" (and {len(failed) - 10} more)" if len(failed) > 10 else ""
        _banner(
            [
                f"{len(failed)} of {len(result.rows)} solves did NOT reach the closed form's "
                f"global minimum (column reached_global_minimum in {csv_path}): {listed}{more}. "
                "Raise --restarts or use --init aligned"
            ]
        )
    print(f"{len(result.rows)} problems solved; worst |rel. gap to theory| = {_format(worst)}")
    print(f"solves above the closed form (failed): {len(failed)} of {len(result.rows)}")
    print(f"table: {csv_path}\nfigure: {png_path}")
    return 0
