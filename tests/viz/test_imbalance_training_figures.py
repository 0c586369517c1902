"""Trained-network points on the minority-collapse phase picture, from hand-made run folders."""

import json
import math
from pathlib import Path

import pytest
from matplotlib.figure import Figure

from neuralcollapse.viz.imbalance_training_figures import (
    imbalance_run_point,
    trained_minority_figure,
)


def _write_run(path: Path, ratio, rows, tpt=3) -> Path:
    path.mkdir(parents=True)
    (path / "config.json").write_text(
        json.dumps({"version": 1, "imbalance": ratio, "minority_classes": 5 if ratio else None})
    )
    (path / "epochs.jsonl").write_text("".join(json.dumps(row) + "\n" for row in rows))
    (path / "summary.json").write_text(json.dumps({"tpt_epoch": tpt}))
    return path


def _row(epoch, weights, means, majority=0.98, minority=0.5, tracked=True):
    return {
        "epoch": epoch, "train_error": 0.0, "test_error": 0.2, "tracked": tracked,
        "accuracy_majority": majority, "accuracy_minority": minority,
        "minority_cosine_weights": weights,
        "minority_cosine_means": means if tracked else None,
    }  # fmt: skip


def test_point_reads_the_last_epoch_and_the_last_tracked_means(tmp_path):
    run = _write_run(
        tmp_path / "r10",
        10.0,
        [_row(1, -0.1, -0.1), _row(2, 0.2, 0.4), _row(3, 0.3, None, minority=0.6, tracked=False)],
    )
    point = imbalance_run_point(run)
    assert point["ratio"] == 10.0 and point["minority_classes"] == 5
    assert point["epoch"] == 3 and point["tpt_epoch"] == 3
    assert point["cosine_weights"] == 0.3  # last epoch
    assert point["cosine_means"] == 0.4  # last tracked epoch
    assert point["accuracy_minority"] == 0.6 and point["accuracy_majority"] == 0.98


def test_point_decodes_strict_json_strings_and_nulls(tmp_path):
    run = _write_run(tmp_path / "r1", 1.0, [_row(1, "NaN", None)])
    point = imbalance_run_point(run)
    assert math.isnan(point["cosine_weights"]) and math.isnan(point["cosine_means"])


def test_balanced_run_is_refused(tmp_path):
    run = _write_run(tmp_path / "plain", None, [_row(1, 0.0, 0.0)])
    with pytest.raises(ValueError, match="--imbalance"):
        imbalance_run_point(run)


def test_figure_has_two_panels_with_and_without_lpm_curves():
    points = [
        {"ratio": 100.0, "cosine_weights": 0.5, "cosine_means": 0.7,
         "accuracy_majority": 0.99, "accuracy_minority": 0.3},
        {"ratio": 1.0, "cosine_weights": -0.1, "cosine_means": None,
         "accuracy_majority": 0.97, "accuracy_minority": 0.97},
    ]  # fmt: skip
    lpm = {"LPM, E = 3": {"ratio": [1.0, 10.0, 100.0], "cosine": [-0.11, 0.0, 1.0]}}
    for curves in (lpm, None):
        figure = trained_minority_figure(points, curves, num_classes=10, title="t")
        assert isinstance(figure, Figure) and len(figure.axes) == 2
        lines = figure.axes[0].get_lines()
        # the points are drawn sorted by R
        weights = [line for line in lines if line.get_label() == "trained net: classifier rows"]
        assert list(weights[0].get_xdata()) == [0.0, 2.0]
        assert any(line.get_label() == "LPM, E = 3" for line in lines) == (curves is not None)


def test_figure_needs_points():
    with pytest.raises(ValueError, match="at least one"):
        trained_minority_figure([])


def test_trajectory_panel_from_a_run(tmp_path):
    from neuralcollapse.viz.imbalance_training_figures import imbalance_run_trajectory

    run = _write_run(
        tmp_path / "r100", 100.0,
        [_row(1, 0.5, 0.3), _row(2, 0.45, None, tracked=False), _row(3, 0.4, 0.1)], tpt=3,
    )  # fmt: skip
    trajectory = imbalance_run_trajectory(run)
    assert trajectory["epoch"] == [1, 3] and trajectory["cosine_weights"] == [0.5, 0.4]
    assert trajectory["cosine_means"] == [0.3, 0.1] and trajectory["tpt_epoch"] == 3
    point = imbalance_run_point(run)
    figure = trained_minority_figure([point], num_classes=10, trajectories=[trajectory])
    assert len(figure.axes) == 3
    labels = [line.get_label() for line in figure.axes[2].get_lines()]
    assert labels.count("R = 100") == 1 and len(figure.axes[2].get_lines()) >= 2
