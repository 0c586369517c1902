"""The report of one snapshot: a model measured once (``neuralcollapse probe``), not trained.

A run is a snapshot when every row of its metrics.jsonl is of one epoch (:func:`is_snapshot`;
``probe`` writes epoch 0). Its page has nothing that needs epochs (no panels over training, no
terminal phase, no NC1-falls-over-training verdict):

1. **Summary**: what was measured (model, data and its preprocessing, K, N) and the checks a
   single snapshot can make, each linking to its section: the classifier's accuracy against
   chance, NC4, NC1 across depth, the law of data separation and the frame of the classifier's
   input;
2. **Per-layer metrics**: the headline metrics of every layer, training and test split (every
   column in tables/layers_all.csv);
3. **Depth profile**: NC1 of each layer, train and test, with He & Su's law of data separation
   fitted on the training split;
4. **Frame geometry of the classifier input**: OF gap, global-mean ratio and centred ETF gap of
   the penultimate class means against the orthogonal frame's and the simplex ETF's values
   (:mod:`neuralcollapse.frames`: the one vocabulary and tolerance rule);
5. **Classifier metrics**: NC2 of the classifier rows, NC3, NC4 and the accuracy, per split.

The classifier's input is named ``penultimate`` (:data:`neuralcollapse.schema.PENULTIMATE`):
a snapshot knows nothing about a ReLU before it. A named layer whose output IS the
classifier's input (``layer4`` of a ResNet measured next to ``penultimate``) is recognised by
its numbers (:func:`~neuralcollapse.viz.training_figures.same_features`: same N, d and
feature metrics) and drawn and fitted once, as ``penultimate (= layer4)``.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path

import numpy as np
from matplotlib.figure import Figure

from neuralcollapse import frames, schema
from neuralcollapse.viz.html import Column, HtmlReport
from neuralcollapse.viz.report.checks import (
    FAILS,
    FRAME_TOLERANCE,
    HOLDS,
    NC4_TOLERANCE,
    UNKNOWN,
    Check,
    frame_verdict,
    measured_frame,
    run_loss_and_bias,
)
from neuralcollapse.viz.report.findings import Finding, add_findings_section
from neuralcollapse.viz.report.tables import _add_table, _final_columns, final_metric_rows
from neuralcollapse.viz.report.text import _join, _num, _percent
from neuralcollapse.viz.report.values import _value
from neuralcollapse.viz.runs import PENULTIMATE_POST, TrainingRun, load_run
from neuralcollapse.viz.style import (
    REFERENCE_COLOUR,
    depth_trend,
    mark_empty,
    new_figure,
    run_colour,
)
from neuralcollapse.viz.training_figures import DepthFit, separation_fit

#: section titles of the snapshot page, in page order (the summary comes first)
SNAPSHOT_SUMMARY_TITLE = "Summary"
LAYERS_TITLE = "Per-layer metrics (train and test)"
DEPTH_TITLE = "Depth profile"
FRAME_TITLE = "Frame geometry of the classifier input against theory"
CLASSIFIER_TITLE = "Classifier metrics"
SNAPSHOT_TITLES = (SNAPSHOT_SUMMARY_TITLE, LAYERS_TITLE, DEPTH_TITLE, FRAME_TITLE, CLASSIFIER_TITLE)

#: the classifier's accuracy counts as near chance at or below this multiple of 1/K (the rule
#: of measure_model's warning)
NEAR_CHANCE = 1.25

#: the per-layer table: sizes, NC1, the NC2 measures of the means, the frame measurements
LAYER_KEYS = (
    "split",
    "layer",
    *schema.SIZE_KEYS[1:],
    schema.NC1,
    schema.CDNV,
    *(means for means, _ in schema.PAIRED_KEYS[:3]),
    *schema.FRAME_KEYS,
    schema.NCC_ACCURACY,
)
#: the classifier table: what needs the classifier's weights or outputs
CLASSIFIER_TABLE_KEYS = (
    "split",
    schema.ACCURACY,
    schema.NCC_MISMATCH,
    schema.SELF_DUALITY,
    schema.SELF_DUALITY_UNCENTRED,
    *(weights for _, weights in schema.PAIRED_KEYS[:3]),
    schema.ETF_GAP_WEIGHTS,
    schema.OF_GAP_WEIGHTS,
)


def is_snapshot(run: TrainingRun) -> bool:
    """Whether every measured row of the run is of one epoch (a probe, not a training run)."""
    return len({row["epoch"] for row in run.metrics}) == 1


def layer_label(layer: str, merged: Sequence[str] = ()) -> str:
    """How the snapshot page names a layer: the classifier's input is ``penultimate``, with
    the named layers whose output it is."""
    if layer == PENULTIMATE_POST:
        if merged:
            return f"{schema.PENULTIMATE} (= {', '.join(merged)})"
        return schema.PENULTIMATE
    return layer


def _layers(run: TrainingRun, merged: Sequence[str]) -> list[str]:
    """The layers drawn and tabled: input side first, the classifier's input last and once."""
    return [layer for layer in run.layers if layer not in merged]


def _row(run: TrainingRun, layer: str, split: str) -> dict | None:
    return run.last_row(layer=layer, split=split)


# ----------------------------------------------------------------------------- figures


def plot_snapshot_depth(run: TrainingRun, depth_fit: DepthFit | None = None) -> Figure:
    """NC1 of each layer, input side first: training split solid, test split dashed, and the
    law of data separation fitted on the training split (grey dashed) where ``depth_fit`` has
    a fit. Layers measured on the classifier's input itself are drawn once."""
    merged = depth_fit.merged if depth_fit is not None else ()
    layers = _layers(run, merged)
    figure, grid = new_figure(1, 1, panel_size=(max(4.2, 0.9 * len(layers) + 1.5), 3.4))
    axes = grid[0][0]
    x = np.arange(len(layers), dtype=float)
    drawn = False
    for index, (split, style, marker) in enumerate((("train", "-", "o"), ("test", "--", "s"))):
        if split not in run.splits:
            continue
        values = np.array(
            [_as_positive(_value(_row(run, layer, split), schema.NC1)) for layer in layers]
        )
        finite = np.isfinite(values)
        if finite.any():
            axes.plot(
                x[finite], values[finite], linestyle=style, marker=marker, markersize=5,
                color=run_colour(index), label=f"{split} split",
            )  # fmt: skip
            drawn = True
    fit = depth_fit.fit if depth_fit is not None else None
    if drawn and fit is not None and depth_fit.num_classes:
        slots = {layer: i for i, layer in enumerate(layers)}
        at = [slots[layer] for layer in fit.layers if layer in slots]
        values = fit.fitted() / depth_fit.num_classes
        axes.plot(
            at, values, color=REFERENCE_COLOUR, linestyle=(0, (4, 3)), linewidth=1.1,
            label=f"law of data separation (train): ρ = {fit.rho:.3g}, R² = {fit.r_squared:.3f}",
        )  # fmt: skip
    axes.set_yscale("log")
    axes.set_xticks(x)
    axes.set_xticklabels(
        [layer_label(layer, merged) for layer in layers], rotation=30, ha="right", fontsize=8
    )
    axes.set_xlabel("layer (input → output)")
    axes.set_ylabel("NC1 = Tr(Σ_W Σ_B⁺)/K")
    if drawn:
        axes.legend(fontsize=7, frameon=False)
    else:
        mark_empty(axes)
    figure.suptitle("NC1 across depth (one snapshot)")
    return figure


def _as_positive(value: float | None) -> float:
    return value if value is not None and math.isfinite(value) and value > 0 else math.nan


#: the three measurements of the frame figure: (key, panel title)
_FRAME_PANELS = (
    (schema.OF_GAP_MEANS, "OF gap of the uncentred means"),
    (schema.GLOBAL_MEAN_RATIO, "global-mean ratio ‖μ_G‖ / mean ‖μ_k‖"),
    (schema.ETF_GAP_MEANS, "ETF gap of the centred means (NC2)"),
)


def plot_snapshot_frame(run: TrainingRun, *, layer: str = PENULTIMATE_POST) -> Figure:
    """Where the classifier input's class means sit against the two frames.

    Three panels (OF gap, global-mean ratio, centred ETF gap). In each, the orthogonal frame's
    and the simplex ETF's values (:func:`neuralcollapse.frames.frame_levels`) are vertical
    lines with a band of the tolerance :func:`~neuralcollapse.frames.classify_frame` reads
    them with; the measured values of the training and test splits are the markers.
    """
    splits = [split for split in ("train", "test") if split in run.splits]
    figure, grid = new_figure(1, 3, panel_size=(3.9, 1.2 + 0.45 * max(len(splits), 1)))
    k = run.num_classes
    levels = frames.frame_levels(k) if k and k >= 2 else None
    tolerances = frames.frame_tolerances(k, FRAME_TOLERANCE) if levels else None
    for column, (axes, (key, title)) in enumerate(zip(grid[0], _FRAME_PANELS, strict=True)):
        values = {split: _value(_row(run, layer, split), key) for split in splits}
        known = [v for v in values.values() if v is not None and math.isfinite(v)]
        right = max([*known, *(lv[column] for lv in levels.values())] if levels else known or [1])
        if levels and tolerances:
            tol = tolerances[1] if key == schema.GLOBAL_MEAN_RATIO else tolerances[0]
            of_level, etf_level = levels[frames.ORTHOGONAL][column], levels[frames.ETF][column]
            marks = (
                [(of_level, "both frames (centred)", "#999999")]
                if of_level == etf_level
                else [
                    (of_level, "orthogonal frame", "#009E73"),
                    (etf_level, "simplex ETF", "#CC79A7"),
                ]
            )
            for level, label, colour in marks:
                axes.axvspan(level - tol, level + tol, color=colour, alpha=0.15, linewidth=0)
                axes.axvline(level, color=colour, linewidth=1.2)
                axes.annotate(
                    label, xy=(level, 1.0), xycoords=("data", "axes fraction"),
                    xytext=(0, 2), textcoords="offset points", ha="center", va="bottom",
                    fontsize=7, color=colour,
                )  # fmt: skip
            right = max(right, max(level for level, _, _ in marks) + tol)
        drawn = False
        for row_index, split in enumerate(splits):
            value = values[split]
            if value is None or not math.isfinite(value):
                continue
            axes.plot(
                [value], [row_index], marker="o" if split == "train" else "s", markersize=7,
                color=run_colour(row_index), linestyle="none",
            )  # fmt: skip
            axes.annotate(
                _num(value), xy=(value, row_index), xytext=(0, 7), textcoords="offset points",
                ha="center", fontsize=7,
            )  # fmt: skip
            drawn = True
        axes.set_yticks(range(len(splits)))
        axes.set_yticklabels(splits)
        axes.set_ylim(-0.7, len(splits) - 0.3)
        axes.set_xlim(-0.05 * right, 1.12 * right)
        axes.set_title(title, fontsize=9, pad=12)
        if not drawn:
            mark_empty(axes)
    figure.suptitle(
        f"Class means of the classifier input ({layer_label(layer)}) against the frames"
    )
    return figure


# ----------------------------------------------------------------------------- checks


def snapshot_checks(run: TrainingRun, depth_fit: DepthFit) -> list[Finding]:
    """The verdicts a single snapshot can give, each with the section that shows it."""
    findings: list[Finding] = []
    k = run.num_classes
    splits = [split for split in ("train", "test") if split in run.splits]

    def per_split(key: str) -> list[tuple[str, float]]:
        return [
            (split, value)
            for split in splits
            if (value := _value(_row(run, PENULTIMATE_POST, split), key)) is not None
        ]

    accuracy = per_split(schema.ACCURACY)
    if k and accuracy:
        chance = NEAR_CHANCE / k
        measured = "; ".join(f"{split} {_percent(value)}" for split, value in accuracy)
        near = [split for split, value in accuracy if value <= chance]
        findings.append(
            Finding(
                CLASSIFIER_TITLE,
                Check(
                    run.name,
                    "classifier accuracy",
                    f"above chance (> {NEAR_CHANCE:g}/K = {_percent(chance)}); else the metrics "
                    "describe a network that does not classify this data",
                    measured,
                    FAILS if near else HOLDS,
                ),
            )
        )
    mismatch = per_split(schema.NCC_MISMATCH)
    expected = f"≤ {_percent(NC4_TOLERANCE)} of samples in collapse"
    if mismatch:
        measured = "; ".join(f"{split} {_percent(value)}" for split, value in mismatch)
        train = dict(mismatch).get("train", mismatch[0][1])
        verdict = HOLDS if train <= NC4_TOLERANCE else FAILS
    else:
        measured, verdict = "not computed", UNKNOWN
    findings.append(
        Finding(
            CLASSIFIER_TITLE,
            Check(
                run.name, "NC4: classifier = nearest centre (train)", expected, measured, verdict
            ),
        )
    )

    layers = _layers(run, depth_fit.merged)
    values = [
        (layer, value)
        for layer in layers
        if (value := _value(_row(run, layer, "train"), schema.NC1)) is not None
    ]
    expected = "falls from layer to layer (Tirer & Bruna 2022)"
    if len(values) < 2:
        measured, verdict = f"{len(values)} layer(s) with NC1", UNKNOWN
    else:
        falls = all(b[1] < a[1] for a, b in zip(values, values[1:], strict=False))
        measured = " → ".join(
            f"{layer_label(layer, depth_fit.merged)}: {_num(value)}" for layer, value in values
        )
        verdict = HOLDS if falls else FAILS
    findings.append(
        Finding(
            DEPTH_TITLE, Check(run.name, "NC1 across depth (train)", expected, measured, verdict)
        )
    )
    expected = "ρ < 1 (He & Su 2023: fuzziness falls geometrically with depth)"
    if depth_fit.fit is None:
        measured, verdict = f"no fit: {depth_fit.reason}", UNKNOWN
    else:
        fit = depth_fit.fit
        measured = f"ρ = {fit.rho:.3g}, R² = {fit.r_squared:.3f} over {len(fit.layers)} depths"
        verdict = HOLDS if fit.rho < 1 else FAILS
    findings.append(
        Finding(
            DEPTH_TITLE,
            Check(run.name, "law of data separation (train)", expected, measured, verdict),
        )
    )

    predicted, expected = frames.predicted_frame(*run_loss_and_bias(run))
    frame = measured_frame(run)
    if frame is None:
        measured = "not computed"
    else:
        measured = _frame_text(frame)
    if predicted is None:
        expected = (
            "orthogonal frame (MSE, no bias), simplex ETF (CE, no bias) or a centred ETF (with "
            "a bias), after a long terminal phase; the run does not record its loss and bias"
        )
    findings.append(
        Finding(
            FRAME_TITLE,
            Check(
                run.name,
                "frame of the classifier input (train)",
                expected,
                measured,
                frame_verdict(predicted, frame),
            ),
        )
    )
    return findings


def _frame_text(frame) -> str:
    levels = (
        f"OF gap {_num(frame.of_gap)}, ratio {_num(frame.ratio)}, centred ETF gap "
        f"{_num(frame.etf_gap)}"
    )
    if frame.frame == frames.NEITHER:
        return f"neither frame ({levels})"
    if frame.frame == frames.CENTRED_ETF:
        return f"simplex ETF after centring only ({levels})"
    return f"{frames.FRAMES[frame.frame]} ({levels})"


# ----------------------------------------------------------------------------- captions


def depth_snapshot_caption(run: TrainingRun, depth_fit: DepthFit) -> str:
    """What the depth figure shows, from its numbers."""
    merged = depth_fit.merged
    parts = [
        "Look at: NC1 of each measured layer, input side first (training split solid, test "
        "split dashed; log axis)."
    ]
    for split in ("train", "test"):
        values = [
            (layer, value)
            for layer in _layers(run, merged)
            if (value := _value(_row(run, layer, split), schema.NC1)) is not None
        ]
        if len(values) < 2:
            continue
        shape = depth_trend([value for _, value in values])
        parts.append(
            f"{split.capitalize()}: NC1 {shape}, from {_num(values[0][1])} "
            f"({layer_label(values[0][0], merged)}) to {_num(values[-1][1])} "
            f"({layer_label(values[-1][0], merged)})."
        )
    if merged:
        parts.append(
            f"{_join(list(merged))} {'is' if len(merged) == 1 else 'are'} drawn and fitted once, "
            "as the classifier's input: the same N, d and feature metrics as the penultimate "
            "features (its output feeds the classifier), one depth, not two."
        )
    if depth_fit.fit is not None:
        fit = depth_fit.fit
        sentence = (
            f"Grey dashed: He & Su's law of data separation log D_l = a + l log ρ, with D_l = "
            f"K·NC1, fitted on the training split over {len(fit.layers)} depths: ρ = "
            f"{fit.rho:.3g}, R² = {fit.r_squared:.3f}"
        )
        sentence += (
            " (the fuzziness falls by that factor per layer)."
            if fit.rho < 1
            else " (ρ ≥ 1: the fuzziness does not fall with depth, against the law)."
        )
        parts.append(sentence + " He & Su (PNAS 2023) find ρ < 1 with R² close to 1 in "
                     "trained networks.")  # fmt: skip
    else:
        parts.append(f"No fit of the law of data separation: {depth_fit.reason}.")
    parts.append("Tirer & Bruna (2022, Sec. 5) report NC1 decreasing with depth.")
    return " ".join(parts)


def frame_snapshot_caption(run: TrainingRun) -> str:
    """What the frame figure shows: the frame levels and tolerance, and the nearest frame."""
    k = run.num_classes
    parts = [
        "Look at: where the markers (the class means of the classifier input, training split "
        "circles, test split squares) sit against the coloured lines."
    ]
    if k and k >= 2:
        levels = frames.frame_levels(k)
        gap_tol, ratio_tol = frames.frame_tolerances(k, FRAME_TOLERANCE)
        parts.append(
            f"For K = {k}, an orthogonal frame reads OF gap 0, ratio 1/√K = "
            f"{_num(levels[frames.ORTHOGONAL][1])} and centred ETF gap 0; a simplex ETF OF gap "
            f"√(2−2√((K−1)/K)) = {_num(levels[frames.ETF][0])}, ratio 0 and centred ETF gap 0. "
            f"The bands are the tolerance a value is read with ({FRAME_TOLERANCE:g} of the "
            f"distance between the two frames: ±{_num(gap_tol)} in the gaps, ±{_num(ratio_tol)} "
            "in the ratio)."
        )
    for split in ("train", "test"):
        frame = measured_frame(run, split=split) if split in run.splits else None
        if frame is not None:
            parts.append(f"{split.capitalize()}: {_frame_text(frame)}.")
    predicted, expected = frames.predicted_frame(*run_loss_and_bias(run))
    if predicted is None:
        parts.append(
            "Theory predicts an orthogonal frame for MSE without a classifier bias (Tirer & "
            "Bruna 2022), a simplex ETF for cross-entropy without a bias (Zhu et al. 2021) and "
            "a simplex ETF of the centred means with a bias (Papyan et al. 2020), each after a "
            "long terminal phase; this run does not record its loss and bias."
        )
    else:
        parts.append(f"Theory predicts: {expected}.")
    return " ".join(parts)


def _snapshot_intro(run: TrainingRun) -> str:
    config = run.config
    parts = []
    if config.get("model"):
        parts.append(f"Model: {config['model']}.")
    data = config.get("data") or config.get("dataset")
    if data:
        parts.append(f"Data: {data}.")
    if config.get("preprocessing"):
        parts.append(f"Preprocessing: {config['preprocessing']}")
        if not str(config["preprocessing"]).endswith("."):
            parts[-1] += "."
    sizes = []
    for split in ("train", "test"):
        row = _row(run, PENULTIMATE_POST, split) or next(
            (r for r in run.metrics if r["split"] == split), None
        )
        n = _value(row, schema.SIZE_KEYS[1])
        if n is not None:
            sizes.append(f"{int(n):,} {split} samples")
    k = run.num_classes
    if k:
        sizes.insert(0, f"K = {k} classes")
    if sizes:
        parts.append(_join(sizes).capitalize() + ".")
    layers = [layer_label(layer) for layer in run.layers]
    parts.append(f"Layers measured, input side first: {', '.join(layers)}.")
    parts.append(
        "One snapshot of the model (one measurement, no training): nothing on this page needs "
        "epochs."
    )
    return " ".join(parts)


# ----------------------------------------------------------------------------- the page


def _relabel(rows: list[dict], merged: Sequence[str]) -> list[dict]:
    for row in rows:
        if row.get("layer") == PENULTIMATE_POST:
            row["layer"] = layer_label(PENULTIMATE_POST, merged)
    return rows


def add_snapshot_sections(report: HtmlReport, run: TrainingRun) -> list[Finding]:
    """Add the snapshot sections of ``run`` to ``report`` (summary first); returns the checks."""
    depth_fit = separation_fit(run)
    merged = depth_fit.merged
    layers = _layers(run, merged)

    section = report.section(
        LAYERS_TITLE,
        "The headline metrics of every measured layer, input side first, on each split "
        "(docs/metrics.md).",
    )
    rows = []
    for split in run.splits:
        for layer in layers:
            last = _row(run, layer, split)
            if last is None:
                continue
            row: dict[str, object] = {"split": split, "layer": layer_label(layer, merged)}
            for key in LAYER_KEYS[2:]:
                row[key] = schema.decode_value(last.get(key))
            rows.append(row)
    caption = (
        "Look at: NC1 and the NC2 measures from the input side (top) to the classifier's input "
        f"({layer_label(PENULTIMATE_POST, merged)}, last), per split."
    )
    if merged:
        caption += (
            f" {_join(list(merged))} is not repeated: its output is the classifier's input (same "
            "N, d and feature metrics)."
        )
    _add_table(section, "layers", rows, caption, list(LAYER_KEYS), missing="not computed")
    all_rows = _relabel(final_metric_rows([run]), merged)
    _add_table(
        section,
        "layers_all",
        all_rows,
        "Every measured column of every layer and split (also in tables/layers_all.csv).",
        _final_columns(all_rows),
    )

    depth = report.section(DEPTH_TITLE)
    depth.add_figure(
        "depth_profile", plot_snapshot_depth(run, depth_fit), depth_snapshot_caption(run, depth_fit)
    )

    frame_section = report.section(
        FRAME_TITLE,
        "The class means of the classifier's input, named by neuralcollapse.frames (docs/"
        "theory.md, 'Telling an ETF from an orthogonal frame').",
    )
    frame_section.add_figure(
        "frame_geometry", plot_snapshot_frame(run), frame_snapshot_caption(run)
    )
    frame_section.add_table(
        "frame_geometry",
        _frame_rows(run),
        "The three measurements of the classifier input's class means, the values of the two "
        "frames, and the tolerance each is read with.",
        columns=[Column("measurement", kind="text")]
        + [
            Column(key, header)
            for key, header in (
                ("orthogonal", "orthogonal frame"),
                ("etf", "simplex ETF"),
                ("tolerance", "± tolerance"),
                ("train", "train"),
                ("test", "test"),
            )
        ],
    )

    classifier = report.section(
        CLASSIFIER_TITLE,
        "What needs the classifier: NC2 of its rows, self-duality with the class means (NC3), "
        "agreement with the nearest class centre (NC4) and its accuracy.",
    )
    rows = []
    for split in run.splits:
        last = _row(run, PENULTIMATE_POST, split)
        if last is None:
            continue
        row = {"split": split}
        for key in CLASSIFIER_TABLE_KEYS[1:]:
            row[key] = schema.decode_value(last.get(key))
        rows.append(row)
    _add_table(
        classifier,
        "classifier",
        rows,
        "Look at: the accuracy against chance (1/K"
        + (f" = {_percent(1 / run.num_classes)}" if run.num_classes else "")
        + f") and NC4 against 0 (≤ {_percent(NC4_TOLERANCE)} counts as collapse).",
        list(CLASSIFIER_TABLE_KEYS),
        missing="not computed (no classifier was given)",
    )

    findings = snapshot_checks(run, depth_fit)
    add_findings_section(
        report,
        findings,
        title=SNAPSHOT_SUMMARY_TITLE,
        intro=_snapshot_intro(run),
        name="checks",
        with_run=False,
    )
    return findings


def _frame_rows(run: TrainingRun) -> list[dict]:
    k = run.num_classes
    levels = frames.frame_levels(k) if k and k >= 2 else None
    tolerances = frames.frame_tolerances(k, FRAME_TOLERANCE) if levels else (None, None)
    rows = []
    for column, (key, _) in enumerate(_FRAME_PANELS):
        row: dict[str, object] = {"measurement": schema.METRICS[key].label}
        if levels:
            row["orthogonal"] = levels[frames.ORTHOGONAL][column]
            row["etf"] = levels[frames.ETF][column]
            row["tolerance"] = tolerances[1] if key == schema.GLOBAL_MEAN_RATIO else tolerances[0]
        for split in ("train", "test"):
            if split in run.splits:
                row[split] = _value(_row(run, PENULTIMATE_POST, split), key)
        rows.append(row)
    return rows


def _as_run(source: str | Path | TrainingRun) -> TrainingRun:
    if isinstance(source, TrainingRun):
        return source
    return load_run(source)


def build_snapshot_report(
    run_dir_or_run: str | Path | TrainingRun,
    out_dir: str | Path,
    *,
    title: str | None = None,
    subtitle: str | None = None,
) -> Path:
    """Write the page of one snapshot (``neuralcollapse probe``'s run): OUT/report.html,
    OUT/figures/*.png, OUT/tables/*.csv.

    Parameters
    ----------
    run_dir_or_run : the run directory (or a :class:`~neuralcollapse.viz.runs.TrainingRun`)
        whose rows are all of one epoch (:func:`is_snapshot`).
    out_dir : where to write the page (created if needed).
    title : the page title (default "Neural collapse snapshot: RUN").
    subtitle : the line under the title (default names the run and the metrics' reference).

    Returns
    -------
    Path of report.html.

    Raises
    ------
    ValueError : the run has rows of several epochs (use :func:`build_run_report`).
    """
    run = _as_run(run_dir_or_run)
    if not is_snapshot(run):
        epochs = sorted({row["epoch"] for row in run.metrics})
        raise ValueError(
            f"run {run.name} was measured at {len(epochs)} epochs ({epochs[0]} to {epochs[-1]}), "
            "not once: build_run_report draws runs over training"
        )
    report = HtmlReport(
        title or f"Neural collapse snapshot: {run.name}",
        subtitle=subtitle
        or "One measurement of a model. Metrics as defined in Papyan, Han & Donoho (PNAS 2020), "
        "with the project's conventions (docs/metrics.md).",
    )
    add_snapshot_sections(report, run)
    return report.write(out_dir)


def snapshot_runs(runs: Sequence[TrainingRun]) -> bool:
    """Whether ``runs`` is one snapshot (the case :func:`build_run_report` hands over)."""
    return len(runs) == 1 and is_snapshot(runs[0])


__all__ = [
    "CLASSIFIER_TITLE",
    "DEPTH_TITLE",
    "FRAME_TITLE",
    "LAYERS_TITLE",
    "SNAPSHOT_SUMMARY_TITLE",
    "SNAPSHOT_TITLES",
    "add_snapshot_sections",
    "build_snapshot_report",
    "is_snapshot",
    "layer_label",
    "plot_snapshot_depth",
    "plot_snapshot_frame",
    "snapshot_checks",
]
