"""The summary's checks: what theory expects of a run, what it measured, the verdict.

The frame of the penultimate class means is named by :mod:`neuralcollapse.frames` (one
vocabulary and one tolerance rule for the report, the UFM evaluation and the demo)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from neuralcollapse import frames, schema
from neuralcollapse.frames import classify_frame, predicted_frame
from neuralcollapse.viz.agop_figures import ansatz_pairs, rise_text
from neuralcollapse.viz.code_figures import ANGLE_WEIGHTS as CODE_ANGLE_WEIGHTS
from neuralcollapse.viz.code_figures import best_known_angle, has_codes
from neuralcollapse.viz.epoch_columns import epoch_series
from neuralcollapse.viz.report.text import _factor, _num, _percent
from neuralcollapse.viz.report.values import _finite_series, _last_train_error, _last_with, _value
from neuralcollapse.viz.runs import PENULTIMATE_POST, TrainingRun
from neuralcollapse.viz.training_figures import tpt_epoch
from neuralcollapse.viz.transfer_figures import (
    FELL,
    NOT_JUDGED,
    ROSE,
    UNCHANGED,
    error_change,
    has_transfer,
)

#: a measured frame matches a theory frame when each of its OF gap, global-mean ratio and
#: centred ETF gap is within this fraction of the distance between the two frames' values
#: (the OF gap of an ETF, √(2 − 2√((K−1)/K)), and the ratio of an OF, 1/√K):
#: :func:`neuralcollapse.frames.frame_tolerances`
FRAME_TOLERANCE = frames.NETWORK_TOLERANCE


#: the NCC mismatch (NC4, a fraction of the samples) counts as vanished at or below this
NC4_TOLERANCE = 0.01


#: the verdicts of the summary
HOLDS, FAILS, UNKNOWN = "holds", "does not hold", "unknown"


#: frames (:mod:`neuralcollapse.frames`): the orthogonal frame, the simplex ETF (uncentred:
#: the global mean vanishes), and a simplex ETF of the centred means with the global mean left
#: free (a classifier bias absorbs it); "neither" when the means are close to none of them
ORTHOGONAL, ETF, CENTRED_ETF, NEITHER = (
    frames.ORTHOGONAL,
    frames.ETF,
    frames.CENTRED_ETF,
    frames.NEITHER,
)


_BIAS_KEYS = ("bias", "classifier_bias", "fc_bias")

#: the name of the frame check of :func:`run_checks`
FRAME_CHECK = "frame of the penultimate means"


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
        return f"{frames.FRAMES[self.frame]} ({levels})"


def measured_frame(
    run: TrainingRun, *, layer: str = PENULTIMATE_POST, split: str = "train"
) -> FrameMeasurement | None:
    """The frame of the last row of ``layer`` where the gaps and ratio were computed."""
    keys = schema.FRAME_KEYS
    row = _last_with(run, keys, layer=layer, split=split)
    if row is None:
        return None
    k = _value(row, schema.NUM_CLASSES) or run.num_classes
    if k is None or k < 2:
        return None
    of_gap, ratio, etf_gap = (float(_value(row, key)) for key in keys)  # type: ignore[arg-type]
    return FrameMeasurement(
        frame=classify_frame(of_gap, ratio, etf_gap, int(k), tolerance=FRAME_TOLERANCE),
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
    return HOLDS if frames.frame_matches(predicted, measured.frame) else FAILS


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

    nc1 = _finite_series(run, schema.NC1)
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

    mismatch = _finite_series(run, schema.NCC_MISMATCH)
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
            FRAME_CHECK,
            expected,
            "not computed" if frame is None else frame.describe(),
            frame_verdict(predicted, frame),
        )
    )
    return checks


#: the names of the ride-along checks (:func:`ride_along_checks`)
TRANSFER_CHECK = "few-shot error on withheld classes"
CODE_CHECK = "smallest angle of the classifier rows"
ANSATZ_CHECK = "feature ansatz at the hidden layers"

#: the rows' smallest angle counts as reaching the best known code within this fraction of
#: that angle (a run is finite; Jiang et al.'s claim is about the limit)
CODE_TOLERANCE = 0.05


def ride_along_checks(run: TrainingRun) -> list[Check]:
    """The claims of the measures that ride along, where the run has their data: the
    few-shot error on withheld classes falls (Galanti et al. 2022), the classifier rows reach
    the best known code when K > d + 1 (Jiang et al. 2023), the feature ansatz strengthens at
    the hidden layers (Beaglehole et al. 2024)."""
    checks = []
    if has_transfer(run):
        movement, measured = error_change(run)
        words = {
            FELL: "fell by more than 2 s.e.",
            ROSE: "rose by more than 2 s.e.",
            UNCHANGED: "no change beyond 2 s.e.",
            NOT_JUDGED: "no standard error to judge by",
        }
        verdicts = {FELL: HOLDS, ROSE: FAILS, UNCHANGED: FAILS, NOT_JUDGED: UNKNOWN}
        checks.append(
            Check(
                run.name,
                TRANSFER_CHECK,
                "falls as the network trains (collapse carries over to new classes)",
                f"{measured}: {words[movement]}",
                verdicts[movement],
            )
        )
    if has_codes(run):
        (epoch, angle) = epoch_series(run, CODE_ANGLE_WEIGHTS)[-1]
        best = best_known_angle(run)
        if best is None:
            expected, verdict = "→ the best known code (not recorded)", UNKNOWN
            measured = f"{_num(angle)}° at epoch {epoch}"
        else:
            kind = "the optimum" if best.exact else "the solver's best"
            expected = f"→ {_num(best.degrees)}° ({kind}, K > d + 1)"
            reached = angle >= (1 - CODE_TOLERANCE) * best.degrees
            measured = f"{_num(angle)}° at epoch {epoch} ({_num(best.degrees - angle)}° short)"
            verdict = HOLDS if reached else FAILS
        checks.append(
            Check(run.name, CODE_CHECK, expected, measured, verdict)
        )
    moved = ansatz_pairs(run)
    if moved is not None and moved[2]:
        pairs = moved[2]
        rises = sum(b for _, b in pairs) > sum(a for a, _ in pairs)
        checks.append(
            Check(
                run.name,
                ANSATZ_CHECK,
                "corr(WᵀW, AGOP^½) rises through training",
                rise_text(*moved),
                HOLDS if rises else FAILS,
            )
        )
    return checks


def summary_checks(runs: Sequence[TrainingRun]) -> list[Check]:
    """:func:`run_checks` of every run, in order, each followed by its
    :func:`ride_along_checks`."""
    return [check for run in runs for check in (*run_checks(run), *ride_along_checks(run))]
