"""Figures of the unconstrained features model: GD trajectories, phase diagram, lam_b path.

The numbers come from :mod:`neuralcollapse.ufm` (solvers and closed forms) and the metrics
engine; these functions only draw them.

References
----------
Tirer & Bruna, "Extended unconstrained features model for exploring deep neural collapse",
ICML 2022 (Figure 1: gradient descent on the UFM with K=4, d=20, n=5; Theorem 3.1: the
orthogonal frame of MSE without bias and the collapse threshold K sqrt(n lam_W lam_H) = 1).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

import numpy as np
from matplotlib.figure import Figure

from neuralcollapse.geometry import of_etf_distance
from neuralcollapse.viz.style import (
    mark_empty,
    new_figure,
    plot_finite,
    plot_positive,
    reference_line,
    run_colour,
)

#: lower limit of log axes of UFM quantities (float64 round-off level)
FLOAT_FLOOR = 1e-16


def _trajectory(solution, key: str) -> tuple[np.ndarray, np.ndarray]:
    rows = solution.trajectory
    steps = np.array([row["step"] for row in rows], dtype=float)
    values = np.array(
        [math.nan if row.get(key) is None else float(row[key]) for row in rows], dtype=float
    )
    return steps, values


def _set_step_axis(axes) -> None:
    # step 0 (the random start) is recorded, so linear below step 1 and log above
    axes.set_xscale("symlog", linthresh=1.0, linscale=0.3)
    axes.set_xlim(left=0)
    axes.set_xlabel("gradient-descent step")


def plot_gd_trajectories(solutions: Mapping[str, object], *, num_classes: int) -> Figure:
    """NC1, gap to the closed form and OF gap along gradient descent, one line per model.

    Panels: NC1 = Tr(Σ_W Σ_B⁺)/K of the features entering the last layer (log scale; dotted:
    NC1 of the free features H for depth 2); the relative objective gap |f − f*|/|f*| to the
    closed-form minimum (log scale); the OF gap of the uncentred class means, with the levels
    of an orthogonal frame (0) and of a simplex ETF (√(2 − 2√((K−1)/K))).

    Parameters
    ----------
    solutions : label -> :class:`neuralcollapse.ufm.UFMSolution` from ``solve_gd`` (with a
        recorded trajectory).
    num_classes : K, for the ETF reference level.

    Returns
    -------
    matplotlib.figure.Figure
    """
    if not solutions:
        raise ValueError("no UFM solution to plot; pass at least one solve_gd result")
    figure, grid = new_figure(1, 3, panel_size=(4.0, 3.1))
    nc1_axes, gap_axes, frame_axes = grid[0]
    for index, (label, solution) in enumerate(solutions.items()):
        colour = run_colour(index)
        steps, nc1 = _trajectory(solution, "nc1")
        plot_positive(nc1_axes, steps, nc1, color=colour, label=label)
        steps_h, nc1_h = _trajectory(solution, "nc1_h")
        if np.isfinite(nc1_h).any():
            plot_positive(nc1_axes, steps_h, nc1_h, color=colour, linestyle=":")
        steps, gap = _trajectory(solution, "rel_gap")
        if not plot_positive(gap_axes, steps, np.abs(gap), color=colour, label=label):
            mark_empty(gap_axes, "no closed form")
        steps, of_gap = _trajectory(solution, "of_gap_means")
        plot_finite(frame_axes, steps, of_gap, color=colour, label=label)
    reference_line(frame_axes, 0.0, "orthogonal frame", where="left")
    reference_line(frame_axes, of_etf_distance(num_classes), "simplex ETF", where="left")
    # below ~1e-16 relative to O(1) values only float64 round-off is left: do not draw its noise
    for axes in (nc1_axes, gap_axes):
        low, high = axes.get_ylim()
        axes.set_ylim(max(low, FLOAT_FLOOR), high)
    nc1_axes.set_title("NC1 (dotted: free features H, depth 2)", fontsize=9)
    nc1_axes.set_ylabel("Tr(Σ_W Σ_B⁺)/K")
    gap_axes.set_title("gap to the closed-form minimum", fontsize=9)
    gap_axes.set_ylabel("|f − f*| / |f*|")
    frame_axes.set_title("OF gap of uncentred class means", fontsize=9)
    frame_axes.set_ylabel("‖G/‖G‖ − I/√K‖")
    for axes in grid[0]:
        _set_step_axis(axes)
    handles, labels = nc1_axes.get_legend_handles_labels()
    figure.legend(
        handles, labels, loc="outside lower center", ncols=min(len(labels), 5), fontsize=8
    )
    figure.suptitle("Gradient descent on the UFM (Tirer & Bruna 2022, Fig. 1 setting)")
    return figure


def plot_phase_diagram(
    lam_w_grid: Sequence[float],
    lam_h_grid: Sequence[float],
    theory_mean_norm: np.ndarray,
    measured: Sequence[tuple[float, float, float]],
    *,
    num_classes: int,
    per_class: int,
) -> Figure:
    """Where the minimiser collapses to zero: closed form as a map, solver results as markers.

    The map is the norm of the class means of the closed-form minimiser over a log grid of
    (lam_W, lam_H) (grey = the all-zero minimiser); the line is the threshold
    ``K sqrt(n lam_W lam_H) = 1`` of Tirer & Bruna's Theorem 3.1; markers are L-BFGS solutions
    (filled: nonzero class means, hollow: collapsed to zero).

    Parameters
    ----------
    lam_w_grid, lam_h_grid : the axes of the map (log-spaced).
    theory_mean_norm : (len(lam_h_grid), len(lam_w_grid)) mean class-mean norm from theory.
    measured : (lam_w, lam_h, mean norm of the solver's class means) triples.
    num_classes, per_class : K and n, for the threshold line.

    Returns
    -------
    matplotlib.figure.Figure
    """
    lam_w = np.asarray(lam_w_grid, dtype=float)
    lam_h = np.asarray(lam_h_grid, dtype=float)
    norms = np.asarray(theory_mean_norm, dtype=float)
    if norms.shape != (lam_h.size, lam_w.size):
        raise ValueError(
            f"theory_mean_norm must have shape (len(lam_h_grid), len(lam_w_grid)) = "
            f"{(lam_h.size, lam_w.size)}; got {norms.shape}"
        )
    figure, grid = new_figure(1, 1, panel_size=(5.0, 3.9))
    axes = grid[0, 0]
    masked = np.ma.masked_less_equal(norms, 1e-12)
    axes.set_facecolor("#d9d9d9")
    mesh = axes.pcolormesh(lam_w, lam_h, masked, shading="nearest", cmap="viridis")
    figure.colorbar(mesh, ax=axes, label="mean ‖class mean‖ (theory)")
    boundary_w = np.geomspace(lam_w.min(), lam_w.max(), 200)
    boundary_h = 1.0 / (num_classes**2 * per_class * boundary_w)
    inside = (boundary_h >= lam_h.min()) & (boundary_h <= lam_h.max())
    axes.plot(
        boundary_w[inside],
        boundary_h[inside],
        color="white",
        linewidth=1.5,
        label="K√(n λ_W λ_H) = 1",
    )
    for index, (w, h, norm) in enumerate(measured):
        collapsed = norm <= 1e-6
        axes.plot(
            w,
            h,
            marker="o",
            markersize=7,
            linestyle="none",
            markerfacecolor="none" if collapsed else "#D55E00",
            markeredgecolor="#D55E00",
            label=("L-BFGS: nonzero / hollow: zero" if index == 0 else None),
        )
    axes.set_xscale("log")
    axes.set_yscale("log")
    axes.set_xlabel("λ_W (weight decay)")
    axes.set_ylabel("λ_H (feature decay)")
    axes.set_title(
        f"MSE UFM without bias (K={num_classes}, n={per_class}); grey: W = H = 0", fontsize=9
    )
    axes.legend(fontsize=7, loc="lower left")
    return figure


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
