"""The page's findings at the top: every section's verdicts in one table, each row linking to
the section that shows it.

A :class:`Finding` is a :class:`~neuralcollapse.viz.report.checks.Check` (what theory expects,
what was measured, the verdict) and the title of the section whose figure or table shows it.
:func:`add_findings_section` puts them in the page's first section; the training sections
(:func:`~neuralcollapse.viz.report.sections.add_training_sections`) return theirs, and the
checks of the depth profile, the MSE decomposition and the generalisation table are here.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from neuralcollapse import schema
from neuralcollapse.viz.html import Column, HtmlReport, SectionLink
from neuralcollapse.viz.report.checks import FAILS, HOLDS, UNKNOWN, Check
from neuralcollapse.viz.report.columns import table_column
from neuralcollapse.viz.report.text import _factor, _num, _percent, _trend
from neuralcollapse.viz.report.values import (
    _epoch_series,
    _positive_series,
    _value,
    generalisation_entry,
    has_mse_terms,
    nc1_by_layer,
)
from neuralcollapse.viz.runs import TrainingRun
from neuralcollapse.viz.training_figures import (
    profile_epochs,
    separation_fit,
    short_layer_name,
    tpt_epoch,
)

#: the title of the findings section
FINDINGS_TITLE = "Findings"


@dataclass(frozen=True)
class Finding:
    """One verdict of the page and the title of the section that shows it."""

    section: str
    check: Check

    def as_row(self, *, short: bool = False) -> dict[str, object]:
        """The row of the findings table; ``short`` links to the section by its number only
        (the rows after the first about one section)."""
        return {"section": SectionLink(self.section, short=short), **self.check.as_row()}


#: the columns of the findings table
FINDINGS_COLUMNS = ("section", "run", "check", "expected", "measured", "verdict")


def findings_caption(
    findings: Sequence[Finding], unchecked: Sequence[str] = (), *, with_run: bool = True
) -> str:
    """How many verdicts hold, which do not, which are unknown, and the sections without one."""
    holds = sum(f.check.verdict == HOLDS for f in findings)
    fails = [f for f in findings if f.check.verdict == FAILS]
    unknown = [f for f in findings if f.check.verdict == UNKNOWN]
    parts = [
        f"Look at: the verdict column. {holds} of {len(findings)} checks hold, computed from "
        "the numbers of the section named in the first column (click it to go there; § and "
        "its number: the same section as the row above)"
    ]
    if fails:
        parts.append("; not holding: " + "; ".join(_name(f, with_run) for f in fails))
    if unknown:
        parts.append("; unknown: " + "; ".join(_name(f, with_run) for f in unknown))
    text = "".join(parts) + "."
    if unchecked:
        text += " Sections with figures or tables but no check: " + "; ".join(unchecked) + "."
    return text


def _name(finding: Finding, with_run: bool = True) -> str:
    run = finding.check.run
    return f"{run}: {finding.check.check}" if with_run and run else finding.check.check


def add_findings_section(
    report: HtmlReport,
    findings: Sequence[Finding],
    *,
    title: str = FINDINGS_TITLE,
    intro: str = "",
    name: str = "findings",
    with_run: bool = True,
) -> None:
    """Insert the findings as the report's first section: a table of every verdict, each row
    linking to its section (call it after every other section has been added). Without
    ``with_run`` the table has no run column (a page of one run)."""
    checked = {finding.section for finding in findings}
    unchecked = [s.title for s in report.sections if s.title not in checked]
    section = report.section(title, intro, first=True)
    keys = [key for key in FINDINGS_COLUMNS[1:] if with_run or key != "run"]
    columns = [Column("section", "section", "where the figure or table is", kind="text")]
    columns += [table_column(key) for key in keys]
    section.add_table(
        name,
        [
            finding.as_row(short=index > 0 and findings[index - 1].section == finding.section)
            for index, finding in enumerate(findings)
        ],
        findings_caption(findings, unchecked, with_run=with_run),
        columns=columns,
    )


# ----------------------------------------------------------------------------- checks


def depth_checks(runs: Sequence[TrainingRun], *, split: str = "train") -> list[Check]:
    """Per run at its last measured epoch: does NC1 fall from layer to layer (Tirer & Bruna
    2022), and does the law of data separation hold with rho < 1 (He & Su 2023)."""
    checks = []
    for run in runs:
        chosen = profile_epochs(run, split=split, num_epochs=1)
        if not chosen:
            continue
        epoch = chosen[-1]
        values = nc1_by_layer(run, split, epoch)
        expected = "falls from layer to layer (Tirer & Bruna 2022)"
        if len(values) < 2:
            measured = f"{len(values)} layer(s) with NC1 at epoch {epoch}"
            checks.append(Check(run.name, "NC1 across depth", expected, measured, UNKNOWN))
        else:
            falls = all(b[1] < a[1] for a, b in zip(values, values[1:], strict=False))
            path = " → ".join(f"{short_layer_name(layer, run)}: {_num(v)}" for layer, v in values)
            measured = f"epoch {epoch}: {path}"
            verdict = HOLDS if falls else FAILS
            checks.append(Check(run.name, "NC1 across depth", expected, measured, verdict))
        fit = separation_fit(run, split=split)
        expected = "ρ < 1 (He & Su 2023: fuzziness falls geometrically)"
        if fit.fit is None:
            measured, verdict = f"no fit: {fit.reason}", UNKNOWN
        else:
            measured = f"ρ = {fit.fit.rho:.3g}, R² = {fit.fit.r_squared:.3f} at epoch {fit.epoch}"
            verdict = HOLDS if fit.fit.rho < 1 else FAILS
        checks.append(Check(run.name, "law of data separation", expected, measured, verdict))
    return checks


def mse_checks(runs: Sequence[TrainingRun]) -> list[Check]:
    """Per MSE run: do L_NC1 and L_NC2/3 fall from the first to the last tracked epoch (Han,
    Papyan & Donoho 2022)."""
    checks = []
    for run in runs:
        if not has_mse_terms(run):
            continue
        moves, falling, unknown = [], 0, False
        for key in schema.MSE_TERM_KEYS[:2]:
            series = _positive_series(run, key)
            trend = _trend(series)
            if trend is None:
                unknown = True
                moves.append(f"{schema.label(key)}: {len(series)} epoch(s)")
                continue
            word, first, last = trend
            falling += word == "falls"
            moves.append(
                f"{schema.label(key)} {_num(first)} → {_num(last)} ({_factor(first, last)}), "
                f"epoch {series[0][0]} → {series[-1][0]}"
            )
        verdict = UNKNOWN if unknown else (HOLDS if falling == 2 else FAILS)
        checks.append(
            Check(
                run.name,
                "MSE terms L_NC1 and L_NC2/3",
                "fall (Han, Papyan & Donoho 2022)",
                "; ".join(moves),
                verdict,
            )
        )
    return checks


def generalisation_checks(runs: Sequence[TrainingRun]) -> list[Check]:
    """Per run: test accuracy at the end against at the TPT (Papyan et al. 2020, Table 1), and
    the DeepFool distance in the terminal phase where it was measured."""
    checks = []
    for run in runs:
        entry, source = generalisation_entry(run)
        expected = "no lower at the end than at the TPT (Papyan et al. 2020, Table 1)"
        name = "test accuracy in the terminal phase"
        before = after = None
        if entry is not None:
            before, after = _value(entry, "accuracy_tpt"), _value(entry, "accuracy_last")
        if entry is None:
            measured = f"not computed ({source})"
        elif entry.get("tpt_epoch") is None:
            measured = "zero training error not reached"
        elif before is None or after is None:
            measured = f"TPT at epoch {entry['tpt_epoch']}, no test accuracy to compare"
        else:
            change = after - before
            measured = (
                f"{_percent(before)} (epoch {entry['tpt_epoch']}) → {_percent(after)} (epoch "
                f"{entry.get('last_epoch')}): {100 * change:+.3g} points"
            )
        if before is None or after is None:
            verdict = UNKNOWN
        else:
            verdict = HOLDS if after >= before else FAILS
        checks.append(Check(run.name, name, expected, measured, verdict))
        ratio = _epoch_series(run, schema.DEEPFOOL_RATIO)
        if ratio:
            tpt = tpt_epoch(run)
            after_tpt = [(e, v) for e, v in ratio if tpt is not None and e >= tpt]
            trend = _trend(after_tpt)
            expected = "grows in the terminal phase (Papyan et al. 2020)"
            if trend is None:
                measured = (
                    "zero training error not reached"
                    if tpt is None
                    else f"{len(after_tpt)} DeepFool epoch(s) from the TPT on"
                )
                verdict = UNKNOWN
            else:
                word, first, last = trend
                measured = (
                    f"‖r‖/‖x‖ {_num(first)} (epoch {after_tpt[0][0]}) → {_num(last)} (epoch "
                    f"{after_tpt[-1][0]})"
                )
                verdict = HOLDS if word == "rises" else FAILS
            checks.append(Check(run.name, "DeepFool distance", expected, measured, verdict))
    return checks
