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

from neuralcollapse.viz.style import mark_empty, new_figure, plot_finite, reference_line, run_colour


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
