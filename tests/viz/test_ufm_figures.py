"""The UFM figures: one phase-diagram plotter (sweeps), one trajectory plotter (solvers)."""

import itertools
import math
import warnings

import numpy as np
import pytest
import torch
from matplotlib.collections import QuadMesh
from matplotlib.figure import Figure
from matplotlib.image import AxesImage
from matplotlib.patches import Patch

from neuralcollapse.geometry import etf_gram, of_etf_distance
from neuralcollapse.ufm import UFMProblem, solve_gd, solve_lbfgs
from neuralcollapse.ufm.sweeps import SweepResult
from neuralcollapse.viz.demo import _means_from_gram
from neuralcollapse.viz.ufm_figures import (
    GEOMETRIES,
    plot_bias_path,
    plot_phase_diagram,
    plot_trajectories,
)

K, N = 4, 5
LABELS = {key: label for key, label, _ in GEOMETRIES}


def _fake_sweep(axes: dict[str, list[float]], solver=None) -> SweepResult:
    """A sweep of the MSE UFM without bias as theory has it (no solve: fast and exact):
    zero where K sqrt(n lam_W lam_H) >= 1, an orthogonal frame below; ``solver(row)`` may
    override the measured geometry."""
    base = UFMProblem(K, N, 20, lam_w=1e-2, lam_h=1e-2)
    rows = []
    for point in itertools.product(*axes.values()):
        values = {"lam_w": base.lam_w, "lam_h": base.lam_h, **dict(zip(axes, point, strict=True))}
        control = K * math.sqrt(N * values["lam_w"] * values["lam_h"])
        zero = control >= 1
        row = {
            **values,
            "lam_b": None,
            "control": control,
            "threshold": 1.0,
            "rel_gap": 1e-12,
            "theory_zero": zero,
            "theory_geometry": "zero" if zero else "of",
            "geometry": "zero" if zero else "of",
            "mean_norm": 0.0 if zero else 1.0,
            "of_gap_means": None if zero else 1e-9,
            "etf_gap_means": None if zero else 1e-9,
            "global_mean_ratio": None if zero else 0.5,
        }
        if solver is not None:
            row["geometry"] = solver(row)
        rows.append(row)
    return SweepResult(rows=rows, axes=axes, base=base, control_name="K sqrt(n lam_W lam_H)")


def _legend_patches(figure: Figure) -> list[str]:
    (legend,) = figure.legends
    return [h.get_label() for h in legend.legend_handles if isinstance(h, Patch)]


def _legend_texts(figure: Figure) -> list[str]:
    (legend,) = figure.legends
    return [text.get_text() for text in legend.get_texts()]


GRID = np.geomspace(1e-3, 1.0, 6).tolist()


def test_phase_legend_lists_exactly_the_geometry_classes_present_and_the_threshold():
    # one solver cell that matches nothing: "other" appears once, nothing else is invented
    odd = {"done": False}

    def solver(row):
        if not odd["done"] and not row["theory_zero"]:
            odd["done"] = True
            return "something new"
        return row["theory_geometry"]

    figure = plot_phase_diagram(_fake_sweep({"lam_w": GRID, "lam_h": GRID}, solver))
    assert isinstance(figure, Figure)
    assert sorted(_legend_patches(figure)) == sorted(
        [LABELS["zero"], LABELS["of"], LABELS["other"]]
    )
    assert "theory's threshold: K sqrt(n lam_W lam_H) = 1" in _legend_texts(figure)


def test_phase_cells_have_edges_at_the_geometric_midpoints_of_the_log_grid():
    xs, ys = GRID, np.geomspace(1e-2, 10.0, 4).tolist()
    figure = plot_phase_diagram(_fake_sweep({"lam_w": xs, "lam_h": ys}))
    for axes in figure.axes[:2]:  # theory's and the solver's geometry
        (mesh,) = [c for c in axes.collections if isinstance(c, QuadMesh)]
        corners = mesh.get_coordinates()  # (n_y + 1, n_x + 1, 2)
        x_edges, y_edges = corners[0, :, 0], corners[:, 0, 1]
        for centres, edges in ((xs, x_edges), (ys, y_edges)):
            centres = np.asarray(centres)
            assert edges.size == centres.size + 1
            np.testing.assert_allclose(edges[1:-1], np.sqrt(centres[:-1] * centres[1:]))
            # the outer edges are half a log step beyond the end points
            np.testing.assert_allclose(edges[0] * edges[1], centres[0] ** 2)
            np.testing.assert_allclose(edges[-1] * edges[-2], centres[-1] ** 2)


def test_phase_threshold_is_exactly_k_sqrt_n_lamw_lamh_equal_one_out_to_the_cell_edges():
    figure = plot_phase_diagram(_fake_sweep({"lam_w": GRID, "lam_h": GRID}))
    axes = figure.axes[0]
    (line,) = axes.get_lines()
    w, h = np.asarray(line.get_xdata()), np.asarray(line.get_ydata())
    np.testing.assert_allclose(K * np.sqrt(N * w * h), 1.0, rtol=1e-9)
    (x_low, x_high), (y_low, y_high) = axes.get_xlim(), axes.get_ylim()
    ends = [(w[0], h[0]), (w[-1], h[-1])]
    for x, y in ends:  # each end of the line lies on the border of the drawn grid
        on_border = [np.isclose(x, x_low), np.isclose(x, x_high)]
        on_border += [np.isclose(y, y_low), np.isclose(y, y_high)]
        assert any(on_border)
    # every panel draws the same threshold
    assert all(len(other.get_lines()) == 1 for other in figure.axes if other.get_lines())


def test_phase_diagram_does_not_depend_on_the_order_of_the_grid():
    ordered = plot_phase_diagram(_fake_sweep({"lam_w": GRID, "lam_h": GRID[:4]}))
    shuffled = plot_phase_diagram(
        _fake_sweep({"lam_w": GRID[::-1], "lam_h": [GRID[i] for i in (2, 0, 3, 1)]})
    )
    for a, b in zip(ordered.axes[:2], shuffled.axes[:2], strict=True):
        mesh_a = next(c for c in a.collections if isinstance(c, QuadMesh))
        mesh_b = next(c for c in b.collections if isinstance(c, QuadMesh))
        np.testing.assert_array_equal(mesh_a.get_array(), mesh_b.get_array())
        np.testing.assert_allclose(mesh_a.get_coordinates(), mesh_b.get_coordinates())


def test_one_dimensional_sweep_draws_theory_and_solver_strips_and_the_crossing():
    lam_h = 1e-2
    figure = plot_phase_diagram(_fake_sweep({"lam_w": np.geomspace(1e-3, 10.0, 7).tolist()}))
    strip = figure.axes[0]
    assert [t.get_text() for t in strip.get_yticklabels()] == ["solver", "theory"]
    (mesh,) = [c for c in strip.collections if isinstance(c, QuadMesh)]
    assert mesh.get_array().shape == (2, 7)
    # K sqrt(n lam_W lam_H) = 1 at lam_W = 1 / (K^2 n lam_H), drawn on every panel
    expected = 1 / (K**2 * N * lam_h)
    for axes in figure.axes[:3]:
        crossings = [
            line.get_xdata()[0] for line in axes.get_lines() if len(set(line.get_xdata())) == 1
        ]
        assert crossings == pytest.approx([expected], rel=1e-9)
    assert sorted(_legend_patches(figure)) == sorted([LABELS["zero"], LABELS["of"]])


def test_one_point_and_two_dimensional_grids_both_draw():
    assert isinstance(plot_phase_diagram(_fake_sweep({"lam_b": [0.1]})), Figure)
    two = plot_phase_diagram(_fake_sweep({"lam_w": GRID[:2], "lam_h": GRID[:3]}))
    assert len(two.axes) >= 4


@pytest.mark.parametrize(
    "change,message",
    [
        (lambda r: r.axes.update(lam_b=[1.0]), r"1-D or 2-D sweep; this one has axes"),
        (lambda r: r.rows.pop(), r"5 rows do not fill its grid of 6 points"),
        (lambda r: r.axes.update(lam_w=[1e-3, 1e-3]), r"lam_w grid must hold distinct values > 0"),
    ],
)
def test_phase_diagram_bad_input_is_a_clear_value_error(change, message):
    result = _fake_sweep({"lam_w": [1e-3, 1e-2], "lam_h": [1e-3, 1e-2, 1e-1]})
    change(result)
    with pytest.raises(ValueError, match=message):
        plot_phase_diagram(result)


# ----------------------------------------------------------------------------- trajectories


@pytest.fixture(scope="module")
def gd_solutions():
    with warnings.catch_warnings():  # 60 steps end above f* on purpose: short and cheap
        warnings.simplefilter("ignore", RuntimeWarning)
        return {
            f"depth {depth}": solve_gd(
                UFMProblem(3, 2, 4, lam_w=1e-2, lam_h=1e-2, depth=depth),
                lr=0.5,
                steps=60,
                record_every=20,
            )
            for depth in (1, 2)
        }


@pytest.fixture(scope="module")
def lbfgs_solution():
    return solve_lbfgs(UFMProblem(3, 2, 4, lam_w=1e-2, lam_h=1e-2), restarts=1)


def test_gd_trajectories_draw_per_step_with_the_step_axis(gd_solutions):
    figure = plot_trajectories(gd_solutions)
    nc1_axes, gap_axes, frame_axes = figure.axes
    assert {axes.get_xlabel() for axes in figure.axes} == {"gradient-descent step"}
    steps = [row["step"] for row in gd_solutions["depth 1"].trajectory]
    assert list(frame_axes.get_lines()[0].get_xdata()) == steps
    # depth 2 adds the dotted NC1 of the free features H
    assert [line.get_linestyle() for line in nc1_axes.get_lines()] == ["-", "-", ":"]
    assert _legend_texts(figure) == ["depth 1", "depth 2"]
    levels = sorted(
        float(line.get_ydata()[0])
        for line in frame_axes.get_lines()
        if line.get_linestyle() == "-."
    )
    assert levels == pytest.approx([0.0, of_etf_distance(3)])


def test_lbfgs_trajectory_draws_per_iteration_and_the_final_metrics(lbfgs_solution):
    figure = plot_trajectories(lbfgs_solution, gram=True)
    nc1_axes, gap_axes, frame_axes, gram_axes = figure.axes[:4]
    for axes in (nc1_axes, gap_axes, frame_axes):
        assert axes.get_xlabel() == "L-BFGS iteration"
    last = lbfgs_solution.trajectory[-1]["iteration"]
    # every iteration with a gap above 0 (exactly 0 at the end cannot sit on the log axis)
    drawn = [row["iteration"] for row in lbfgs_solution.trajectory if abs(row["rel_gap"]) > 0]
    assert list(gap_axes.get_lines()[0].get_xdata()) == drawn and len(drawn) > 10
    # L-BFGS records no NC metric per iteration: the final measurement, at the last one
    (marker,) = [line for line in frame_axes.get_lines() if line.get_marker() == "o"]
    assert list(marker.get_xdata()) == [last]
    assert marker.get_ydata()[0] == pytest.approx(lbfgs_solution.result.of_gap_means)
    (image,) = [i for i in gram_axes.get_images() if isinstance(i, AxesImage)]
    np.testing.assert_allclose(image.get_array(), lbfgs_solution.measurement.gram_means.numpy())
    assert _legend_texts(figure) == ["lbfgs: of (theory: of)"]


def test_trajectories_without_a_closed_form_show_the_objective():
    solution = solve_lbfgs(UFMProblem(3, (3, 2, 1), 4, lam_w=1e-2, lam_h=1e-2), restarts=1)
    assert not solution.theory.available
    gap_axes = plot_trajectories(solution).axes[1]
    assert gap_axes.get_title() == "objective (no closed form)"


def test_trajectory_bad_input_is_a_clear_value_error(gd_solutions, lbfgs_solution):
    with pytest.raises(ValueError, match="no UFM solution to plot; pass at least one"):
        plot_trajectories({})
    with pytest.raises(ValueError, match="must be a UFMSolution or a mapping"):
        plot_trajectories([lbfgs_solution])
    with pytest.raises(ValueError, match="'x' is a dict, not a UFMSolution"):
        plot_trajectories({"x": {}})
    with pytest.raises(ValueError, match=r"one solver .*\['gd', 'lbfgs'\]"):
        plot_trajectories({"gd": gd_solutions["depth 1"], "lbfgs": lbfgs_solution})
    with pytest.raises(ValueError, match="gram=True draws one solution's Gram matrix; got 2"):
        plot_trajectories(gd_solutions, gram=True)


def test_ufm_figures_are_exported_lazily_from_viz_only():
    import neuralcollapse.ufm as ufm
    import neuralcollapse.viz as viz
    from neuralcollapse.viz import ufm_figures

    for name in ("plot_phase_diagram", "plot_trajectories"):
        assert getattr(viz, name) is getattr(ufm_figures, name)
        # the science layer does not reach up into the presentation layer (issue 22)
        assert not hasattr(ufm, name)
    assert viz.plot_bias_path is ufm_figures.plot_bias_path


# ----------------------------------------------------------------------------- bias path


def test_bias_path_draws_the_etf_and_of_levels():
    lam = np.geomspace(1e-2, 1e2, 5)
    figure = plot_bias_path(
        lam, np.zeros(5), np.zeros(5), lam, np.zeros(5), np.zeros(5), num_classes=4
    )
    gap_levels = sorted(
        float(line.get_ydata()[0])
        for line in figure.axes[0].get_lines()
        if line.get_linestyle() == "-."
    )
    assert gap_levels == pytest.approx([0.0, of_etf_distance(4)])
    ratio_levels = sorted(
        float(line.get_ydata()[0])
        for line in figure.axes[1].get_lines()
        if line.get_linestyle() == "-."
    )
    assert ratio_levels == pytest.approx([0.0, 1 / math.sqrt(4)])


def test_means_rebuilt_from_a_gram_matrix_reproduce_it():
    gram = 2.5 * etf_gram(5) + 0.3 * torch.ones(5, 5, dtype=torch.float64)
    means = _means_from_gram(gram)
    torch.testing.assert_close(means @ means.T, gram)
