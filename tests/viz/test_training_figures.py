import math

import numpy as np
import pytest

from neuralcollapse.geometry import of_etf_distance
from neuralcollapse.viz.runs import load_run, load_runs
from neuralcollapse.viz.training_figures import (
    _profile_epochs,
    plot_depth_profile,
    plot_frame_gaps,
    plot_training_panels,
)


def test_panels_have_eight_titled_axes_with_log_scales_for_collapse_measures(two_fake_runs):
    figure = plot_training_panels(load_runs(two_fake_runs))
    panels = figure.axes
    assert len(panels) == 8
    assert all(axes.get_title() for axes in panels)
    assert panels[1].get_title().startswith("NC1")
    # collapse measures span decades: log y; errors are percentages: linear y
    assert [axes.get_yscale() for axes in panels[1:7]] == ["log"] * 6
    assert panels[0].get_yscale() == "linear"
    # epoch 0 is measured, so the epoch axis is symmetric-log
    assert all(axes.get_xscale() == "symlog" for axes in panels)


def _data_lines(axes):
    """Lines that carry data (not the vertical TPT markers or horizontal references)."""
    return [
        line
        for line in axes.get_lines()
        if len(set(np.atleast_1d(line.get_xdata()))) > 1
        and len(set(np.atleast_1d(line.get_ydata()))) > 1
    ]


def test_panels_draw_one_line_per_run_and_column(two_fake_runs):
    runs = load_runs(two_fake_runs)
    figure = plot_training_panels(runs)
    nc1_axes = figure.axes[1]
    lines = _data_lines(nc1_axes)
    assert len(lines) == len(runs)
    epochs, values = runs[0].series("nc1")
    np.testing.assert_allclose(lines[0].get_ydata(), values)
    # equinorm: means and classifier for each run
    equinorm_lines = _data_lines(figure.axes[2])
    assert len(equinorm_lines) == 2 * len(runs)


def test_panels_mark_the_first_zero_error_epoch(fake_run):
    run = load_run(fake_run)
    figure = plot_training_panels([run])
    vertical = [
        line
        for line in figure.axes[1].get_lines()
        if len(set(np.atleast_1d(line.get_xdata()))) == 1
    ]
    assert [float(line.get_xdata()[0]) for line in vertical] == [run.summary["tpt_epoch"]]


def test_panel_without_data_says_not_measured(fake_run):
    run = load_run(fake_run)
    for row in run.metrics:
        row["equiangular_weights"] = None
        row["equiangular_means"] = None
    figure = plot_training_panels([run])
    texts = [text.get_text() for text in figure.axes[3].texts]
    assert "not measured" in texts


def test_frame_gap_references_are_the_theoretical_etf_and_of_levels(fake_run):
    run = load_run(fake_run)
    figure = plot_frame_gaps([run])
    of_axes, ratio_axes, _ = figure.axes
    k = run.num_classes
    of_levels = sorted(
        float(line.get_ydata()[0]) for line in of_axes.get_lines() if line.get_linestyle() == "-."
    )
    ratio_levels = sorted(
        float(line.get_ydata()[0])
        for line in ratio_axes.get_lines()
        if line.get_linestyle() == "-."
    )
    assert of_levels == pytest.approx([0.0, of_etf_distance(k)])
    assert ratio_levels == pytest.approx([0.0, 1 / math.sqrt(k)])


def test_frame_gaps_draw_pre_and_post_relu_lines(fake_run):
    figure = plot_frame_gaps([load_run(fake_run)])
    styles = sorted(
        line.get_linestyle()
        for line in figure.axes[0].get_lines()
        if line.get_linestyle() != "-."  # the grey reference levels
    )
    assert styles == ["-", "--"]


def test_depth_profile_puts_layers_input_side_first_and_one_line_per_chosen_epoch(fake_run):
    run = load_run(fake_run)
    figure = plot_depth_profile([run], num_epochs=3)
    axes = figure.axes[0]
    labels = [tick.get_text() for tick in axes.get_xticklabels()]
    assert labels == ["layer1", "layer2", "penult. pre-ReLU", "penult. post-ReLU"]
    lines = axes.get_lines()
    assert len(lines) == 3
    # the last line is the last measured epoch, with the NC1 of each layer in order
    last_epoch = max(row["epoch"] for row in run.metrics)
    expected = [
        next(
            r["nc1"]
            for r in run.metrics
            if r["epoch"] == last_epoch and r["layer"] == layer and r["split"] == "train"
        )
        for layer in run.layers
    ]
    np.testing.assert_allclose(lines[-1].get_ydata(), expected)
    assert axes.get_yscale() == "log"


def test_profile_epochs_spread_and_always_include_the_last():
    chosen = _profile_epochs(list(range(100)), 5)
    assert len(chosen) == 5 and chosen[-1] == 99 and chosen == sorted(chosen)
    assert _profile_epochs([3, 1, 2], 5) == [1, 2, 3]


def test_depth_profile_rejects_non_positive_epoch_count(fake_run):
    with pytest.raises(ValueError, match=r"num_epochs must be an integer >= 1"):
        plot_depth_profile([load_run(fake_run)], num_epochs=0)


def test_figures_refuse_an_empty_run_list():
    with pytest.raises(ValueError, match="at least one TrainingRun"):
        plot_training_panels([])
