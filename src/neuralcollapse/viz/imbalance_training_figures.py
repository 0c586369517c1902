"""Trained networks on the phase picture of minority collapse (docs/imbalance.md).

:func:`imbalance_run_point` reads one step-imbalanced training run (``neuralcollapse train
--imbalance R --minority-classes K_B``) and returns its last epoch's minority cosines and
per-group test accuracies; :func:`trained_minority_figure` draws such points next to
Layer-Peeled Model curves (minority cosine against log10 R, Fang, He, Long & Su, PNAS 2021)
and, in a second panel, the majority and minority test accuracy against log10 R. This module
only reads and draws; the numbers come from the run directories and from
:mod:`neuralcollapse.ufm.lpm`.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
from matplotlib.figure import Figure

from neuralcollapse import schema
from neuralcollapse.viz.style import mark_empty, new_figure, plot_finite, reference_line, run_colour

POINT_KEYS = (
    "cosine_weights",
    "cosine_means",
    schema.ACCURACY_MAJORITY,
    schema.ACCURACY_MINORITY,
)


def _number(value: object) -> float:
    """A logged value as a float: ``None`` (not computed) and the schema's strings as NaN/inf."""
    from neuralcollapse.schema import decode_value

    value = decode_value(value)
    if value is None:
        return math.nan
    return float(value)


def imbalance_run_point(run_dir: str | Path) -> dict:
    """The last epoch of a step-imbalanced run as one point of the phase picture.

    Returns ``{"run", "ratio", "minority_classes", "num_classes", "epoch", "tpt_epoch",
    "cosine_weights", "cosine_means", schema.ACCURACY_MAJORITY, schema.ACCURACY_MINORITY,
    schema.TEST_ERROR, schema.TRAIN_ERROR}``; the means' cosine is that of the last *tracked* epoch
    (the last epoch is always tracked under ``--track log`` and ``every``). A run without
    ``--imbalance`` is a ``ValueError``.
    """
    from neuralcollapse import runformat

    run = Path(run_dir)
    files = runformat.read_run(run)
    config = files.config or {}
    if config.get("imbalance") is None or config.get("minority_classes") is None:
        raise ValueError(
            f"{run} is not a step-imbalanced run (config.json has no imbalance / "
            "minority_classes); train it with --imbalance R --minority-classes K_B"
        )
    rows = files.epochs
    if not rows:
        raise ValueError(f"{run / runformat.EPOCHS} holds no epoch; the run has not trained yet")
    last = rows[-1]
    tracked = [row for row in rows if row.get(schema.MINORITY_COSINE_MEANS) is not None]
    summary = files.summary or {}
    return {
        "run": str(run),
        "ratio": float(config["imbalance"]),
        "minority_classes": int(config["minority_classes"]),
        "epoch": int(last["epoch"]),
        "tpt_epoch": summary.get("tpt_epoch"),
        "cosine_weights": _number(last.get(schema.MINORITY_COSINE_WEIGHTS)),
        "cosine_means": _number(tracked[-1][schema.MINORITY_COSINE_MEANS]) if tracked else math.nan,
        schema.ACCURACY_MAJORITY: _number(last.get(schema.ACCURACY_MAJORITY)),
        schema.ACCURACY_MINORITY: _number(last.get(schema.ACCURACY_MINORITY)),
        schema.TEST_ERROR: _number(last.get(schema.TEST_ERROR)),
        schema.TRAIN_ERROR: _number(last.get(schema.TRAIN_ERROR)),
    }


def imbalance_run_trajectory(run_dir: str | Path) -> dict:
    """Minority cosines of a step-imbalanced run over its tracked epochs.

    Returns ``{"ratio", "tpt_epoch", "epoch": [...], "cosine_weights": [...],
    "cosine_means": [...]}`` (NaN where a value was not computed).
    """
    from neuralcollapse import runformat

    run = Path(run_dir)
    point = imbalance_run_point(run)
    rows = [r for r in runformat.read_run(run).epochs if r.get("tracked")]
    return {
        "ratio": point["ratio"],
        "tpt_epoch": point["tpt_epoch"],
        "epoch": [int(r["epoch"]) for r in rows],
        "cosine_weights": [_number(r.get(schema.MINORITY_COSINE_WEIGHTS)) for r in rows],
        "cosine_means": [_number(r.get(schema.MINORITY_COSINE_MEANS)) for r in rows],
    }


def _column(points: Sequence[Mapping], key: str) -> np.ndarray:
    return np.array([_number(p.get(key)) for p in points], dtype=float)


def trained_minority_figure(
    points: Sequence[Mapping],
    lpm: Mapping[str, Mapping[str, Sequence]] | None = None,
    *,
    num_classes: int | None = None,
    trajectories: Sequence[Mapping] | None = None,
    title: str | None = None,
) -> Figure:
    """Minority cosine (left) and per-group test accuracy (middle) against log10 R.

    Parameters
    ----------
    points : trained runs, each a mapping with ``ratio`` and any of ``cosine_weights``,
        ``cosine_means``, ``accuracy_majority``, ``accuracy_minority`` (None or NaN: not
        drawn); :func:`imbalance_run_point` returns such a mapping.
    lpm : optional LPM curves for the left panel, ``{label: {"ratio": R values, "cosine":
        cosines}}`` (e.g. one per budget E_W = E_H).
    num_classes : K, for the ETF reference line -1/(K-1).
    trajectories : optional third panel, the classifier rows' minority cosine (solid) and the
        centred means' (dashed) against the epoch for each run, as
        :func:`imbalance_run_trajectory` returns them; a run's TPT epoch is marked with a dot
        when it is a tracked epoch.
    title : optional figure title.

    Returns
    -------
    matplotlib.figure.Figure (no pyplot state is touched).
    """
    if not points:
        raise ValueError("nothing to draw: give at least one trained-run point")
    order = np.argsort([float(p["ratio"]) for p in points])
    points = [points[i] for i in order]
    ratio = np.log10(np.array([float(p["ratio"]) for p in points], dtype=float))
    figure, grid = new_figure(1, 3 if trajectories else 2, panel_size=(4.2, 3.6))
    left, right = grid[0][0], grid[0][1]

    for index, (label, curve) in enumerate((lpm or {}).items()):
        plot_finite(
            left, np.log10(np.asarray(curve["ratio"], dtype=float)),
            np.array([_number(v) for v in curve["cosine"]], dtype=float),
            color=run_colour(2 + index), linewidth=1.0, alpha=0.8, label=label,
        )  # fmt: skip
    drawn = plot_finite(
        left, ratio, _column(points, "cosine_weights"), color=run_colour(0), marker="s",
        markersize=6, linewidth=1.4, label="trained net: classifier rows",
    )  # fmt: skip
    drawn |= plot_finite(
        left, ratio, _column(points, "cosine_means"), color=run_colour(1), marker="D",
        markerfacecolor="none", markersize=6, linewidth=1.4, linestyle="--",
        label="trained net: centred class means",
    )  # fmt: skip
    if not drawn and not lpm:
        mark_empty(left)
    if num_classes is not None:
        reference_line(left, -1.0 / (num_classes - 1),
                       f"ETF: -1/(K-1) = {-1 / (num_classes - 1):.3f}", where="right")  # fmt: skip
    reference_line(left, 1.0, "collapsed", where="right")
    left.set_ylim(-0.35 if num_classes is None else min(-0.35, -1.5 / (num_classes - 1)), 1.12)
    left.set_xlabel("log10 R (imbalance ratio n_A / n_B)")
    left.set_ylabel("minority cosine")
    left.set_title("minority cosine: LPM and trained nets", fontsize=9)
    left.legend(fontsize=6.5, loc="upper center", bbox_to_anchor=(0.5, -0.2), ncol=2)

    drawn = plot_finite(
        right, ratio, _column(points, schema.ACCURACY_MAJORITY), color=run_colour(0), marker="o",
        linewidth=1.4, label="majority classes",
    )  # fmt: skip
    drawn |= plot_finite(
        right, ratio, _column(points, schema.ACCURACY_MINORITY), color=run_colour(1), marker="v",
        linewidth=1.4, label="minority classes",
    )  # fmt: skip
    if drawn:
        right.legend(fontsize=6.5, loc="upper center", bbox_to_anchor=(0.5, -0.2), ncol=2)
    else:
        mark_empty(right)
    right.set_ylim(-0.02, 1.02)
    right.set_xlabel("log10 R (imbalance ratio n_A / n_B)")
    right.set_ylabel("test accuracy (mean per class)")
    right.set_title("trained nets: balanced test split", fontsize=9)
    if trajectories:
        _trajectory_panel(grid[0][2], trajectories, num_classes)
    if title:
        figure.suptitle(title, fontsize=10)
    return figure


def _trajectory_panel(axes, trajectories: Sequence[Mapping], num_classes: int | None) -> None:
    drawn = False
    for index, run in enumerate(sorted(trajectories, key=lambda r: float(r["ratio"]))):
        colour = run_colour(index)
        epochs = np.asarray(run["epoch"], dtype=float)
        weights = np.array([_number(v) for v in run["cosine_weights"]], dtype=float)
        drawn |= plot_finite(axes, epochs, weights, color=colour, linewidth=1.3,
                             label=f"R = {float(run['ratio']):g}")  # fmt: skip
        drawn |= plot_finite(
            axes, epochs, np.array([_number(v) for v in run["cosine_means"]], dtype=float),
            color=colour, linewidth=1.0, linestyle="--", label="_nolegend_",
        )  # fmt: skip
        tpt = run.get("tpt_epoch")
        if tpt is not None and tpt in set(epochs.tolist()):
            value = weights[list(epochs).index(tpt)]
            if math.isfinite(value):
                axes.plot([tpt], [value], marker="o", color=colour, markersize=5)
    if not drawn:
        mark_empty(axes)
        return
    if num_classes is not None:
        reference_line(axes, -1.0 / (num_classes - 1), "ETF", where="right")
    axes.set_xscale("log")
    axes.set_xlabel("epoch (dot: first zero-training-error epoch)")
    axes.set_ylabel("minority cosine")
    axes.set_title("through training: classifier rows (solid), means (dashed)", fontsize=8)
    axes.legend(fontsize=6.5, loc="upper center", bbox_to_anchor=(0.5, -0.2), ncol=3)
