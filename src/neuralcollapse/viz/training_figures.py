"""Figures of training runs: Papyan-style panels over epochs, ETF-vs-OF gaps, depth profile.

Every function takes runs read by :func:`neuralcollapse.viz.runs.load_run` and returns a
:class:`matplotlib.figure.Figure`. The quantities are the columns of ``metrics.jsonl``, i.e.
the fields of :class:`neuralcollapse.metrics.CollapseMetrics` (definitions in
docs/metrics.md and docs/theory.md); no metric is recomputed here.

References
----------
Papyan, Han & Donoho, "Prevalence of neural collapse during the terminal phase of deep
learning training", PNAS 2020 (Figures 2-7: the panels over epochs).
Tirer & Bruna, "Extended unconstrained features model for exploring deep neural collapse",
ICML 2022 (the orthogonal frame of MSE without bias; NC1 across depth).
"""

from __future__ import annotations

import math
from collections.abc import Collection, Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from matplotlib.figure import Figure

from neuralcollapse import schema
from neuralcollapse.checks import check_int
from neuralcollapse.geometry import of_etf_distance
from neuralcollapse.viz.runs import PENULTIMATE_POST, PENULTIMATE_PRE, TrainingRun
from neuralcollapse.viz.style import (
    REFERENCE_COLOUR,
    check_epoch_axis,
    mark_empty,
    new_figure,
    plot_finite,
    plot_positive,
    reference_line,
    run_colour,
    set_epoch_scale,
)

# (title, (line style, line label) of the first key, and of the second) of the panels that
# show a pair of :data:`neuralcollapse.schema.PAIRED_KEYS` (the means' and the classifier's
# version of the same property), in the schema's order
_PAIR_PANELS: tuple[tuple[str, tuple[str, str], tuple[str, str]], ...] = (
    ("NC2 equinorm: std/mean of norms", ("-", "means"), ("--", "classifier")),
    ("NC2 equiangularity: std of cosines", ("-", "means"), ("--", "classifier")),
    ("NC2 max-angle: mean |cos + 1/(K-1)|", ("-", "means"), ("--", "classifier")),
    ("NC3 self-duality: ‖W/‖W‖ − M/‖M‖‖²", ("-", "centred M"), (":", "uncentred M")),
    ("ETF gap of normalised Gram", ("-", "centred means"), ("--", "classifier rows")),
)
# (column, title, line label) of the Papyan-style panels: NC1, then the pairs
_PANEL_SPECS: tuple[tuple[str, tuple[tuple[str, str, str], ...]], ...] = (
    ("NC1: Tr(Σ_W Σ_B⁺)/K", ((schema.NC1, "-", ""),)),
    *(
        (title, ((first, *first_line), (second, *second_line)))
        for (title, first_line, second_line), (first, second) in zip(
            _PAIR_PANELS, schema.PAIRED_KEYS, strict=False
        )
    ),
)


#: the panels' (title, ((column, line style, line label), ...)), for captions and tests
PANEL_SPECS = _PANEL_SPECS

_ERROR_LINES = tuple(zip(schema.ERROR_KEYS, ("-", "--"), ("train", "test"), strict=True))
#: colour of the legend entries that explain a line style rather than name a run
_KEY_COLOUR = "#444444"


def _check_runs(runs: Sequence[TrainingRun]) -> None:
    if not runs:
        raise ValueError("no run to plot; pass at least one TrainingRun (see load_run)")


def _error_series(run: TrainingRun, column: str) -> tuple[np.ndarray, np.ndarray]:
    """Per-epoch error from epochs.jsonl (every epoch), else from the measured epochs."""
    if run.epochs and any(row.get(column) is not None for row in run.epochs):
        epochs = np.array([row["epoch"] for row in run.epochs], dtype=float)
        values = np.array(
            [math.nan if row.get(column) is None else row[column] for row in run.epochs],
            dtype=float,
        )
        return epochs, values
    return run.series(column, layer=PENULTIMATE_POST, split="train")


def tpt_epoch(run: TrainingRun) -> int | None:
    """The first epoch with zero training error (the terminal phase starts), or None.

    From summary.json's ``tpt_epoch`` when the run wrote one; else from the training errors of
    epochs.jsonl, else from those of the measured rows (a run still in progress, or written by
    CollapseTracker without a summary).
    """
    if run.summary and run.summary.get("tpt_epoch") is not None:
        return int(run.summary["tpt_epoch"])
    epochs, errors = _error_series(run, schema.TRAIN_ERROR)
    for epoch, error in sorted(zip(epochs.tolist(), errors.tolist(), strict=True)):
        if error == 0:
            return int(epoch)
    return None


def drawn_tpt(run: TrainingRun, epochs: Sequence[float], epoch_axis: str = "log") -> int | None:
    """The TPT epoch if the panels draw its line, else None.

    ``epochs`` are every epoch the figure plots. A log axis cannot show epoch 0 unless epoch 0
    is plotted (then the axis is symmetric-log).
    """
    tpt = tpt_epoch(run)
    if tpt is None:
        return None
    finite = [e for e in epochs if math.isfinite(e)]
    if epoch_axis == "log" and tpt <= 0 and (not finite or min(finite) > 0):
        return None
    return tpt


def drawn_tpts(
    runs: Sequence[TrainingRun],
    with_data: Collection[int],
    epochs: Sequence[float],
    epoch_axis: str = "log",
) -> list[int | None]:
    """:func:`drawn_tpt` of each run whose index is in ``with_data`` (None for the others:
    a figure marks the TPT only of the runs it draws)."""
    return [
        drawn_tpt(run, epochs, epoch_axis) if index in with_data else None
        for index, run in enumerate(runs)
    ]


def mark_tpts(panels: Iterable, tpts: Sequence[int | None]) -> None:
    """Each run's TPT line (:func:`_mark_tpt`, in the run's colour) on every panel."""
    for index, tpt in enumerate(tpts):
        for axes in panels:
            _mark_tpt(axes, tpt, run_colour(index))


def _mark_tpt(axes, tpt: int | None, colour: str) -> None:
    """Dotted vertical line at the first epoch with zero training error (start of the TPT)."""
    if tpt is not None:
        axes.axvline(float(tpt), color=colour, linestyle=":", linewidth=0.9, alpha=0.7)


def panel_epochs(runs: Sequence[TrainingRun], split: str) -> list[float]:
    """Every epoch the panels plot: the error epochs and the measured ones."""
    epochs: list[float] = []
    for run in runs:
        for column, _, _ in _ERROR_LINES:
            epochs.extend(_error_series(run, column)[0].tolist())
        epochs.extend(run.series(schema.NC1, layer=PENULTIMATE_POST, split=split)[0].tolist())
    return epochs


def plot_training_panels(
    runs: Sequence[TrainingRun], *, split: str = "train", epoch_axis: str = "log"
) -> Figure:
    """Papyan-style panels over epochs for the penultimate (post-ReLU) features.

    Panels: train/test error; NC1 = Tr(Σ_W Σ_B⁺)/K; equinorm and equiangularity and max-angle
    of the centred class means (solid) and classifier rows (dashed); self-duality (Papyan's,
    against the centred means, and against the uncentred means); ETF gaps; NCC mismatch.
    Collapse metrics are drawn on log y axes (they fall by decades in the terminal phase);
    epochs on a log x axis (or linear). A dotted vertical line marks each run's first
    zero-error epoch (:func:`drawn_tpt`), explained in the legend.

    Parameters
    ----------
    runs : the runs to overlay (one colour per run).
    split : ``"train"`` (Papyan et al. measure on the training set) or ``"test"``.
    epoch_axis : ``"log"`` (symmetric-log when epoch 0 is measured) or ``"linear"``.

    Returns
    -------
    matplotlib.figure.Figure
    """
    _check_runs(runs)
    check_epoch_axis(epoch_axis)
    figure, grid = new_figure(2, 4)
    panels = grid.ravel()
    all_epochs: list[float] = []
    plotted = panel_epochs(runs, split)
    tpts = [drawn_tpt(run, plotted, epoch_axis) for run in runs]

    error_axes = panels[0]
    drawn = False
    for index, run in enumerate(runs):
        colour = run_colour(index)
        for column, linestyle, suffix in _ERROR_LINES:
            epochs, values = _error_series(run, column)
            all_epochs.extend(epochs.tolist())
            drawn |= plot_finite(
                error_axes,
                epochs,
                100 * values,
                color=colour,
                linestyle=linestyle,
                label=f"{run.name} ({suffix})",
            )
        _mark_tpt(error_axes, tpts[index], colour)
    error_axes.set_title("error (%): train solid, test dashed", fontsize=9)
    error_axes.set_ylabel("error (%)")
    if not drawn:
        mark_empty(error_axes)

    for axes, (title, columns) in zip(panels[1:7], _PANEL_SPECS, strict=True):
        drawn = False
        for index, run in enumerate(runs):
            colour = run_colour(index)
            for column, linestyle, _ in columns:
                epochs, values = run.series(column, layer=PENULTIMATE_POST, split=split)
                all_epochs.extend(epochs.tolist())
                drawn |= plot_positive(axes, epochs, values, color=colour, linestyle=linestyle)
            _mark_tpt(axes, tpts[index], colour)
        axes.set_title(title, fontsize=9)
        if len(columns) > 1:
            _style_legend(axes, columns)
        if not drawn:
            mark_empty(axes)

    mismatch_axes = panels[7]
    drawn = False
    for index, run in enumerate(runs):
        colour = run_colour(index)
        epochs, values = run.series(schema.NCC_MISMATCH, layer=PENULTIMATE_POST, split=split)
        drawn |= plot_finite(mismatch_axes, epochs, 100 * values, color=colour)
        _mark_tpt(mismatch_axes, tpts[index], colour)
    mismatch_axes.set_title("NC4: classifier ≠ nearest class centre (%)", fontsize=9)
    mismatch_axes.set_ylabel("mismatch (%)")
    if not drawn:
        mark_empty(mismatch_axes)

    for axes in panels:
        set_epoch_scale(axes, all_epochs, epoch_axis)
    handles = [
        _line_handle(run_colour(index), "-", run.name + _describe_suffix(run))
        for index, run in enumerate(runs)
    ]
    if any(tpt is not None for tpt in tpts):
        handles.append(
            _line_handle(_KEY_COLOUR, ":", "first zero training error (TPT), in the run's colour")
        )
    figure.legend(
        handles=handles, loc="outside lower center", ncols=min(len(handles), 3), fontsize=9
    )
    figure.suptitle(f"Neural collapse over training ({split} split, penultimate features)")
    return figure


def _describe_suffix(run: TrainingRun) -> str:
    description = run.describe()
    return f" — {description}" if description else ""


def _line_handle(colour: str, linestyle: str, label: str):
    from matplotlib.lines import Line2D

    return Line2D([], [], color=colour, linestyle=linestyle, label=label)


def _style_legend(axes, columns) -> None:
    handles = [_line_handle(_KEY_COLOUR, style, label) for _, style, label in columns]
    axes.legend(handles=handles, fontsize=7, loc="best", frameon=False)


def plot_frame_gaps(
    runs: Sequence[TrainingRun], *, split: str = "train", epoch_axis: str = "log"
) -> Figure:
    """ETF vs orthogonal frame for the penultimate class means, before and after the ReLU.

    Three panels over epochs: the OF gap ``‖G/‖G‖_F − I/√K‖_F`` of the uncentred Gram
    ``G = H̄ᵀH̄`` (0 for an orthogonal frame, ``√(2 − 2√((K−1)/K))`` for a simplex ETF); the
    global-mean ratio ``‖μ_G‖ / mean_k ‖μ_k‖`` (``1/√K`` for an OF, 0 for an ETF); and the
    ETF gap of the centred means (0 for both, Papyan's NC2). Solid lines are the post-ReLU
    features that feed the classifier, dashed lines the same features before the final ReLU.
    Grey lines give the values of the two frames. The extended UFM (Tirer & Bruna 2022)
    predicts an orthogonal frame for the post-ReLU means under MSE without classifier bias
    and leaves the pre-ReLU geometry free.

    Parameters
    ----------
    runs : runs to overlay.
    split : which split's measurements to draw.
    epoch_axis : ``"log"`` (symmetric-log when epoch 0 is measured) or ``"linear"``.

    Returns
    -------
    matplotlib.figure.Figure
    """
    _check_runs(runs)
    check_epoch_axis(epoch_axis)
    figure, grid = new_figure(1, 3, panel_size=(3.8, 3.0))
    of_axes, ratio_axes, etf_axes = grid[0]
    all_epochs: list[float] = []
    num_classes = next((run.num_classes for run in runs if run.num_classes), None)
    for axes, column in zip((of_axes, ratio_axes, etf_axes), schema.FRAME_KEYS, strict=True):
        drawn = False
        for index, run in enumerate(runs):
            colour = run_colour(index)
            for layer, linestyle in ((PENULTIMATE_POST, "-"), (PENULTIMATE_PRE, "--")):
                epochs, values = run.series(column, layer=layer, split=split)
                all_epochs.extend(epochs.tolist())
                drawn |= plot_finite(axes, epochs, values, color=colour, linestyle=linestyle)
        if not drawn:
            mark_empty(axes)
    if num_classes:
        k = num_classes
        etf_level = of_etf_distance(k)
        reference_line(of_axes, 0.0, "orthogonal frame")
        reference_line(of_axes, etf_level, "simplex ETF")
        reference_line(ratio_axes, 1 / math.sqrt(k), "orthogonal frame")
        reference_line(ratio_axes, 0.0, "simplex ETF")
        reference_line(etf_axes, 0.0, "ETF and OF (centred)")
    of_axes.set_title("OF gap of uncentred means", fontsize=9)
    of_axes.set_ylabel("‖G/‖G‖ − I/√K‖")
    ratio_axes.set_title("global-mean ratio ‖μ_G‖ / mean ‖μ_k‖", fontsize=9)
    ratio_axes.set_ylabel("ratio")
    etf_axes.set_title("ETF gap of centred means (NC2)", fontsize=9)
    etf_axes.set_ylabel("normalised Gram distance")
    for axes in grid[0]:
        set_epoch_scale(axes, all_epochs, epoch_axis)
    handles = [_line_handle(run_colour(i), "-", run.name) for i, run in enumerate(runs)]
    handles += [
        _line_handle(_KEY_COLOUR, "-", "post-ReLU (feeds the classifier)"),
        _line_handle(_KEY_COLOUR, "--", "pre-ReLU"),
    ]
    figure.legend(handles=handles, loc="outside lower center", ncols=4, fontsize=8)
    figure.suptitle(f"ETF or orthogonal frame? Penultimate class means ({split} split)")
    return figure


def profile_epochs(run: TrainingRun, *, split: str = "train", num_epochs: int = 5) -> list[int]:
    """The epochs :func:`plot_depth_profile` draws for ``run`` (earliest first)."""
    return _profile_epochs(
        [row["epoch"] for row in run.metrics if row["split"] == split], num_epochs
    )


def _profile_epochs(epochs: Sequence[int], count: int) -> list[int]:
    """Up to ``count`` measured epochs spread log-uniformly, always including the last."""
    unique = sorted(set(epochs))
    if len(unique) <= count:
        return unique
    positions = np.unique(np.round(np.geomspace(1, len(unique), count)).astype(int) - 1)
    chosen = [unique[i] for i in positions]
    if unique[-1] not in chosen:
        chosen[-1] = unique[-1]
    return chosen


@dataclass(frozen=True)
class DepthFit:
    """The law of data separation fitted to one run's layers at one epoch, or why not.

    ``fit`` is a :class:`neuralcollapse.measures.depth.SeparationFit` over the intermediate
    layers and the post-ReLU penultimate features (depth 1, 2, ...; ``D_l = K * NC1``), or
    None with ``reason`` saying why no fit is possible.
    """

    run: str
    epoch: int | None
    fit: Any = None
    num_classes: int | None = None
    reason: str = ""
    #: intermediate layers left out of the fit: their output is the penultimate features
    #: themselves (:func:`same_features`), which would otherwise count as two depths
    merged: tuple[str, ...] = ()


#: the fewest intermediate layers (besides the penultimate features) the depth fit needs
MIN_FIT_LAYERS = 2

#: the measurements of the features alone (no classifier): two rows that agree on these,
#: and on N and d, were measured on the same features
FEATURE_KEYS: tuple[str, ...] = (
    schema.NC1,
    schema.NC1_TRACE_RATIO,
    schema.CDNV,
    schema.WITHIN_CLASS_VARIANCE,
    schema.BETWEEN_CLASS_VARIANCE,
    *(means for means, _ in schema.PAIRED_KEYS[:3]),
    *schema.FRAME_KEYS,
)
#: relative tolerance of :func:`same_features` (the same features give the same numbers up to
#: the rounding of the reduction order; different layers differ far beyond it)
SAME_FEATURES_RTOL = 1e-9


def same_features(first: dict | None, second: dict | None) -> bool:
    """Whether two metrics rows were measured on the same features.

    True when both rows have the same N and d and every :data:`FEATURE_KEYS` value that both
    computed agrees within :data:`SAME_FEATURES_RTOL` (NC1 must be among them). This is how
    the report sees that a named layer's output IS the classifier's input (e.g. ``layer4`` of
    a ResNet, or the last ReLU of an MLP, measured next to ``penultimate``): the run files do
    not say which module feeds the classifier, the numbers do.
    """
    if first is None or second is None:
        return False
    for key in schema.SIZE_KEYS[1:]:
        if first.get(key) is None or first.get(key) != second.get(key):
            return False
    compared = 0
    for key in FEATURE_KEYS:
        a, b = _as_float(first.get(key)), _as_float(second.get(key))
        if math.isnan(a) or math.isnan(b):
            if key == schema.NC1:
                return False
            continue
        if not math.isclose(a, b, rel_tol=SAME_FEATURES_RTOL, abs_tol=1e-300):
            return False
        compared += 1
    return compared > 0


def classifier_input_layers(run: TrainingRun, *, split: str = "train", epoch: int | None = None):
    """The run's intermediate layers measured on the penultimate features themselves at
    ``epoch`` (default: the last measured), by :func:`same_features`."""
    if PENULTIMATE_POST not in run.layers:
        return ()
    if epoch is None:
        chosen = profile_epochs(run, split=split, num_epochs=1)
        if not chosen:
            return ()
        epoch = chosen[-1]

    def row_at(layer: str) -> dict | None:
        return next((r for r in run.rows(layer=layer, split=split) if r["epoch"] == epoch), None)

    penultimate = row_at(PENULTIMATE_POST)
    return tuple(
        layer for layer in run.intermediate_layers if same_features(row_at(layer), penultimate)
    )


def separation_fit(run: TrainingRun, *, split: str = "train") -> DepthFit:
    """He & Su's law ``log D_l = a + l log rho`` fitted at the run's last measured epoch.

    The layers are the run's intermediate layers, input side first, then the post-ReLU
    penultimate features (the pre-ReLU ones share that depth and are left out), with
    ``D_l = K * NC1`` (:func:`neuralcollapse.measures.depth.fit_separation_law`). An
    intermediate layer measured on the penultimate features themselves (its output feeds the
    classifier: :func:`classifier_input_layers`) is left out, so those features count as one
    depth, not two; ``merged`` names it. A fit needs
    at least :data:`MIN_FIT_LAYERS` intermediate layers (two points always lie on a line) and
    every layer's NC1 finite and > 0 at that epoch; otherwise ``fit`` is None and ``reason``
    says why.
    """
    from neuralcollapse.measures.depth import fit_separation_law

    chosen = profile_epochs(run, split=split, num_epochs=1)
    if not chosen:
        return DepthFit(run.name, None, reason=f"no {split} rows were measured")
    epoch = chosen[-1]
    merged = classifier_input_layers(run, split=split, epoch=epoch)
    intermediate = [layer for layer in run.intermediate_layers if layer not in merged]
    if len(intermediate) < MIN_FIT_LAYERS:
        named = f" ({', '.join(intermediate)})" if intermediate else ""
        also = (
            f"; {_join_names(merged)} {'is' if len(merged) == 1 else 'are'} the penultimate "
            "features themselves"
            if merged
            else ""
        )
        return DepthFit(
            run.name,
            epoch,
            reason=f"it measured {len(intermediate)} intermediate layer"
            f"{'' if len(intermediate) == 1 else 's'}{named} before the classifier's input, and "
            f"the fit needs at least {MIN_FIT_LAYERS} besides the penultimate features{also}",
            merged=merged,
        )
    layers = intermediate + ([PENULTIMATE_POST] if PENULTIMATE_POST in run.layers else [])
    rows = {}
    for layer in layers:
        row = next((r for r in run.rows(layer=layer, split=split) if r["epoch"] == epoch), None)
        if row is None:
            return DepthFit(
                run.name, epoch, reason=f"{layer} was not measured at epoch {epoch}", merged=merged
            )
        nc1 = _as_float(row.get(schema.NC1))
        if not (math.isfinite(nc1) and nc1 > 0):
            why = "not computed" if math.isnan(nc1) else f"{nc1:g}"
            return DepthFit(
                run.name,
                epoch,
                reason=f"NC1 of {layer} at epoch {epoch} is {why} (the fit needs log NC1)",
                merged=merged,
            )
        rows[layer] = row
    try:
        fit = fit_separation_law(rows)
    except ValueError as error:
        return DepthFit(run.name, epoch, reason=str(error), merged=merged)
    classes = _as_float(rows[layers[0]].get(schema.NUM_CLASSES))
    k = int(classes) if math.isfinite(classes) else None
    return DepthFit(run.name, epoch, fit, k, merged=merged)


def _join_names(names) -> str:
    names = list(names)
    return names[0] if len(names) == 1 else ", ".join(names[:-1]) + " and " + names[-1]


def _draw_fit(axes, run: TrainingRun, depth_fit: DepthFit) -> bool:
    """The fitted law as NC1 (``exp(a) rho^l / K``) at the drawn layers' slots, grey dashed.

    The pre-ReLU penultimate slot gets the penultimate depth (flat to the post-ReLU slot)."""
    fit = depth_fit.fit
    if fit is None or not depth_fit.num_classes:
        return False
    depth = dict(zip(fit.layers, fit.positions, strict=True))
    if PENULTIMATE_PRE not in depth and PENULTIMATE_POST in depth:
        depth[PENULTIMATE_PRE] = depth[PENULTIMATE_POST]
    slots = [(i, depth[layer]) for i, layer in enumerate(run.layers) if layer in depth]
    x = np.array([slot for slot, _ in slots], dtype=float)
    values = fit.fitted([position for _, position in slots]) / depth_fit.num_classes
    return plot_positive(
        axes,
        x,
        values,
        color=REFERENCE_COLOUR,
        linestyle="--",
        linewidth=1.1,
        label=f"fit, epoch {depth_fit.epoch}: ρ = {fit.rho:.3g}, R² = {fit.r_squared:.3f}",
    )


def plot_depth_profile(
    runs: Sequence[TrainingRun],
    *,
    split: str = "train",
    num_epochs: int = 5,
    fit: bool = False,
) -> Figure:
    """Depth-wise NC1 profile: NC1 of every measured layer, one panel per run.

    Each line is one measured epoch, coloured along viridis from dark purple (the earliest
    drawn) to yellow (the last), named in the legend; the x axis runs from the first
    intermediate layer to the penultimate features (pre- then post-ReLU). Tirer & Bruna
    (ICML 2022, Sec. 5) report NC1 decreasing with depth, and a deeper layer collapsing
    more as training goes on. NC1 is on a log axis.

    Parameters
    ----------
    runs : runs to draw.
    split : which split's measurements to draw.
    num_epochs : at most this many epochs per panel, spread log-uniformly, last included.
    fit : also draw He & Su's law of data separation fitted at the last drawn epoch
        (:func:`separation_fit`), a grey dashed line, where a fit is possible.

    Returns
    -------
    matplotlib.figure.Figure
    """
    _check_runs(runs)
    num_epochs = check_int("num_epochs", num_epochs, minimum=1, meaning="epochs drawn per run")
    from matplotlib import colormaps

    figure, grid = new_figure(1, len(runs), panel_size=(4.2, 3.2))
    colormap = colormaps["viridis"]
    for axes, run in zip(grid[0], runs, strict=True):
        layers = list(run.layers)
        rows = [row for row in run.metrics if row["split"] == split]
        chosen = profile_epochs(run, split=split, num_epochs=num_epochs)
        drawn = False
        for position, epoch in enumerate(chosen):
            by_layer = {row["layer"]: row.get(schema.NC1) for row in rows if row["epoch"] == epoch}
            values = [_as_float(by_layer.get(layer)) for layer in layers]
            shade = colormap(0.15 + 0.75 * position / max(len(chosen) - 1, 1))
            drawn |= plot_positive(
                axes,
                np.arange(len(layers)),
                values,
                color=shade,
                marker="o",
                markersize=4,
                label=f"epoch {epoch}",
            )
        if fit and drawn:
            _draw_fit(axes, run, separation_fit(run, split=split))
        axes.set_xticks(range(len(layers)))
        axes.set_xticklabels(
            [short_layer_name(layer, run) for layer in layers], rotation=30, ha="right", fontsize=8
        )
        axes.set_xlabel("layer (input → output)")
        axes.set_ylabel("NC1 = Tr(Σ_W Σ_B⁺)/K")
        axes.set_title(run.name + _describe_suffix(run), fontsize=9)
        if drawn:
            axes.legend(fontsize=7, frameon=False)
        else:
            mark_empty(axes)
    figure.suptitle(f"NC1 across depth ({split} split)")
    return figure


def _as_float(value: object) -> float:
    """A metrics.jsonl value as a float: None (not computed) is NaN, "Infinity" is inf."""
    value = schema.decode_value(value)
    return math.nan if value is None else float(value)  # type: ignore[arg-type]


def short_layer_name(layer: str, run: TrainingRun | None = None) -> str:
    """The layer's name as the figures print it.

    The training loop measures the penultimate features before and after the final ReLU
    ("penult. pre-ReLU", "penult. post-ReLU"); a run that measured only the classifier's
    input (``probe``, CollapseTracker, the integrations) names it "penultimate"
    (:data:`neuralcollapse.schema.PENULTIMATE`): nothing says it comes after a ReLU.
    """
    if layer == PENULTIMATE_POST and run is not None and PENULTIMATE_PRE not in run.layers:
        return schema.PENULTIMATE
    return {PENULTIMATE_PRE: "penult. pre-ReLU", PENULTIMATE_POST: "penult. post-ReLU"}.get(
        layer, layer
    )


# ----------------------------------------------------------------------------- MSE terms

#: the panels of :func:`plot_mse_terms`: (title, ((column, line style), ...)); labels from
#: :data:`neuralcollapse.schema.RUN_COLUMNS`
MSE_PANELS: tuple[tuple[str, tuple[tuple[str, str], ...]], ...] = (
    ("MSE loss (solid), L_LS (dashed)", ((schema.MSE_LOSS, "-"), (schema.MSE_LOSS_LS, "--"))),
    *(
        (title, ((key, "-"),))
        for title, key in zip(
            (
                "L_NC1: within-class term",
                "L_NC2/3: class-mean term",
                "L_LS⊥: distance from least squares",
            ),
            schema.MSE_TERM_KEYS,
            strict=True,
        )
    ),
)
#: the three terms of Han, Papyan & Donoho's decomposition (MSE loss = their sum)
MSE_TERM_KEYS = schema.MSE_TERM_KEYS


def plot_mse_terms(
    runs: Sequence[TrainingRun], *, split: str = "train", epoch_axis: str = "log"
) -> Figure:
    """Han, Papyan & Donoho's MSE decomposition over epochs, one colour per run.

    Panels (log y): the MSE loss of the network's classifier with the least-squares loss
    ``L_LS = L_NC1 + L_NC2/3`` dashed, then the three terms ``L_NC1``, ``L_NC2/3`` and
    ``L_LS⊥`` (``mse_*`` columns of the ``penultimate_post`` rows). A dotted vertical line in
    the run's colour marks its first zero-error epoch. Panels without data say so.
    """
    _check_runs(runs)
    check_epoch_axis(epoch_axis)
    figure, grid = new_figure(1, len(MSE_PANELS), panel_size=(3.4, 2.8))
    all_epochs: list[float] = []
    for run in runs:
        for _, columns in MSE_PANELS:
            for key, _ in columns:
                epochs, values = run.series(key, layer=PENULTIMATE_POST, split=split)
                all_epochs.extend(epochs[np.isfinite(values)].tolist())
    with_data = {
        index
        for index, run in enumerate(runs)
        for _, columns in MSE_PANELS
        for key, _ in columns
        if np.isfinite(run.series(key, layer=PENULTIMATE_POST, split=split)[1]).any()
    }
    tpts = drawn_tpts(runs, with_data, all_epochs, epoch_axis)
    for axes, (title, columns) in zip(grid[0], MSE_PANELS, strict=True):
        drawn = False
        for index, run in enumerate(runs):
            for key, linestyle in columns:
                epochs, values = run.series(key, layer=PENULTIMATE_POST, split=split)
                drawn |= plot_positive(
                    axes, epochs, values, color=run_colour(index), linestyle=linestyle,
                    marker=".",
                )  # fmt: skip
            if index in with_data:
                _mark_tpt(axes, tpts[index], run_colour(index))
        axes.set_title(title, fontsize=9)
        if drawn:
            set_epoch_scale(axes, all_epochs, epoch_axis)
        else:
            mark_empty(axes)
    # the legend names the runs that have MSE terms (each in its colour of every figure)
    handles = [
        _line_handle(run_colour(i), "-", run.name) for i, run in enumerate(runs) if i in with_data
    ]
    if any(tpt is not None for tpt in tpts):
        handles.append(_line_handle(_KEY_COLOUR, ":", "first zero training error (TPT)"))
    figure.legend(handles=handles, loc="outside lower center", ncols=min(len(handles), 4),
                  fontsize=8)  # fmt: skip
    figure.suptitle(
        f"MSE decomposition of the penultimate features ({split} split; Han, Papyan & Donoho 2022)"
    )
    return figure
