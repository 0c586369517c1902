"""Figures of what the terminal phase buys: the UFM's implicit bias and robustness over epochs.

- :func:`plot_implicit_bias`: gradient descent on the unregularised CE UFM
  (:func:`neuralcollapse.ufm.implicit_bias.implicit_bias_gd`): the normalised margin with the
  max-margin value ``1/((K-1) sqrt(n))`` as the theory line, its gap to that value, and the
  ETF gaps, against the step count;
- :func:`plot_robustness_over_epochs`: DeepFool's ``mean ||r(x)|| / ||x||`` over the
  measured epochs (``deepfool_*`` columns of ``epochs.jsonl``, from
  :meth:`neuralcollapse.robustness.RobustnessResult.to_row`) next to an NC metric of
  ``metrics.jsonl``, the start of the terminal phase marked.

Every function returns a :class:`matplotlib.figure.Figure`; nothing is recomputed here.

References
----------
Papyan, Han & Donoho, PNAS 2020 (robustness through the terminal phase). Moosavi-Dezfooli,
Fawzi & Frossard, CVPR 2016 (DeepFool). Soudry et al., JMLR 2018; Lyu & Li, ICLR 2020; Ji et
al., ICLR 2022 (the implicit bias towards the max-margin ETF).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
from matplotlib.figure import Figure

from neuralcollapse import schema
from neuralcollapse.viz.style import (
    REFERENCE_COLOUR,
    mark_empty,
    new_figure,
    plot_finite,
    plot_positive,
    reference_line,
    run_colour,
    run_legend,
    set_epoch_axis,
)

#: the classifier's input in the project's nets (metrics.jsonl ``layer``)
PENULTIMATE_POST = "penultimate_post"


def _number(value: Any) -> float:
    """A logged value as a float: None, non-numbers and the strings "NaN"/"Infinity" as NaN
    or the infinity they name (so they are dropped from the lines)."""
    if value is None or isinstance(value, bool):
        return math.nan
    try:
        return float(value)
    except (TypeError, ValueError):
        return math.nan


def _set_step_axis(axes) -> None:
    # step 0 (the random start) is recorded: linear below step 1, log above
    axes.set_xscale("symlog", linthresh=1.0, linscale=0.3)
    axes.set_xlim(left=0)
    axes.set_xlabel("gradient-descent step")


def plot_implicit_bias(result: Any) -> Figure:
    """The implicit bias of unregularised CE on the UFM, against the gradient-descent step.

    Panels: the normalised margin ``gamma = min margin / (||W||_F ||H||_F)`` with the
    max-margin value ``gamma* = 1/((K-1) sqrt(n))`` (the simplex ETF) as the theory line;
    ``1 - gamma/gamma*`` on a log scale (logarithmically slow convergence); the ETF gaps of
    the centred class means and of the classifier rows (log scale; 0 at the ETF).

    Parameters
    ----------
    result : an :class:`~neuralcollapse.ufm.implicit_bias.ImplicitBiasResult`.
    """
    figure, axes = new_figure(1, 3)
    margin_axes, gap_axes, etf_axes = axes[0]
    colour = run_colour(0)
    steps, margin = result.series("margin")
    theory = float(result.theory_margin)
    plot_finite(margin_axes, steps, margin, color=colour, label="gradient descent")
    reference_line(
        margin_axes, theory, f"max margin (ETF) 1/((K−1)√n) = {theory:.4g}", where="center"
    )
    margin_axes.set_title("normalised margin γ = min q / (‖W‖‖H‖)", fontsize=9)
    margin_axes.set_ylim(top=theory * 1.3)  # room for the theory label
    _, ratio = result.series("margin_ratio")
    if not plot_positive(gap_axes, steps, 1.0 - ratio, color=colour):
        mark_empty(gap_axes)
    gap_axes.set_title("gap to the max margin: 1 − γ/γ*", fontsize=9)
    drawn = False
    for key, style, label in (
        (schema.ETF_GAP_MEANS, "-", "class means (centred)"),
        (schema.ETF_GAP_WEIGHTS, "--", "classifier rows"),
    ):
        _, values = result.series(key)
        drawn |= plot_positive(etf_axes, steps, values, color=colour, linestyle=style, label=label)
    if drawn:
        etf_axes.legend(fontsize=7)
    else:
        mark_empty(etf_axes)
    etf_axes.set_title("ETF gap of the normalised Gram", fontsize=9)
    for panel in axes[0]:
        _set_step_axis(panel)
    figure.suptitle(
        f"CE UFM without decay, K={result.num_classes}, n={result.per_class}, "
        f"d={result.dim}: GD (lr {result.lr:g}, start σ {result.init_scale:g})",
        fontsize=10,
    )
    return figure


def _tpt_epoch(epoch_rows: Sequence[Mapping[str, Any]]) -> int | None:
    for row in sorted(epoch_rows, key=lambda row: row["epoch"]):
        if _number(row.get(schema.TRAIN_ERROR)) == 0.0:
            return int(row["epoch"])
    return None


def plot_robustness_over_epochs(
    epoch_rows: Sequence[Mapping[str, Any]],
    metric_rows: Sequence[Mapping[str, Any]] = (),
    *,
    metric: str = schema.NC1,
    split: str = "train",
    layer: str = PENULTIMATE_POST,
    label: str | None = None,
) -> Figure:
    """DeepFool robustness over epochs next to an NC metric (Papyan et al.'s two views).

    Left: ``deepfool_ratio`` (mean ``||r(x)|| / ||x||`` over the fooled images), with the
    fraction not fooled within the step limit on a second axis when any is nonzero. Right:
    ``metric`` of ``metric_rows`` for one split and layer (log scale). A dotted vertical line
    marks the first zero-training-error epoch (the terminal phase).

    Parameters
    ----------
    epoch_rows : rows of ``epochs.jsonl`` (epochs without a measurement have None).
    metric_rows : rows of ``metrics.jsonl``; empty: the right panel says so.
    metric, split, layer : which NC column to draw (default NC1 of the training features).
    label : the run's name in the title.

    Raises
    ------
    ValueError : no epoch rows.
    """
    if not epoch_rows:
        raise ValueError("no epoch rows to plot; pass the rows of a run's epochs.jsonl")
    figure, axes = new_figure(1, 2)
    robust_axes, metric_axes = axes[0]
    colour = run_colour(0)
    rows = sorted(epoch_rows, key=lambda row: row["epoch"])
    epochs = np.array([row["epoch"] for row in rows], dtype=float)
    ratio = np.array([_number(row.get(schema.DEEPFOOL_RATIO)) for row in rows])
    failed = np.array([_number(row.get(schema.DEEPFOOL_FAILED_FRACTION)) for row in rows])
    measured = np.isfinite(ratio)
    if plot_finite(
        robust_axes,
        epochs[measured],
        ratio[measured],
        color=colour,
        marker="o",
        markersize=3,
        label="mean ‖r‖/‖x‖",
    ):
        set_epoch_axis(robust_axes, epochs[measured])
        if np.nanmax(np.where(np.isfinite(failed), failed, 0.0)) > 0:
            twin = robust_axes.twinx()
            keep = np.isfinite(failed)
            twin.plot(
                epochs[keep],
                failed[keep],
                color=REFERENCE_COLOUR,
                linestyle=":",
                label="not fooled",
            )
            twin.set_ylabel("fraction not fooled", fontsize=8)
            twin.set_ylim(0, 1)
    else:
        mark_empty(robust_axes, "DeepFool not measured")
    robust_axes.set_title("DeepFool: mean ‖r(x)‖ / ‖x‖", fontsize=9)
    selected = sorted(
        (row for row in metric_rows if row.get("split") == split and row.get("layer") == layer),
        key=lambda row: row["epoch"],
    )
    metric_epochs = np.array([row["epoch"] for row in selected], dtype=float)
    values = np.array([_number(row.get(metric)) for row in selected])
    if plot_positive(metric_axes, metric_epochs, values, color=colour):
        set_epoch_axis(metric_axes, metric_epochs)
    else:
        mark_empty(metric_axes, f"{metric} not measured")
    metric_axes.set_title(f"{metric} ({split}, {layer})", fontsize=9)
    tpt = _tpt_epoch(rows)
    if tpt is not None:
        for panel in axes[0]:
            panel.axvline(tpt, color=REFERENCE_COLOUR, linestyle=":", linewidth=0.8)
        robust_axes.annotate(
            "TPT",
            xy=(tpt, 1.0),
            xycoords=("data", "axes fraction"),
            xytext=(2, -10),
            textcoords="offset points",
            fontsize=7,
            color=REFERENCE_COLOUR,
        )
    if label:
        figure.suptitle(label, fontsize=10)
    return figure


def plot_run_robustness(run: Any, *, metric: str = schema.NC1) -> Figure:
    """:func:`plot_robustness_over_epochs` of a :class:`~neuralcollapse.viz.runs.TrainingRun`."""
    return plot_robustness_over_epochs(run.epochs, run.metrics, metric=metric, label=run.name)


def epoch_values(run: Any, key: str) -> tuple[np.ndarray, np.ndarray]:
    """``(epochs, values)`` of an ``epochs.jsonl`` column of a run, by epoch, finite only."""
    rows = sorted(run.epochs, key=lambda row: row["epoch"])
    epochs = np.array([row["epoch"] for row in rows], dtype=float)
    values = np.array([_number(row.get(key)) for row in rows], dtype=float)
    keep = np.isfinite(values)
    return epochs[keep], values[keep]


def plot_runs_robustness(
    runs: Sequence[Any], *, metric: str = schema.NC1, epoch_axis: str = "log"
) -> Figure:
    """DeepFool robustness of several runs over epochs next to an NC metric, one colour each.

    The report's view of :func:`plot_robustness_over_epochs`: left, ``deepfool_ratio`` (mean
    ``||r(x)|| / ||x||`` over the fooled images); middle, ``deepfool_failed_fraction`` (in %);
    right, ``metric`` of the training features (``penultimate_post``, log scale). A dotted
    vertical line in the run's colour marks its first zero-training-error epoch.

    Parameters
    ----------
    runs : :class:`~neuralcollapse.viz.runs.TrainingRun` objects.
    metric : the metrics.jsonl column of the right panel.
    epoch_axis : ``"log"`` (symmetric-log when epoch 0 is drawn) or ``"linear"``.
    """
    from neuralcollapse.viz.style import set_epoch_scale
    from neuralcollapse.viz.training_figures import drawn_tpts, mark_tpts

    if not runs:
        raise ValueError("no run to plot; pass at least one TrainingRun (see load_run)")
    figure, axes = new_figure(1, 3, panel_size=(3.6, 2.8))
    ratio_axes, failed_axes, metric_axes = axes[0]
    all_epochs: list[float] = []
    drawn = {"ratio": False, "failed": False, "metric": False}
    with_data: set[int] = set()
    for index, run in enumerate(runs):
        colour = run_colour(index)
        epochs, ratio = epoch_values(run, schema.DEEPFOOL_RATIO)
        if ratio.size:
            with_data.add(index)
        all_epochs.extend(epochs.tolist())
        drawn["ratio"] |= plot_finite(
            ratio_axes, epochs, ratio, color=colour, marker="o", markersize=3
        )
        epochs, failed = epoch_values(run, schema.DEEPFOOL_FAILED_FRACTION)
        drawn["failed"] |= plot_finite(
            failed_axes, epochs, 100 * failed, color=colour, marker="o", markersize=3
        )
        if index not in with_data:  # NC1 is drawn next to the runs DeepFool measured
            continue
        epochs, values = run.series(metric, layer=PENULTIMATE_POST, split="train")
        all_epochs.extend(epochs[np.isfinite(values)].tolist())
        drawn["metric"] |= plot_positive(metric_axes, epochs, values, color=colour)
    tpts = drawn_tpts(runs, with_data, all_epochs, epoch_axis)
    mark_tpts(axes[0], tpts)
    for panel, key, note in (
        (ratio_axes, "ratio", "DeepFool not measured"),
        (failed_axes, "failed", "DeepFool not measured"),
        (metric_axes, "metric", f"{metric} not measured"),
    ):
        if drawn[key]:
            set_epoch_scale(panel, all_epochs, epoch_axis)
        else:
            mark_empty(panel, note)
    ratio_axes.set_title("DeepFool: mean ‖r(x)‖ / ‖x‖", fontsize=9)
    failed_axes.set_title("not fooled within the step limit (%)", fontsize=9)
    label = schema.METRICS[metric].label if metric in schema.METRICS else metric
    metric_axes.set_title(f"{label} (train, penultimate post-ReLU)", fontsize=9)
    run_legend(figure, runs, with_data, tpts)
    figure.suptitle("Robustness through training (Papyan, Han & Donoho 2020)")
    return figure
