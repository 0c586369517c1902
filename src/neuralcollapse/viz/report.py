"""``neuralcollapse report RUN_DIR... --out DIR``: the HTML report of finished (or running) runs.

The report opens with a summary computed from each run (the epoch the terminal phase starts,
NC1 from the first to the last measured epoch, the NCC mismatch at the end, and the frame the
theory predicts for the run's loss and bias against the frame measured, each with a verdict),
then the Papyan-style panels over epochs, the ETF-vs-orthogonal-frame gaps of the penultimate
features before and after the final ReLU, the depth-wise NC1 profile, and tables of the last
measured epoch. The demo builds the same sections for its own training runs through
:func:`add_training_sections`.

Every caption is written from the run's numbers (:func:`panels_caption` and its siblings): a
caption says NC1 falls only where it does, and mentions a TPT line only where one is drawn.
Metric names, directions and theory values come from :mod:`neuralcollapse.schema`.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from matplotlib.figure import Figure

from neuralcollapse import schema
from neuralcollapse.viz.html import Column, HtmlReport, NotComputed, cell_text
from neuralcollapse.viz.imbalance_figures import plot_imbalance_over_epochs, run_num_classes
from neuralcollapse.viz.robustness_figures import epoch_values, plot_runs_robustness
from neuralcollapse.viz.runs import PENULTIMATE_POST, PENULTIMATE_PRE, TrainingRun, load_runs
from neuralcollapse.viz.style import check_epoch_axis, nice_number
from neuralcollapse.viz.training_figures import (
    MSE_TERM_KEYS,
    PANEL_SPECS,
    drawn_tpt,
    panel_epochs,
    plot_depth_profile,
    plot_frame_gaps,
    plot_mse_terms,
    plot_training_panels,
    profile_epochs,
    separation_fit,
    short_layer_name,
    tpt_epoch,
)

#: CollapseMetrics columns shown in the summary table (the CSV of all layers has every column)
SUMMARY_METRICS: tuple[str, ...] = (
    "nc1",
    "equinorm_means",
    "equiangular_means",
    "maxangle_means",
    "self_duality",
    "self_duality_uncentred",
    "ncc_mismatch",
    "of_gap_means",
    "global_mean_ratio",
)

#: a measured frame matches a theory frame when each of its OF gap, global-mean ratio and
#: centred ETF gap is within this fraction of the distance between the two frames' values
#: (the OF gap of an ETF, √(2 − 2√((K−1)/K)), and the ratio of an OF, 1/√K)
FRAME_TOLERANCE = 0.25
#: the NCC mismatch (NC4, a fraction of the samples) counts as vanished at or below this
NC4_TOLERANCE = 0.01

#: the verdicts of the summary
HOLDS, FAILS, UNKNOWN = "holds", "does not hold", "unknown"

#: frames: the orthogonal frame, the simplex ETF (uncentred: the global mean vanishes), and
#: a simplex ETF of the centred means with the global mean left free (a classifier bias
#: absorbs it); "neither" when the measured means are close to none of them
ORTHOGONAL, ETF, CENTRED_ETF, NEITHER = "orthogonal frame", "simplex ETF", "centred ETF", "neither"

_BIAS_KEYS = ("bias", "classifier_bias", "fc_bias")

#: what an empty cell of a column means when it is not "not computed"
_MISSING_MEANS = {"tpt_epoch": "zero training error not reached"}

# columns of the run files that are not metrics: how the tables name them
_OTHER_COLUMNS: dict[str, Column] = {
    column.key: column
    for column in (
        Column("run", kind="text"),
        Column("description", "setting", kind="text"),
        Column("split", kind="text"),
        Column("layer", kind="text"),
        Column("epoch"),
        Column("epochs_done", "epochs done"),
        Column("finished"),
        Column("tpt_epoch", "TPT epoch", "first epoch with zero training error"),
        Column("measured_epoch", "last measured epoch"),
        Column("lr", "learning rate"),
        Column("train_loss", "train loss"),
        Column("test_loss", "test loss"),
        Column("train_error", "train error", "fraction of misclassified samples", percent=True),
        Column("test_error", "test error", "fraction of misclassified samples", percent=True),
        Column(schema.NOT_COMPUTED, "not computed because", kind="text"),
        Column("check", kind="text"),
        Column("expected", "theory expects", kind="text"),
        Column("measured", kind="text"),
        Column("verdict", kind="verdict"),
        Column("last_epoch", "last epoch"),
        Column("terminal_epochs", "epochs in the TPT", "last epoch minus the TPT epoch"),
        Column(
            "accuracy_tpt", "test accuracy at TPT", "at the first zero-error epoch", percent=True
        ),
        Column("accuracy_last", "test accuracy at the end", "at the last epoch", percent=True),
        Column(
            "accuracy_change",
            "test accuracy change",
            "at the end minus at the TPT, in percentage points",
            percent=True,
        ),
        Column("loss_tpt", "test loss at TPT", "at the first zero-error epoch"),
        Column("loss_last", "test loss at the end", "at the last epoch"),
        Column("loss_change", "test loss change", "at the end minus at the TPT"),
        Column("means_epoch", "epoch of the means", "last epoch the class means were gathered"),
    )
}


def metric_unit(key: str) -> str:
    """The unit of a metric for a table header: "%" for fractions (shown as percentages),
    "feature units²" for variances, "" for dimensionless ones.

    Read from the schema entry: its ``unit`` field when it has one, else its description.
    """
    spec = schema.METRICS[key]
    unit = getattr(spec, "unit", None)
    if unit is not None:
        return str(unit)
    if "fraction" in spec.description:
        return "%"
    if "squared feature units" in spec.description:
        return "feature units²"
    return ""


def metric_column(key: str, *, suffix: str = "", table_key: str | None = None) -> Column:
    """How a table shows a metric: the schema's label (plus ``suffix``), its unit, a tooltip."""
    spec = schema.METRICS[key]
    unit = metric_unit(key)
    header = spec.label + suffix
    if unit and unit != "%":
        header += f" ({unit})"
    note = spec.description
    if spec.lower_is_better is not None:
        note += "; lower is better" if spec.lower_is_better else "; higher is better"
    return Column(table_key or key, header, note, percent=unit == "%")


def run_column(key: str) -> Column:
    """How a table shows a column of :data:`neuralcollapse.schema.RUN_COLUMNS` (losses,
    DeepFool, MSE terms, group accuracies, minority cosines): its label and description;
    fractions and accuracies as percentages."""
    spec = schema.RUN_COLUMNS[key]
    note = spec.description
    if spec.lower_is_better is not None:
        note += "; lower is better" if spec.lower_is_better else "; higher is better"
    percent = "fraction" in spec.description or "accuracy" in key
    return Column(key, spec.label, note, percent=percent)


def table_column(key: str) -> Column:
    """The :class:`Column` of any key of the report's tables (metric or run column)."""
    if key in schema.METRICS:
        return metric_column(key)
    if key.endswith("_pre") and key[: -len("_pre")] in schema.METRICS:
        return metric_column(key[: -len("_pre")], suffix=", pre-ReLU", table_key=key)
    if key not in _OTHER_COLUMNS and key in schema.RUN_COLUMNS:
        return run_column(key)
    return _OTHER_COLUMNS.get(key, Column(key))


def _value(row: Mapping[str, object] | None, key: str) -> float | None:
    """A row's value as a float (schema strings decoded); None when absent or not computed."""
    if row is None:
        return None
    value = schema.decode_value(row.get(key))
    if value is None or isinstance(value, bool):
        return None
    try:
        return float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return None


def _finite_series(
    run: TrainingRun, key: str, *, layer: str = PENULTIMATE_POST, split: str = "train"
) -> list[tuple[int, float]]:
    """``(epoch, value)`` of the rows where ``key`` is a finite number, by epoch."""
    epochs, values = run.series(key, layer=layer, split=split)
    return [
        (int(e), float(v))
        for e, v in zip(epochs.tolist(), values.tolist(), strict=True)
        if math.isfinite(v)
    ]


def _last_with(
    run: TrainingRun, keys: Sequence[str], *, layer: str = PENULTIMATE_POST, split: str = "train"
) -> dict | None:
    """The last row (by epoch) in which every one of ``keys`` is a finite number."""
    for row in reversed(run.rows(layer=layer, split=split)):
        values = [_value(row, key) for key in keys]
        if all(v is not None and math.isfinite(v) for v in values):
            return row
    return None


def _num(value: float | None) -> str:
    return "—" if value is None else nice_number(value)


def _percent(value: float | None) -> str:
    return "—" if value is None else f"{nice_number(100 * value)}%"


def _factor(first: float, last: float) -> str:
    """ "÷88" when ``last`` is 88 times smaller, "×2.1" when larger, "×1" when equal."""
    if first == last:
        return "×1"
    if last == 0:
        return "to 0"
    if first == 0:
        return "from 0"
    ratio = first / last
    return f"÷{nice_number(ratio)}" if ratio > 1 else f"×{nice_number(1 / ratio)}"


def _join(parts: Sequence[str], word: str = "and") -> str:
    parts = list(parts)
    if len(parts) <= 1:
        return "".join(parts)
    return ", ".join(parts[:-1]) + f" {word} " + parts[-1]


# ----------------------------------------------------------------------------- the summary


@dataclass(frozen=True)
class Check:
    """One line of the summary: what theory expects of a run, what it measured, the verdict."""

    run: str
    check: str
    expected: str
    measured: str
    verdict: str

    def as_row(self) -> dict[str, str]:
        return {
            "run": self.run,
            "check": self.check,
            "expected": self.expected,
            "measured": self.measured,
            "verdict": self.verdict,
        }


def run_loss_and_bias(run: TrainingRun) -> tuple[str | None, bool | None]:
    """The run's loss ("mse", "ce", ...) and classifier bias from config.json, None if absent."""
    loss = run.config.get("loss")
    bias = next((run.config[key] for key in _BIAS_KEYS if key in run.config), None)
    return (str(loss).lower() if loss is not None else None, None if bias is None else bool(bias))


def predicted_frame(loss: str | None, bias: bool | None) -> tuple[str | None, str]:
    """The frame theory predicts for the penultimate class means, and why (docs/theory.md).

    MSE without a classifier bias: an orthogonal frame (Tirer & Bruna 2022). Cross-entropy
    without a bias: a simplex ETF whose global mean vanishes (Zhu et al. 2021). With a bias
    (CE or MSE): the centred means form a simplex ETF and the bias absorbs the global mean
    (Papyan et al. 2020). None when the loss or bias is not recorded or not covered.
    """
    if loss is None or bias is None:
        missing = _join([name for name, v in (("loss", loss), ("bias", bias)) if v is None])
        return None, f"unknown: config.json does not record the {missing}"
    if loss == "mse" and not bias:
        return ORTHOGONAL, "orthogonal frame (MSE, no classifier bias; Tirer & Bruna 2022)"
    if loss == "ce" and not bias:
        return ETF, "simplex ETF, global mean 0 (CE, no classifier bias; Zhu et al. 2021)"
    if loss in ("ce", "mse") and bias:
        return (
            CENTRED_ETF,
            f"simplex ETF of the centred means ({loss.upper()} with a classifier bias, which "
            "absorbs the global mean)",
        )
    return None, f"unknown: no theory here for loss {loss!r}"


@dataclass(frozen=True)
class FrameMeasurement:
    """The geometry of the penultimate class means at one epoch, and the nearest frame."""

    frame: str
    epoch: int
    num_classes: int
    of_gap: float
    ratio: float
    etf_gap: float

    def describe(self) -> str:
        levels = (
            f"OF gap {_num(self.of_gap)}, global-mean ratio {_num(self.ratio)}, "
            f"centred ETF gap {_num(self.etf_gap)} at epoch {self.epoch}"
        )
        if self.frame == NEITHER:
            return f"neither frame ({levels})"
        if self.frame == CENTRED_ETF:
            return f"simplex ETF after centring only ({levels})"
        return f"{self.frame} ({levels})"


def frame_levels(num_classes: int) -> dict[str, tuple[float, float, float]]:
    """(OF gap, global-mean ratio, centred ETF gap) of each exact frame for K classes."""
    return {
        frame: tuple(  # type: ignore[misc]
            float(schema.theory_value(key, code, num_classes) or 0.0)
            for key in ("of_gap_means", "global_mean_ratio", "etf_gap_means")
        )
        for frame, code in ((ORTHOGONAL, "orthogonal"), (ETF, "etf"))
    }


def frame_tolerances(num_classes: int) -> tuple[float, float]:
    """(tolerance of the two gaps, tolerance of the ratio): :data:`FRAME_TOLERANCE` of the
    distance between the two frames' values of the OF gap and of the global-mean ratio."""
    levels = frame_levels(num_classes)
    gap_distance = abs(levels[ETF][0] - levels[ORTHOGONAL][0])
    ratio_distance = abs(levels[ETF][1] - levels[ORTHOGONAL][1])
    return FRAME_TOLERANCE * gap_distance, FRAME_TOLERANCE * ratio_distance


def classify_frame(of_gap: float, ratio: float, etf_gap: float, num_classes: int) -> str:
    """The frame the measured means are within tolerance of (:data:`FRAME_TOLERANCE`).

    An orthogonal frame or a simplex ETF when all three values are near that frame's; a
    centred ETF when only the centred ETF gap is near 0 (the global mean is elsewhere);
    otherwise neither.
    """
    if num_classes < 2:
        raise ValueError(f"a frame needs at least 2 classes; got K = {num_classes}")
    gap_tol, ratio_tol = frame_tolerances(num_classes)
    levels = frame_levels(num_classes)
    for frame in (ORTHOGONAL, ETF):
        of_level, ratio_level, etf_level = levels[frame]
        if (
            abs(of_gap - of_level) <= gap_tol
            and abs(ratio - ratio_level) <= ratio_tol
            and abs(etf_gap - etf_level) <= gap_tol
        ):
            return frame
    if abs(etf_gap - levels[ETF][2]) <= gap_tol:
        return CENTRED_ETF
    return NEITHER


def measured_frame(
    run: TrainingRun, *, layer: str = PENULTIMATE_POST, split: str = "train"
) -> FrameMeasurement | None:
    """The frame of the last row of ``layer`` where the gaps and ratio were computed."""
    keys = ("of_gap_means", "global_mean_ratio", "etf_gap_means")
    row = _last_with(run, keys, layer=layer, split=split)
    if row is None:
        return None
    k = _value(row, "num_classes") or run.num_classes
    if k is None or k < 2:
        return None
    of_gap, ratio, etf_gap = (float(_value(row, key)) for key in keys)  # type: ignore[arg-type]
    return FrameMeasurement(
        frame=classify_frame(of_gap, ratio, etf_gap, int(k)),
        epoch=int(row["epoch"]),
        num_classes=int(k),
        of_gap=of_gap,
        ratio=ratio,
        etf_gap=etf_gap,
    )


def frame_verdict(predicted: str | None, measured: FrameMeasurement | None) -> str:
    """Whether the measured frame is the predicted one (a centred ETF prediction also holds
    for an ETF or an orthogonal frame, whose centred means are a simplex ETF)."""
    if predicted is None or measured is None:
        return UNKNOWN
    if predicted == CENTRED_ETF:
        return HOLDS if measured.frame in (ETF, ORTHOGONAL, CENTRED_ETF) else FAILS
    return HOLDS if measured.frame == predicted else FAILS


def _last_train_error(run: TrainingRun) -> tuple[int, float] | None:
    rows = [row for row in run.epochs if _value(row, "train_error") is not None]
    if rows:
        return int(rows[-1]["epoch"]), float(_value(rows[-1], "train_error"))  # type: ignore
    series = _finite_series(run, "train_error")
    return series[-1] if series else None


def run_checks(run: TrainingRun) -> list[Check]:
    """The summary of one run: TPT, NC1 first -> last, NC4 at the end, the frame."""
    checks = []
    tpt = tpt_epoch(run)
    if tpt is not None:
        checks.append(
            Check(run.name, "terminal phase", "zero training error", f"epoch {tpt}", HOLDS)
        )
    else:
        last = _last_train_error(run)
        measured = (
            "not reached"
            if last is None
            else f"not reached (training error {_percent(last[1])} at epoch {last[0]})"
        )
        checks.append(
            Check(
                run.name,
                "terminal phase",
                "zero training error",
                measured,
                UNKNOWN if last is None else FAILS,
            )
        )

    nc1 = _finite_series(run, "nc1")
    if len(nc1) >= 2:
        (first_epoch, first), (last_epoch, last) = nc1[0], nc1[-1]
        falls = last < first
        measured = (
            f"{_num(first)} (epoch {first_epoch}) → {_num(last)} (epoch {last_epoch}): "
            f"{_factor(first, last)}"
        )
        checks.append(
            Check(run.name, "NC1 over training", "falls", measured, HOLDS if falls else FAILS)
        )
    else:
        measured = f"{len(nc1)} measured epoch" + ("" if len(nc1) == 1 else "s")
        checks.append(Check(run.name, "NC1 over training", "falls", measured, UNKNOWN))

    mismatch = _finite_series(run, "ncc_mismatch")
    expected = f"→ 0 (≤ {_percent(NC4_TOLERANCE)} of samples)"
    if mismatch:
        epoch, value = mismatch[-1]
        checks.append(
            Check(
                run.name,
                "NC4: classifier = nearest centre",
                expected,
                f"{_percent(value)} at epoch {epoch}",
                HOLDS if value <= NC4_TOLERANCE else FAILS,
            )
        )
    else:
        checks.append(
            Check(run.name, "NC4: classifier = nearest centre", expected, "not computed", UNKNOWN)
        )

    predicted, expected = predicted_frame(*run_loss_and_bias(run))
    frame = measured_frame(run)
    checks.append(
        Check(
            run.name,
            "frame of the penultimate means",
            expected,
            "not computed" if frame is None else frame.describe(),
            frame_verdict(predicted, frame),
        )
    )
    return checks


def summary_checks(runs: Sequence[TrainingRun]) -> list[Check]:
    """:func:`run_checks` of every run, in order."""
    return [check for run in runs for check in run_checks(run)]


def overview_caption(checks: Sequence[Check]) -> str:
    """Caption of the summary: how many checks hold, which do not, and the tolerances."""
    holds = sum(check.verdict == HOLDS for check in checks)
    fails = [check for check in checks if check.verdict == FAILS]
    unknown = [check for check in checks if check.verdict == UNKNOWN]
    parts = [f"Look at: the verdicts, computed from each run's own files: {holds} of "]
    parts.append(f"{len(checks)} checks hold")
    if fails:
        parts.append("; not holding: " + "; ".join(f"{c.run}: {c.check}" for c in fails))
    if unknown:
        parts.append("; unknown: " + "; ".join(f"{c.run}: {c.check}" for c in unknown))
    parts.append(
        ". Measured on the training split, post-ReLU penultimate features. NC1 holds when its "
        "last measured value is below its first; NC4 when the last mismatch is at most "
        f"{_percent(NC4_TOLERANCE)}. A frame is read from the last epoch where the OF gap, "
        "global-mean ratio and centred ETF gap were computed, and matches an orthogonal frame "
        "(0, 1/√K, 0) or a simplex ETF (√(2−2√((K−1)/K)), 0, 0) when each value is within "
        f"{FRAME_TOLERANCE:g} of the distance between the two frames' values (a centred ETF "
        "when only the ETF gap is)."
    )
    return "".join(parts)


# ----------------------------------------------------------------------------- captions


def _trend(series: Sequence[tuple[int, float]]) -> tuple[str, float, float] | None:
    """("falls" | "rises" | "is flat", first, last) of a series, None with fewer than 2 points."""
    if len(series) < 2:
        return None
    first, last = series[0][1], series[-1][1]
    if last < first:
        return "falls", first, last
    if last > first:
        return "rises", first, last
    return "is flat", first, last


def _nc1_sentence(runs: Sequence[TrainingRun], split: str) -> str:
    """How NC1 moves from the first to the last measured epoch, grouped by direction."""
    by_trend: dict[str, list[str]] = {}
    for run in runs:
        trend = _trend(_finite_series(run, "nc1", split=split))
        if trend is None:
            continue
        word, first, last = trend
        by_trend.setdefault(word, []).append(f"{run.name} ({_factor(first, last)})")
    if not by_trend:
        return "NC1 was measured at fewer than two epochs."
    parts = []
    for word, items in by_trend.items():
        scope = " in every run" if len(items) == len(runs) > 1 else ""
        parts.append(
            f"{word}{scope} in {_join(items)}" if not scope else f"{word}{scope}: " + _join(items)
        )
    return "From the first to the last measured epoch NC1 " + "; it ".join(parts) + "."


def _after_tpt_sentence(runs: Sequence[TrainingRun], tpts: Sequence[int | None], split: str) -> str:
    """How NC1 moves from the first measured epoch at or after TPT to the last."""
    parts = []
    for run, tpt in zip(runs, tpts, strict=True):
        if tpt is None:
            continue
        after = [(e, v) for e, v in _finite_series(run, "nc1", split=split) if e >= tpt]
        trend = _trend(after)
        if trend is None:
            continue
        word, first, last = trend
        parts.append(
            f"{word} {_factor(first, last)} in {run.name} (epoch {after[0][0]} to {after[-1][0]})"
        )
    if not parts:
        return ""
    return "After the first zero-error epoch NC1 " + "; ".join(parts) + "."


def _other_trends_sentence(runs: Sequence[TrainingRun], split: str) -> str:
    """Which of the other panels' measures fall in every run, which rise somewhere."""
    falling, rising, unmeasured = [], [], []
    for _title, columns in PANEL_SPECS:
        for key, _, _line_label in columns:
            if key == "nc1":
                continue
            label = schema.METRICS[key].label
            trends = {
                run.name: _trend(
                    [(e, v) for e, v in _finite_series(run, key, split=split) if v > 0]
                )
                for run in runs
            }
            measured = {name: t for name, t in trends.items() if t is not None}
            if not measured:
                unmeasured.append(label)
            elif all(t[0] == "falls" for t in measured.values()):
                falling.append(label)
            else:
                not_falling = [
                    f"{name} {t[0]} {_factor(t[1], t[2])}"
                    for name, t in measured.items()
                    if t[0] != "falls"
                ]
                rising.append(f"{label} ({', '.join(not_falling)})")
    sentences = []
    if falling:
        scope = "every run" if len(runs) > 1 else "the run"
        sentences.append(f"Falling in {scope}: {_join(falling)}.")
    if rising:
        sentences.append(f"Not falling: {'; '.join(rising)}.")
    if unmeasured:
        sentences.append(f"Not measured (panel or line left empty): {_join(unmeasured)}.")
    return " ".join(sentences)


def _epoch_axis_sentence(epoch_axis: str, epochs: Iterable[float]) -> str:
    if epoch_axis == "linear":
        return "Epochs on a linear axis."
    finite = [e for e in epochs if math.isfinite(e)]
    if finite and min(finite) <= 0:
        return "Epochs on a symmetric-log axis (linear below epoch 1, as epoch 0 is measured)."
    return "Epochs on a log axis."


def panels_caption(
    runs: Sequence[TrainingRun], *, split: str = "train", epoch_axis: str = "log"
) -> str:
    """The caption of :func:`plot_training_panels`, every claim computed from ``runs``."""
    epochs = panel_epochs(runs, split)
    tpts = [drawn_tpt(run, epochs, epoch_axis) for run in runs]
    drawn = [
        f"epoch {tpt} ({run.name})" for run, tpt in zip(runs, tpts, strict=True) if tpt is not None
    ]
    parts = ["Look at:"]
    if drawn:
        parts.append(
            f"the dotted vertical {'line' if len(drawn) == 1 else 'lines'} at the first epoch "
            f"with zero training error, where the terminal phase starts: {_join(drawn)}."
        )
    missing = [run for run, tpt in zip(runs, tpts, strict=True) if tpt is None]
    for run in missing:
        last = _last_train_error(run)
        if tpt_epoch(run) is not None:
            parts.append(f"{run.name}'s first zero-error epoch cannot be drawn on this axis.")
        elif last is not None:
            parts.append(
                f"{run.name} does not reach zero training error (last {_percent(last[1])} at "
                f"epoch {last[0]}), so no TPT line is drawn for it."
            )
    parts.append(_nc1_sentence(runs, split))
    if split == "train":
        after = _after_tpt_sentence(runs, tpts, split)
        if after:
            parts.append(after)
    other = _other_trends_sentence(runs, split)
    if other:
        parts.append(other)
    parts.append(
        "Solid lines: class means; dashed: classifier rows; the dotted self-duality against the "
        "uncentred means is the one theory sends to 0 for an orthogonal frame (MSE, no "
        "classifier bias). Papyan et al. (2020, Figs. 2-7) see every measure fall in the "
        "terminal phase."
    )
    parts.append(_epoch_axis_sentence(epoch_axis, epochs))
    return " ".join(parts)


def panels_test_caption(runs: Sequence[TrainingRun], *, epoch_axis: str = "log") -> str:
    """The caption of the test-split panels: how test NC1 compares with train NC1 at the end."""
    parts = ["Look at: the same panels measured on the test split."]
    comparisons = []
    for run in runs:
        train = _finite_series(run, "nc1", split="train")
        test = _finite_series(run, "nc1", split="test")
        if not train or not test:
            continue
        relation = "above" if test[-1][1] > train[-1][1] else "not above"
        comparisons.append(
            f"{run.name}: test NC1 {_num(test[-1][1])} (epoch {test[-1][0]}) is {relation} "
            f"train NC1 {_num(train[-1][1])} (epoch {train[-1][0]})"
        )
    if comparisons:
        parts.append("At the last measured epoch, " + "; ".join(comparisons) + ".")
    parts.append(
        "Papyan et al. measure collapse on the training set; on held-out data it is "
        "expected to be weaker."
    )
    parts.append(_nc1_sentence(runs, "test"))
    parts.append(_epoch_axis_sentence(epoch_axis, panel_epochs(runs, "test")))
    return " ".join(parts)


def gaps_caption(runs: Sequence[TrainingRun], *, epoch_axis: str = "log") -> str:
    """The caption of :func:`plot_frame_gaps`: each run's predicted and measured frame."""
    parts = ["Look at: which frame the penultimate class means approach."]
    k = next((run.num_classes for run in runs if run.num_classes), None)
    if k and k >= 2:
        levels = frame_levels(k)
        parts.append(
            f"Grey lines (K = {k}): an orthogonal frame has OF gap 0 and global-mean ratio "
            f"1/√K = {_num(levels[ORTHOGONAL][1])}; a simplex ETF has OF gap "
            f"√(2−2√((K−1)/K)) = {_num(levels[ETF][0])} and ratio 0. The centred ETF gap "
            "(right) reads 0 for both."
        )
    for run in runs:
        predicted, expected = predicted_frame(*run_loss_and_bias(run))
        post = measured_frame(run)
        sentence = f"{run.name}: theory predicts {expected}"
        if post is None:
            sentence += "; the post-ReLU frame was not computed"
        else:
            verdict = frame_verdict(predicted, post)
            sentence += f"; post-ReLU (solid): {post.describe()}"
            if verdict != UNKNOWN:
                sentence += f", so the prediction {verdict}"
        pre = measured_frame(run, layer=PENULTIMATE_PRE)
        if pre is not None:
            sentence += f"; pre-ReLU (dashed, left free by the theory): {pre.describe()}"
        parts.append(sentence + ".")
    parts.append(
        f"Frames are matched within {FRAME_TOLERANCE:g} of the distance between the two frames' "
        "values (the summary's rule). " + _epoch_axis_sentence(epoch_axis, _all_epochs(runs))
    )
    return " ".join(parts)


def _all_epochs(runs: Sequence[TrainingRun]) -> list[float]:
    return [float(row["epoch"]) for run in runs for row in run.metrics]


def depth_caption(
    runs: Sequence[TrainingRun], *, split: str = "train", num_epochs: int = 5, fit: bool = False
) -> str:
    """The caption of :func:`plot_depth_profile`: the epochs drawn and how NC1 moves with depth;
    with ``fit``, the law of data separation fitted per run (rho, R^2) or why it cannot be."""
    parts = [
        "Look at: NC1 of each measured layer, input side first, one panel per run; each line "
        "is one epoch, from dark purple (earliest drawn) to yellow (latest)."
    ]
    for run in runs:
        chosen = profile_epochs(run, split=split, num_epochs=num_epochs)
        if not chosen:
            continue
        last = chosen[-1]
        values = []
        for layer in run.layers:
            row = next((r for r in run.rows(layer=layer, split=split) if r["epoch"] == last), None)
            value = _value(row, "nc1")
            if value is not None and math.isfinite(value):
                values.append((layer, value))
        sentence = f"{run.name}: epochs {_join([str(e) for e in chosen])}"
        if len(values) >= 2:
            steps = [b[1] < a[1] for a, b in zip(values, values[1:], strict=False)]
            (first_layer, first), (last_layer, final) = values[0], values[-1]
            if all(steps):
                shape = "falls at every step from"
            elif final < first:
                shape = "is lower at the end than at the start, but not at every step, from"
            else:
                shape = "does not fall with depth, from"
            sentence += (
                f"; at epoch {last} NC1 {shape} {short_layer_name(first_layer)} ({_num(first)}) "
                f"to {short_layer_name(last_layer)} ({_num(final)})"
            )
        parts.append(sentence + ".")
    parts.append("Tirer & Bruna (2022, Sec. 5) report NC1 decreasing with depth.")
    if fit:
        parts.append(_fit_sentences(runs, split))
    return " ".join(parts)


def _fit_sentences(runs: Sequence[TrainingRun], split: str) -> str:
    """What the grey dashed fit lines of the depth profile show, run by run."""
    fits = [separation_fit(run, split=split) for run in runs]
    parts = []
    if any(item.fit is not None for item in fits):
        parts.append(
            "Grey dashed: He & Su's law of data separation, log D_l = a + l log ρ, fitted by "
            "least squares at the last drawn epoch to D_l = K·NC1 (He & Su's D on balanced "
            "classes) of the intermediate layers and the post-ReLU penultimate features (depth "
            "1, 2, ...; the pre-ReLU features share the penultimate depth and are not fitted)."
        )
    for item in fits:
        if item.fit is None:
            parts.append(f"{item.run}: no fit of the law of data separation: {item.reason}.")
            continue
        fit = item.fit
        names = _join([short_layer_name(layer) for layer in fit.layers])
        sentence = (
            f"{item.run}: at epoch {item.epoch} over {names}, ρ = {fit.rho:.3g} and "
            f"R² = {fit.r_squared:.3f}"
        )
        if fit.rho < 1:
            sentence += f" (the fuzziness falls ÷{nice_number(1 / fit.rho)} per layer)"
        else:
            sentence += " (ρ ≥ 1: the fuzziness does not fall with depth, against the law)"
        parts.append(sentence + ".")
    if any(item.fit is not None for item in fits):
        parts.append("He & Su (PNAS 2023) find ρ < 1 with R² close to 1.")
    return " ".join(parts)


# ----------------------------------------------------------------------------- tables


def summary_rows(runs: Sequence[TrainingRun]) -> list[dict]:
    """One row per run: status, final errors and the main metrics at the last measured epoch."""
    rows = []
    for run in runs:
        summary = run.summary or {}
        final_epoch = summary.get("final") or (run.epochs[-1] if run.epochs else {})
        post = run.last_row(layer=PENULTIMATE_POST) or {}
        pre = run.last_row(layer=PENULTIMATE_PRE) or {}
        row: dict[str, object] = {
            "run": run.name,
            "description": run.describe(),
            "epochs_done": summary.get("epochs_done", final_epoch.get("epoch")),
            "finished": summary.get("finished"),
            "tpt_epoch": tpt_epoch(run),
            "train_error": final_epoch.get("train_error", post.get("train_error")),
            "test_error": final_epoch.get("test_error", post.get("test_error")),
            "measured_epoch": post.get("epoch"),
        }
        for key in SUMMARY_METRICS:
            row[key] = _table_value(post, key)
        row["of_gap_means_pre"] = _table_value(pre, "of_gap_means")
        row["global_mean_ratio_pre"] = _table_value(pre, "global_mean_ratio")
        rows.append(row)
    return rows


def _not_computed_reason(row: Mapping[str, object], key: str) -> str | None:
    why = row.get(schema.NOT_COMPUTED)
    if isinstance(why, Mapping) and (key in why or "*" in why):
        return str(why.get(key, why.get("*")))
    return None


def _table_value(row: Mapping[str, object], key: str) -> object:
    """A row's value for a table: schema strings decoded, a null the row explains as
    :class:`NotComputed` (with the reason)."""
    value = schema.decode_value(row.get(key))
    if value is None:
        reason = _not_computed_reason(row, key)
        if reason is not None:
            return NotComputed(reason)
    return value


def final_metric_rows(runs: Sequence[TrainingRun]) -> list[dict]:
    """The last measured row of every (run, split, layer), all columns.

    Non-finite values are floats (the strings of the run files decoded), nulls a row explains
    are :class:`NotComputed`, and the row's ``not_computed`` object becomes a text column.
    """
    rows = []
    for run in runs:
        for split in run.splits:
            for layer in run.layers:
                last = run.last_row(layer=layer, split=split)
                if last is None:
                    continue
                row: dict[str, object] = {"run": run.name}
                for key in last:
                    if key != schema.NOT_COMPUTED:
                        row[key] = _table_value(last, key)
                why = last.get(schema.NOT_COMPUTED)
                if isinstance(why, Mapping) and why:
                    row[schema.NOT_COMPUTED] = "; ".join(
                        str(reason) if key == "*" else f"{key}: {reason}"
                        for key, reason in why.items()
                    )
                rows.append(row)
    return rows


def constant_columns(
    rows: Sequence[Mapping[str, object]], columns: Sequence[Column]
) -> list[Column]:
    """The columns that show the same text in every row (none for a table of fewer than 2)."""
    if len(rows) < 2:
        return []
    return [
        column
        for column in columns
        if len({cell_text(row.get(column.key), column) for row in rows}) == 1
    ]


def _constants_sentence(rows: Sequence[Mapping[str, object]], constant: Sequence[Column]) -> str:
    if not constant:
        return ""
    missing = [c.title for c in constant if rows[0].get(c.key) is None]
    not_computed = [c.title for c in constant if isinstance(rows[0].get(c.key), NotComputed)]
    same = [
        f"{c.title} = {cell_text(rows[0].get(c.key), c)}"
        for c in constant
        if c.title not in missing and c.title not in not_computed
    ]
    # a missing value that means something else than "not computed" (e.g. no TPT epoch)
    special = [c for c in constant if c.title in missing and c.key in _MISSING_MEANS]
    missing = [title for title in missing if title not in {c.title for c in special}]
    parts = []
    if same:
        parts.append("Same in every row (column left out): " + "; ".join(same) + ".")
    for column in special:
        parts.append(f"{column.title}: {_MISSING_MEANS[column.key]} in any row.")
    if not_computed + missing:
        parts.append("Not computed in any row: " + ", ".join(not_computed + missing) + ".")
    return " " + " ".join(parts)


def _special_cells_sentence(rows: Sequence[Mapping[str, object]], columns: Sequence[Column]) -> str:
    """Which cells are infinite or not computed, so that the caption matches the table."""
    infinite, not_computed = [], []
    for row in rows:
        where = ", ".join(str(row[k]) for k in ("run", "split", "layer") if row.get(k) is not None)
        for column in columns:
            value = row.get(column.key)
            if isinstance(value, float) and math.isinf(value):
                infinite.append(f"{column.title} ({where})")
        if row.get(schema.NOT_COMPUTED):
            not_computed.append(f"{where}: {row[schema.NOT_COMPUTED]}")
    parts = []
    if infinite:
        parts.append("Infinite (∞): " + "; ".join(infinite) + ".")
    if not_computed:
        parts.append("Rows with metrics not computed: " + "; ".join(not_computed) + ".")
    return (" " + " ".join(parts)) if parts else ""


def _add_table(
    section,
    name: str,
    rows: Sequence[dict],
    caption: str,
    keys: Sequence[str],
    *,
    missing: str = "not computed (e.g. classifier metrics of layers the classifier does not read)",
) -> None:
    """Add a table whose page view leaves out constant columns and says what they held.

    ``missing`` says what an empty cell ("—") means in this table.
    """
    columns = [table_column(key) for key in keys]
    constant = constant_columns(rows, columns)
    shown = [c for c in columns if c not in constant]
    caption += _constants_sentence(rows, constant) + _special_cells_sentence(rows, shown)
    caption += f" Fractions are shown as percentages; — : {missing}."
    section.add_table(name, rows, caption, columns=columns, shown=shown)


def _final_columns(rows: Sequence[dict]) -> list[str]:
    leading = ["run", "split", "layer", "epoch", "train_error", "test_error", "nc1"]
    seen = dict.fromkeys(key for row in rows for key in row)
    trailing = [schema.NOT_COMPUTED] if schema.NOT_COMPUTED in seen else []
    middle = [key for key in seen if key not in leading and key not in trailing]
    return leading + middle + trailing


SUMMARY_CAPTION = (
    "Look at: one row per run at its last measured epoch (training split, post-ReLU penultimate "
    "features unless marked pre-ReLU). The TPT epoch is the first epoch with zero training error."
)
ALL_LAYERS_CAPTION = (
    "Every CollapseMetrics field at the last measured epoch, for every split and layer "
    "(the full table, every column, is in tables/final_metrics.csv)."
)


# ----------------------------------------------------------------------------- the measures
# that ride along (docs/training.md): MSE decomposition, robustness, generalisation, imbalance

#: section titles of :func:`add_measure_sections`
MSE_TITLE = "MSE decomposition"
ROBUSTNESS_TITLE = "Robustness and generalisation"
IMBALANCE_TITLE = "Imbalanced classes"

MSE_TABLE_KEYS = (
    "run",
    "epoch",
    "mse_loss",
    "mse_nc1",
    "mse_nc2_3",
    "mse_ls_perp",
    "mse_loss_ls",
    "mse_ridge",
)
GENERALISATION_KEYS = (
    "run",
    "tpt_epoch",
    "last_epoch",
    "accuracy_tpt",
    "accuracy_last",
    "accuracy_change",
    "loss_tpt",
    "loss_last",
    "loss_change",
)
IMBALANCE_TABLE_KEYS = (
    "run",
    "epoch",
    "accuracy_majority",
    "accuracy_minority",
    "minority_cosine_weights",
    "minority_cosine_means",
    "means_epoch",
)

_LABEL = {key: spec.label for key, spec in schema.RUN_COLUMNS.items()}


def _positive_series(run: TrainingRun, key: str) -> list[tuple[int, float]]:
    """``(epoch, value)`` of the penultimate training rows where ``key`` is finite and > 0
    (what a log axis draws)."""
    return [(e, v) for e, v in _finite_series(run, key) if v > 0]


def _epoch_series(run: TrainingRun, key: str) -> list[tuple[int, float]]:
    """``(epoch, value)`` of an epochs.jsonl column where it is a finite number."""
    epochs, values = epoch_values(run, key)
    return [(int(e), float(v)) for e, v in zip(epochs.tolist(), values.tolist(), strict=True)]


def has_mse_terms(run: TrainingRun) -> bool:
    """Whether the run's penultimate training rows hold any MSE term (an MSE run)."""
    return any(_finite_series(run, key) for key in MSE_TERM_KEYS)


def has_robustness(run: TrainingRun) -> bool:
    """Whether any epoch of the run has a DeepFool measurement (``deepfool_ratio``)."""
    return bool(_epoch_series(run, "deepfool_ratio"))


def has_generalisation(run: TrainingRun) -> bool:
    """Whether summary.json holds the generalisation table (runs of ``neuralcollapse train``)."""
    return isinstance((run.summary or {}).get("generalisation"), Mapping)


def has_imbalance(run: TrainingRun) -> bool:
    """Whether any epoch of the run has ``minority_cosine_weights`` (an imbalanced run)."""
    return bool(_epoch_series(run, "minority_cosine_weights"))


def _trend_phrase(series: Sequence[tuple[int, float]], *, factor: bool = True) -> str | None:
    """ "falls ÷3.2 from 0.4 (epoch 1) to 0.125 (epoch 11)", None with fewer than 2 points."""
    trend = _trend(series)
    if trend is None:
        return None
    word, first, last = trend
    change = f" {_factor(first, last)}" if factor and word != "is flat" else ""
    return (
        f"{word}{change} from {_num(first)} (epoch {series[0][0]}) to {_num(last)} "
        f"(epoch {series[-1][0]})"
    )


def mse_caption(runs: Sequence[TrainingRun], *, epoch_axis: str = "log") -> str:
    """The caption of :func:`plot_mse_terms`: which terms fell in which run, by what factor."""
    parts = [
        "Look at: the three terms of Han, Papyan & Donoho's decomposition of the MSE loss of "
        "the post-ReLU penultimate features, MSE loss = L_NC1 + L_NC2/3 + L_LS⊥ (training "
        "split, tracked epochs, log axes); L_LS = L_NC1 + L_NC2/3 (dashed, first panel) is the "
        "loss of the ridge least-squares classifier."
    ]
    epochs: list[float] = []
    for run in runs:
        if not has_mse_terms(run):
            parts.append(f"{run.name}: no MSE terms (not an MSE run, or not computed).")
            continue
        moves, falling = [], []
        for key in MSE_TERM_KEYS:
            series = _positive_series(run, key)
            epochs.extend(e for e, _ in series)
            trend = _trend(series)
            if trend is None:
                moves.append(f"{_LABEL[key]} measured at {len(series)} epoch(s)")
                continue
            word, first, last = trend
            moves.append(
                f"{_LABEL[key]} {word} {_factor(first, last)}".replace(" is flat ×1", " is flat")
            )
            if word == "falls":
                falling.append(_LABEL[key])
        sentence = f"{run.name}: " + ", ".join(moves)
        sentence += " (all three fell)" if len(falling) == 3 else f" ({len(falling)} of 3 fell)"
        last = _last_with(run, ("mse_loss", *MSE_TERM_KEYS))
        if last is not None:
            total = float(_value(last, "mse_loss"))  # type: ignore[arg-type]
            terms = {key: float(_value(last, key)) for key in MSE_TERM_KEYS}  # type: ignore
            largest = max(terms, key=lambda key: terms[key])
            if total > 0:
                sentence += (
                    f"; at epoch {last['epoch']} the MSE loss is {_num(total)}, its largest term "
                    f"{_LABEL[largest]} ({_percent(terms[largest] / total)} of it) and L_LS⊥ "
                    f"{_percent(terms['mse_ls_perp'] / total)} of it"
                )
        parts.append(sentence + ".")
    parts.append(
        "Han, Papyan & Donoho (ICLR 2022) find L_LS⊥ small next to the other two terms (the "
        "classifier stays close to the least-squares one: the central path), while L_NC1 and "
        "L_NC2/3 fall in the terminal phase."
    )
    parts.append(_epoch_axis_sentence(epoch_axis, epochs))
    return " ".join(parts)


def mse_rows(runs: Sequence[TrainingRun]) -> list[dict]:
    """The MSE terms of each MSE run at its last epoch where they were computed."""
    rows = []
    for run in runs:
        last = _last_with(run, MSE_TERM_KEYS)
        if last is None:
            continue
        row: dict[str, object] = {"run": run.name, "epoch": last["epoch"]}
        for key in MSE_TABLE_KEYS[2:]:
            row[key] = _table_value(last, key)
        rows.append(row)
    return rows


def robustness_caption(runs: Sequence[TrainingRun], *, epoch_axis: str = "log") -> str:
    """The caption of :func:`plot_runs_robustness`: how the DeepFool distance and NC1 moved."""
    parts = [
        "Look at: whether the DeepFool distance (left: the mean ‖r(x)‖/‖x‖ of the smallest "
        "perturbation that changes the decision, over the fooled images of a fixed test "
        "subset) grows while NC1 of the training features (right, for the runs DeepFool "
        "measured) falls; middle: the share of images not fooled within the step limit."
    ]
    epochs: list[float] = []
    for run in runs:
        ratio = _epoch_series(run, "deepfool_ratio")
        epochs.extend(e for e, _ in ratio)
        if not ratio:
            parts.append(f"{run.name}: DeepFool not measured.")
            continue
        phrase = _trend_phrase(ratio)
        if phrase is None:
            parts.append(
                f"{run.name}: DeepFool measured at epoch {ratio[0][0]} only "
                f"(‖r‖/‖x‖ = {_num(ratio[0][1])})."
            )
            continue
        sentence = f"{run.name}: ‖r‖/‖x‖ {phrase}"
        first, last = ratio[0][0], ratio[-1][0]
        nc1 = [(e, v) for e, v in _finite_series(run, "nc1") if first <= e <= last]
        nc1_trend = _trend(nc1)
        if nc1_trend is not None:
            sentence += f"; over those epochs NC1 {nc1_trend[0]} {_factor(*nc1_trend[1:])}"
        tpt = tpt_epoch(run)
        after = [(e, v) for e, v in ratio if tpt is not None and e >= tpt]
        after_trend = _trend(after)
        if after_trend is not None:
            sentence += (
                f"; from the first zero-error epoch ({tpt}) on, ‖r‖/‖x‖ {after_trend[0]} "
                f"{_factor(*after_trend[1:])} (epoch {after[0][0]} to {after[-1][0]})"
            )
        elif tpt is None:
            sentence += "; zero training error is not reached"
        failed = _epoch_series(run, "deepfool_failed_fraction")
        if failed:
            worst = max(v for _, v in failed)
            sentence += (
                f"; at most {_percent(worst)} of the images were not fooled"
                if worst > 0
                else "; every attacked image was fooled"
            )
        parts.append(sentence.replace(" is flat ×1", " is flat") + ".")
    parts.append(
        "Papyan, Han & Donoho (2020) report that training into the terminal phase brings "
        "better robustness, i.e. a growing DeepFool distance."
    )
    parts.append(_epoch_axis_sentence(epoch_axis, epochs))
    return " ".join(parts)


def generalisation_entry(run: TrainingRun) -> tuple[dict | None, str]:
    """The run's generalisation table (Papyan et al., Table 1) and where it comes from:
    summary.json's ``generalisation``, else computed from epochs.jsonl by
    :func:`neuralcollapse.robustness.generalisation_table` (the function the training loop
    uses); None when the run has neither."""
    entry = (run.summary or {}).get("generalisation")
    if isinstance(entry, Mapping):
        return dict(entry), "summary.json"
    if run.epochs:
        from neuralcollapse.robustness import generalisation_table

        try:
            return generalisation_table(run.epochs).to_dict(), "epochs.jsonl"
        except ValueError as error:
            return None, str(error)
    return None, "no summary.json generalisation entry and no epochs.jsonl"


def generalisation_rows(runs: Sequence[TrainingRun]) -> list[dict]:
    """One row per run: test accuracy and loss at the TPT and at the end, and the change.

    Cells of a run that never reached zero training error are "not reached"; other missing
    values are "not computed", with the reason as the tooltip.
    """
    rows = []
    for run in runs:
        entry, source = generalisation_entry(run)
        row: dict[str, object] = {"run": run.name}
        if entry is None:
            for key in GENERALISATION_KEYS[1:]:
                row[key] = NotComputed(source)
            rows.append(row)
            continue
        reasons = entry.get(schema.NOT_COMPUTED) or {}
        reached = entry.get("tpt_epoch") is not None
        for key in GENERALISATION_KEYS[1:]:
            value = schema.decode_value(entry.get(key))
            if value is None:
                reason = str(reasons.get(key, reasons.get("*", "")))
                never = not reached and entry.get("last_epoch") is not None
                value = NotComputed(reason, label="not reached" if never else "not computed")
            row[key] = value
        rows.append(row)
    return rows


def generalisation_caption(runs: Sequence[TrainingRun]) -> str:
    """The caption of the generalisation table, from each run's own numbers."""
    parts = [
        "Look at: Papyan et al.'s Table 1 for each run: test accuracy and loss at the first "
        "epoch with zero training error (TPT) and at the last epoch, and the change (accuracy "
        "in percentage points)."
    ]
    computed = []
    for run in runs:
        entry, source = generalisation_entry(run)
        if source == "epochs.jsonl":
            computed.append(run.name)
        if entry is None:
            parts.append(f"{run.name}: not computed ({source}).")
            continue
        tpt, last = entry.get("tpt_epoch"), entry.get("last_epoch")
        before, after = _value(entry, "accuracy_tpt"), _value(entry, "accuracy_last")
        if tpt is None:
            reasons = entry.get(schema.NOT_COMPUTED) or {}
            why = reasons.get("*", "zero training error was not reached")
            if last is None:
                parts.append(f"{run.name}: not computed ({why}).")
            else:
                parts.append(f"{run.name}: not reached — {why}.")
        elif before is None or after is None:
            parts.append(f"{run.name}: TPT at epoch {tpt}, but no test accuracy to compare.")
        else:
            change = after - before
            verdict = (
                "higher at the end"
                if change > 0
                else ("lower at the end" if change < 0 else "unchanged")
            )
            parts.append(
                f"{run.name}: {_percent(before)} at epoch {tpt} → {_percent(after)} at epoch "
                f"{last} ({100 * change:+.3g} points, {verdict}) after {last - tpt} epochs in "
                "the terminal phase."
            )
    if computed:
        parts.append(f"Computed from epochs.jsonl (summary.json holds none): {_join(computed)}.")
    parts.append(
        "Papyan et al. (2020) claim that training into the terminal phase confers better "
        "generalisation; their Table 1 compares these two accuracies."
    )
    return " ".join(parts)


def _cosine_phrase(label: str, series: Sequence[tuple[int, float]], k: int | None) -> str:
    if not series:
        return f"{label} not measured"
    phrase = _trend_phrase(series, factor=False)
    text = (
        f"{label} {phrase}"
        if phrase
        else f"{label} {_num(series[0][1])} at epoch {series[0][0]} (one epoch)"
    )
    if k and k >= 2:
        etf, last = -1.0 / (k - 1), series[-1][1]
        text += (
            ", closer to 1 (merged) than to the ETF level"
            if 1 - last < abs(last - etf)
            else ", closer to the ETF level than to 1 (merged)"
        )
    return text


def imbalance_caption(runs: Sequence[TrainingRun], *, epoch_axis: str = "log") -> str:
    """The caption of :func:`plot_imbalance_over_epochs`, computed from each run's epochs."""
    levels = sorted({k for k in (run_num_classes(run) for run in runs) if k and k >= 2})
    level_text = ", ".join(f"{-1 / (k - 1):.3g} for K = {k}" for k in levels)
    parts = [
        "Look at: the mean pairwise cosine of the minority classes' classifier rows (left) and "
        "centred training class means (middle) against the simplex-ETF level −1/(K−1) "
        + (f"({level_text}) " if level_text else "")
        + "and 1, where the minority classes have merged (minority collapse); right: test "
        "accuracy over the majority (solid) and minority (dashed) classes."
    ]
    epochs: list[float] = []
    for run in runs:
        if not has_imbalance(run):
            parts.append(f"{run.name}: not an imbalanced run (no minority cosine).")
            continue
        k = run_num_classes(run)
        setting = [
            f"{name} = {nice_number(run.config[key])}"
            for key, name in (("imbalance", "R"), ("minority_classes", "K_B"))
            if run.config.get(key) is not None
        ]
        head = f"{run.name}" + (f" ({', '.join(setting)})" if setting else "")
        weights = _epoch_series(run, "minority_cosine_weights")
        means = _epoch_series(run, "minority_cosine_means")
        epochs.extend(e for e, _ in weights + means)
        sentence = (
            f"{head}: {_cosine_phrase('the cosine of the rows', weights, k)}; "
            f"{_cosine_phrase('the cosine of the means', means, k)}"
        )
        both = [
            row
            for row in run.epochs
            if _value(row, "accuracy_majority") is not None
            and _value(row, "accuracy_minority") is not None
        ]
        if both:
            last = both[-1]
            major, minor = _value(last, "accuracy_majority"), _value(last, "accuracy_minority")
            gap = 100 * (major - minor)  # type: ignore[operator]
            relation = (
                f"{nice_number(abs(gap))} points below"
                if gap > 0
                else (f"{nice_number(abs(gap))} points above" if gap < 0 else "equal to")
            )
            sentence += (
                f"; at epoch {last['epoch']} the minority accuracy {_percent(minor)} is "
                f"{relation} the majority's {_percent(major)}"
            )
        parts.append(sentence + ".")
    parts.append(
        "Fang, He, Long & Su (PNAS 2021) predict minority collapse: with enough imbalance the "
        "minority classifier rows merge (cosine → 1) and their test accuracy suffers."
    )
    parts.append(_epoch_axis_sentence(epoch_axis, epochs))
    return " ".join(parts)


def imbalance_rows(runs: Sequence[TrainingRun]) -> list[dict]:
    """Each imbalanced run's group accuracies and minority cosines at its last epoch (the
    cosine of the means at the last epoch it was gathered)."""
    rows = []
    for run in runs:
        if not has_imbalance(run):
            continue
        last = run.epochs[-1] if run.epochs else {}
        means = _epoch_series(run, "minority_cosine_means")
        row: dict[str, object] = {"run": run.name, "epoch": last.get("epoch")}
        for key in IMBALANCE_TABLE_KEYS[2:5]:
            row[key] = _table_value(last, key)
        row["minority_cosine_means"] = means[-1][1] if means else None
        row["means_epoch"] = means[-1][0] if means else None
        rows.append(row)
    return rows


@dataclass(frozen=True)
class MeasureSection:
    """One section of :func:`add_measure_sections`: a figure and a table of one measure.

    The section is added when some run has the figure's or the table's data
    (``has_figure`` / ``has_table``); each part only when some run has its own data.
    Captions are functions of the runs, so each sentence is computed from what is drawn.
    ``trim`` sends the table through :func:`_add_table` (constant columns left out and
    named, ``missing`` says what "—" means); otherwise every column is shown and
    ``table_caption`` says all there is to say.
    """

    title: str
    intro: str
    name: str
    has_figure: Callable[[TrainingRun], bool]
    plot: Callable[..., Figure]
    figure_caption: Callable[..., str]
    has_table: Callable[[TrainingRun], bool]
    table_rows: Callable[[Sequence[TrainingRun]], list[dict]]
    table_caption: Callable[[Sequence[TrainingRun]], str]
    table_keys: Sequence[str]
    table_name: str | None = None
    trim: bool = True
    missing: str = "not computed"

    def add_to(
        self,
        report: HtmlReport,
        runs: Sequence[TrainingRun],
        *,
        name_prefix: str,
        title_prefix: str,
        epoch_axis: str,
    ) -> str | None:
        """Add the section to ``report`` when some run has its data; its title, else None."""
        with_figure = any(self.has_figure(run) for run in runs)
        with_table = any(self.has_table(run) for run in runs)
        if not (with_figure or with_table):
            return None
        title = f"{title_prefix}{self.title}"
        section = report.section(title, self.intro)
        if with_figure:
            section.add_figure(
                f"{name_prefix}{self.name}",
                self.plot(runs, epoch_axis=epoch_axis),
                self.figure_caption(runs, epoch_axis=epoch_axis),
            )
        if with_table:
            name = f"{name_prefix}{self.table_name or self.name}"
            rows, caption = self.table_rows(runs), self.table_caption(runs)
            if self.trim:
                keys = list(self.table_keys)
                _add_table(section, name, rows, caption, keys, missing=self.missing)
            else:
                columns = [table_column(key) for key in self.table_keys]
                section.add_table(name, rows, caption, columns=columns)
        return title


def _generalisation_table_caption(runs: Sequence[TrainingRun]) -> str:
    return (
        generalisation_caption(runs)
        + " Accuracies and their change are shown in %; not reached: the run never had "
        "zero training error; — : not computed."
    )


#: the sections of :func:`add_measure_sections`, in page order
MEASURE_SECTIONS = (
    MeasureSection(
        title=MSE_TITLE,
        intro="Han, Papyan & Donoho (ICLR 2022) split the MSE loss of the penultimate features "
        "into a within-class term L_NC1, a class-mean term L_NC2/3 and the distance L_LS⊥ "
        "of the classifier from the least-squares one (docs/measures.md).",
        name="mse_terms",
        has_figure=has_mse_terms,
        plot=plot_mse_terms,
        figure_caption=mse_caption,
        has_table=has_mse_terms,
        table_rows=mse_rows,
        table_caption=lambda runs: (
            "The MSE terms of each MSE run at its last epoch where they were computed."
        ),
        table_keys=MSE_TABLE_KEYS,
    ),
    MeasureSection(
        title=ROBUSTNESS_TITLE,
        intro="What the terminal phase buys, per Papyan, Han & Donoho (2020): robustness to "
        "DeepFool perturbations and test accuracy (docs/robustness.md).",
        name="robustness",
        has_figure=has_robustness,
        plot=plot_runs_robustness,
        figure_caption=robustness_caption,
        # the generalisation table has a row for every run, so it comes with the section
        has_table=lambda run: has_robustness(run) or has_generalisation(run),
        table_rows=generalisation_rows,
        table_caption=_generalisation_table_caption,
        table_keys=GENERALISATION_KEYS,
        table_name="generalisation",
        trim=False,
    ),
    MeasureSection(
        title=IMBALANCE_TITLE,
        intro="Runs trained with step imbalance (--imbalance R --minority-classes K_B: the last "
        "K_B classes keep 1/R of the training images; the test split stays balanced; "
        "docs/imbalance.md).",
        name="imbalance",
        has_figure=has_imbalance,
        plot=plot_imbalance_over_epochs,
        figure_caption=imbalance_caption,
        has_table=has_imbalance,
        table_rows=imbalance_rows,
        table_caption=lambda runs: (
            "Group test accuracies and minority cosines of each imbalanced run at its last "
            "epoch (the cosine of the means at the last epoch the means were gathered)."
        ),
        table_keys=IMBALANCE_TABLE_KEYS,
    ),
)


def add_measure_sections(
    report: HtmlReport,
    runs: Sequence[TrainingRun],
    *,
    name_prefix: str = "",
    title_prefix: str = "",
    epoch_axis: str = "log",
) -> list[str]:
    """Add the sections of the per-epoch measures that ride along (docs/training.md), each
    only when some run has its data; returns the titles added.

    The sections are :data:`MEASURE_SECTIONS`:

    - "MSE decomposition" (some run has ``mse_*`` terms): :func:`plot_mse_terms` and the
      terms at the last epoch;
    - "Robustness and generalisation" (some run has ``deepfool_ratio`` or a summary.json
      ``generalisation`` entry): :func:`plot_runs_robustness` when DeepFool was measured, and
      the generalisation table of every run;
    - "Imbalanced classes" (some run has ``minority_cosine_weights``):
      :func:`plot_imbalance_over_epochs` and the last values.
    """
    check_epoch_axis(epoch_axis)
    added = []
    for spec in MEASURE_SECTIONS:
        title = spec.add_to(
            report, runs, name_prefix=name_prefix, title_prefix=title_prefix, epoch_axis=epoch_axis
        )
        if title is not None:
            added.append(title)
    return added


# ----------------------------------------------------------------------------- the report


def add_training_sections(
    report: HtmlReport,
    runs: Sequence[TrainingRun],
    *,
    name_prefix: str = "",
    title_prefix: str = "",
    intro: str = "",
    epoch_axis: str = "log",
    summary_title: str | None = None,
    measures: bool = False,
) -> None:
    """Append the summary, panels, frame gaps, depth profile and tables of ``runs`` to ``report``.

    Figure and table names get ``name_prefix`` so several groups of runs can share a report.
    The summary (table ``overview``) is a section of its own titled ``summary_title`` when
    given, else the first item of the panels' section. With ``measures``, the sections of the
    per-epoch measures that ride along (:func:`add_measure_sections`: MSE decomposition,
    robustness and generalisation, imbalanced classes) come before the tables, each only
    when some run has its data.
    """
    check_epoch_axis(epoch_axis)
    checks = summary_checks(runs)
    if summary_title is not None:
        overview = report.section(
            f"{title_prefix}{summary_title}",
            "What each run shows, checked against the theory (docs/theory.md).",
        )
    section = report.section(f"{title_prefix}Neural collapse over training", intro)
    if summary_title is None:
        overview = section
    overview.add_table(
        f"{name_prefix}overview",
        [check.as_row() for check in checks],
        overview_caption(checks),
        columns=[table_column(key) for key in ("run", "check", "expected", "measured", "verdict")],
    )
    section.add_figure(
        f"{name_prefix}training_panels",
        plot_training_panels(runs, epoch_axis=epoch_axis),
        panels_caption(runs, epoch_axis=epoch_axis),
    )
    if any("test" in run.splits for run in runs):
        section.add_figure(
            f"{name_prefix}training_panels_test",
            plot_training_panels(runs, split="test", epoch_axis=epoch_axis),
            panels_test_caption(runs, epoch_axis=epoch_axis),
        )
    has_pre = any(PENULTIMATE_PRE in run.layers for run in runs)
    gaps = report.section(f"{title_prefix}ETF or orthogonal frame: pre- and post-ReLU features")
    if has_pre or any(PENULTIMATE_POST in run.layers for run in runs):
        gaps.add_figure(
            f"{name_prefix}frame_gaps",
            plot_frame_gaps(runs, epoch_axis=epoch_axis),
            gaps_caption(runs, epoch_axis=epoch_axis),
        )
    depth = report.section(f"{title_prefix}Depth-wise NC1 profile")
    depth.add_figure(
        f"{name_prefix}depth_profile",
        plot_depth_profile(runs, fit=True),
        depth_caption(runs, fit=True),
    )
    if measures:
        add_measure_sections(
            report, runs, name_prefix=name_prefix, title_prefix=title_prefix, epoch_axis=epoch_axis
        )
    tables = report.section(f"{title_prefix}Tables")
    rows = summary_rows(runs)
    _add_table(
        tables,
        f"{name_prefix}summary",
        rows,
        SUMMARY_CAPTION,
        list(rows[0]),
        missing="not computed; for the TPT epoch: zero training error not reached",
    )
    all_rows = final_metric_rows(runs)
    _add_table(
        tables,
        f"{name_prefix}final_metrics",
        all_rows,
        ALL_LAYERS_CAPTION.replace("final_metrics", f"{name_prefix}final_metrics"),
        _final_columns(all_rows),
    )


def build_run_report(
    run_dirs: Sequence[str | Path],
    out_dir: str | Path,
    *,
    title: str | None = None,
    epoch_axis: str = "log",
) -> Path:
    """Read run directories and write DIR/report.html, DIR/figures/*.png, DIR/tables/*.csv.

    Parameters
    ----------
    run_dirs : directories written by ``neuralcollapse train`` (or CollapseTracker).
    out_dir : where to write the report (created if needed).
    title : page title (default names the runs).
    epoch_axis : ``"log"`` (symmetric-log when epoch 0 is measured) or ``"linear"``.

    Returns
    -------
    Path of report.html.
    """
    check_epoch_axis(epoch_axis)
    runs = load_runs(run_dirs)
    names = ", ".join(run.name for run in runs)
    report = HtmlReport(
        title or "Neural collapse report",
        subtitle=f"Runs: {names}. Metrics as defined in Papyan, Han & Donoho (PNAS 2020), "
        "with the project's conventions (docs/metrics.md).",
    )
    add_training_sections(
        report, runs, epoch_axis=epoch_axis, summary_title="Summary", measures=True
    )
    return report.write(out_dir)
