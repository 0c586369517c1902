"""Figures of one UFM solve and of a ``ufm-sweep`` grid (the ``ufm`` and ``ufm-sweep`` commands).

Each function returns a :class:`matplotlib.figure.Figure` (no pyplot, no backend switch); the
commands save them with :func:`neuralcollapse.viz.style.save_figure`. The geometry of each
grid cell is categorical, so it is drawn with one colour per class and a legend, and cells are
centred on the log-spaced grid points with edges half-way between them in log space.
"""

from __future__ import annotations

import math

import numpy as np
from matplotlib.colors import BoundaryNorm, ListedColormap
from matplotlib.patches import Patch

from neuralcollapse.viz.style import new_figure

#: the geometry classes a solution is sorted into, and their colours (colour-blind safe)
GEOMETRIES = (
    ("zero", "W = H = 0", "#BBBBBB"),
    ("etf", "simplex ETF", "#0072B2"),
    ("between", "between ETF and OF", "#009E73"),
    ("of", "orthogonal frame", "#D55E00"),
    ("other", "other", "#CC79A7"),
)


def _floats(values) -> np.ndarray:
    return np.array([np.nan if v is None else float(v) for v in values], dtype=float)


def _log_edges(centres) -> np.ndarray:
    """Cell edges of a log-spaced grid: geometric midpoints, extended by half a step."""
    logs = np.log10(np.asarray(centres, dtype=float))
    if logs.size == 1:
        return 10.0 ** np.array([logs[0] - 0.5, logs[0] + 0.5])
    middle = (logs[:-1] + logs[1:]) / 2
    return 10.0 ** np.concatenate(
        [[logs[0] - (middle[0] - logs[0])], middle, [logs[-1] + (logs[-1] - middle[-1])]]
    )


def plot_solution(solution):
    """Convergence (gap to the closed form; NC1 and frame gaps for GD) and the means' Gram."""
    figure, grid = new_figure(1, 3, panel_size=(4.2, 3.4))
    convergence, metrics_axes, gram_axes = grid[0]
    steps_key = "step" if solution.solver == "gd" else "iteration"
    steps = [row[steps_key] for row in solution.trajectory]
    if solution.theory.available:
        gaps = np.abs(_floats([row["rel_gap"] for row in solution.trajectory]))
        convergence.semilogy(steps, gaps + 1e-17)
        convergence.set_ylabel("|f − f*| / f*")
    else:
        convergence.plot(steps, [row["objective"] for row in solution.trajectory])
        convergence.set_ylabel("objective")
    convergence.set_xlabel(steps_key)
    convergence.set_title(f"{solution.solver}: convergence", fontsize=9)
    if solution.solver == "gd":
        for key, label in (
            ("nc1", "NC1"),
            ("of_gap_means", "OF gap (means)"),
            ("etf_gap_means", "ETF gap (centred means)"),
        ):
            values = _floats([row[key] for row in solution.trajectory])
            metrics_axes.semilogy(steps, np.where(values > 0, values, np.nan), label=label)
        metrics_axes.legend(fontsize=7)
        metrics_axes.set_xlabel("step")
        metrics_axes.set_title("neural collapse metrics", fontsize=9)
    else:
        metrics_axes.axis("off")
        measured = solution.measurement.metrics or {}
        lines = [f"geometry: {solution.geometry} (theory: {solution.theory.geometry})"]
        lines += [
            f"{key}: {measured[key]:.3g}"
            for key in ("nc1", "of_gap_means", "etf_gap_means", "global_mean_ratio")
            if measured.get(key) is not None
        ]
        metrics_axes.text(0, 0.5, "\n".join(lines), fontsize=9, va="center")
    gram = solution.measurement.gram_means.numpy()
    limit = float(np.abs(gram).max()) or 1.0
    image = gram_axes.imshow(gram, cmap="RdBu_r", vmin=-limit, vmax=limit)
    figure.colorbar(image, ax=gram_axes)
    gram_axes.set_title("Hbar^T Hbar (found)", fontsize=9)
    return figure


def plot_sweep(result):
    """The phase diagram of a sweep (1-D: curves against the penalty; 2-D: maps).

    2-D grid: the measured geometry (categorical, with a legend), the OF gap of the class
    means, and log10 of the relative gap to the closed form, with theory's zero threshold as a
    contour. 1-D grid: OF gap, ETF gap and global-mean ratio against the swept penalty (a
    lam_b sweep moves the means from an ETF to an orthogonal frame), with the OF ratio
    1/sqrt(K), and the gap to theory.
    """
    names = list(result.axes)
    rows = result.rows
    if len(names) == 1:
        name = names[0]
        x = [row[name] for row in rows]
        figure, grid = new_figure(1, 2, panel_size=(4.8, 3.6))
        geometry_axes, gap_axes = grid[0]
        for key, label in (
            ("of_gap_means", "OF gap (uncentred means)"),
            ("etf_gap_means", "ETF gap (centred means)"),
            ("global_mean_ratio", "‖μ_G‖ / mean ‖μ_k‖"),
        ):
            geometry_axes.semilogx(x, _floats([row[key] for row in rows]), marker="o", label=label)
        geometry_axes.axhline(
            1 / math.sqrt(result.base.num_classes), color="grey", ls=":", label="1/√K (OF ratio)"
        )
        geometry_axes.set_xlabel(name)
        geometry_axes.legend(fontsize=7)
        geometry_axes.set_title("class-means geometry", fontsize=9)
        gaps = np.abs(_floats([row["rel_gap"] for row in rows]))
        gap_axes.loglog(x, gaps + 1e-17, marker="o")
        gap_axes.set_xlabel(name)
        gap_axes.set_ylabel("|f − f*| / f*")
        gap_axes.set_title("gap to theory", fontsize=9)
        return figure
    if len(names) != 2:
        raise ValueError(f"plot_sweep draws 1-D or 2-D grids; this one has axes {names}")
    xs, ys = result.axes[names[0]], result.axes[names[1]]
    shape = (len(xs), len(ys))

    def grid_of(key, transform):
        return np.array([transform(row[key]) for row in rows], dtype=float).reshape(shape).T

    codes = {name: index for index, (name, _, _) in enumerate(GEOMETRIES)}
    geometry = grid_of("geometry", lambda g: codes.get(g, codes["other"]))
    of_gap = grid_of("of_gap_means", lambda v: np.nan if v is None else v)
    log_gap = grid_of("rel_gap", lambda v: np.nan if v is None else np.log10(abs(v) + 1e-17))
    control = grid_of("control", lambda v: np.nan if v is None else v)
    threshold = rows[0]["threshold"]
    x_edges, y_edges = _log_edges(xs), _log_edges(ys)
    figure, grid = new_figure(1, 3, panel_size=(4.6, 3.8))
    geometry_axes, of_axes, gap_axes = grid[0]
    colours = ListedColormap([colour for _, _, colour in GEOMETRIES])
    norm = BoundaryNorm(np.arange(len(GEOMETRIES) + 1) - 0.5, colours.N)
    geometry_axes.pcolormesh(x_edges, y_edges, geometry, cmap=colours, norm=norm)
    present = sorted({int(code) for code in geometry.ravel()})
    geometry_axes.legend(
        handles=[Patch(color=GEOMETRIES[c][2], label=GEOMETRIES[c][1]) for c in present],
        fontsize=7,
        loc="lower left",
    )
    geometry_axes.set_title("measured geometry", fontsize=9)
    mesh = of_axes.pcolormesh(x_edges, y_edges, of_gap, cmap="magma")
    figure.colorbar(mesh, ax=of_axes)
    of_axes.set_title("OF gap of the class means", fontsize=9)
    mesh = gap_axes.pcolormesh(x_edges, y_edges, log_gap, cmap="cividis")
    figure.colorbar(mesh, ax=gap_axes)
    gap_axes.set_title("log10 |relative gap to theory|", fontsize=9)
    for axes in (geometry_axes, of_axes, gap_axes):
        if threshold is not None and np.isfinite(control).any() and min(shape) > 1:
            axes.contour(xs, ys, control, levels=[threshold], colors="white", linewidths=1.5)
        axes.set_xscale("log")
        axes.set_yscale("log")
        axes.set_xlabel(names[0])
        axes.set_ylabel(names[1])
    return figure
