"""Figures, the self-contained HTML report and the demo.

- :mod:`neuralcollapse.viz.runs`: read a training run directory;
- :mod:`neuralcollapse.viz.training_figures`: Papyan-style panels, ETF-vs-OF gaps, depth profile;
- :mod:`neuralcollapse.viz.per_class_figures`: the per-class table against class size;
- :mod:`neuralcollapse.viz.html`: the self-contained HTML report builder;
- :mod:`neuralcollapse.viz.report`: ``neuralcollapse report``;
- :mod:`neuralcollapse.viz.demo`: ``neuralcollapse demo``.
"""

from neuralcollapse.viz.html import HtmlReport
from neuralcollapse.viz.per_class_figures import per_class_figure
from neuralcollapse.viz.report import build_run_report
from neuralcollapse.viz.runs import TrainingRun, load_run, load_runs
from neuralcollapse.viz.training_figures import (
    plot_depth_profile,
    plot_frame_gaps,
    plot_training_panels,
)

__all__ = [
    "HtmlReport",
    "TrainingRun",
    "build_run_report",
    "load_run",
    "load_runs",
    "per_class_figure",
    "plot_depth_profile",
    "plot_frame_gaps",
    "plot_training_panels",
]
