"""The AGOP section of the report: the neural feature ansatz by depth beside NC1 by depth.

Reads ``agop.jsonl`` (``neuralcollapse train --track-agop N``): at each tracked epoch, for
every linear layer l, the correlation of ``W_l^T W_l`` with the average gradient outer product
AGOP_l of the logits at the layer's input (alpha = 1) and with ``AGOP_l^{1/2}``, and the
measured layer that feeds it. Beaglehole, Súkeník, Mondelli & Belkin (NeurIPS 2024) explain
deep neural collapse by the AGOP: where the ansatz holds, each layer projects its input onto
the directions the AGOP keeps, which shrinks within-class variability layer after layer. The
figure puts the ansatz by depth beside the NC1 of each linear layer's input (from
``metrics.jsonl``, training split) at the same epoch.

The last layer's AGOP is ``W_L^T W_L`` exactly (the logits are linear in its input), so its
correlation 1 (alpha = 1) is a check of the measurement, not evidence; the captions read the
hidden layers only.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
from matplotlib.figure import Figure
from matplotlib.lines import Line2D

from neuralcollapse import schema
from neuralcollapse.train.epoch_measures import (
    AGOP_CORRELATION,
    AGOP_CORRELATION_SQRT,
    AGOP_IN_FEATURES,
    AGOP_INPUT_LAYER,
    AGOP_LAYERS,
    AGOP_NAME,
)
from neuralcollapse.viz.epoch_columns import number
from neuralcollapse.viz.runs import TrainingRun
from neuralcollapse.viz.style import (
    REFERENCE_COLOUR,
    depth_trend,
    mark_empty,
    new_figure,
    nice_number,
    run_colour,
    run_legend,
)

#: the table's columns: one row per run and linear layer at the run's last measured epoch
AGOP_TABLE_KEYS: tuple[str, ...] = (
    "run",
    "epoch",
    "layer",
    AGOP_INPUT_LAYER,
    AGOP_IN_FEATURES,
    AGOP_CORRELATION,
    AGOP_CORRELATION_SQRT,
    schema.NC1,
)


def _measured(run: TrainingRun) -> list[dict]:
    """agop.jsonl's rows that hold layers (a row recorded as not computed has none)."""
    return [row for row in run.agop if row.get(AGOP_LAYERS)]


def has_agop(run: TrainingRun) -> bool:
    """Whether some tracked epoch of the run has the ansatz of its linear layers."""
    return bool(_measured(run))


def _input_nc1(run: TrainingRun, layer: str | None, epoch: int) -> float | None:
    """NC1 of the training split at ``layer`` (a metrics row's layer) and ``epoch``."""
    if layer is None:
        return None
    for row in run.rows(layer=layer, split="train"):
        if row["epoch"] == epoch:
            value = number(row.get(schema.NC1))
            return value if value is not None and math.isfinite(value) else None
    return None


def _values(row: dict, key: str) -> list[float | None]:
    values = []
    for layer in row[AGOP_LAYERS]:
        value = number(layer.get(key))
        values.append(value if value is not None and math.isfinite(value) else None)
    return values


def _hidden(row: dict) -> list[int]:
    """Positions of the layers other than the last (whose ansatz holds by construction)."""
    return list(range(len(row[AGOP_LAYERS]) - 1))


def plot_agop(runs: Sequence[TrainingRun], *, epoch_axis: str = "log") -> Figure:
    """Two panels over the linear layers, shallow to deep, one colour per run.

    Left: the correlation of W^T W with AGOP^{1/2} (solid, circles) and with the AGOP
    (dashed) at the run's last measured epoch, and with AGOP^{1/2} at its first (dotted,
    faint), so training's effect on the ansatz shows layer by layer. Right: NC1 of each
    layer's input (log scale; the network's input itself is not measured) at the same last
    epoch. ``epoch_axis`` is accepted for the section interface; the x axis is depth.
    """
    figure, axes = new_figure(1, 2, panel_size=(4.4, 3.2))
    ansatz_panel, nc1_panel = axes[0]
    drawn: list[int] = []
    names: list[str] = []
    nc1_drawn = False
    for index, run in enumerate(runs):
        rows = _measured(run)
        if not rows:
            continue
        drawn.append(index)
        colour = run_colour(index)
        first, last = rows[0], rows[-1]
        layer_names = [layer[AGOP_NAME] for layer in last[AGOP_LAYERS]]
        if len(layer_names) > len(names):
            names = layer_names
        depth = np.arange(len(layer_names), dtype=float)
        for row, key, style, alpha in (
            (last, AGOP_CORRELATION_SQRT, "-o", 1.0),
            (last, AGOP_CORRELATION, "--", 1.0),
            (first, AGOP_CORRELATION_SQRT, ":", 0.5),
        ):
            if row is first and first is last:
                continue
            values = np.array([math.nan if v is None else v for v in _values(row, key)])
            ansatz_panel.plot(
                depth[: len(values)], values, style, color=colour, alpha=alpha, markersize=4
            )
        nc1 = [
            _input_nc1(run, layer.get(AGOP_INPUT_LAYER), int(last["epoch"]))
            for layer in last[AGOP_LAYERS]
        ]
        points = [(x, v) for x, v in zip(depth, nc1, strict=True) if v is not None and v > 0]
        if points:
            nc1_drawn = True
            nc1_panel.semilogy(
                [x for x, _ in points], [v for _, v in points], "-o", color=colour, markersize=4
            )
    for panel in (ansatz_panel, nc1_panel):
        panel.set_xticks(range(len(names)))
        panel.set_xticklabels(names, rotation=30, ha="right", fontsize=7)
        panel.set_xlabel("linear layer (shallow → deep)")
    ansatz_panel.set_ylim(-0.05, 1.05)
    ansatz_panel.set_ylabel("correlation with W^T W")
    ansatz_panel.set_title("neural feature ansatz by depth", fontsize=9)
    ansatz_panel.legend(
        handles=[
            Line2D([], [], color=REFERENCE_COLOUR, linestyle="-", marker="o", label="AGOP^½, last"),
            Line2D([], [], color=REFERENCE_COLOUR, linestyle="--", label="AGOP, last"),
            Line2D([], [], color=REFERENCE_COLOUR, linestyle=":", label="AGOP^½, first"),
        ],
        fontsize=7,
    )
    nc1_panel.set_ylabel("NC1 of the layer's input")
    nc1_panel.set_title("NC1 by depth (training split, last epoch)", fontsize=9)
    if not nc1_drawn:
        mark_empty(nc1_panel)
    run_legend(figure, runs, drawn, ())
    figure.suptitle("The AGOP mechanism (Beaglehole, Súkeník, Mondelli & Belkin 2024)")
    return figure


def ansatz_pairs(run: TrainingRun) -> tuple[dict, dict, list[tuple[float, float]]] | None:
    """``(first row, last row, pairs)``: the hidden layers' correlation with AGOP^{1/2} at the
    first and the last measured epoch, one pair per layer measured at both; None without two
    measured epochs."""
    rows = _measured(run)
    if len(rows) < 2:
        return None
    first, last = rows[0], rows[-1]
    before, after = _values(first, AGOP_CORRELATION_SQRT), _values(last, AGOP_CORRELATION_SQRT)
    pairs = [
        (before[i], after[i])
        for i in _hidden(last)
        if i < len(before) and before[i] is not None and after[i] is not None
    ]
    return first, last, pairs


def rise_text(first: dict, last: dict, pairs: list[tuple[float, float]]) -> str:
    """How the hidden layers' correlation with AGOP^{1/2} moved (from :func:`ansatz_pairs`)."""
    if not pairs:
        return "no hidden layer has the correlation at both epochs"
    rose = sum(b > a for a, b in pairs)
    mean_before = sum(a for a, _ in pairs) / len(pairs)
    mean_after = sum(b for _, b in pairs) / len(pairs)
    return (
        f"from epoch {first['epoch']} to {last['epoch']} it rose at {rose} of the {len(pairs)} "
        f"hidden layer(s) (mean {nice_number(mean_before)} → {nice_number(mean_after)})"
    )


def _nc1_sentence(run: TrainingRun, last: dict) -> str:
    """NC1 of the inputs by depth at the last epoch, and whether it falls at every step."""
    measured = [
        (layer[AGOP_NAME], _input_nc1(run, layer.get(AGOP_INPUT_LAYER), int(last["epoch"])))
        for layer in last[AGOP_LAYERS]
    ]
    values = [(name, v) for name, v in measured if v is not None]
    if len(values) < 2:
        return "NC1 of fewer than two layer inputs was measured at that epoch (see --layers)"
    listed = ", ".join(nice_number(v) for _, v in values)
    trend = depth_trend([v for _, v in values])
    return f"NC1 of the inputs of {len(values)} linear layers, shallow to deep, {trend}: {listed}"


def agop_caption(runs: Sequence[TrainingRun], *, epoch_axis: str = "log") -> str:
    """The caption of :func:`plot_agop`, from the values drawn: per run, the range of the
    hidden layers' correlation with AGOP^{1/2} at the last epoch, how it moved since the first,
    and NC1 by depth with whether it falls at every step."""
    parts = [
        "Look at: left, the correlation of each linear layer's W^T W with the AGOP of the "
        "logits at its input, square root (solid) and plain (dashed), at the last measured "
        "epoch, and the square root at the first (dotted); right, NC1 of each layer's input "
        "at the last epoch. The last layer's AGOP is W^T W exactly, so its correlation of 1 "
        "checks the measurement; the sentences below read the hidden layers."
    ]
    for run in runs:
        rows = _measured(run)
        if not rows:
            if run.agop:
                reason = run.agop[-1].get(schema.NOT_COMPUTED)
                parts.append(f"{run.name}: the ansatz was not computed ({reason}).")
            continue
        last = rows[-1]
        after = [
            v for i, v in enumerate(_values(last, AGOP_CORRELATION_SQRT)) if i in _hidden(last)
        ]
        after = [v for v in after if v is not None]
        samples = last.get("samples")
        span = (
            f"between {nice_number(min(after))} and {nice_number(max(after))}"
            if after
            else "not computed"
        )
        sentence = (
            f"{run.name} (epoch {last['epoch']}, {samples} samples): the hidden layers' "
            f"correlation with AGOP^½ is {span}"
        )
        moved = ansatz_pairs(run)
        if moved is not None:
            sentence += f"; {rise_text(*moved)}"
        parts.append(f"{sentence}. {_nc1_sentence(run, last)}.")
    return " ".join(parts)


def agop_rows(runs: Sequence[TrainingRun]) -> list[dict]:
    """One row per run and linear layer at the run's last measured epoch, with the NC1 of the
    layer's input at that epoch (None where it was not measured)."""
    table = []
    for run in runs:
        rows = _measured(run)
        if not rows:
            continue
        last = rows[-1]
        epoch = int(last["epoch"])
        for layer in last[AGOP_LAYERS]:
            source = layer.get(AGOP_INPUT_LAYER)
            table.append(
                {
                    "run": run.name,
                    "epoch": epoch,
                    "layer": layer[AGOP_NAME],
                    AGOP_INPUT_LAYER: source,
                    AGOP_IN_FEATURES: layer.get(AGOP_IN_FEATURES),
                    AGOP_CORRELATION: layer.get(AGOP_CORRELATION),
                    AGOP_CORRELATION_SQRT: layer.get(AGOP_CORRELATION_SQRT),
                    schema.NC1: _input_nc1(run, source, epoch),
                }
            )
    return table
