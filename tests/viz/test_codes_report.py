"""The report's "More classes than dimensions (K > d + 1)" section (``train --feature-dim D``).

The fake runs are :func:`write_fake_run`'s with the three code columns added to epochs.jsonl
at the measured epochs (None at the others, as the training loop writes them) and summary.json's
``spherical_code`` entry (exact, the solver's best, or missing). The expected numbers are read
back from the files the test wrote, not from the module under test.
"""

from __future__ import annotations

import csv
import json
from collections.abc import Callable, Mapping
from html import escape
from pathlib import Path

import pytest

from neuralcollapse import runformat, schema
from neuralcollapse.viz.code_figures import (
    CODE_TABLE_KEYS,
    DIM,
    OPTIMUM_ANGLE,
    OPTIMUM_LABEL,
    SOLVER_LABEL,
    best_known_angle,
    code_rows,
    code_sizes,
    code_table_caption,
    codes_caption,
    has_codes,
    plot_codes,
    positive_since,
)
from neuralcollapse.viz.html import HtmlReport, NotComputed
from neuralcollapse.viz.report import add_measure_sections, build_run_report
from neuralcollapse.viz.report.sections import CODES_TITLE, TRANSFER_TITLE
from neuralcollapse.viz.runs import load_run
from neuralcollapse.viz.style import nice_number, run_colour

from .fake_runs import write_fake_run

ROWS_KEY, MEANS_KEY, MARGIN_KEY = schema.CODE_KEYS
#: a short run keeps the report quick; epochs 2, 4, 5 are untracked (None)
SHORT = {"epochs": 8, "measured": (0, 1, 3, 6, 7)}
K, D = 10, 3
#: the proven Tammes angle of 10 points on S^2 (docs/theory.md), in degrees
TAMMES_10_3 = 66.1468
EXACT = {
    schema.NUM_CLASSES: K,
    DIM: D,
    OPTIMUM_ANGLE: TAMMES_10_3,
    "exact": True,
    "restarts": 0,
}
#: a solver's best for (K, d) = (12, 4): a lower bound, not proven optimal
SOLVER = {schema.NUM_CLASSES: 12, DIM: 4, OPTIMUM_ANGLE: 58.0, "exact": False, "restarts": 8}


def _opening(epoch: int) -> dict[str, float]:
    """Rows and means spreading out; the margin crosses zero between epochs 1 and 3 (it
    would be -0.05 at the untracked epoch 2, which holds None) and stays positive."""
    return {
        ROWS_KEY: 30.0 + 5.0 * epoch,
        MEANS_KEY: 20.0 + 5.0 * epoch,
        MARGIN_KEY: 0.1 * (epoch - 2.5),
    }


def _closing(epoch: int) -> dict[str, float]:
    """A margin positive at epochs 0 and 1 that ends negative."""
    return {ROWS_KEY: 60.0 - epoch, MEANS_KEY: 50.0 - epoch, MARGIN_KEY: 0.2 - 0.1 * epoch}


def _dipping(epoch: int) -> dict[str, float]:
    """A margin positive, then negative at epoch 1, then positive from epoch 3 on."""
    margin = {0: 0.1, 1: -0.1}.get(epoch, 0.05 * epoch)
    return {ROWS_KEY: 40.0 + epoch, MEANS_KEY: 35.0 + epoch, MARGIN_KEY: margin}


def _always_positive(epoch: int) -> dict[str, float]:
    return {ROWS_KEY: 64.0 + 0.2 * epoch, MEANS_KEY: 60.0, MARGIN_KEY: 0.3 + 0.01 * epoch}


def _not_computed(epoch: int) -> dict[str, object]:
    return dict.fromkeys(schema.CODE_KEYS)


REASON = "a classifier row is zero (no direction)"


def write_code_run(
    directory: Path,
    values: Callable[[int], Mapping[str, object]] | None,
    *,
    code: Mapping[str, object] | None = EXACT,
    summary: bool = True,
    reason: str | None = None,
) -> Path:
    """A fake run with the code columns from ``values(epoch)`` at its measured epochs and None
    at the others, and ``code`` as summary.json's ``spherical_code`` (None: no such entry;
    ``summary=False``: no summary.json). ``reason`` marks every measured epoch's code values
    not computed; ``values=None`` writes no code column at all (a run with d + 1 >= K)."""
    write_fake_run(directory, num_classes=K, write_summary=summary, **SHORT)
    # the classifier's input is d-dimensional (the fixture writes d = 2K)
    metrics = runformat.read_jsonl(directory / runformat.METRICS)
    for row in metrics:
        row[DIM] = D
    (directory / runformat.METRICS).write_text("".join(schema.dumps(r) + "\n" for r in metrics))
    if values is None:
        return directory
    if summary and code is not None:
        content = json.loads((directory / runformat.SUMMARY).read_text())
        runformat.write_json(directory / runformat.SUMMARY, content | {"spherical_code": code})
    rows = runformat.read_jsonl(directory / runformat.EPOCHS)
    for row in rows:
        if row["epoch"] in SHORT["measured"]:
            row.update(values(row["epoch"]))
            if reason is not None:
                row[schema.NOT_COMPUTED] = dict.fromkeys(schema.CODE_KEYS, reason)
        else:
            row.update(dict.fromkeys(schema.CODE_KEYS))
    (directory / runformat.EPOCHS).write_text("".join(schema.dumps(row) + "\n" for row in rows))
    return directory


def _written(directory: Path, key: str) -> list[tuple[int, float]]:
    """``(epoch, value)`` of an epochs.jsonl column as the file holds it, None skipped."""
    rows = [json.loads(line) for line in (directory / runformat.EPOCHS).read_text().splitlines()]
    return [(row["epoch"], row[key]) for row in rows if row.get(key) is not None]


def _sections(runs: list[Path]) -> tuple[list[str], HtmlReport]:
    report = HtmlReport("test")
    titles = add_measure_sections(report, [load_run(path) for path in runs])
    return titles, report


def _run_sentence(caption: str, name: str) -> str:
    """The caption's sentence about one run (from its name to the end of that sentence)."""
    start = caption.index(f"{name} (K = ")
    end = caption.find(". ", start)
    return caption[start:end]


def test_the_section_appears_only_when_some_run_has_the_code_columns(tmp_path):
    plain = write_code_run(tmp_path / "plain", None)
    codes = write_code_run(tmp_path / "codes", _opening)
    assert not has_codes(load_run(plain)) and has_codes(load_run(codes))
    titles, _ = _sections([plain])
    assert CODES_TITLE not in titles
    titles, report = _sections([plain, codes])
    assert CODES_TITLE in titles and TRANSFER_TITLE not in titles
    page = report.to_html()
    assert "Jiang et al." in page and "Tammes problem" in page
    assert "--feature-dim D" in page and "docs/frontier.md" in page
    # the run without the columns is named as such, not drawn or tabulated
    caption = codes_caption([load_run(plain), load_run(codes)])
    assert "plain: no smallest angle of the classifier rows (recorded only when" in caption
    assert [row["run"] for row in code_rows([load_run(plain), load_run(codes)])] == ["codes"]


def test_a_run_whose_code_values_were_all_not_computed_gets_no_section(tmp_path):
    failed = write_code_run(tmp_path / "failed", _not_computed, reason=REASON)
    run = load_run(failed)
    assert not has_codes(run)
    assert code_rows([run]) == []
    titles, _ = _sections([failed])
    assert CODES_TITLE not in titles
    other = load_run(write_code_run(tmp_path / "other", _opening))
    caption = codes_caption([run, other])
    epochs = ", ".join(map(str, SHORT["measured"]))
    assert (
        f"failed: no smallest angle of the classifier rows was computed. Not computed at "
        f"epoch(s) {epochs}: {REASON}."
    ) in caption


def test_the_caption_gives_the_first_and_last_angles_and_the_gap_to_the_exact_optimum(tmp_path):
    directory = write_code_run(tmp_path / "run", _opening)
    caption = codes_caption([load_run(directory)])
    sentence = _run_sentence(caption, "run")
    rows, means = _written(directory, ROWS_KEY), _written(directory, MEANS_KEY)
    # the untracked epochs (2, 4, 5) hold None and are not read
    assert [epoch for epoch, _ in rows] == list(SHORT["measured"])
    assert sentence.startswith(f"run (K = {K}, d = {D}): ")
    for name, series in (("rows'", rows), ("means'", means)):
        (first_epoch, first), (last_epoch, last) = series[0], series[-1]
        assert (
            f"the {name} smallest angle went from {nice_number(first)}° to {nice_number(last)}° "
            f"(epochs {first_epoch} to {last_epoch}), ending "
            f"{nice_number(TAMMES_10_3 - last)}° below the optimum {nice_number(TAMMES_10_3)}° "
            "(exact)"
        ) in sentence
    assert "solver" not in sentence and "lower bound" not in sentence
    assert "not recorded" not in sentence


def test_the_solvers_best_is_called_a_lower_bound_and_an_angle_above_it_is_said(tmp_path):
    below = write_code_run(tmp_path / "below", _closing, code=SOLVER)
    above = write_code_run(tmp_path / "above", _always_positive, code=SOLVER)
    caption = codes_caption([load_run(below), load_run(above)])
    below_part, above_part = _run_sentence(caption, "below"), _run_sentence(caption, "above")
    # K and d come from summary.json's spherical_code
    assert below_part.startswith("below (K = 12, d = 4): ")
    best = "the solver's best 58° (best of 8 restarts; a lower bound on the optimum)"
    last_rows = _written(below, ROWS_KEY)[-1][1]
    assert f"ending {nice_number(58.0 - last_rows)}° below {best}" in below_part
    last_above = _written(above, ROWS_KEY)[-1][1]
    assert last_above > 58.0
    assert f"ending {nice_number(last_above - 58.0)}° above {best}" in above_part
    assert "(exact)" not in caption


def test_the_margin_wording_follows_the_data(tmp_path):
    names = {
        "opening": _opening,
        "closing": _closing,
        "dipping": _dipping,
        "positive": _always_positive,
    }
    runs = [load_run(write_code_run(tmp_path / name, values)) for name, values in names.items()]
    caption = codes_caption(runs)
    opening, closing, dipping, positive = (_run_sentence(caption, name) for name in names)
    margins = _written(runs[0].path, MARGIN_KEY)
    (first_epoch, first), (last_epoch, last) = margins[0], margins[-1]
    assert (
        f"the means' margin went from {nice_number(first)} to {nice_number(last)} "
        f"(epochs {first_epoch} to {last_epoch}) and ended positive"
    ) in opening
    # crosses zero between the tracked epochs 1 and 3
    assert [value > 0 for _, value in margins] == [False, False, True, True, True]
    assert "at every tracked epoch from epoch 3 on" in opening
    assert "misclassified" not in opening
    # positive at epochs 0 and 1, then not: ends negative
    last_closing = _written(runs[1].path, MARGIN_KEY)[-1][1]
    assert last_closing < 0
    assert (
        f"ended at {nice_number(last_closing)} ≤ 0: some class mean is misclassified by the "
        "normalised classifier (it was positive at 2 of 5 tracked epochs)"
    ) in closing
    assert "ended positive" not in closing
    # negative at epoch 1 only: positive again from epoch 3, not from epoch 0
    assert "at every tracked epoch from epoch 3 on" in dipping
    assert "at every one of the 5 tracked epochs" in positive
    assert "from epoch" not in positive


def test_positive_since_reads_only_the_points_given():
    assert positive_since([]) is None
    assert positive_since([(0, 0.1), (1, 0.2)]) == 0
    assert positive_since([(0, -0.1), (3, 0.2), (6, 0.3)]) == 3
    assert positive_since([(0, 0.1), (1, -0.1), (3, 0.2)]) == 3
    assert positive_since([(0, 0.1), (3, 0.0)]) is None  # 0 is not positive: a tie
    assert positive_since([(0, 0.1), (3, -0.2)]) is None


def test_a_margin_ending_at_zero_is_not_called_positive(tmp_path):
    def zero_at_the_end(epoch: int) -> dict[str, float]:
        return _opening(epoch) | {MARGIN_KEY: 0.0 if epoch == 7 else 0.1}

    run = load_run(write_code_run(tmp_path / "run", zero_at_the_end))
    sentence = _run_sentence(codes_caption([run]), "run")
    assert "ended at 0 ≤ 0" in sentence and "ended positive" not in sentence


@pytest.mark.parametrize("summary", [True, False])
def test_a_missing_spherical_code_is_said_not_recorded(tmp_path, summary):
    directory = write_code_run(tmp_path / "run", _opening, code=None, summary=summary)
    run = load_run(directory)
    assert best_known_angle(run) is None
    # K and d then come from the classifier input's rows in metrics.jsonl
    assert code_sizes(run) == (K, D)
    caption = codes_caption([run])
    sentence = _run_sentence(caption, "run")
    why = "no spherical_code in summary.json" if summary else "no summary.json"
    assert f"the best known angle is not recorded ({why})" in sentence
    assert "below" not in sentence and "optimum" not in sentence.replace("not recorded", "")
    (row,) = code_rows([run])
    assert row[OPTIMUM_ANGLE] is None
    assert (row[schema.NUM_CLASSES], row[DIM]) == (K, D)
    assert "not recorded in summary.json (—) for run" in code_table_caption([run])
    figure = plot_codes([run])
    assert [line.get_linestyle() for line in figure.axes[0].lines] == ["-", "--"]


def test_a_malformed_spherical_code_is_not_recorded_and_exact_needs_true(tmp_path):
    broken = load_run(write_code_run(tmp_path / "broken", _opening, code={OPTIMUM_ANGLE: "sixty"}))
    assert best_known_angle(broken) is None
    assert "has no finite optimum_angle_degrees" in codes_caption([broken])
    vague = load_run(write_code_run(tmp_path / "vague", _opening, code={OPTIMUM_ANGLE: 66.0}))
    best = best_known_angle(vague)
    assert best is not None and not best.exact and best.restarts is None
    assert "the solver's best 66° (restarts not recorded;" in codes_caption([vague])


def test_values_not_computed_are_named_with_their_reason(tmp_path):
    def means_missing(epoch: int) -> dict[str, object]:
        return _opening(epoch) | ({MEANS_KEY: None, MARGIN_KEY: None} if epoch == 7 else {})

    directory = write_code_run(tmp_path / "run", means_missing)
    rows = runformat.read_jsonl(directory / runformat.EPOCHS)
    for row in rows:
        if row["epoch"] == 7:
            row[schema.NOT_COMPUTED] = dict.fromkeys((MEANS_KEY, MARGIN_KEY), "a zero mean")
    (directory / runformat.EPOCHS).write_text("".join(schema.dumps(r) + "\n" for r in rows))
    run = load_run(directory)
    caption = codes_caption([run])
    assert "Not computed at epoch(s) 7: a zero mean." in caption
    # the means' last value drawn is epoch 6's
    assert "the means' smallest angle went from 20° to 50° (epochs 0 to 6)" in caption
    (row,) = code_rows([run])
    assert row["epoch"] == 7  # the rows' angle was computed at 7
    assert isinstance(row[MEANS_KEY], NotComputed) and row[MEANS_KEY].reason == "a zero mean"
    assert isinstance(row[MARGIN_KEY], NotComputed)
    assert row[ROWS_KEY] == _opening(7)[ROWS_KEY]


def test_the_table_holds_the_last_tracked_epoch(tmp_path):
    exact = write_code_run(tmp_path / "exact", _opening)
    solver = write_code_run(tmp_path / "solver", _closing, code=SOLVER)
    runs = [load_run(exact), load_run(solver)]
    rows = {row["run"]: row for row in code_rows(runs)}
    row = rows["exact"]
    assert list(row) == list(CODE_TABLE_KEYS)
    last_epoch = max(SHORT["measured"])
    assert row["epoch"] == last_epoch
    written = {key: dict(_written(exact, key))[last_epoch] for key in schema.CODE_KEYS}
    assert {key: row[key] for key in schema.CODE_KEYS} == written
    assert (row[schema.NUM_CLASSES], row[DIM], row[OPTIMUM_ANGLE]) == (K, D, TAMMES_10_3)
    assert (rows["solver"][schema.NUM_CLASSES], rows["solver"][DIM]) == (12, 4)
    assert rows["solver"][OPTIMUM_ANGLE] == 58.0
    caption = code_table_caption(runs)
    assert "the exact optimum for exact" in caption
    assert "the best of the solver's restarts, a lower bound on the optimum, for solver" in caption
    assert "not recorded" not in caption


def test_the_figure_draws_two_panels_and_skips_untracked_epochs(tmp_path):
    plain = load_run(write_code_run(tmp_path / "plain", None))
    runs = [
        load_run(write_code_run(tmp_path / "exact", _opening)),
        plain,
        load_run(write_code_run(tmp_path / "solver", _closing, code=SOLVER)),
    ]
    figure = plot_codes(runs, epoch_axis="linear")
    angle_panel, margin_panel = figure.axes
    # per run with data: rows (solid), means (dashed), best known angle (dotted)
    assert [line.get_linestyle() for line in angle_panel.lines] == ["-", "--", ":"] * 2
    dotted = [line for line in angle_panel.lines if line.get_linestyle() == ":"]
    assert [line.get_label() for line in dotted] == [OPTIMUM_LABEL, SOLVER_LABEL]
    assert [line.get_ydata()[0] for line in dotted] == [TAMMES_10_3, 58.0]
    legend = [text.get_text() for text in angle_panel.get_legend().get_texts()]
    assert legend == ["classifier rows", "centred class means", OPTIMUM_LABEL, SOLVER_LABEL]
    # per run the margin (solid), then the zero line
    assert [line.get_linestyle() for line in margin_panel.lines] == ["-", "-", "-."]
    assert list(margin_panel.lines[-1].get_ydata()) == [0.0, 0.0]
    measured = [float(e) for e in SHORT["measured"]]
    data_lines = angle_panel.lines[0:2] + angle_panel.lines[3:5] + margin_panel.lines[:2]
    for line in data_lines:
        assert list(line.get_xdata()) == measured  # untracked epochs 2, 4, 5 left out
    assert list(angle_panel.lines[1].get_ydata()) == [
        v for _, v in _written(runs[0].path, MEANS_KEY)
    ]
    assert list(margin_panel.lines[1].get_ydata()) == [
        v for _, v in _written(runs[2].path, MARGIN_KEY)
    ]
    # the colours are the runs' indices among all runs: the third run gets the third colour
    assert angle_panel.lines[3].get_color() == run_colour(2)
    assert margin_panel.lines[1].get_color() == run_colour(2)
    assert "Epochs on a linear axis." in codes_caption(runs, epoch_axis="linear")
    assert "symmetric-log" in codes_caption(runs)  # epoch 0 is drawn


def test_the_report_writes_the_figure_and_the_table(tmp_path):
    codes = write_code_run(tmp_path / "codes", _opening)
    page = build_run_report([codes], tmp_path / "out")
    page_text = page.read_text()
    assert escape(CODES_TITLE) in page_text
    assert (tmp_path / "out" / "figures" / "codes.png").stat().st_size > 1000
    with (tmp_path / "out" / "tables" / "codes.csv").open() as handle:
        (row,) = list(csv.DictReader(handle))
    assert list(row) == list(CODE_TABLE_KEYS)
    assert float(row[OPTIMUM_ANGLE]) == TAMMES_10_3
    assert float(row[MARGIN_KEY]) == pytest.approx(_opening(7)[MARGIN_KEY], rel=1e-12)
    for key in schema.CODE_KEYS:  # headers are the schema's labels
        assert escape(schema.RUN_COLUMNS[key].label) in page_text
    assert "best known smallest angle (°)" in page_text
