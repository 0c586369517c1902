"""``neuralcollapse report RUN_DIR... --out DIR``: read run directories, write the report."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from neuralcollapse.viz.html import HtmlReport
from neuralcollapse.viz.report.sections import add_training_sections
from neuralcollapse.viz.runs import load_runs
from neuralcollapse.viz.style import check_epoch_axis


def build_run_report(
    run_dirs: Sequence[str | Path],
    out_dir: str | Path,
    *,
    title: str | None = None,
    epoch_axis: str = "log",
) -> Path:
    """Read run directories and write DIR/report.html, DIR/figures/*.png, DIR/tables/*.csv.

    Parameters
    ----------
    run_dirs : directories written by ``neuralcollapse train`` (or CollapseTracker).
    out_dir : where to write the report (created if needed).
    title : page title (default names the runs).
    epoch_axis : ``"log"`` (symmetric-log when epoch 0 is measured) or ``"linear"``.

    Returns
    -------
    Path of report.html.
    """
    check_epoch_axis(epoch_axis)
    runs = load_runs(run_dirs)
    names = ", ".join(run.name for run in runs)
    report = HtmlReport(
        title or "Neural collapse report",
        subtitle=f"Runs: {names}. Metrics as defined in Papyan, Han & Donoho (PNAS 2020), "
        "with the project's conventions (docs/metrics.md).",
    )
    add_training_sections(
        report, runs, epoch_axis=epoch_axis, summary_title="Summary", measures=True
    )
    return report.write(out_dir)
