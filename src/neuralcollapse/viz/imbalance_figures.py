"""The phase picture of minority collapse: minority cosine against log10 R.

Left panel, the Layer-Peeled Model (Fang, He, Long & Su, PNAS 2021): the convex relaxation
as a line with open circles and the non-convex solve as crosses on the same curve. Right
panel, the penalised bias-free MSE UFM with class sizes n_k: the closed form (the minority
rows are orthogonal to everything, cosine 0, until their soft threshold removes them; a
vanished group counts as merged, cosine 1) with the solver's points and the closed-form
threshold R* marked. Numbers come from :mod:`neuralcollapse.ufm.lpm`,
:func:`neuralcollapse.ufm.closed_forms.imbalanced_mse_theory` and the solvers; this module only
draws (docs/imbalance.md).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

import numpy as np
from matplotlib.figure import Figure

from neuralcollapse import schema
from neuralcollapse.viz.style import (
    mark_empty,
    new_figure,
    plot_finite,
    reference_line,
    run_colour,
    run_legend,
)


def _values(values: Sequence[float | None] | None) -> np.ndarray | None:
    if values is None:
        return None
    return np.array([math.nan if v is None else float(v) for v in values], dtype=float)


def _panel(axes, data: Mapping, curve: str, points: str, labels: tuple[str, str], k: int | None):
    ratio = np.log10(np.asarray(data["ratio"], dtype=float))
    drawn = plot_finite(
        axes, ratio, _values(data.get(curve)), color=run_colour(0), marker="o",
        markerfacecolor="none", markersize=4, linewidth=1.2, label=labels[0],
    )  # fmt: skip
    if data.get(points) is not None:
        drawn |= plot_finite(
            axes, ratio, _values(data[points]), color=run_colour(1), marker="x", linestyle="none",
            markersize=5, label=labels[1],
        )  # fmt: skip
    if not drawn:
        mark_empty(axes)
        return
    if k is not None:
        reference_line(axes, -1.0 / (k - 1), f"ETF: -1/(K-1) = {-1 / (k - 1):.3f}", where="left")
    reference_line(axes, 1.0, "collapsed", where="left")
    axes.set_xlabel("log10 R (imbalance ratio n_A / n_B)")
    axes.set_ylabel("minority cosine")
    axes.set_ylim(-0.35 if k is None else min(-0.35, -1.5 / (k - 1)), 1.12)
    axes.legend(fontsize=7, loc="center right")


def minority_collapse_figure(
    lpm: Mapping[str, Sequence] | None,
    ufm: Mapping[str, Sequence] | None = None,
    *,
    num_classes: int | None = None,
    ufm_threshold: float | None = None,
    title: str | None = None,
) -> Figure:
    """Minority cosine against log10 R for the LPM and the penalised UFM.

    Parameters
    ----------
    lpm : ``{"ratio": R values, "convex": cosines, "nonconvex": cosines}`` (None entries are
        not drawn), or None for no LPM panel.
    ufm : ``{"ratio": ..., "theory": closed-form cosines, "solver": solver cosines}``, or None.
    num_classes : K, for the ETF reference line -1/(K-1).
    ufm_threshold : the closed-form R* beyond which the UFM's minority rows vanish (a
        vertical dashed line).
    title : optional figure title.

    Returns
    -------
    matplotlib.figure.Figure (no pyplot state is touched).
    """
    panels = [name for name, data in (("lpm", lpm), ("ufm", ufm)) if data is not None]
    if not panels:
        raise ValueError("nothing to draw: give lpm= and/or ufm= data")
    figure, grid = new_figure(1, len(panels), panel_size=(4.2, 3.0))
    for axes, name in zip(grid[0], panels, strict=True):
        if name == "lpm":
            _panel(axes, lpm, "convex", "nonconvex", ("convex (Gram SDP)", "non-convex (L-BFGS)"),
                   num_classes)  # fmt: skip
            axes.set_title("Layer-Peeled Model", fontsize=9)
        else:
            _panel(axes, ufm, "theory", "solver", ("closed form", "solver (L-BFGS)"), num_classes)
            if ufm_threshold is not None and math.isfinite(ufm_threshold):
                axes.axvline(math.log10(ufm_threshold), color="#888888", linestyle="--",
                             linewidth=0.9)  # fmt: skip
                axes.annotate(
                    f"R* = {ufm_threshold:.3g}", xy=(math.log10(ufm_threshold), 0.5),
                    xytext=(3, 0), textcoords="offset points", fontsize=7, color="#555555",
                )  # fmt: skip
            axes.set_title("penalised UFM (MSE, no bias)", fontsize=9)
    if title:
        figure.suptitle(title, fontsize=10)
    return figure


def _epoch_series(run, key: str) -> tuple[np.ndarray, np.ndarray]:
    from neuralcollapse.viz.robustness_figures import epoch_values

    return epoch_values(run, key)


def run_num_classes(run) -> int | None:
    """K of a run: from its metrics rows, else config.json's ``num_classes``."""
    k = run.num_classes
    if k is None and run.config.get("num_classes") is not None:
        k = int(run.config["num_classes"])
    return k


def plot_imbalance_over_epochs(runs: Sequence, *, epoch_axis: str = "log") -> Figure:
    """Minority collapse through training, one colour per run (Fang et al., PNAS 2021).

    Panels over epochs (``epochs.jsonl`` of runs trained with ``--imbalance R
    --minority-classes K_B``): the mean pairwise cosine of the minority classifier rows
    (``minority_cosine_weights``) and of the centred minority class means
    (``minority_cosine_means``, tracked epochs), each with the simplex-ETF level -1/(K-1) and
    1 (merged) as grey lines; test accuracy over the majority classes (solid) and the
    minority classes (dashed), in %.
    """
    from neuralcollapse.viz.style import set_epoch_scale
    from neuralcollapse.viz.training_figures import drawn_tpts, mark_tpts

    if not runs:
        raise ValueError("no run to plot; pass at least one TrainingRun (see load_run)")
    figure, grid = new_figure(1, 3, panel_size=(3.6, 2.9))
    weight_axes, mean_axes, accuracy_axes = grid[0]
    all_epochs: list[float] = []
    drawn = [False, False, False]
    with_data: set[int] = set()
    for index, run in enumerate(runs):
        colour = run_colour(index)
        for position, (axes, key) in enumerate(
            (
                (weight_axes, schema.MINORITY_COSINE_WEIGHTS),
                (mean_axes, schema.MINORITY_COSINE_MEANS),
            )
        ):
            epochs, values = _epoch_series(run, key)
            if values.size:
                with_data.add(index)
            all_epochs.extend(epochs.tolist())
            drawn[position] |= plot_finite(axes, epochs, values, color=colour, marker=".")
        for key, style in ((schema.ACCURACY_MAJORITY, "-"), (schema.ACCURACY_MINORITY, "--")):
            epochs, values = _epoch_series(run, key)
            all_epochs.extend(epochs.tolist())
            drawn[2] |= plot_finite(
                accuracy_axes, epochs, 100 * values, color=colour, linestyle=style
            )
    levels = sorted({k for k in (run_num_classes(run) for run in runs) if k and k >= 2})
    for axes, is_drawn in zip((weight_axes, mean_axes), drawn[:2], strict=True):
        if not is_drawn:
            mark_empty(axes)
            continue
        for k in levels:
            reference_line(
                axes, -1.0 / (k - 1), f"ETF: -1/(K-1) = {-1 / (k - 1):.3g}", where="left"
            )
        reference_line(axes, 1.0, "merged (collapsed)", where="left")
        axes.set_ylim(min([-0.35] + [-1.5 / (k - 1) for k in levels]), 1.15)
        axes.set_ylabel("minority cosine")
    if not drawn[2]:
        mark_empty(accuracy_axes)
    else:
        accuracy_axes.set_ylabel("test accuracy (%)")
    for axes, is_drawn in zip(grid[0], drawn, strict=True):
        if is_drawn:
            set_epoch_scale(axes, all_epochs, epoch_axis)
    tpts = drawn_tpts(runs, with_data, all_epochs, epoch_axis)
    mark_tpts(grid[0], tpts)
    weight_axes.set_title("minority cosine of the classifier rows", fontsize=9)
    mean_axes.set_title("minority cosine of the centred means", fontsize=9)
    accuracy_axes.set_title("accuracy: majority solid, minority dashed", fontsize=9)
    run_legend(figure, runs, with_data, tpts)
    figure.suptitle("Imbalanced classes: minority collapse through training (Fang et al. 2021)")
    return figure
