"""Phase diagrams: solve a grid of UFM problems at once and tabulate theory vs solution.

:func:`sweep` varies lam_w, lam_h and/or lam_b over a grid around a base problem, solves the
whole grid with one batched L-BFGS (:func:`neuralcollapse.ufm.solve.solve_lbfgs`) and returns
one row per grid point: where the minimiser is zero, ETF vs orthogonal frame (measured
through the metrics engine), and the relative gap to theory.
:func:`neuralcollapse.viz.ufm_figures.plot_phase_diagram` draws it (theory's and the solver's
geometry as cells for a 2-D grid, curves for a 1-D one); :meth:`SweepResult.to_csv` writes
the table.
"""

from __future__ import annotations

import csv
import itertools
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from neuralcollapse import schema
from neuralcollapse.checks import check_float
from neuralcollapse.metrics import CollapseMetrics
from neuralcollapse.ufm.problem import UFMProblem
from neuralcollapse.ufm.solve import solve_lbfgs

SWEEPABLE: tuple[str, ...] = ("lam_w", "lam_h", "lam_b")
#: the metrics of H a sweep records: the frame of the class means and NC1
SWEEP_METRICS: tuple[str, ...] = (
    schema.OF_GAP_MEANS,
    schema.ETF_GAP_MEANS,
    schema.GLOBAL_MEAN_RATIO,
    schema.NC1,
)
COLUMNS: tuple[str, ...] = (
    "lam_w",
    "lam_h",
    "lam_b",
    "control",
    "threshold",
    "objective",
    "f_star",
    "rel_gap",
    "theory_zero",
    "theory_geometry",
    "geometry",
    "mean_norm",
    *SWEEP_METRICS,
    "converged",
    "reached_global_minimum",
)


@dataclass
class SweepResult:
    """Rows (one dict per grid point, keys :data:`COLUMNS`) and the swept axes, in order.

    ``control_name`` spells theory's ``control`` column (e.g. ``"K sqrt(n lam_W lam_H)"``;
    empty without a closed form), for the figure's threshold label; it is not a column.
    """

    rows: list[dict]
    axes: dict[str, list[float]]
    base: UFMProblem
    control_name: str = ""

    def to_csv(self, path: str | Path) -> Path:
        """Write the table as CSV (one row per grid point) and return the path."""
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        with path.open("w", newline="") as handle:
            writer = csv.DictWriter(handle, fieldnames=list(COLUMNS))
            writer.writeheader()
            writer.writerows(self.rows)
        return path


def _grid_values(name: str, values: Sequence[float]) -> list[float]:
    values = list(values)
    if not values:
        raise ValueError(f"{name} grid is empty; give at least one value")
    return [
        check_float(
            f"{name}[{index}]",
            value,
            minimum=0.0,
            strict=True,
            meaning=f"every {name} grid value is a penalty",
        )
        for index, value in enumerate(values)
    ]


def _frame_columns(result: CollapseMetrics | None) -> dict[str, float | None]:
    """The table's metric columns from the metrics of H (None at the zero solution)."""
    if result is None:
        return dict.fromkeys(SWEEP_METRICS)
    return {key: getattr(result, key) for key in SWEEP_METRICS}


def sweep(
    base: UFMProblem,
    *,
    lam_w: Sequence[float] | None = None,
    lam_h: Sequence[float] | None = None,
    lam_b: Sequence[float] | None = None,
    restarts: int = 2,
    seed: int = 0,
    max_iter: int = 3000,
    chunk_size: int | None = None,
    progress: bool = True,
    init: str = "auto",
) -> SweepResult:
    """Solve ``base`` over the product grid of the given penalties.

    Parameters
    ----------
    base : the problem whose other fields stay fixed. A value of lam_w applies to every
        layer. Sweeping lam_b makes the bias regularised.
    lam_w, lam_h, lam_b : grid values (> 0) for each swept penalty; None keeps the base.
    restarts, seed, max_iter, chunk_size, init : passed to :func:`solve_lbfgs`.
    progress : tqdm bar over chunks.

    Returns
    -------
    SweepResult whose rows hold the grid values, theory (``control`` vs ``threshold``,
    ``f_star``, ``theory_zero``, ``theory_geometry``), the solution (``objective``,
    ``rel_gap``, measured ``geometry``, ``of_gap_means``, ``etf_gap_means``,
    ``global_mean_ratio``, ``nc1``), ``converged`` and ``reached_global_minimum`` (False where
    the solve ended above the closed form: the CLI lists those rows).
    """
    axes = {
        name: _grid_values(name, values)
        for name, values in (("lam_w", lam_w), ("lam_h", lam_h), ("lam_b", lam_b))
        if values is not None
    }
    if not axes:
        raise ValueError("sweep needs at least one grid: pass lam_w=, lam_h= and/or lam_b=")
    problems = []
    for point in itertools.product(*axes.values()):
        changes = dict(zip(axes, point, strict=True))
        if "lam_b" in changes:
            changes["bias"] = "regularized"
        problems.append(base.replace(**changes))
    solutions = solve_lbfgs(
        problems,
        restarts,
        seed=seed,
        max_iter=max_iter,
        chunk_size=chunk_size,
        progress=progress,
        init=init,
    )
    rows = []
    for problem, solution in zip(problems, solutions, strict=True):
        reference, measured = solution.theory, solution.measurement
        frame = _frame_columns(measured.result_h)
        rows.append(
            {
                "lam_w": problem.layer_lams[0],
                "lam_h": problem.lam_h,
                "lam_b": problem.lam_b,
                "control": reference.control,
                "threshold": reference.threshold,
                "objective": measured.objective,
                "f_star": reference.f_star,
                "rel_gap": measured.rel_gap,
                "theory_zero": reference.is_zero,
                "theory_geometry": reference.geometry,
                "geometry": measured.geometry,
                "mean_norm": measured.mean_norm,
                **frame,
                "converged": solution.converged,
                "reached_global_minimum": solution.reached_global_minimum,
            }
        )
    names = {solution.theory.control_name for solution in solutions} - {""}
    control_name = names.pop() if len(names) == 1 else ""
    return SweepResult(rows=rows, axes=axes, base=base, control_name=control_name)
