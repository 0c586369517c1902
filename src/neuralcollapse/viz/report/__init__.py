"""``neuralcollapse report RUN_DIR... --out DIR``: the HTML report of finished (or running) runs.

The report opens with a summary computed from each run (the epoch the terminal phase starts,
NC1 from the first to the last measured epoch, the NCC mismatch at the end, and the frame the
theory predicts for the run's loss and bias against the frame measured, each with a verdict),
then the Papyan-style panels over epochs, the ETF-vs-orthogonal-frame gaps of the penultimate
features before and after the final ReLU, the depth-wise NC1 profile, and tables of the last
measured epoch. The demo builds the same sections for its own training runs through
:func:`add_training_sections`.

Every caption is written from the run's numbers (:func:`panels_caption` and its siblings): a
caption says NC1 falls only where it does, and mentions a TPT line only where one is drawn.
Metric names, groups, directions and theory values come from :mod:`neuralcollapse.schema`;
the frame vocabulary and tolerance rule from :mod:`neuralcollapse.frames`.

One module per job:

- :mod:`~neuralcollapse.viz.report.checks`: the summary's checks and the measured frame;
- :mod:`~neuralcollapse.viz.report.captions`: every caption, computed from the runs;
- :mod:`~neuralcollapse.viz.report.tables`: the rows of every table, and adding a table;
- :mod:`~neuralcollapse.viz.report.columns`: how a table names a column;
- :mod:`~neuralcollapse.viz.report.sections`: the sections, in page order;
- :mod:`~neuralcollapse.viz.report.findings`: the verdicts of every section in one table at
  the top of a page, each linking to its section;
- :mod:`~neuralcollapse.viz.report.snapshot`: the page of one snapshot (``neuralcollapse
  probe``: one measurement, no epochs), :func:`build_snapshot_report`;
- :mod:`~neuralcollapse.viz.report.builder`: :func:`build_run_report` (a single snapshot run
  gets the snapshot page);
- :mod:`~neuralcollapse.viz.report.values` and :mod:`~neuralcollapse.viz.report.text`:
  reading numbers out of runs, and writing them in captions.
"""

from __future__ import annotations

from neuralcollapse.frames import classify_frame, frame_levels, frame_tolerances, predicted_frame
from neuralcollapse.viz.report.builder import (
    build_run_report,
)
from neuralcollapse.viz.report.captions import (
    ALL_LAYERS_CAPTION,
    SUMMARY_CAPTION,
    depth_caption,
    gaps_caption,
    generalisation_caption,
    imbalance_caption,
    mse_caption,
    overview_caption,
    panels_caption,
    panels_test_caption,
    robustness_caption,
)
from neuralcollapse.viz.report.checks import (
    CENTRED_ETF,
    ETF,
    FAILS,
    FRAME_TOLERANCE,
    HOLDS,
    NC4_TOLERANCE,
    NEITHER,
    ORTHOGONAL,
    UNKNOWN,
    Check,
    FrameMeasurement,
    frame_verdict,
    measured_frame,
    run_checks,
    run_loss_and_bias,
    summary_checks,
)
from neuralcollapse.viz.report.columns import (
    metric_column,
    metric_unit,
    run_column,
    table_column,
)
from neuralcollapse.viz.report.findings import (
    FINDINGS_TITLE,
    Finding,
    add_findings_section,
    depth_checks,
    findings_caption,
    generalisation_checks,
    mse_checks,
)
from neuralcollapse.viz.report.sections import (
    GENERALISATION_TITLE,
    IMBALANCE_TITLE,
    MEASURE_SECTIONS,
    MSE_TITLE,
    ROBUSTNESS_TITLE,
    MeasureSection,
    add_measure_sections,
    add_training_sections,
)
from neuralcollapse.viz.report.snapshot import (
    SNAPSHOT_TITLES,
    add_snapshot_sections,
    build_snapshot_report,
    is_snapshot,
    plot_snapshot_depth,
    plot_snapshot_frame,
    snapshot_checks,
)
from neuralcollapse.viz.report.tables import (
    GENERALISATION_KEYS,
    IMBALANCE_TABLE_KEYS,
    MSE_TABLE_KEYS,
    SUMMARY_METRICS,
    _add_table,
    constant_columns,
    final_metric_rows,
    generalisation_rows,
    imbalance_rows,
    mse_rows,
    summary_rows,
)

__all__ = [
    "ALL_LAYERS_CAPTION",
    "CENTRED_ETF",
    "Check",
    "ETF",
    "FAILS",
    "FINDINGS_TITLE",
    "Finding",
    "GENERALISATION_TITLE",
    "SNAPSHOT_TITLES",
    "add_findings_section",
    "add_snapshot_sections",
    "build_snapshot_report",
    "depth_checks",
    "findings_caption",
    "generalisation_checks",
    "is_snapshot",
    "mse_checks",
    "plot_snapshot_depth",
    "plot_snapshot_frame",
    "snapshot_checks",
    "FRAME_TOLERANCE",
    "FrameMeasurement",
    "GENERALISATION_KEYS",
    "HOLDS",
    "IMBALANCE_TABLE_KEYS",
    "IMBALANCE_TITLE",
    "MEASURE_SECTIONS",
    "MSE_TABLE_KEYS",
    "MSE_TITLE",
    "MeasureSection",
    "NC4_TOLERANCE",
    "NEITHER",
    "ORTHOGONAL",
    "ROBUSTNESS_TITLE",
    "SUMMARY_CAPTION",
    "SUMMARY_METRICS",
    "UNKNOWN",
    "_add_table",
    "add_measure_sections",
    "add_training_sections",
    "build_run_report",
    "classify_frame",
    "constant_columns",
    "depth_caption",
    "final_metric_rows",
    "frame_levels",
    "frame_tolerances",
    "frame_verdict",
    "gaps_caption",
    "generalisation_caption",
    "generalisation_rows",
    "imbalance_caption",
    "imbalance_rows",
    "measured_frame",
    "metric_column",
    "metric_unit",
    "mse_caption",
    "mse_rows",
    "overview_caption",
    "panels_caption",
    "panels_test_caption",
    "predicted_frame",
    "robustness_caption",
    "run_checks",
    "run_column",
    "run_loss_and_bias",
    "summary_checks",
    "summary_rows",
    "table_column",
]
