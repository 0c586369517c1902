import math

import numpy as np
import pytest
import torch

from neuralcollapse.geometry import etf_gram, of_etf_distance
from neuralcollapse.viz.demo import _means_from_gram
from neuralcollapse.viz.ufm_figures import plot_bias_path, plot_gd_trajectories, plot_phase_diagram


def test_phase_diagram_rejects_a_map_of_the_wrong_shape():
    with pytest.raises(ValueError, match=r"must have shape \(len\(lam_h_grid\), len"):
        plot_phase_diagram(
            [1e-3, 1e-2], [1e-3, 1e-2, 1e-1], np.zeros((2, 2)), [], num_classes=4, per_class=5
        )


def test_phase_diagram_threshold_line_is_k_sqrt_n_lamw_lamh_equal_one():
    grid = np.geomspace(1e-3, 1.0, 5)
    figure = plot_phase_diagram(grid, grid, np.ones((5, 5)), [], num_classes=4, per_class=5)
    line = next(line for line in figure.axes[0].get_lines() if len(line.get_xdata()) > 2)
    w, h = np.asarray(line.get_xdata()), np.asarray(line.get_ydata())
    np.testing.assert_allclose(4 * np.sqrt(5 * w * h), 1.0)


def test_gd_trajectories_need_at_least_one_solution():
    with pytest.raises(ValueError, match="at least one solve_gd result"):
        plot_gd_trajectories({}, num_classes=4)


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
