"""``neuralcollapse report RUN_DIR... --out DIR``: the HTML report of finished (or running) runs.

The report has three sections: the Papyan-style panels over epochs, the ETF-vs-orthogonal-frame
gaps of the penultimate features before and after the final ReLU, and the depth-wise NC1 profile,
followed by tables of the last measured epoch. The demo builds the same sections for its own
training runs through :func:`add_training_sections`.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from neuralcollapse.viz.html import HtmlReport
from neuralcollapse.viz.runs import PENULTIMATE_POST, PENULTIMATE_PRE, TrainingRun, load_runs
from neuralcollapse.viz.training_figures import (
    plot_depth_profile,
    plot_frame_gaps,
    plot_training_panels,
)

#: CollapseMetrics columns shown in the summary table (the CSV of all layers has every column)
SUMMARY_METRICS: tuple[str, ...] = (
    "nc1",
    "equinorm_means",
    "equiangular_means",
    "maxangle_means",
    "self_duality",
    "self_duality_uncentred",
    "ncc_mismatch",
    "of_gap_means",
    "global_mean_ratio",
)

PANELS_CAPTION = (
    "Look at: the error reaching zero (dotted vertical line: first zero-error epoch, the start of "
    "the terminal phase), then every collapse measure still falling on the log axes (Papyan et al. "
    "2020, Figs. 2-7): NC1 (within-class variability against between-class), equinorm and "
    "equiangularity of the centred class means (solid) and classifier rows (dashed), max-angle, "
    "self-duality and the NCC mismatch. Self-duality against the uncentred means (dotted) is the "
    "one that goes to zero when the means form an orthogonal frame (MSE, no classifier bias)."
)
GAPS_CAPTION = (
    "Look at: which frame the penultimate class means approach. An orthogonal frame has OF gap 0 "
    "and global-mean ratio 1/√K; a simplex ETF has OF gap √(2−2√((K−1)/K)) and ratio 0 (grey "
    "lines). The extended UFM (Tirer & Bruna 2022) predicts the orthogonal frame for the post-ReLU "
    "features (solid) under MSE without classifier bias; the pre-ReLU features (dashed) are left "
    "free by the theory. The centred ETF gap (right) reads 0 for both frames."
)
DEPTH_CAPTION = (
    "Look at: NC1 decreasing from the first layers to the penultimate features, and the deeper "
    "layers collapsing more as training goes on (lighter lines are earlier epochs); Tirer & Bruna "
    "(2022, Sec. 5) report this depth-wise decrease."
)
SUMMARY_CAPTION = (
    "Look at: one row per run at its last measured epoch (training split, post-ReLU penultimate "
    "features unless marked pre-ReLU). tpt_epoch is the first epoch with zero training error."
)
ALL_LAYERS_CAPTION = (
    "Every CollapseMetrics field at the last measured epoch, for every split and layer "
    "(the full table is in tables/final_metrics.csv)."
)


def summary_rows(runs: Sequence[TrainingRun]) -> list[dict]:
    """One row per run: status, final errors and the main metrics at the last measured epoch."""
    rows = []
    for run in runs:
        summary = run.summary or {}
        final_epoch = summary.get("final") or (run.epochs[-1] if run.epochs else {})
        post = run.last_row(layer=PENULTIMATE_POST) or {}
        pre = run.last_row(layer=PENULTIMATE_PRE) or {}
        row: dict[str, object] = {
            "run": run.name,
            "description": run.describe(),
            "epochs_done": summary.get("epochs_done", final_epoch.get("epoch")),
            "finished": summary.get("finished"),
            "tpt_epoch": summary.get("tpt_epoch"),
            "train_error": final_epoch.get("train_error", post.get("train_error")),
            "test_error": final_epoch.get("test_error", post.get("test_error")),
            "measured_epoch": post.get("epoch"),
        }
        for key in SUMMARY_METRICS:
            row[key] = post.get(key)
        row["of_gap_means_pre"] = pre.get("of_gap_means")
        row["global_mean_ratio_pre"] = pre.get("global_mean_ratio")
        rows.append(row)
    return rows


def final_metric_rows(runs: Sequence[TrainingRun]) -> list[dict]:
    """The last measured row of every (run, split, layer), all columns."""
    rows = []
    for run in runs:
        for split in run.splits:
            for layer in run.layers:
                last = run.last_row(layer=layer, split=split)
                if last is not None:
                    rows.append({"run": run.name, **last})
    return rows


def add_training_sections(
    report: HtmlReport,
    runs: Sequence[TrainingRun],
    *,
    name_prefix: str = "",
    title_prefix: str = "",
    intro: str = "",
) -> None:
    """Append the panels, frame gaps, depth profile and tables of ``runs`` to ``report``.

    Figure and table names get ``name_prefix`` so several groups of runs can share a report.
    """
    section = report.section(f"{title_prefix}Neural collapse over training", intro)
    section.add_figure(f"{name_prefix}training_panels", plot_training_panels(runs), PANELS_CAPTION)
    if any("test" in run.splits for run in runs):
        section.add_figure(
            f"{name_prefix}training_panels_test",
            plot_training_panels(runs, split="test"),
            "The same panels measured on the test split: collapse there is weaker (Papyan et al. "
            "measure on the training set; test-set NC1 stays higher).",
        )
    has_pre = any(PENULTIMATE_PRE in run.layers for run in runs)
    gaps = report.section(f"{title_prefix}ETF or orthogonal frame: pre- and post-ReLU features")
    if has_pre or any(PENULTIMATE_POST in run.layers for run in runs):
        gaps.add_figure(f"{name_prefix}frame_gaps", plot_frame_gaps(runs), GAPS_CAPTION)
    depth = report.section(f"{title_prefix}Depth-wise NC1 profile")
    depth.add_figure(f"{name_prefix}depth_profile", plot_depth_profile(runs), DEPTH_CAPTION)
    tables = report.section(f"{title_prefix}Tables")
    tables.add_table(f"{name_prefix}summary", summary_rows(runs), SUMMARY_CAPTION)
    all_rows = final_metric_rows(runs)
    tables.add_table(
        f"{name_prefix}final_metrics",
        all_rows,
        ALL_LAYERS_CAPTION.replace("final_metrics", f"{name_prefix}final_metrics"),
        columns=_final_columns(all_rows),
    )


def _final_columns(rows: Sequence[dict]) -> list[str]:
    leading = ["run", "split", "layer", "epoch", "train_error", "test_error", "nc1"]
    seen = dict.fromkeys(key for row in rows for key in row)
    return leading + [key for key in seen if key not in leading]


def build_run_report(
    run_dirs: Sequence[str | Path], out_dir: str | Path, *, title: str | None = None
) -> Path:
    """Read run directories and write DIR/report.html, DIR/figures/*.png, DIR/tables/*.csv.

    Parameters
    ----------
    run_dirs : directories written by ``neuralcollapse train``.
    out_dir : where to write the report (created if needed).
    title : page title (default names the runs).

    Returns
    -------
    Path of report.html.
    """
    runs = load_runs(run_dirs)
    names = ", ".join(run.name for run in runs)
    report = HtmlReport(
        title or "Neural collapse report",
        subtitle=f"Runs: {names}. Metrics as defined in Papyan, Han & Donoho (PNAS 2020), "
        "with the project's conventions (docs/metrics.md).",
    )
    add_training_sections(report, runs)
    return report.write(out_dir)
