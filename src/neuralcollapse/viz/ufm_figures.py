"""Figures of the unconstrained features model: phase diagrams, solver trajectories, bias path.

One plotter per kind of picture, shared by every caller:

- :func:`plot_phase_diagram` draws a :class:`~neuralcollapse.ufm.sweeps.SweepResult`
  (``neuralcollapse ufm-sweep`` and the demo): theory's geometry next to the solver's as
  categorical cells with one legend, the OF gap and the gap to theory, and theory's threshold
  ``control = threshold`` (e.g. ``K sqrt(n lam_W lam_H) = 1``);
- :func:`plot_trajectories` draws one or many :class:`~neuralcollapse.ufm.UFMSolution`
  (gradient descent per step, L-BFGS per iteration), optionally with the Gram matrix of the
  found class means (``neuralcollapse ufm --plot``);
- :func:`plot_bias_path`: the closed-form lam_b path from ETF to orthogonal frame against
  L-BFGS solutions.

The numbers come from :mod:`neuralcollapse.ufm` (solvers, closed forms, sweeps) and the
metrics engine; these functions only draw them. Each returns a
:class:`matplotlib.figure.Figure` from :func:`neuralcollapse.viz.style.new_figure` (no pyplot,
no backend switch).

References
----------
Tirer & Bruna, "Extended unconstrained features model for exploring deep neural collapse",
ICML 2022 (Figure 1: gradient descent on the UFM with K=4, d=20, n=5; Theorem 3.1: the
orthogonal frame of MSE without bias and the collapse threshold K sqrt(n lam_W lam_H) = 1).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING

import numpy as np
from matplotlib import patheffects
from matplotlib.colors import BoundaryNorm, ListedColormap
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.patches import Patch

from neuralcollapse import schema
from neuralcollapse.geometry import of_etf_distance
from neuralcollapse.viz.style import (
    REFERENCE_COLOUR,
    mark_empty,
    new_figure,
    plot_finite,
    plot_positive,
    reference_line,
    run_colour,
)

if TYPE_CHECKING:
    from matplotlib.axes import Axes

    from neuralcollapse.ufm.solve import UFMSolution
    from neuralcollapse.ufm.sweeps import SweepResult

#: lower limit of log axes of UFM quantities (float64 round-off level)
FLOAT_FLOOR = 1e-16
#: the geometry key of a grid point without a closed form
NO_THEORY = "none"
#: the geometry classes of theory and solver: (key, legend label, colour; Okabe & Ito)
GEOMETRIES: tuple[tuple[str, str, str], ...] = (
    ("zero", "W = H = 0", "#BBBBBB"),
    ("etf", "simplex ETF", "#0072B2"),
    ("between", "between ETF and OF", "#009E73"),
    ("of", "orthogonal frame", "#D55E00"),
    ("orthogonal", "orthogonal, unequal norms", "#E69F00"),
    ("not unique", "not unique", "#F0E442"),
    ("other", "other", "#CC79A7"),
    (NO_THEORY, "no closed form", "#FFFFFF"),
)
_CODES = {key: code for code, (key, _, _) in enumerate(GEOMETRIES)}
#: axis labels of the swept penalties
PENALTY_LABELS = {
    "lam_w": "λ_W (weight decay)",
    "lam_h": "λ_H (feature decay)",
    "lam_b": "λ_b (bias decay)",
}
#: each solver's trajectory rows: the key of their x values and its axis label
TRAJECTORY_AXES: dict[str, tuple[str, str]] = {
    "gd": ("step", "gradient-descent step"),
    "lbfgs": ("iteration", "L-BFGS iteration"),
}
# theory's threshold: white with a dark edge, visible on every colour map and on grey
_THRESHOLD_STYLE = {
    "color": "white",
    "linewidth": 1.6,
    "path_effects": [patheffects.withStroke(linewidth=3.2, foreground="#222222")],
}


def _number(value) -> float:
    return math.nan if value is None else float(value)


def _column(rows: Sequence[Mapping], key: str) -> np.ndarray:
    return np.array([_number(row.get(key)) for row in rows], dtype=float)


# ----------------------------------------------------------------------------- phase diagram


def _log_edges(centres: np.ndarray) -> np.ndarray:
    """Cell edges of a grid drawn on a log axis: the geometric midpoints
    ``sqrt(x_i x_{i+1})``, extended by half a step (in log) beyond the end points; a
    single point gets a cell one decade wide."""
    logs = np.log10(np.asarray(centres, dtype=float))
    if logs.size == 1:
        return 10.0 ** np.array([logs[0] - 0.5, logs[0] + 0.5])
    middle = (logs[:-1] + logs[1:]) / 2
    first = logs[0] - (middle[0] - logs[0])
    last = logs[-1] + (logs[-1] - middle[-1])
    return 10.0 ** np.concatenate([[first], middle, [last]])


def _sorted_axis(name: str, values: Sequence[float]) -> tuple[np.ndarray, np.ndarray]:
    """The grid of one penalty in increasing order, and the order that sorts it."""
    given = np.asarray(values, dtype=float)
    order = np.argsort(given)
    ordered = given[order]
    if ordered.size == 0 or not np.all(ordered > 0) or np.any(np.diff(ordered) == 0):
        raise ValueError(
            f"the {name} grid must hold distinct values > 0 (it is drawn on a log axis); "
            f"got {given.tolist()}"
        )
    return ordered, order


def _grid_array(values: Sequence[float], orders: Sequence[np.ndarray]) -> np.ndarray:
    """Per-point values (the grid's product order, first axis outermost) as an array with
    every axis in increasing order, shaped for pcolormesh: (n_y, n_x) for a 2-D grid."""
    shape = tuple(len(order) for order in orders)
    array = np.asarray(values, dtype=float).reshape(shape)
    for axis, order in enumerate(orders):
        array = np.take(array, order, axis=axis)
    return array.T


def _grid_field(rows: Sequence[Mapping], key: str, orders: Sequence[np.ndarray], convert):
    """Column ``key`` of the sweep's rows over the grid (:func:`_grid_array`)."""
    return _grid_array([convert(row.get(key)) for row in rows], orders)


def _geometry_code(name: str | None) -> int:
    if name is None:
        return _CODES[NO_THEORY]
    return _CODES.get(name, _CODES["other"])


def _control_ratio(rows: Sequence[Mapping]) -> list[float]:
    """``log10(control / threshold)`` per row (theory says zero where it is >= 0); NaN
    without a closed form."""
    ratios = []
    for row in rows:
        control, threshold = row.get("control"), row.get("threshold")
        if control is None or threshold is None or not (control > 0 and threshold > 0):
            ratios.append(math.nan)
        else:
            ratios.append(math.log10(control / threshold))
    return ratios


def _extend_linear(u: np.ndarray, z: np.ndarray, targets: np.ndarray, axis: int) -> np.ndarray:
    """``z`` (sampled at increasing ``u`` along ``axis``) at ``targets``: linear interpolation
    inside, the end slopes outside. Exact for a plane, i.e. for ``log10(control)`` of the
    closed forms, which are power laws in the penalties (``K sqrt(n lam_W lam_H)``,
    ``K^(L+1) n lam_1...lam_L lam_H``, ...)."""
    z = np.moveaxis(z, axis, -1)
    slope_low = (z[..., 1] - z[..., 0]) / (u[1] - u[0])
    slope_high = (z[..., -1] - z[..., -2]) / (u[-1] - u[-2])
    columns = []
    for target in targets:
        if target < u[0]:
            columns.append(z[..., 0] + slope_low * (target - u[0]))
        elif target > u[-1]:
            columns.append(z[..., -1] + slope_high * (target - u[-1]))
        else:
            index = min(int(np.searchsorted(u, target, side="right")) - 1, len(u) - 2)
            weight = (target - u[index]) / (u[index + 1] - u[index])
            columns.append((1 - weight) * z[..., index] + weight * z[..., index + 1])
    return np.moveaxis(np.stack(columns, axis=-1), -1, axis)


def _threshold_crossings(xs: np.ndarray, edges: np.ndarray, ratio: np.ndarray) -> list[float]:
    """Where ``log10(control/threshold)`` crosses 0 along a 1-D grid (up to the cell edges),
    by linear interpolation in log10 of the penalty."""
    if xs.size < 2 or not np.isfinite(ratio).all():
        return []
    u = np.log10(xs)
    points = np.concatenate([[np.log10(edges[0])], u, [np.log10(edges[-1])]])
    values = _extend_linear(u, ratio, points, axis=0)
    crossings = {10.0 ** points[i] for i in np.flatnonzero(values == 0)}
    for i in np.flatnonzero(values[:-1] * values[1:] < 0):
        u0, u1, z0, z1 = points[i], points[i + 1], values[i], values[i + 1]
        crossings.add(10.0 ** (u0 + (u1 - u0) * z0 / (z0 - z1)))
    return sorted(crossings)


def _threshold_lines(
    xs: np.ndarray, ys: np.ndarray, x_edges: np.ndarray, y_edges: np.ndarray, ratio: np.ndarray
) -> list[np.ndarray]:
    """The curve ``control = threshold`` over a 2-D grid, out to the cell edges, as (m, 2)
    arrays of (x, y). Contoured in log10 coordinates, where the closed forms' controls are
    planes, so the line is exact (a linear-space contour would bend between grid points)."""
    from contourpy import contour_generator  # a matplotlib dependency

    if min(xs.size, ys.size) < 2 or not np.isfinite(ratio).all():
        return []
    u, v = np.log10(xs), np.log10(ys)
    u_edges, v_edges = np.log10(x_edges), np.log10(y_edges)
    extended = _extend_linear(u, ratio, u_edges, axis=1)  # ratio is (n_y, n_x)
    extended = _extend_linear(v, extended, v_edges, axis=0)
    lines = contour_generator(x=u_edges, y=v_edges, z=extended).lines(0.0)
    return [10.0 ** np.asarray(line) for line in lines if len(line) >= 2]


def _geometry_cells(
    axes: Axes, x_edges: np.ndarray, y_edges: np.ndarray, codes: np.ndarray
) -> None:
    """Categorical cells: one fixed colour per geometry class (:data:`GEOMETRIES`)."""
    colours = ListedColormap([colour for _, _, colour in GEOMETRIES])
    norm = BoundaryNorm(np.arange(len(GEOMETRIES) + 1) - 0.5, colours.N)
    axes.pcolormesh(
        x_edges, y_edges, codes, cmap=colours, norm=norm, edgecolors="#FFFFFF", linewidth=0.3
    )


def _value_cells(
    figure: Figure,
    axes: Axes,
    x_edges: np.ndarray,
    y_edges: np.ndarray,
    values: np.ndarray,
    *,
    cmap: str,
    label: str,
) -> None:
    """Continuous cells with a colour bar; missing values (None, the zero solution) stay
    uncoloured."""
    masked = np.ma.masked_invalid(values)
    if masked.count() == 0:
        mark_empty(axes, "not measured")
        return
    mesh = axes.pcolormesh(x_edges, y_edges, masked, cmap=cmap)
    figure.colorbar(mesh, ax=axes, label=label)


def _threshold_label(result: SweepResult, rows: Sequence[Mapping]) -> str:
    thresholds = {row.get("threshold") for row in rows} - {None}
    level = f" = {next(iter(thresholds)):g}" if len(thresholds) == 1 else " = threshold"
    return f"theory's threshold: {result.control_name or 'control'}{level}"


def _phase_legend(figure: Figure, codes: np.ndarray, threshold_label: str | None) -> None:
    """One legend under the panels: exactly the geometry classes present, and the threshold
    where it is drawn."""
    present = sorted({int(code) for code in np.asarray(codes).ravel()})
    handles: list = [
        Patch(facecolor=GEOMETRIES[c][2], edgecolor="#888888", label=GEOMETRIES[c][1])
        for c in present
    ]
    if threshold_label is not None:
        handles.append(Line2D([], [], label=threshold_label, **_THRESHOLD_STYLE))
    figure.legend(
        handles=handles, loc="outside lower center", ncols=min(len(handles), 4), fontsize=8
    )


def _default_phase_title(result: SweepResult) -> str:
    base = result.base
    bias = "regularised" if base.bias == "regularized" else base.bias
    return (
        f"UFM phase diagram: {base.loss.upper()}, bias {bias}, depth {base.depth} "
        f"(K={base.num_classes}, n={base.per_class}, d={base.dim})"
    )


def _phase_map(result: SweepResult, title: str) -> Figure:
    """2-D sweep: theory's and the solver's geometry, OF gap, log10 gap to theory."""
    (x_name, x_values), (y_name, y_values) = result.axes.items()
    xs, x_order = _sorted_axis(x_name, x_values)
    ys, y_order = _sorted_axis(y_name, y_values)
    rows, orders = result.rows, (x_order, y_order)
    x_edges, y_edges = _log_edges(xs), _log_edges(ys)
    theory = _grid_field(rows, "theory_geometry", orders, _geometry_code)
    solver = _grid_field(rows, "geometry", orders, _geometry_code)
    of_gap = _grid_field(rows, schema.OF_GAP_MEANS, orders, _number)
    log_gap = _grid_field(
        rows, "rel_gap", orders, lambda v: math.nan if v is None else math.log10(abs(v) + 1e-17)
    )
    ratio = _grid_array(_control_ratio(rows), orders)
    figure, grid = new_figure(2, 2, panel_size=(4.4, 3.5))
    theory_axes, solver_axes = grid[0]
    of_axes, gap_axes = grid[1]
    _geometry_cells(theory_axes, x_edges, y_edges, theory)
    theory_axes.set_title("theory: geometry of the closed-form minimiser", fontsize=9)
    _geometry_cells(solver_axes, x_edges, y_edges, solver)
    solver_axes.set_title("solver: measured geometry (L-BFGS)", fontsize=9)
    _value_cells(figure, of_axes, x_edges, y_edges, of_gap, cmap="magma", label="‖G/‖G‖ − I/√K‖")
    of_axes.set_title("solver: OF gap of the class means", fontsize=9)
    _value_cells(
        figure, gap_axes, x_edges, y_edges, log_gap, cmap="cividis", label="log10 |f − f*|/|f*|"
    )
    gap_axes.set_title("solver: log10 relative gap to theory", fontsize=9)
    lines = _threshold_lines(xs, ys, x_edges, y_edges, ratio)
    for axes in grid.ravel():
        for line in lines:
            axes.plot(line[:, 0], line[:, 1], **_THRESHOLD_STYLE)
        axes.set_xscale("log")
        axes.set_yscale("log")
        axes.set_xlim(x_edges[0], x_edges[-1])
        axes.set_ylim(y_edges[0], y_edges[-1])
        axes.set_xlabel(PENALTY_LABELS.get(x_name, x_name))
        axes.set_ylabel(PENALTY_LABELS.get(y_name, y_name))
    label = _threshold_label(result, rows) if lines else None
    _phase_legend(figure, np.concatenate([theory.ravel(), solver.ravel()]), label)
    figure.suptitle(title)
    return figure


def _phase_curves(result: SweepResult, title: str) -> Figure:
    """1-D sweep: a strip of theory's and the solver's geometry, the frame measures and the
    gap to theory against the swept penalty."""
    ((name, values),) = result.axes.items()
    xs, order = _sorted_axis(name, values)
    rows, orders = result.rows, (order,)
    edges = _log_edges(xs)
    theory = _grid_field(rows, "theory_geometry", orders, _geometry_code)
    solver = _grid_field(rows, "geometry", orders, _geometry_code)
    ratio = _grid_array(_control_ratio(rows), orders)
    k = result.base.num_classes
    figure, grid = new_figure(1, 3, panel_size=(4.4, 3.4))
    strip_axes, frame_axes, gap_axes = grid[0]
    # rows of the strip, bottom to top: the solver, then theory
    _geometry_cells(strip_axes, edges, np.array([0.0, 1.0, 2.0]), np.vstack([solver, theory]))
    strip_axes.set_yticks([0.5, 1.5], ["solver", "theory"])
    strip_axes.set_title("geometry of the class means", fontsize=9)
    for key, label in (
        (schema.OF_GAP_MEANS, "OF gap (uncentred means)"),
        (schema.ETF_GAP_MEANS, "ETF gap (centred means)"),
        (schema.GLOBAL_MEAN_RATIO, "‖μ_G‖ / mean ‖μ_k‖"),
    ):
        plot_finite(
            frame_axes, xs, _grid_field(rows, key, orders, _number), marker="o", label=label
        )
    # as legend entries: for small K the two levels nearly coincide (0.5 and 0.518 at K=4)
    for level, style, label in (
        (1 / math.sqrt(k), ":", "1/√K: ratio of an OF"),
        (of_etf_distance(k), "-.", "√(2−2√((K−1)/K)): OF gap of an ETF"),
    ):
        frame_axes.axhline(level, color=REFERENCE_COLOUR, linewidth=0.8, ls=style, label=label)
    frame_axes.legend(fontsize=7, loc="best")
    frame_axes.set_title("solver: class-means geometry", fontsize=9)
    gaps = np.abs(_grid_field(rows, "rel_gap", orders, _number))
    if not plot_positive(gap_axes, xs, gaps, marker="o", color=run_colour(0)):
        mark_empty(gap_axes, "no closed form")
    gap_axes.set_ylabel("|f − f*| / |f*|")
    gap_axes.set_title("solver: relative gap to theory", fontsize=9)
    crossings = _threshold_crossings(xs, edges, ratio)
    for axes in grid[0]:
        for crossing in crossings:
            axes.axvline(crossing, **_THRESHOLD_STYLE)
        axes.set_xscale("log")
        axes.set_xlim(edges[0], edges[-1])
        axes.set_xlabel(PENALTY_LABELS.get(name, name))
    label = _threshold_label(result, rows) if crossings else None
    _phase_legend(figure, np.concatenate([theory, solver]), label)
    figure.suptitle(title)
    return figure


def plot_phase_diagram(result: SweepResult, *, title: str | None = None) -> Figure:
    """The phase diagram of a sweep: theory against the solver over a grid of penalties.

    Theory's threshold ``control = threshold`` (``is_zero`` iff ``control >= threshold``;
    for MSE without bias ``K sqrt(n lam_W lam_H) = 1``, Tirer & Bruna Thm 3.1) is drawn as a
    white line, found in log10 of the penalties where the closed forms' controls are linear,
    so it is exact and reaches the edges of the grid. Cells are centred on the grid points
    with edges at the geometric midpoints ``sqrt(x_i x_{i+1})``; the geometry classes
    (:data:`GEOMETRIES`) are categorical, with one legend listing those present.

    - 2-D grid (two penalties): theory's geometry, the solver's measured geometry, the OF
      gap of the class means and log10 of the relative gap to the closed form.
    - 1-D grid (one penalty): a strip of theory's and the solver's geometry, the OF gap, ETF
      gap and global-mean ratio (a lam_b sweep moves the means from a simplex ETF to an
      orthogonal frame; 1/√K and the ETF's OF gap drawn), and the gap to theory.

    Parameters
    ----------
    result : a :class:`~neuralcollapse.ufm.sweeps.SweepResult` (rows in the grid's product
        order, as :func:`~neuralcollapse.ufm.sweeps.sweep` returns them; any grid order).
    title : figure title (default: the base problem).

    Returns
    -------
    matplotlib.figure.Figure

    Raises
    ------
    ValueError : the sweep has no or more than two axes, its rows do not fill the grid, or a
        grid repeats a value or holds one <= 0.
    """
    names = list(result.axes)
    if len(names) not in (1, 2):
        raise ValueError(
            f"plot_phase_diagram draws a 1-D or 2-D sweep; this one has axes {names} "
            "(sweep one or two of lam_w, lam_h, lam_b)"
        )
    points = math.prod(len(values) for values in result.axes.values())
    if len(result.rows) != points:
        raise ValueError(
            f"the sweep's {len(result.rows)} rows do not fill its grid of {points} points "
            f"(axes {names}); pass the SweepResult that sweep() returned"
        )
    title = _default_phase_title(result) if title is None else title
    return _phase_map(result, title) if len(names) == 2 else _phase_curves(result, title)


# ----------------------------------------------------------------------------- trajectories


def _labelled_solutions(solutions) -> dict[str, UFMSolution]:
    """``{label: solution}`` from one solution or a mapping, every value checked."""
    from neuralcollapse.ufm.solve import UFMSolution

    if isinstance(solutions, UFMSolution):
        theory = solutions.theory.geometry or NO_THEORY
        label = f"{solutions.solver}: {solutions.geometry} (theory: {theory})"
        labelled = {label: solutions}
    elif isinstance(solutions, Mapping):
        labelled = dict(solutions)
    else:
        raise ValueError(
            "solutions must be a UFMSolution or a mapping label -> UFMSolution; got "
            f"{type(solutions).__name__}"
        )
    if not labelled:
        raise ValueError("no UFM solution to plot; pass at least one solve_gd / solve_lbfgs result")
    for label, solution in labelled.items():
        if not isinstance(solution, UFMSolution):
            raise ValueError(
                f"solution {label!r} is a {type(solution).__name__}, not a UFMSolution "
                "(from solve_gd or solve_lbfgs)"
            )
        if solution.solver not in TRAJECTORY_AXES:
            raise ValueError(
                f"solution {label!r} comes from solver {solution.solver!r}; "
                f"plot_trajectories knows {sorted(TRAJECTORY_AXES)}"
            )
        if not solution.trajectory:
            raise ValueError(f"solution {label!r} has no recorded trajectory to draw")
    solvers = sorted({solution.solver for solution in labelled.values()})
    if len(solvers) > 1:
        raise ValueError(
            f"one figure draws the trajectories of one solver (steps and iterations are "
            f"different axes); got {solvers}: plot each solver's solutions separately"
        )
    return labelled


def _metric_series(
    solution: UFMSolution, x_key: str, key: str, final: float | None
) -> tuple[np.ndarray, np.ndarray, bool]:
    """The recorded values of ``key`` along the trajectory, or, where none were recorded
    (L-BFGS records the objective alone), the final measured value at the last x. The flag
    says which."""
    x, y = _column(solution.trajectory, x_key), _column(solution.trajectory, key)
    if np.isfinite(y).any():
        return x, y, False
    return x[-1:], np.array([_number(final)]), True


def _draw_metric(
    axes: Axes,
    series: tuple[np.ndarray, np.ndarray, bool],
    *,
    log: bool,
    colour: str,
    dotted: bool = False,
) -> bool:
    """One solution's curve of a metric, or its final marker (hollow for a dotted series);
    returns whether anything was drawn."""
    x, y, final_only = series
    if final_only:
        # at the last iteration, i.e. on the right edge of the axes: do not cut it in half
        style = {"marker": "o", "markersize": 6, "linestyle": "none", "clip_on": False}
        if dotted:
            style["markerfacecolor"] = "none"
    else:
        style = {"linestyle": ":" if dotted else "-"}
    draw = plot_positive if log else plot_finite
    return draw(axes, x, y, color=colour, **style)


def _draw_gap(axes: Axes, solution: UFMSolution, x_key: str, with_theory: bool, colour: str):
    """|f − f*|/|f*| per step (log), or the objective itself when no solution of the figure
    has a closed form."""
    rows = solution.trajectory
    x = _column(rows, x_key)
    if with_theory:
        plot_positive(axes, x, np.abs(_column(rows, "rel_gap")), color=colour)
    else:
        plot_finite(axes, x, _column(rows, "objective"), color=colour)


def _set_trajectory_axis(axes: Axes, label: str) -> None:
    # step / iteration 0 (the start) is recorded: linear below 1, log above
    axes.set_xscale("symlog", linthresh=1.0, linscale=0.3)
    axes.set_xlim(left=0)
    axes.set_xlabel(label)


def _floor_log_axis(axes: Axes) -> None:
    # below ~1e-16 relative to O(1) values only float64 round-off is left: do not draw its
    # noise (unless everything drawn is below it, where the floor would empty the panel)
    if axes.get_yscale() != "log":
        return
    low, high = axes.get_ylim()
    if high > 10 * FLOAT_FLOOR:
        axes.set_ylim(max(low, FLOAT_FLOOR), high)


def _draw_gram(figure: Figure, axes: Axes, solution: UFMSolution) -> None:
    """``Hbar^T Hbar`` of the found class means (diverging map centred at 0)."""
    gram = solution.measurement.gram_means.detach().cpu().numpy()
    limit = float(np.abs(gram).max()) or 1.0
    image = axes.imshow(gram, cmap="RdBu_r", vmin=-limit, vmax=limit)
    figure.colorbar(image, ax=axes)
    axes.set_xlabel("class k′")
    axes.set_ylabel("class k")
    theory = solution.theory.geometry or "no closed form"
    axes.set_title(f"H̄ᵀH̄ found: {solution.geometry} (theory: {theory})", fontsize=9)


def plot_trajectories(
    solutions: UFMSolution | Mapping[str, UFMSolution],
    *,
    gram: bool = False,
    title: str | None = None,
) -> Figure:
    """NC1, gap to the closed form and OF gap along the solver's path, one colour per solution.

    Panels: NC1 = Tr(Σ_W Σ_B⁺)/K of the features entering the last layer (log scale; dotted:
    NC1 of the free features H for depth >= 2); the relative objective gap |f − f*|/|f*| to
    the closed-form minimum (log scale; the objective f itself when no solution has a closed
    form); the OF gap ‖G/‖G‖ − I/√K‖ of the uncentred class means, with the levels of an
    orthogonal frame (0) and of a simplex ETF (√(2 − 2√((K−1)/K))). Gradient descent records
    every metric per step; L-BFGS records the objective per iteration, so its NC1 and OF gap
    are drawn as one marker at the last iteration (the final measurement).

    Parameters
    ----------
    solutions : one :class:`~neuralcollapse.ufm.UFMSolution` (labelled by its solver and
        geometry), or label -> solution; all from the same solver (``solve_gd``: x is the
        step; ``solve_lbfgs``: the iteration).
    gram : add a panel with ``Hbar^T Hbar`` of the found class means (one solution only).
    title : figure title (default: the solver's name).

    Returns
    -------
    matplotlib.figure.Figure

    Raises
    ------
    ValueError : no solution, something that is not a UFMSolution, an empty trajectory,
        solutions of two solvers, or ``gram=True`` with more than one solution.
    """
    labelled = _labelled_solutions(solutions)
    if gram and len(labelled) != 1:
        raise ValueError(
            f"gram=True draws one solution's Gram matrix; got {len(labelled)} solutions"
        )
    solver = next(iter(labelled.values())).solver
    x_key, x_label = TRAJECTORY_AXES[solver]
    with_theory = any(solution.theory.available for solution in labelled.values())
    figure, grid = new_figure(1, 4 if gram else 3, panel_size=(4.0, 3.1))
    nc1_axes, gap_axes, frame_axes = grid[0][:3]
    handles, dotted = [], False
    for index, (label, solution) in enumerate(labelled.items()):
        colour = run_colour(index)
        result, result_h = solution.measurement.result, solution.measurement.result_h
        nc1 = _metric_series(solution, x_key, schema.NC1, None if result is None else result.nc1)
        _draw_metric(nc1_axes, nc1, log=True, colour=colour)
        if solution.problem.depth > 1:
            nc1_h = _metric_series(
                solution, x_key, "nc1_h", None if result_h is None else result_h.nc1
            )
            dotted |= _draw_metric(nc1_axes, nc1_h, log=True, colour=colour, dotted=True)
        _draw_gap(gap_axes, solution, x_key, with_theory, colour)
        of_gap = _metric_series(
            solution, x_key, schema.OF_GAP_MEANS, None if result is None else result.of_gap_means
        )
        _draw_metric(frame_axes, of_gap, log=False, colour=colour)
        handles.append(Line2D([], [], color=colour, label=label))
    classes = sorted({solution.problem.num_classes for solution in labelled.values()})
    reference_line(frame_axes, 0.0, "orthogonal frame", where="left")
    for k in classes:
        name = "simplex ETF" if len(classes) == 1 else f"simplex ETF (K={k})"
        reference_line(frame_axes, of_etf_distance(k), name, where="left")
    nc1_axes.set_title("NC1" + (" (dotted: free features H)" if dotted else ""), fontsize=9)
    nc1_axes.set_ylabel("Tr(Σ_W Σ_B⁺)/K")
    if with_theory:
        gap_axes.set_title("gap to the closed-form minimum", fontsize=9)
        gap_axes.set_ylabel("|f − f*| / |f*|")
    else:
        gap_axes.set_title("objective (no closed form)", fontsize=9)
        gap_axes.set_ylabel("f")
    frame_axes.set_title("OF gap of uncentred class means", fontsize=9)
    frame_axes.set_ylabel("‖G/‖G‖ − I/√K‖")
    for axes in (nc1_axes, gap_axes, frame_axes):
        _set_trajectory_axis(axes, x_label)
        _floor_log_axis(axes)
    if gram:
        _draw_gram(figure, grid[0][3], next(iter(labelled.values())))
    figure.legend(
        handles=handles, loc="outside lower center", ncols=min(len(handles), 5), fontsize=8
    )
    default = "Gradient descent" if solver == "gd" else "L-BFGS"
    figure.suptitle(f"{default} on the UFM" if title is None else title)
    return figure


# ----------------------------------------------------------------------------- bias path


def plot_bias_path(
    lam_b_dense: Sequence[float],
    theory_of_gap: Sequence[float],
    theory_ratio: Sequence[float],
    lam_b_solved: Sequence[float],
    solved_of_gap: Sequence[float],
    solved_ratio: Sequence[float],
    *,
    num_classes: int,
) -> Figure:
    """From simplex ETF to orthogonal frame as the bias penalty lam_b grows.

    Two panels against lam_b (log axis): the OF gap of the uncentred class means and the
    global-mean ratio ``‖μ_G‖ / mean_k ‖μ_k‖``; lines are the closed form, markers the L-BFGS
    solutions. lam_b → 0 gives the ETF (OF gap √(2 − 2√((K−1)/K)), ratio 0); lam_b → ∞ the
    orthogonal frame (gap 0, ratio 1/√K).

    Returns
    -------
    matplotlib.figure.Figure
    """
    figure, grid = new_figure(1, 2, panel_size=(4.0, 3.1))
    gap_axes, ratio_axes = grid[0]
    k = num_classes
    references = (
        (gap_axes, of_etf_distance(k), 0.0),
        (ratio_axes, 0.0, 1 / math.sqrt(k)),
    )
    for axes, etf_level, of_level in references:
        reference_line(axes, etf_level, "simplex ETF", where="center")
        reference_line(axes, of_level, "orthogonal frame", where="center")
    plot_finite(gap_axes, lam_b_dense, theory_of_gap, color=run_colour(0), label="closed form")
    plot_finite(
        gap_axes,
        lam_b_solved,
        solved_of_gap,
        color=run_colour(1),
        marker="o",
        linestyle="none",
        label="L-BFGS",
    )
    plot_finite(ratio_axes, lam_b_dense, theory_ratio, color=run_colour(0), label="closed form")
    plot_finite(
        ratio_axes,
        lam_b_solved,
        solved_ratio,
        color=run_colour(1),
        marker="o",
        linestyle="none",
        label="L-BFGS",
    )
    gap_axes.set_ylabel("OF gap ‖G/‖G‖ − I/√K‖")
    ratio_axes.set_ylabel("‖μ_G‖ / mean ‖μ_k‖")
    for axes in (gap_axes, ratio_axes):
        axes.set_xscale("log")
        axes.set_xlabel("λ_b (bias decay)")
        axes.legend(fontsize=7, loc="center right")
    figure.suptitle("MSE UFM with a regularised bias: ETF (λ_b → 0) to orthogonal frame")
    return figure
