"""Figures of the implicit bias and of robustness over epochs: what is drawn, and empty data."""

from __future__ import annotations

import pytest
from matplotlib.figure import Figure

from neuralcollapse.ufm.implicit_bias import implicit_bias_gd
from neuralcollapse.viz.robustness_figures import (
    plot_implicit_bias,
    plot_robustness_over_epochs,
)


def _texts(figure):
    return [text.get_text() for axes in figure.axes for text in axes.texts]


def test_implicit_bias_figure_has_the_theory_line():
    result = implicit_bias_gd(3, 2, 4, steps=300, record_points=10)
    figure = plot_implicit_bias(result)
    assert isinstance(figure, Figure) and len(figure.axes) == 3
    margin_axes = figure.axes[0]
    levels = [line.get_ydata()[0] for line in margin_axes.lines if len(set(line.get_ydata())) == 1]
    assert any(level == pytest.approx(result.theory_margin) for level in levels)
    gd_line = margin_axes.lines[0]
    assert len(gd_line.get_xdata()) == len(result.trajectory)
    assert figure.axes[1].get_yscale() == "log" and figure.axes[2].get_yscale() == "log"
    figure.savefig(__import__("io").BytesIO(), format="png")


def _epoch_row(epoch, train_error, ratio=None, failed=None):
    return {
        "epoch": epoch,
        "train_error": train_error,
        "test_error": 0.2,
        "deepfool_ratio": ratio,
        "deepfool_failed_fraction": failed,
    }


def test_robustness_figure_draws_measured_epochs_and_the_metric():
    epochs = [
        _epoch_row(1, 0.5, 0.01, 0.0),
        _epoch_row(2, 0.1),  # not measured
        _epoch_row(3, 0.0, 0.02, 0.1),
        _epoch_row(4, 0.0, "NaN", None),
        _epoch_row(5, 0.0, 0.03, 0.0),
    ]
    metrics = [
        {"epoch": e, "split": "train", "layer": "penultimate_post", "nc1": 1.0 / e}
        for e in (1, 3, 5)
    ] + [{"epoch": 3, "split": "test", "layer": "penultimate_post", "nc1": 9.0}]
    figure = plot_robustness_over_epochs(epochs, metrics, label="run")
    assert isinstance(figure, Figure)
    robust_axes, metric_axes = figure.axes[0], figure.axes[1]
    assert list(robust_axes.lines[0].get_xdata()) == [1, 3, 5]
    assert list(robust_axes.lines[0].get_ydata()) == [0.01, 0.02, 0.03]
    assert list(metric_axes.lines[0].get_ydata()) == [1.0, 1 / 3, 1 / 5]  # train split only
    assert len(figure.axes) == 3  # a failed fraction > 0 adds its own axis
    tpt_lines = [line for line in metric_axes.lines if list(line.get_xdata()) == [3, 3]]
    assert tpt_lines, "the first zero-training-error epoch is marked"


def test_robustness_figure_without_measurements():
    figure = plot_robustness_over_epochs([_epoch_row(1, 0.3), _epoch_row(2, 0.2)])
    assert "DeepFool not measured" in _texts(figure)
    assert "nc1 not measured" in _texts(figure)
    with pytest.raises(ValueError, match="no epoch rows"):
        plot_robustness_over_epochs([])
