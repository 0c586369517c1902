"""The transfer section of the report: collapse and few-shot error on classes never trained on.

Reads the transfer columns of ``epochs.jsonl`` (``neuralcollapse train --transfer-classes``;
:data:`neuralcollapse.schema.TRANSFER_KEYS`) and the training classes' CDNV from
``metrics.jsonl`` (training split, post-ReLU penultimate features). Galanti, György & Hutter
(ICLR 2022) tie transfer to neural collapse: when the penultimate features of classes withheld
from training also collapse (small CDNV), a nearest-class-centre classifier built from m
samples of each new class errs little, and (k - 1)(12 + 6/m) CDNV bounds its expected error
(docs/theory.md, docs/frontier.md).

Values are fractions throughout (figure, caption and table alike), as the run files hold them.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
from matplotlib.figure import Figure
from matplotlib.lines import Line2D

from neuralcollapse import schema
from neuralcollapse.train.config import parse_classes
from neuralcollapse.viz.epoch_columns import (
    arrays,
    cell,
    epoch_axis_sentence,
    epoch_series,
    not_computed_sentence,
    number,
)
from neuralcollapse.viz.runs import PENULTIMATE_POST, TrainingRun
from neuralcollapse.viz.style import (
    REFERENCE_COLOUR,
    mark_empty,
    new_figure,
    nice_number,
    plot_finite,
    plot_positive,
    run_colour,
    run_legend,
    set_epoch_scale,
)

# the schema declares the group in this order: the withheld classes' CDNV, the few-shot error,
# its standard error, the bound
TRANSFER_CDNV, TRANSFER_ERROR, TRANSFER_STDERR, TRANSFER_BOUND = schema.TRANSFER_KEYS

#: the table's columns: the run, its last tracked epoch with transfer data, the training
#: classes' CDNV at that epoch and the four transfer columns
TRANSFER_TABLE_KEYS: tuple[str, ...] = ("run", "epoch", schema.CDNV, *schema.TRANSFER_KEYS)


def has_transfer(run: TrainingRun) -> bool:
    """Whether some epoch of the run has a few-shot error (a finite ``transfer_error``)."""
    return bool(epoch_series(run, TRANSFER_ERROR))


def withheld_classes(spec: object) -> tuple[int, ...] | None:
    """The classes of config.json's ``transfer_classes`` ("5-9", "5,7,9"), read as the
    harness reads them (:func:`neuralcollapse.train.config.parse_classes`); None when absent
    or not readable (the report never fails on a config it cannot read: the caption then
    says "k-way" without a number)."""
    if not isinstance(spec, str):
        return None
    try:
        return parse_classes(spec) or None
    except ValueError:
        return None


def episode_shape(run: TrainingRun) -> tuple[int | None, int | None]:
    """``(k, m)`` of the run's episodes from its config: ``transfer_ways`` (None: all the
    withheld classes) and ``transfer_shots``; None where the config does not say."""
    ways = number(run.config.get("transfer_ways"))
    if ways is None:
        classes = withheld_classes(run.config.get("transfer_classes"))
        k = len(classes) if classes else None
    else:
        k = int(ways)
    shots = number(run.config.get("transfer_shots"))
    return k, None if shots is None else int(shots)


def _task_name(run: TrainingRun) -> str:
    """ "5-way 5-shot", or "k-way m-shot" for what the config does not say."""
    k, m = episode_shape(run)
    return f"{'k' if k is None else k}-way {'m' if m is None else m}-shot"


def _training_cdnv(run: TrainingRun) -> list[tuple[int, float]]:
    """``(epoch, CDNV)`` of the training classes (training split, post-ReLU penultimate
    features) where it is finite."""
    epochs, values = run.series(schema.CDNV, layer=PENULTIMATE_POST, split="train")
    return [
        (int(e), float(v))
        for e, v in zip(epochs.tolist(), values.tolist(), strict=True)
        if math.isfinite(v)
    ]


def _positive(series: Sequence[tuple[int, float]]) -> list[tuple[int, float]]:
    # what a log axis draws: the caption reads the same points
    return [(e, v) for e, v in series if v > 0]


def _error_points(run: TrainingRun) -> list[tuple[int, float, float | None]]:
    """``(epoch, error, stderr or None)`` at every epoch with a finite few-shot error."""
    points = []
    for row in sorted(run.epochs, key=lambda row: row["epoch"]):
        error = number(row.get(TRANSFER_ERROR))
        if error is None or not math.isfinite(error):
            continue
        stderr = number(row.get(TRANSFER_STDERR))
        if stderr is not None and not math.isfinite(stderr):
            stderr = None
        points.append((int(row["epoch"]), error, stderr))
    return points


def plot_transfer(runs: Sequence[TrainingRun], *, epoch_axis: str = "log") -> Figure:
    """Two panels over the tracked epochs, one colour per run (its index among ``runs``, as
    in the report's other figures), runs without transfer data left out.

    Left (log y): the CDNV of the training classes (solid; training split, post-ReLU
    penultimate features, from metrics.jsonl) and of the withheld classes (dashed,
    ``transfer_cdnv``). Right: the few-shot error (solid) with a band of ±1 standard error,
    and the bound min(1, (k-1)(12+6/m) CDNV) (dotted). Untracked epochs (None) and values not
    computed are left out; non-positive CDNVs cannot sit on the log axis and are left out too.
    """
    figure, axes = new_figure(1, 2, panel_size=(4.2, 3.2))
    cdnv_panel, error_panel = axes[0]
    drawn: list[int] = []
    all_epochs: list[float] = []
    cdnv_drawn = error_drawn = False
    for index, run in enumerate(runs):
        if not has_transfer(run):
            continue
        drawn.append(index)
        colour = run_colour(index)
        for series, style in (
            (_training_cdnv(run), "-"),
            (epoch_series(run, TRANSFER_CDNV), "--"),
        ):
            epochs, values = arrays(series)
            all_epochs.extend(epochs.tolist())
            cdnv_drawn |= plot_positive(
                cdnv_panel, epochs, values, color=colour, linestyle=style, marker="o",
                markersize=3, linewidth=1.2,
            )  # fmt: skip
        points = _error_points(run)
        epochs = np.array([e for e, _, _ in points], dtype=float)
        errors = np.array([v for _, v, _ in points], dtype=float)
        all_epochs.extend(epochs.tolist())
        error_drawn |= plot_finite(
            error_panel, epochs, errors, color=colour, marker="o", markersize=3, linewidth=1.2
        )
        # the band only where the standard error was computed
        banded = [(e, v, s) for e, v, s in points if s is not None]
        if banded:
            band_epochs = np.array([e for e, _, _ in banded], dtype=float)
            middle = np.array([v for _, v, _ in banded], dtype=float)
            spread = np.array([s for _, _, s in banded], dtype=float)
            error_panel.fill_between(
                band_epochs, middle - spread, middle + spread, color=colour, alpha=0.2, linewidth=0
            )
        bound_epochs, bounds = arrays(epoch_series(run, TRANSFER_BOUND))
        all_epochs.extend(bound_epochs.tolist())
        error_drawn |= plot_finite(
            error_panel, bound_epochs, bounds, color=colour, linestyle=":", linewidth=1.4
        )
    for panel, has_data in ((cdnv_panel, cdnv_drawn), (error_panel, error_drawn)):
        if has_data:
            set_epoch_scale(panel, all_epochs, epoch_axis)
        else:
            mark_empty(panel)
    cdnv_panel.set_ylabel("CDNV (penultimate features)")
    cdnv_panel.set_title("CDNV: training classes and new classes", fontsize=9)
    cdnv_panel.legend(
        handles=[
            Line2D([], [], color=REFERENCE_COLOUR, linestyle="-", label="training classes"),
            Line2D([], [], color=REFERENCE_COLOUR, linestyle="--", label="new classes"),
        ],
        fontsize=7,
    )
    # an error is a fraction in [0, 1]; the bound is clipped at 1
    error_panel.set_ylim(-0.02, 1.05)
    error_panel.set_ylabel("few-shot error on the new classes")
    error_panel.set_title("nearest-class-centre error ± 1 s.e., and the bound", fontsize=9)
    error_panel.legend(
        handles=[
            Line2D([], [], color=REFERENCE_COLOUR, linestyle="-", label="error (mean of episodes)"),
            Line2D([], [], color=REFERENCE_COLOUR, linestyle=":", label="bound (clipped at 1)"),
        ],
        fontsize=7,
    )
    run_legend(figure, runs, drawn, ())
    figure.suptitle("Transfer to classes withheld from training (Galanti, György & Hutter 2022)")
    return figure


def _span(name: str, series: Sequence[tuple[int, float]]) -> str:
    """ "NAME went from a to b (epochs e0 to e1)", from the first and last points drawn."""
    if not series:
        return f"{name} was not recorded"
    (first_epoch, first), (last_epoch, last) = series[0], series[-1]
    if len(series) == 1:
        return f"{name} was {nice_number(first)} (epoch {first_epoch} only)"
    return (
        f"{name} went from {nice_number(first)} to {nice_number(last)} "
        f"(epochs {first_epoch} to {last_epoch})"
    )


def _with_stderr(value: float, stderr: float | None) -> str:
    return nice_number(value) + ("" if stderr is None else f" ± {nice_number(stderr)}")


#: how the few-shot error moved from the first to the last tracked epoch
FELL, ROSE, UNCHANGED, NOT_JUDGED = "fell", "rose", "unchanged", "not judged"


def error_change(run: TrainingRun) -> tuple[str, str]:
    """``(movement, text)``: how the few-shot error moved from the first to the last tracked
    epoch (:data:`FELL`, :data:`ROSE`, :data:`UNCHANGED` within twice the combined standard
    error, or :data:`NOT_JUDGED`), and the values with their standard errors and epochs."""
    points = _error_points(run)
    (first_epoch, first, first_se), (last_epoch, last, last_se) = points[0], points[-1]
    if len(points) == 1:
        return NOT_JUDGED, f"{_with_stderr(first, first_se)} (epoch {first_epoch} only)"
    text = (
        f"{_with_stderr(first, first_se)} (epoch {first_epoch}) → "
        f"{_with_stderr(last, last_se)} (epoch {last_epoch})"
    )
    if first_se is None or last_se is None:
        return NOT_JUDGED, text
    # the difference of the two means is given the standard error sqrt(se0^2 + se1^2) of
    # independent ones; the harness draws the same seeded episodes at every epoch, whose
    # errors are positively correlated, so this errs on the side of "not measurably"
    combined = math.hypot(first_se, last_se)
    change = last - first
    if -change > 2 * combined:
        return FELL, text
    if change > 2 * combined:
        return ROSE, text
    return UNCHANGED, text


def _error_sentence(run: TrainingRun) -> str:
    """How the few-shot error moved, judged against twice the combined standard error."""
    points = _error_points(run)
    task = f"the {_task_name(run)} error"
    (first_epoch, first, first_se), (last_epoch, last, last_se) = points[0], points[-1]
    if len(points) == 1:
        return f"{task} was {_with_stderr(first, first_se)} (epoch {first_epoch} only)"
    text = (
        f"{task} went from {_with_stderr(first, first_se)} to {_with_stderr(last, last_se)} "
        f"(epochs {first_epoch} to {last_epoch})"
    )
    movement, _ = error_change(run)
    if movement == NOT_JUDGED:
        return text + ": its standard error was not computed, so no change is judged"
    combined = math.hypot(first_se, last_se)
    change = last - first
    threshold = f"twice the combined standard error, 2√(s₀² + s₁²) = {nice_number(2 * combined)}"
    if movement == FELL:
        return text + f": it fell by {nice_number(-change)}, more than {threshold}"
    if movement == ROSE:
        return text + f": it rose by {nice_number(change)}, more than {threshold}"
    return text + (
        f": it did not change measurably (a change of {nice_number(change)}, within {threshold})"
    )


def _bound_sentence(run: TrainingRun) -> str:
    """Whether the bound said anything (< 1) at some tracked epoch."""
    bounds = epoch_series(run, TRANSFER_BOUND)
    if not bounds:
        return "the bound was not computed"
    informative = [(e, v) for e, v in bounds if v < 1]
    if not informative:
        return (
            f"the bound was vacuous (= 1) at every one of the {len(bounds)} tracked epoch(s) "
            "where it was computed, so it says nothing about this run's error"
        )
    epoch, lowest = min(informative, key=lambda point: point[1])
    return (
        f"the bound was informative (< 1) at {len(informative)} of {len(bounds)} tracked "
        f"epochs, lowest {nice_number(lowest)} at epoch {epoch}"
    )


def _setting(run: TrainingRun) -> str:
    classes = run.config.get("transfer_classes")
    parts = [] if classes is None else [f"withheld classes {classes}"]
    k, m = episode_shape(run)
    if k is not None and m is not None:
        parts.append(f"{k}-way {m}-shot episodes")
    return f" ({', '.join(parts)})" if parts else ""


def transfer_caption(runs: Sequence[TrainingRun], *, epoch_axis: str = "log") -> str:
    """The caption of :func:`plot_transfer`, computed from the points it draws: per run, the
    first and last CDNV of the training and the new classes, how the few-shot error moved
    (fell or rose by more than twice the combined standard error, or did not change
    measurably), and whether the bound was informative at any tracked epoch."""
    parts = [
        "Look at: left, the CDNV of the penultimate features (log scale) of the training "
        "classes (solid; training split, post-ReLU) and of the classes withheld from training "
        "(dashed); right, the k-way m-shot nearest-class-centre error on the withheld classes "
        "(solid, mean over random episodes, band ±1 standard error) and the bound "
        "min(1, (k−1)(12+6/m)·CDNV) (dotted). Galanti, György & Hutter (ICLR 2022) predict "
        "that when the new classes collapse as well (their CDNV falls) the few-shot error "
        "falls with it. Errors and bounds are fractions."
    ]
    epochs: list[float] = []
    for run in runs:
        if not has_transfer(run):
            reason = not_computed_sentence(run, schema.TRANSFER_KEYS)
            parts.append(
                f"{run.name}: no few-shot error "
                + (
                    "was computed. " + reason
                    if reason
                    else "(not trained with --transfer-classes)."
                )
            )
            continue
        training = _positive(_training_cdnv(run))
        new = _positive(epoch_series(run, TRANSFER_CDNV))
        epochs.extend(e for e, _ in training + new)
        epochs.extend(e for e, _, _ in _error_points(run))
        trained_span = _span("the training classes' CDNV", training)
        new_span = _span("the new classes' CDNV", new)
        sentence = (
            f"{run.name}{_setting(run)}: {trained_span} while {new_span}; "
            f"{_error_sentence(run)}; {_bound_sentence(run)}."
        )
        left_out = _left_out_sentence(run)
        reason = not_computed_sentence(run, schema.TRANSFER_KEYS)
        parts.append(" ".join(text for text in (sentence, left_out, reason) if text))
    parts.append(epoch_axis_sentence(epoch_axis, epochs))
    return " ".join(parts)


def _left_out_sentence(run: TrainingRun) -> str:
    """Non-positive CDNVs, which the log axis cannot show (and the caption does not read)."""
    count = sum(v <= 0 for _, v in _training_cdnv(run) + epoch_series(run, TRANSFER_CDNV))
    return f"{count} CDNV value(s) ≤ 0 are not drawn on the log axis." if count else ""


def transfer_rows(runs: Sequence[TrainingRun]) -> list[dict]:
    """One row per run with transfer data, at its last epoch with a few-shot error: the
    training classes' CDNV at that epoch (None when that epoch's metrics were not measured)
    and the four transfer columns as logged."""
    rows = []
    for run in runs:
        points = _error_points(run)
        if not points:
            continue
        epoch = points[-1][0]
        row = next(r for r in run.epochs if r["epoch"] == epoch)
        metrics = next(
            (r for r in run.rows(layer=PENULTIMATE_POST, split="train") if r["epoch"] == epoch),
            None,
        )
        rows.append(
            {
                "run": run.name,
                "epoch": epoch,
                schema.CDNV: None if metrics is None else cell(metrics, schema.CDNV),
            }
            | {key: cell(row, key) for key in schema.TRANSFER_KEYS}
        )
    return rows
