"""Figures, the self-contained HTML report and the demo.

- :mod:`neuralcollapse.viz.runs`: read a training run directory;
- :mod:`neuralcollapse.viz.training_figures`: Papyan-style panels, ETF-vs-OF gaps, depth profile;
- :mod:`neuralcollapse.viz.per_class_figures`: the per-class table against class size;
- :mod:`neuralcollapse.viz.ufm_figures`: UFM phase diagrams (``ufm-sweep``, the demo), solver
  trajectories (``ufm --plot``, the demo) and the lam_b path;
- :mod:`neuralcollapse.viz.html`: the self-contained HTML report builder;
- :mod:`neuralcollapse.viz.report`: ``neuralcollapse report``;
- :mod:`neuralcollapse.viz.demo`: ``neuralcollapse demo``.
"""

from typing import TYPE_CHECKING

from neuralcollapse.lazy import lazy_exports

__all__ = [
    "HtmlReport",
    "TrainingRun",
    "build_run_report",
    "load_run",
    "load_runs",
    "per_class_figure",
    "plot_bias_path",
    "plot_depth_profile",
    "plot_frame_gaps",
    "plot_phase_diagram",
    "plot_training_panels",
    "plot_trajectories",
]

#: export -> the module that defines it
_EXPORTS = {
    "HtmlReport": "neuralcollapse.viz.html",
    "per_class_figure": "neuralcollapse.viz.per_class_figures",
    "build_run_report": "neuralcollapse.viz.report",
    "TrainingRun": "neuralcollapse.viz.runs",
    "load_run": "neuralcollapse.viz.runs",
    "load_runs": "neuralcollapse.viz.runs",
    "plot_depth_profile": "neuralcollapse.viz.training_figures",
    "plot_frame_gaps": "neuralcollapse.viz.training_figures",
    "plot_training_panels": "neuralcollapse.viz.training_figures",
    "plot_bias_path": "neuralcollapse.viz.ufm_figures",
    "plot_phase_diagram": "neuralcollapse.viz.ufm_figures",
    "plot_trajectories": "neuralcollapse.viz.ufm_figures",
}


if TYPE_CHECKING:  # the lazy exports, visible to type checkers and IDEs
    from neuralcollapse.viz.html import HtmlReport
    from neuralcollapse.viz.per_class_figures import per_class_figure
    from neuralcollapse.viz.report import build_run_report
    from neuralcollapse.viz.runs import TrainingRun, load_run, load_runs
    from neuralcollapse.viz.training_figures import (
        plot_depth_profile,
        plot_frame_gaps,
        plot_training_panels,
    )
    from neuralcollapse.viz.ufm_figures import plot_bias_path, plot_phase_diagram, plot_trajectories


__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS, globals())
