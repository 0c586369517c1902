import numpy as np
import torch

from neuralcollapse.cli import main
from neuralcollapse.metrics import measure
from neuralcollapse.viz.per_class_figures import per_class_figure


def imbalanced_problem(with_weights: bool):
    g = torch.Generator().manual_seed(0)
    counts = [2, 5, 20, 80, 300]
    labels = torch.cat([torch.full((n,), k) for k, n in enumerate(counts)])
    centres = 4.0 * torch.randn(5, 8, generator=g, dtype=torch.float64)
    features = centres[labels] + torch.randn(len(labels), 8, generator=g, dtype=torch.float64)
    weights = torch.randn(5, 8, generator=g, dtype=torch.float64) if with_weights else None
    return measure(features, labels, weights), counts


def test_one_panel_per_available_column_with_one_point_per_class():
    result, counts = imbalanced_problem(with_weights=True)
    figure = per_class_figure(result.per_class)
    visible = [axes for axes in figure.axes if axes.get_visible()]
    assert len(visible) == 5  # variance, CDNV, ||m_k||, ||w_k||, <w_k, m_k>
    for axes in visible:
        points = axes.collections[0].get_offsets()
        assert len(points) == 5
        np.testing.assert_array_equal(np.asarray(points)[:, 0], counts)
        assert axes.get_xscale() == "log"
    variance_axes = visible[0]
    np.testing.assert_allclose(
        np.asarray(variance_axes.collections[0].get_offsets())[:, 1],
        result.per_class.within_variance,
    )


def test_without_a_classifier_its_panels_are_left_out():
    result, _ = imbalanced_problem(with_weights=False)
    figure = per_class_figure(result.per_class)
    labels = [axes.get_ylabel() for axes in figure.axes if axes.get_visible()]
    assert len(labels) == 3 and not any("w_k" in label for label in labels)


def test_measure_command_draws_the_per_class_figure(tmp_path):
    rng = np.random.default_rng(2)
    labels = np.arange(4).repeat(10)
    features = rng.normal(size=(40, 6)) + 3 * np.eye(4, 6)[labels]
    np.savez(tmp_path / "f.npz", features=features, labels=labels)
    png = tmp_path / "classes.png"
    assert main(["measure", str(tmp_path / "f.npz"), "--per-class-figure", str(png)]) == 0
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
