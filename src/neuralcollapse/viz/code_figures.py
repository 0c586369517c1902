"""The many-class section of the report: smallest angles and margins when K > d + 1.

When the classifier's input has d dimensions and there are K > d + 1 classes, no simplex ETF
fits. Jiang et al. ("Generalized neural collapse for a large number of classes", 2023) show
that the normalised classifier rows then tend to a softmax code, at low temperature the
solution of the Tammes problem: K points on the sphere S^(d-1) whose smallest angle is as
large as it can be (docs/theory.md, docs/frontier.md).

Reads the code columns of ``epochs.jsonl`` (:data:`neuralcollapse.schema.CODE_KEYS`, recorded
by ``neuralcollapse train --feature-dim D`` when D + 1 < K): the smallest angle between two
classifier rows, between two centred training class means (degrees), and the means'
one-vs-rest margin min_k min_{j != k} <u_k, v_k - v_j> (u_k the unit centred mean, v the unit
rows). The best known smallest angle for (K, d) is summary.json's ``spherical_code``: exact
where the optimum is known, else the best of the solver's restarts (a lower bound on it).

Angles are in degrees throughout (figure, caption and table alike), as the run files hold them.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from matplotlib.figure import Figure
from matplotlib.lines import Line2D

from neuralcollapse import schema
from neuralcollapse.train.epoch_measures import EXACT, OPTIMUM_ANGLE, RESTARTS, SPHERICAL_CODE
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
    reference_line,
    run_colour,
    run_legend,
    set_epoch_scale,
)

# the schema declares the group in this order: the rows' smallest angle, the means' smallest
# angle, the means' one-vs-rest margin
ANGLE_WEIGHTS, ANGLE_MEANS, MARGIN_MEANS = schema.CODE_KEYS
DIM = schema.DIM

#: the table's columns: the run, its last tracked epoch, K, d, the best known angle and the
#: three code columns; the best known angle keeps summary.json's name in the CSV
CODE_TABLE_KEYS: tuple[str, ...] = (
    "run",
    "epoch",
    schema.NUM_CLASSES,
    DIM,
    OPTIMUM_ANGLE,
    *schema.CODE_KEYS,
)

#: the labels of the dotted line of a run's best known angle
OPTIMUM_LABEL, SOLVER_LABEL = "optimum", "best found (solver)"


@dataclass(frozen=True)
class BestKnownAngle:
    """summary.json's ``spherical_code``: the best known smallest angle of K unit vectors in
    d dimensions (degrees); ``exact`` when it is the proven optimum, else the best of
    ``restarts`` solver restarts (a lower bound on the optimum)."""

    degrees: float
    exact: bool
    num_classes: int | None = None
    dim: int | None = None
    restarts: int | None = None

    @property
    def label(self) -> str:
        """The dotted line's label: "optimum" when exact, "best found (solver)" when not."""
        return OPTIMUM_LABEL if self.exact else SOLVER_LABEL

    def describe(self) -> str:
        """ "the optimum 66.1° (exact)" or "the solver's best 58° (best of 8 restarts; a lower
        bound on the optimum)"."""
        angle = f"{nice_number(self.degrees)}°"
        if self.exact:
            return f"the optimum {angle} (exact)"
        if self.restarts is None:
            restarts = "restarts not recorded"
        else:
            restarts = f"best of {self.restarts} restarts"
        return f"the solver's best {angle} ({restarts}; a lower bound on the optimum)"


def _integer(value: object) -> int | None:
    read = number(value)
    return int(read) if read is not None and read.is_integer() else None


def has_codes(run: TrainingRun) -> bool:
    """Whether some epoch of the run has a finite smallest angle of the classifier rows."""
    return bool(epoch_series(run, ANGLE_WEIGHTS))


def best_known_angle(run: TrainingRun) -> BestKnownAngle | None:
    """The run's summary.json ``spherical_code``; None when the summary, the entry or a
    finite ``optimum_angle_degrees`` is missing (the report then says it is not recorded,
    rather than failing). ``exact`` counts only when it is ``true``: anything else is read
    as the solver's best, which claims less."""
    entry = (run.summary or {}).get(SPHERICAL_CODE)
    if not isinstance(entry, Mapping):
        return None
    degrees = number(entry.get(OPTIMUM_ANGLE))
    if degrees is None or not math.isfinite(degrees):
        return None
    return BestKnownAngle(
        degrees=degrees,
        exact=entry.get(EXACT) is True,
        num_classes=_integer(entry.get(schema.NUM_CLASSES)),
        dim=_integer(entry.get(DIM)),
        restarts=_integer(entry.get(RESTARTS)),
    )


def _missing_optimum(run: TrainingRun) -> str:
    """Why a run has no best known angle, in the caption's words."""
    if run.summary is None:
        return "no summary.json"
    if SPHERICAL_CODE not in run.summary:
        return "no spherical_code in summary.json"
    return "summary.json's spherical_code has no finite optimum_angle_degrees"


def code_sizes(run: TrainingRun) -> tuple[int | None, int | None]:
    """``(K, d)`` of the run: summary.json's ``spherical_code`` where it says, else the last
    measured row of the classifier's input (post-ReLU penultimate features) in metrics.jsonl,
    so that a run without a summary (still training) is still described; None where neither
    says."""
    best = best_known_angle(run)
    k = best.num_classes if best is not None else None
    d = best.dim if best is not None else None
    row = run.last_row(layer=PENULTIMATE_POST) or {}
    if k is None:
        k = _integer(row.get(schema.NUM_CLASSES))
    if d is None:
        d = _integer(row.get(DIM))
    return k, d


def plot_codes(runs: Sequence[TrainingRun], *, epoch_axis: str = "log") -> Figure:
    """Two panels over the tracked epochs, one colour per run (its index among ``runs``, as
    in the report's other figures), runs without the code columns left out.

    Left: the smallest angle between two classifier rows (solid) and between two centred
    class means (dashed), in degrees, with the run's best known angle for its (K, d) from
    summary.json as a horizontal dotted line, labelled "optimum" when exact and "best found
    (solver)" when not (no line when the summary does not record it). Right: the means'
    one-vs-rest margin (solid) with a line at 0; below it some class mean is misclassified by
    the normalised classifier. Untracked epochs (None) and values not computed are left out.
    """
    figure, axes = new_figure(1, 2, panel_size=(4.2, 3.2))
    angle_panel, margin_panel = axes[0]
    drawn: list[int] = []
    all_epochs: list[float] = []
    angles_drawn = margin_drawn = False
    # one text per (angle, label): two runs with the same (K, d) share one annotation
    annotated: set[tuple[float, str]] = set()
    labels_drawn: list[str] = []
    for index, run in enumerate(runs):
        if not has_codes(run):
            continue
        drawn.append(index)
        colour = run_colour(index)
        for key, style in ((ANGLE_WEIGHTS, "-"), (ANGLE_MEANS, "--")):
            epochs, values = arrays(epoch_series(run, key))
            all_epochs.extend(epochs.tolist())
            angles_drawn |= plot_finite(
                angle_panel, epochs, values, color=colour, linestyle=style, marker="o",
                markersize=3, linewidth=1.2,
            )  # fmt: skip
        best = best_known_angle(run)
        if best is not None:
            angle_panel.axhline(
                best.degrees, color=colour, linestyle=":", linewidth=1.4, label=best.label
            )
            if best.label not in labels_drawn:
                labels_drawn.append(best.label)
            if (best.degrees, best.label) not in annotated:
                annotated.add((best.degrees, best.label))
                angle_panel.annotate(
                    best.label,
                    xy=(1.0, best.degrees),
                    xycoords=("axes fraction", "data"),
                    xytext=(-2, 2),
                    textcoords="offset points",
                    ha="right",
                    va="bottom",
                    fontsize=7,
                    color=REFERENCE_COLOUR,
                )
        epochs, margins = arrays(epoch_series(run, MARGIN_MEANS))
        all_epochs.extend(epochs.tolist())
        margin_drawn |= plot_finite(
            margin_panel, epochs, margins, color=colour, marker="o", markersize=3, linewidth=1.2
        )
    for panel, has_data in ((angle_panel, angles_drawn), (margin_panel, margin_drawn)):
        if has_data:
            set_epoch_scale(panel, all_epochs, epoch_axis)
        else:
            mark_empty(panel)
    if margin_drawn:
        # the line that matters for the margin: above it every mean is on its own side
        reference_line(margin_panel, 0.0, "0 (below: a class mean misclassified)", where="left")
    for panel, has_data in ((angle_panel, angles_drawn), (margin_panel, margin_drawn)):
        if has_data:
            # headroom for the labels above the optimum and zero lines, which may be the top
            low, high = panel.get_ylim()
            panel.set_ylim(low, high + 0.1 * (high - low))
    angle_panel.set_ylabel("smallest angle (degrees)")
    angle_panel.set_title("smallest angle: classifier rows and class means", fontsize=9)
    angle_panel.legend(
        handles=[
            Line2D([], [], color=REFERENCE_COLOUR, linestyle="-", label="classifier rows"),
            Line2D([], [], color=REFERENCE_COLOUR, linestyle="--", label="centred class means"),
        ]
        + [
            Line2D([], [], color=REFERENCE_COLOUR, linestyle=":", label=label)
            for label in labels_drawn
        ],
        fontsize=7,
    )
    margin_panel.set_ylabel("min_k min_j ⟨u_k, v_k − v_j⟩")
    margin_panel.set_title("one-vs-rest margin of the class means", fontsize=9)
    run_legend(figure, runs, drawn, ())
    figure.suptitle("More classes than dimensions: the classifier as a spherical code")
    return figure


def _degrees(value: float) -> str:
    return f"{nice_number(value)}°"


def _span(name: str, series: Sequence[tuple[int, float]], unit: str = "") -> str:
    """ "NAME went from a to b (epochs e0 to e1)", from the first and last points drawn."""
    (first_epoch, first), (last_epoch, last) = series[0], series[-1]
    if len(series) == 1:
        return f"{name} was {nice_number(first)}{unit} (epoch {first_epoch} only)"
    return (
        f"{name} went from {nice_number(first)}{unit} to {nice_number(last)}{unit} "
        f"(epochs {first_epoch} to {last_epoch})"
    )


def _against(last: float, best: BestKnownAngle) -> str:
    """How far a last angle ends from the best known one, in degrees."""
    gap = best.degrees - last
    if gap > 0:
        return f"{_degrees(gap)} below {best.describe()}"
    if gap < 0:
        # above an exact optimum only by rounding of the tabulated value; above the solver's
        # best, the run found a wider code than the solver did
        return f"{_degrees(-gap)} above {best.describe()}"
    return f"at {best.describe()}"


def _angle_sentence(
    name: str, series: Sequence[tuple[int, float]], best: BestKnownAngle | None
) -> str:
    """ "NAME went from a° to b° (epochs ...), ending x° below the optimum ..."."""
    if not series:
        return f"{name} was not computed"
    text = _span(name, series, "°")
    return text if best is None else f"{text}, ending {_against(series[-1][1], best)}"


def positive_since(series: Sequence[tuple[int, float]]) -> int | None:
    """The first tracked epoch from which the margin is > 0 at every later tracked epoch;
    None when the last value is not positive (or there is none)."""
    since = None
    for epoch, value in series:
        if value > 0:
            since = epoch if since is None else since
        else:
            since = None
    return since


def _margin_sentence(run: TrainingRun) -> str:
    """The margin's first and last values, whether it ended positive, and since when."""
    series = epoch_series(run, MARGIN_MEANS)
    if not series:
        return "the means' margin was not computed"
    text = _span("the means' margin", series)
    last = series[-1][1]
    since = positive_since(series)
    if since is None:
        positive = sum(value > 0 for _, value in series)
        text += (
            f" and ended at {nice_number(last)} ≤ 0: some class mean is misclassified by the "
            "normalised classifier"
        )
        if positive:
            text += f" (it was positive at {positive} of {len(series)} tracked epochs)"
        return text
    text += (
        " and ended positive: every class mean is on its own class's side (classified "
        "correctly by the normalised classifier)"
    )
    if since == series[0][0]:
        return text + f", at every one of the {len(series)} tracked epochs"
    return text + f", at every tracked epoch from epoch {since} on"


def _sizes_text(run: TrainingRun) -> str:
    k, d = code_sizes(run)
    parts = [f"K = {k}"] if k is not None else []
    parts += [f"d = {d}"] if d is not None else []
    return f" ({', '.join(parts)})" if parts else ""


def codes_caption(runs: Sequence[TrainingRun], *, epoch_axis: str = "log") -> str:
    """The caption of :func:`plot_codes`, computed from the points it draws: per run its K
    and d, the first and last smallest angle of the rows and of the means and how far each
    ends from the best known angle (exact optimum or the solver's best, as summary.json
    says; "not recorded" without one), and whether the means' margin ended positive and from
    which tracked epoch on it stayed so."""
    parts = [
        "Look at: left, the smallest angle between two classifier rows (solid) and between "
        "two centred training class means (dashed), in degrees, with each run's best known "
        "smallest angle of K unit vectors in d dimensions (dotted: the optimum where it is "
        "known exactly, else the best the solver found, a lower bound on the optimum); right, "
        "the one-vs-rest margin of the class means, min_k min_{j≠k} ⟨u_k, v_k − v_j⟩ for the "
        "unit centred means u and the unit classifier rows v, with 0 marked: below it some "
        "class mean is misclassified by the normalised classifier. With more classes than "
        "dimensions (K > d + 1, where no simplex ETF fits), Jiang et al. (2023) predict the "
        "normalised rows tend to a softmax code, at low temperature the Tammes optimum, which "
        "maximises the smallest angle."
    ]
    epochs: list[float] = []
    for run in runs:
        if not has_codes(run):
            reason = not_computed_sentence(run, schema.CODE_KEYS)
            parts.append(
                f"{run.name}: no smallest angle of the classifier rows "
                + (
                    "was computed. " + reason
                    if reason
                    else "(recorded only when the classifier's input has d + 1 < K)."
                )
            )
            continue
        rows = epoch_series(run, ANGLE_WEIGHTS)
        means = epoch_series(run, ANGLE_MEANS)
        epochs.extend(e for series in (rows, means) for e, _ in series)
        epochs.extend(e for e, _ in epoch_series(run, MARGIN_MEANS))
        best = best_known_angle(run)
        rows_text = _angle_sentence("the rows' smallest angle", rows, best)
        means_text = _angle_sentence("the means' smallest angle", means, best)
        sentence = f"{run.name}{_sizes_text(run)}: {rows_text}; {means_text}; "
        if best is None:
            sentence += f"the best known angle is not recorded ({_missing_optimum(run)}); "
        sentence += f"{_margin_sentence(run)}."
        reason = not_computed_sentence(run, schema.CODE_KEYS)
        parts.append(" ".join(text for text in (sentence, reason) if text))
    parts.append(epoch_axis_sentence(epoch_axis, epochs))
    return " ".join(parts)


def code_rows(runs: Sequence[TrainingRun]) -> list[dict]:
    """One row per run with the code columns, at its last epoch with a finite smallest angle
    of the rows: K, d (:func:`code_sizes`), the best known angle (None when not recorded)
    and the three code columns as logged."""
    rows = []
    for run in runs:
        series = epoch_series(run, ANGLE_WEIGHTS)
        if not series:
            continue
        epoch = series[-1][0]
        row = next(r for r in run.epochs if r["epoch"] == epoch)
        k, d = code_sizes(run)
        best = best_known_angle(run)
        rows.append(
            {
                "run": run.name,
                "epoch": epoch,
                schema.NUM_CLASSES: k,
                DIM: d,
                OPTIMUM_ANGLE: None if best is None else best.degrees,
            }
            | {key: cell(row, key) for key in schema.CODE_KEYS}
        )
    return rows


def code_table_caption(runs: Sequence[TrainingRun]) -> str:
    """The table's caption: what each column is, and per run whether its best known angle is
    the exact optimum, the solver's best or not recorded."""
    exact, solver, missing = [], [], []
    for run in runs:
        if not has_codes(run):
            continue
        best = best_known_angle(run)
        (missing if best is None else exact if best.exact else solver).append(run.name)
    kinds = []
    if exact:
        kinds.append(f"the exact optimum for {', '.join(exact)}")
    if solver:
        kinds.append(
            f"the best of the solver's restarts, a lower bound on the optimum, for "
            f"{', '.join(solver)}"
        )
    if missing:
        kinds.append(f"not recorded in summary.json (—) for {', '.join(missing)}")
    return (
        "Each run with the many-class columns at its last tracked epoch: K, d, the best known "
        f"smallest angle of K unit vectors in d dimensions ({'; '.join(kinds)}), the smallest "
        "angles of the classifier rows and of the centred class means (degrees) and the "
        "means' one-vs-rest margin; — : not measured at that epoch; not computed: the run "
        "says why (hover)."
    )
