"""Captions written from the runs' numbers: a caption says NC1 falls only where it does,
and mentions a TPT line only where one is drawn."""

from __future__ import annotations

import math
from collections.abc import Sequence

from neuralcollapse import schema
from neuralcollapse.frames import frame_levels, predicted_frame
from neuralcollapse.viz.epoch_columns import epoch_axis_sentence
from neuralcollapse.viz.imbalance_figures import run_num_classes
from neuralcollapse.viz.report.checks import (
    ANSATZ_CHECK,
    CODE_CHECK,
    CODE_TOLERANCE,
    ETF,
    FAILS,
    FRAME_TOLERANCE,
    HOLDS,
    NC4_TOLERANCE,
    ORTHOGONAL,
    TRANSFER_CHECK,
    UNKNOWN,
    Check,
    frame_verdict,
    measured_frame,
    run_loss_and_bias,
)
from neuralcollapse.viz.report.text import (
    _factor,
    _join,
    _num,
    _percent,
    _trend,
    _trend_phrase,
)
from neuralcollapse.viz.report.values import (
    _epoch_series,
    _finite_series,
    _last_train_error,
    _last_with,
    _positive_series,
    _value,
    generalisation_entry,
    has_imbalance,
    has_mse_terms,
    nc1_by_layer,
)
from neuralcollapse.viz.runs import PENULTIMATE_PRE, TrainingRun
from neuralcollapse.viz.style import nice_number
from neuralcollapse.viz.training_figures import (
    PANEL_SPECS,
    drawn_tpt,
    panel_epochs,
    profile_epochs,
    separation_fit,
    short_layer_name,
    tpt_epoch,
)


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
    names = {check.check for check in checks}
    if TRANSFER_CHECK in names:
        parts.append(
            " The few-shot error on withheld classes holds when it fell from the first to the "
            "last tracked epoch by more than twice the combined standard error."
        )
    if CODE_CHECK in names:
        parts.append(
            " The rows' smallest angle holds when it ends within "
            f"{_percent(CODE_TOLERANCE)} of the best known angle for (K, d)."
        )
    if ANSATZ_CHECK in names:
        parts.append(
            " The feature ansatz holds when the hidden layers' mean correlation with AGOP^½ "
            "rose from the first to the last measured epoch."
        )
    return "".join(parts)


def _nc1_sentence(runs: Sequence[TrainingRun], split: str) -> str:
    """How NC1 moves from the first to the last measured epoch, grouped by direction."""
    by_trend: dict[str, list[str]] = {}
    for run in runs:
        trend = _trend(_finite_series(run, schema.NC1, split=split))
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
        after = [(e, v) for e, v in _finite_series(run, schema.NC1, split=split) if e >= tpt]
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
            if key == schema.NC1:
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
    parts.append(epoch_axis_sentence(epoch_axis, epochs))
    return " ".join(parts)


def panels_test_caption(runs: Sequence[TrainingRun], *, epoch_axis: str = "log") -> str:
    """The caption of the test-split panels: how test NC1 compares with train NC1 at the end."""
    parts = ["Look at: the same panels measured on the test split."]
    comparisons = []
    for run in runs:
        train = _finite_series(run, schema.NC1, split="train")
        test = _finite_series(run, schema.NC1, split="test")
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
    parts.append(epoch_axis_sentence(epoch_axis, panel_epochs(runs, "test")))
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
        "values (the summary's rule). " + epoch_axis_sentence(epoch_axis, _all_epochs(runs))
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
        values = [item for item in nc1_by_layer(run, split, last) if math.isfinite(item[1])]
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
                f"; at epoch {last} NC1 {shape} {short_layer_name(first_layer, run)} "
                f"({_num(first)}) to {short_layer_name(last_layer, run)} ({_num(final)})"
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
    for run, item in zip(runs, fits, strict=True):
        if item.fit is None:
            parts.append(f"{item.run}: no fit of the law of data separation: {item.reason}.")
            continue
        fit = item.fit
        names = _join([short_layer_name(layer, run) for layer in fit.layers])
        if item.merged:
            parts.append(
                f"{item.run}: {_join(list(item.merged))} left out of the fit: "
                f"{'its' if len(item.merged) == 1 else 'their'} output is the classifier's "
                "input (the same N, d and feature metrics as the penultimate features), one "
                "depth, not two."
            )
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


SUMMARY_CAPTION = (
    "Look at: one row per run at its last measured epoch (training split, post-ReLU penultimate "
    "features unless marked pre-ReLU). The TPT epoch is the first epoch with zero training error."
)


ALL_LAYERS_CAPTION = (
    "Every CollapseMetrics field at the last measured epoch, for every split and layer "
    "(the full table, every column, is in tables/final_metrics.csv)."
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
        for key in schema.MSE_TERM_KEYS:
            series = _positive_series(run, key)
            epochs.extend(e for e, _ in series)
            trend = _trend(series)
            if trend is None:
                moves.append(f"{schema.label(key)} measured at {len(series)} epoch(s)")
                continue
            word, first, last = trend
            moves.append(
                f"{schema.label(key)} {word} {_factor(first, last)}".replace(
                    " is flat ×1", " is flat"
                )
            )
            if word == "falls":
                falling.append(schema.label(key))
        sentence = f"{run.name}: " + ", ".join(moves)
        sentence += " (all three fell)" if len(falling) == 3 else f" ({len(falling)} of 3 fell)"
        last = _last_with(run, (schema.MSE_LOSS, *schema.MSE_TERM_KEYS))
        if last is not None:
            total = float(_value(last, schema.MSE_LOSS))  # type: ignore[arg-type]
            terms = {key: float(_value(last, key)) for key in schema.MSE_TERM_KEYS}  # type: ignore
            largest = max(terms, key=lambda key: terms[key])
            if total > 0:
                sentence += (
                    f"; at epoch {last['epoch']} the MSE loss is {_num(total)}, its largest term "
                    f"{schema.label(largest)} ({_percent(terms[largest] / total)} of it) and L_LS⊥ "
                    f"{_percent(terms[schema.MSE_LS_PERP] / total)} of it"
                )
        parts.append(sentence + ".")
    parts.append(
        "Han, Papyan & Donoho (ICLR 2022) find L_LS⊥ small next to the other two terms (the "
        "classifier stays close to the least-squares one: the central path), while L_NC1 and "
        "L_NC2/3 fall in the terminal phase."
    )
    parts.append(epoch_axis_sentence(epoch_axis, epochs))
    return " ".join(parts)


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
        ratio = _epoch_series(run, schema.DEEPFOOL_RATIO)
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
        nc1 = [(e, v) for e, v in _finite_series(run, schema.NC1) if first <= e <= last]
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
        failed = _epoch_series(run, schema.DEEPFOOL_FAILED_FRACTION)
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
    parts.append(epoch_axis_sentence(epoch_axis, epochs))
    return " ".join(parts)


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
        weights = _epoch_series(run, schema.MINORITY_COSINE_WEIGHTS)
        means = _epoch_series(run, schema.MINORITY_COSINE_MEANS)
        epochs.extend(e for e, _ in weights + means)
        sentence = (
            f"{head}: {_cosine_phrase('the cosine of the rows', weights, k)}; "
            f"{_cosine_phrase('the cosine of the means', means, k)}"
        )
        both = [
            row
            for row in run.epochs
            if _value(row, schema.ACCURACY_MAJORITY) is not None
            and _value(row, schema.ACCURACY_MINORITY) is not None
        ]
        if both:
            last = both[-1]
            major, minor = (
                _value(last, schema.ACCURACY_MAJORITY),
                _value(last, schema.ACCURACY_MINORITY),
            )
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
    parts.append(epoch_axis_sentence(epoch_axis, epochs))
    return " ".join(parts)


def _generalisation_table_caption(runs: Sequence[TrainingRun]) -> str:
    return (
        generalisation_caption(runs)
        + " Accuracies and their change are shown in %; not reached: the run never had "
        "zero training error; — : not computed."
    )
