"""``neuralcollapse report RUN_DIR... --out DIR``: read run directories, write the report."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from neuralcollapse.viz.html import HtmlReport
from neuralcollapse.viz.report.sections import add_training_sections
from neuralcollapse.viz.report.snapshot import build_snapshot_report, snapshot_runs
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

    One run measured at a single epoch (``neuralcollapse probe``'s run, epoch 0) is a
    snapshot, not a training run: its page is :func:`build_snapshot_report`'s (per-layer
    tables, depth profile, frame geometry, classifier metrics; nothing over epochs).

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
    if snapshot_runs(runs):
        return build_snapshot_report(runs[0], out_dir, title=title)
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
