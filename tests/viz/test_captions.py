"""Captions are computed from the runs: each claim agrees with the figure next to it."""

from __future__ import annotations

import numpy as np
from matplotlib.colors import to_rgb

from neuralcollapse.viz.report import (
    depth_caption,
    gaps_caption,
    measured_frame,
    panels_caption,
    panels_test_caption,
)
from neuralcollapse.viz.runs import load_run, load_runs
from neuralcollapse.viz.training_figures import (
    plot_depth_profile,
    plot_training_panels,
    profile_epochs,
)

from .fake_runs import write_fake_run


def _vertical_lines(axes) -> list[float]:
    return [
        float(line.get_xdata()[0])
        for line in axes.get_lines()
        if len(set(np.atleast_1d(line.get_xdata()))) == 1
    ]


def _legend_texts(figure) -> list[str]:
    return [text.get_text() for legend in figure.legends for text in legend.get_texts()]


def test_caption_of_a_run_whose_nc1_rises_says_it_rises(tmp_path):
    run = load_run(write_fake_run(tmp_path / "run", rising=("nc1",)))
    _, nc1 = run.series("nc1")
    assert nc1[-1] > nc1[0]
    caption = panels_caption([run])
    assert "NC1 rises in run" in caption
    assert "NC1 falls" not in caption
    assert "still falling" not in caption and "every collapse measure" not in caption


def test_caption_of_a_run_whose_nc1_falls_says_it_falls_with_the_factor(tmp_path):
    run = load_run(write_fake_run(tmp_path / "run"))
    _, nc1 = run.series("nc1")
    caption = panels_caption([run])
    assert f"NC1 falls in run (÷{nc1[0] / nc1[-1]:.3g})" in caption
    assert "rises" not in caption


def test_caption_of_mixed_runs_names_which_rises_and_which_falls(tmp_path):
    runs = load_runs(
        [write_fake_run(tmp_path / "up", rising=("nc1",)), write_fake_run(tmp_path / "down")]
    )
    caption = panels_caption(runs)
    assert "NC1 rises in up (×" in caption and "falls in down (÷" in caption
    assert "in every run" not in caption.split("NC1")[1]


def test_a_measure_that_rises_is_named_as_not_falling(tmp_path):
    run = load_run(write_fake_run(tmp_path / "run", rising=("self_duality",)))
    caption = panels_caption([run])
    assert "Not falling: NC3 (run rises ×" in caption
    falling = caption.split("Falling in the run: ")[1].split(".")[0]
    assert "NC3," not in falling and "NC2 equinorm (means)" in falling


def test_tpt_is_mentioned_exactly_when_its_line_is_drawn(tmp_path):
    reached = load_run(write_fake_run(tmp_path / "reached"))
    figure = plot_training_panels([reached])
    assert _vertical_lines(figure.axes[1]) == [5.0]
    assert any("TPT" in text for text in _legend_texts(figure))
    assert "dotted vertical line at the first epoch with zero training error" in panels_caption(
        [reached]
    )

    never = load_run(write_fake_run(tmp_path / "never", final_train_error=0.05))
    figure = plot_training_panels([never])
    assert all(_vertical_lines(axes) == [] for axes in figure.axes)
    assert not any("TPT" in text for text in _legend_texts(figure))
    caption = panels_caption([never])
    assert "dotted vertical" not in caption
    assert "never does not reach zero training error (last 5% at epoch 11)" in caption


def test_depth_caption_names_the_drawn_epochs_from_dark_to_light(tmp_path):
    run = load_run(write_fake_run(tmp_path / "run"))
    figure = plot_depth_profile([run])
    lines = figure.axes[0].get_lines()
    labels = [line.get_label() for line in lines]
    chosen = profile_epochs(run)
    assert labels == [f"epoch {epoch}" for epoch in chosen]
    caption = depth_caption([run])
    assert "epochs " + ", ".join(str(e) for e in chosen[:-1]) + f" and {chosen[-1]}" in caption
    assert "dark purple (earliest drawn) to yellow (latest)" in caption

    # the colours really go from dark (first epoch) to light (last epoch)
    def luminance(line):
        red, green, blue = to_rgb(line.get_color())
        return 0.2126 * red + 0.7152 * green + 0.0722 * blue

    shades = [luminance(line) for line in lines]
    assert shades == sorted(shades) and shades[0] < 0.3 < 0.7 < shades[-1]


def test_depth_caption_says_whether_nc1_falls_with_depth(tmp_path):
    run = load_run(write_fake_run(tmp_path / "run"))
    assert "NC1 falls at every step from layer1" in depth_caption([run])
    # reverse the depth order of NC1 at the last epoch: it now rises with depth
    for row in run.metrics:
        if row["epoch"] == 11 and row["split"] == "train":
            row["nc1"] = {"layer1": 0.1, "layer2": 0.2, "penultimate_pre": 0.3}.get(
                row["layer"], 0.4
            )
    caption = depth_caption([run])
    assert "NC1 does not fall with depth, from layer1 (0.1) to penult. post-ReLU (0.4)" in caption


def test_gaps_caption_reports_the_frame_the_summary_measures(tmp_path):
    runs = load_runs(
        [
            write_fake_run(tmp_path / "of"),
            write_fake_run(tmp_path / "etf", frame="etf"),
        ]
    )
    caption = gaps_caption(runs)
    for run in runs:
        assert measured_frame(run).describe() in caption
    assert "of: theory predicts orthogonal frame" in caption
    assert "so the prediction holds" in caption and "so the prediction does not hold" in caption
    assert "1/√K = 0.5" in caption


def test_test_split_caption_compares_test_and_train_nc1_as_measured(tmp_path):
    run = load_run(write_fake_run(tmp_path / "run"))
    for row in run.metrics:
        if row["split"] == "test":
            row["nc1"] = 2 * row["nc1"]
    assert "test NC1" in panels_test_caption([run]) and " is above train NC1" in (
        panels_test_caption([run])
    )
    for row in run.metrics:
        if row["split"] == "test":
            row["nc1"] = row["nc1"] / 4
    assert " is not above train NC1" in panels_test_caption([run])


def test_captions_say_which_epoch_axis_is_drawn(tmp_path):
    run = load_run(write_fake_run(tmp_path / "run"))
    assert "symmetric-log" in panels_caption([run])
    assert "Epochs on a linear axis." in panels_caption([run], epoch_axis="linear")
    assert plot_training_panels([run], epoch_axis="linear").axes[1].get_xscale() == "linear"
    later = load_run(write_fake_run(tmp_path / "later", measured=(1, 2, 4, 8, 11)))
    (later.path / "epochs.jsonl").unlink()
    later = load_run(later.path)
    assert "Epochs on a log axis." in panels_caption([later])


def test_every_generated_caption_starts_with_look_at(tmp_path):
    runs = load_runs([write_fake_run(tmp_path / "a"), write_fake_run(tmp_path / "b", frame="etf")])
    for caption in (
        panels_caption(runs),
        panels_test_caption(runs),
        gaps_caption(runs),
        depth_caption(runs),
    ):
        assert caption.startswith("Look at: ")
