"""The deepnet-spectra section of the report: G's outliers against Papyan's prediction.

Reads ``spectra.jsonl`` (``neuralcollapse train --track-spectra``; docs/spectra.md): per run,
the top eigenvalues of the Gauss-Newton matrix at the last tracked epoch on a log scale,
with the eigenvalues of the C^2 x C^2 Gram of the class / cross-class means (Papyan 2020)
beside them and the ranks C and C^2 marked; and the outlier count over the tracked epochs.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
from matplotlib.figure import Figure

from neuralcollapse import schema
from neuralcollapse.viz.runs import TrainingRun
from neuralcollapse.viz.style import REFERENCE_COLOUR, new_figure, run_colour, set_epoch_scale

#: the runs drawn at most (one panel each)
MAX_PANELS = 3


def has_spectra(run: TrainingRun) -> bool:
    return bool(run.spectra)


def _numbers(values) -> np.ndarray:
    return np.array([math.nan if v is None else float(schema.decode_value(v)) for v in values])


def plot_spectra(runs: Sequence[TrainingRun], *, epoch_axis: str = "log") -> Figure:
    """Per run (at most :data:`MAX_PANELS`): the last tracked epoch's top eigenvalues of G
    (log scale, by rank) and the Gram eigenvalues of Papyan's class / cross-class means; one
    more panel with each run's outlier count over the tracked epochs."""
    drawn = [run for run in runs if has_spectra(run)][:MAX_PANELS]
    figure, axes = new_figure(2, len(drawn) + 1, panel_size=(3.6, 2.9))
    for index, run in enumerate(drawn):
        _plot_density(axes[1][index], run, index)
    axes[1][len(drawn)].set_visible(False)
    for index, run in enumerate(drawn):
        panel, last = axes[0][index], run.spectra[-1]
        values = _numbers(last["top_eigenvalues"])
        gram = _numbers(last["papyan"]["gram_eigenvalues"])
        ranks = np.arange(1, len(values) + 1)
        positive = values > 0
        panel.semilogy(
            ranks[positive],
            values[positive],
            "o",
            markersize=3,
            color=run_colour(index),
            label="G (Lanczos)",
        )
        gram_positive = gram > 0
        panel.semilogy(
            np.arange(1, len(gram) + 1)[gram_positive],
            gram[gram_positive],
            "x",
            markersize=4,
            color=REFERENCE_COLOUR,
            label="class-means Gram",
        )
        classes = int(last[schema.NUM_CLASSES])
        for rank, label in ((classes, "C"), (classes * classes, "C²")):
            if rank <= len(values):
                panel.axvline(rank + 0.5, color=REFERENCE_COLOUR, linewidth=0.6, linestyle=":")
                panel.text(
                    rank + 0.5,
                    1.0,
                    f" {label}",
                    transform=panel.get_xaxis_transform(),
                    fontsize=7,
                    va="top",
                )
        panel.set_xlabel("rank")
        panel.set_ylabel("eigenvalue of G")
        panel.set_title(f"{run.name}, epoch {last['epoch']}", fontsize=8)
        panel.legend(fontsize=6)
    counts = axes[0][len(drawn)]
    for index, run in enumerate(drawn):
        epochs = [row["epoch"] for row in run.spectra]
        outliers = [row["outliers"]["count"] for row in run.spectra]
        counts.plot(
            epochs, _numbers(outliers), "o-", markersize=3, color=run_colour(index), label=run.name
        )
    all_epochs = [row["epoch"] for run in drawn for row in run.spectra]
    set_epoch_scale(counts, all_epochs, epoch_axis)
    counts.set_xlabel("epoch")
    counts.set_ylabel("outliers above the largest gap")
    counts.legend(fontsize=6)
    figure.suptitle("Gauss-Newton spectrum and the class / cross-class prediction (Papyan 2020)")
    return figure


def _plot_density(panel, run: TrainingRun, index: int) -> None:
    """The SLQ density of G at the last tracked epoch, on a log scale, with its error band."""
    last = run.spectra[-1]
    stored = last.get("density")
    if not stored:
        panel.text(
            0.5, 0.5, "no density stored", ha="center", va="center", transform=panel.transAxes
        )
        return
    grid, density = _numbers(stored["grid"]), _numbers(stored["density"])
    stderr = _numbers(stored["stderr"])
    floor = max(float(np.nanmax(density)) * 1e-8, 1e-300)
    colour = run_colour(index)
    panel.semilogy(grid, np.clip(density, floor, None), "-", color=colour, linewidth=1.0)
    panel.fill_between(
        grid,
        np.clip(density - stderr, floor, None),
        np.clip(density + stderr, floor, None),
        color=colour,
        alpha=0.2,
    )
    panel.set_xlabel("eigenvalue of G")
    panel.set_ylabel("density (SLQ)")
    panel.set_title(f"{run.name}, epoch {last['epoch']}: density ± 1 s.e.", fontsize=8)


def spectra_caption(runs: Sequence[TrainingRun], *, epoch_axis: str = "log") -> str:
    """What the figure shows, from the numbers drawn."""
    parts = []
    for run in [run for run in runs if has_spectra(run)][:MAX_PANELS]:
        last = run.spectra[-1]
        outliers = last["outliers"]
        errors = _numbers(last["papyan"]["relative_error"])
        median = float(np.nanmedian(errors)) if errors.size else math.nan
        classes = int(last[schema.NUM_CLASSES])
        parts.append(
            f"{run.name} at epoch {last['epoch']} ({last['num_parameters']} parameters, "
            f"{last[schema.NUM_SAMPLES]} samples, C = {classes}): {outliers['count']} eigenvalues "
            f"above the largest log-gap ({_decades(outliers['separation_decades'])}); the "
            f"class-means Gram matches the top {len(errors)} with median relative error "
            f"{median:.2g}"
            + (
                "; below, the spectral density by stochastic Lanczos quadrature "
                f"({last['density']['probes']} probes, Gaussian width "
                f"{float(last['density']['sigma']):.2g}) on a log scale with ±1 standard error"
                if last.get("density")
                else ""
            )
        )
    more = sum(has_spectra(run) for run in runs) - MAX_PANELS
    tail = f" ({more} more run(s) in the table only)" if more > 0 else ""
    return "; ".join(parts) + tail + "."


def _decades(value) -> str:
    value = schema.decode_value(value)
    return "no gap" if value is None else f"a gap of {float(value):.2g} decades"


def spectra_rows(runs: Sequence[TrainingRun]) -> list[dict]:
    """One row per run with spectra: the headline of its last tracked epoch."""
    rows = []
    for run in runs:
        if not has_spectra(run):
            continue
        last_epoch = run.spectra[-1]["epoch"]
        row = next((r for r in run.epochs if r["epoch"] == last_epoch), {})
        rows.append(
            {"run": run.name, "epoch": last_epoch}
            | {key: row.get(key) for key in schema.SPECTRA_KEYS}
        )
    return rows
