"""The report's "Transfer to new classes" section (``neuralcollapse train --transfer-classes``).

The fake runs are :func:`write_fake_run`'s with the transfer columns added to epochs.jsonl at
the measured epochs (None at the others, as the training loop writes them) and the transfer
options in config.json. The expected numbers are read back from the files the test wrote,
not from the module under test.
"""

from __future__ import annotations

import csv
import json
import math
from collections.abc import Callable, Sequence
from pathlib import Path

import pytest

from neuralcollapse import runformat, schema
from neuralcollapse.viz.html import HtmlReport, NotComputed
from neuralcollapse.viz.report import add_measure_sections, build_run_report
from neuralcollapse.viz.report.sections import TRANSFER_TITLE
from neuralcollapse.viz.runs import load_run
from neuralcollapse.viz.style import nice_number
from neuralcollapse.viz.transfer_figures import (
    episode_shape,
    has_transfer,
    plot_transfer,
    transfer_caption,
    transfer_rows,
    withheld_classes,
)

from .fake_runs import write_fake_run

CDNV_KEY, ERROR_KEY, STDERR_KEY, BOUND_KEY = schema.TRANSFER_KEYS
#: a short run keeps the report quick; epochs 2, 4, 5 are untracked (None)
SHORT = {"epochs": 8, "measured": (0, 1, 3, 6, 7)}
SHOTS, WAYS = 5, 5
#: (k - 1)(12 + 6/m) of a 5-way 5-shot episode
FACTOR = (WAYS - 1) * (12 + 6 / SHOTS)


def _falling(epoch: int) -> dict[str, float]:
    """New classes that collapse: the CDNV falls to where the bound says something."""
    cdnv = 0.5 * math.exp(-0.6 * epoch)
    return {
        CDNV_KEY: cdnv,
        ERROR_KEY: 0.6 * math.exp(-0.3 * epoch),
        STDERR_KEY: 0.01,
        BOUND_KEY: min(1.0, FACTOR * cdnv),
    }


def _flat(epoch: int) -> dict[str, float]:
    """New classes that stay spread out: the error moves by less than its noise, the bound
    is 1 throughout."""
    cdnv = 0.8 + 0.01 * epoch
    return {
        CDNV_KEY: cdnv,
        ERROR_KEY: 0.5 - 0.002 * epoch,
        STDERR_KEY: 0.03,
        BOUND_KEY: min(1.0, FACTOR * cdnv),
    }


def _rising(epoch: int) -> dict[str, float]:
    return {CDNV_KEY: 0.3, ERROR_KEY: 0.1 + 0.05 * epoch, STDERR_KEY: 0.005, BOUND_KEY: 1.0}


def _not_computed(epoch: int) -> dict[str, object]:
    return dict.fromkeys(schema.TRANSFER_KEYS)


REASON = "fewer than transfer_shots + 1 samples in class 7"


def write_transfer_run(
    directory: Path,
    values: Callable[[int], dict[str, object]] | None,
    *,
    classes: str = "5-9",
    ways: int | None = None,
    reason: str | None = None,
) -> Path:
    """A fake run with the transfer columns from ``values(epoch)`` at its measured epochs and
    None at the others; ``reason`` marks every measured epoch's transfer values not computed
    (its ``not_computed`` dict); ``values=None`` writes no transfer column at all."""
    write_fake_run(directory, **SHORT)
    if values is None:
        return directory
    config = json.loads((directory / runformat.CONFIG).read_text())
    config |= {"transfer_classes": classes, "transfer_shots": SHOTS, "transfer_ways": ways}
    runformat.write_json(directory / runformat.CONFIG, config)
    rows = runformat.read_jsonl(directory / runformat.EPOCHS)
    for row in rows:
        if row["epoch"] in SHORT["measured"]:
            row.update(values(row["epoch"]))
            if reason is not None:
                row[schema.NOT_COMPUTED] = dict.fromkeys(schema.TRANSFER_KEYS, reason)
        else:
            row.update(dict.fromkeys(schema.TRANSFER_KEYS))
    (directory / runformat.EPOCHS).write_text("".join(schema.dumps(row) + "\n" for row in rows))
    return directory


def _written(directory: Path, key: str) -> list[tuple[int, float]]:
    """``(epoch, value)`` of an epochs.jsonl column as the file holds it, None skipped."""
    rows = [json.loads(line) for line in (directory / runformat.EPOCHS).read_text().splitlines()]
    return [(row["epoch"], row[key]) for row in rows if row.get(key) is not None]


def _written_training_cdnv(directory: Path) -> list[tuple[int, float]]:
    lines = (directory / runformat.METRICS).read_text().splitlines()
    rows = [json.loads(line) for line in lines]
    return sorted(
        (row["epoch"], row[schema.CDNV])
        for row in rows
        if row["split"] == "train" and row["layer"] == schema.PENULTIMATE_POST
    )


def _sections(runs: Sequence[Path]) -> tuple[list[str], HtmlReport]:
    report = HtmlReport("test")
    titles = add_measure_sections(report, [load_run(path) for path in runs])
    return titles, report


def _run_sentence(caption: str, name: str) -> str:
    """The caption's sentences about one run (from its name to the next run's)."""
    start = caption.index(f"{name} (withheld")
    end = caption.find(". ", start)
    return caption[start:end]


def test_withheld_classes_and_the_episode_shape_come_from_the_config(tmp_path):
    assert withheld_classes("5-9") == (5, 6, 7, 8, 9)
    assert withheld_classes("5,7,9") == (5, 7, 9)
    assert withheld_classes("0-2,7") == (0, 1, 2, 7)
    assert withheld_classes([9, 5, 5]) is None  # config.json holds a string
    assert withheld_classes(None) is None
    assert withheld_classes("five") is None
    assert withheld_classes("9-5") is None
    all_ways = load_run(write_transfer_run(tmp_path / "all", _falling, classes="5,7,9"))
    assert episode_shape(all_ways) == (3, SHOTS)  # k: every withheld class
    three = load_run(write_transfer_run(tmp_path / "three", _falling, ways=3))
    assert episode_shape(three) == (3, SHOTS)
    assert "3-way 5-shot error" in transfer_caption([three])
    plain = load_run(write_transfer_run(tmp_path / "plain", None))
    assert episode_shape(plain) == (None, None)


def test_the_section_appears_only_when_some_run_has_transfer_data(tmp_path):
    plain = write_transfer_run(tmp_path / "plain", None)
    transfer = write_transfer_run(tmp_path / "transfer", _falling)
    titles, _ = _sections([plain])
    assert TRANSFER_TITLE not in titles
    titles, report = _sections([plain, transfer])
    assert TRANSFER_TITLE in titles
    page = report.to_html()
    assert "Galanti, György &amp; Hutter" in page and "--transfer-classes" in page
    assert "docs/frontier.md" in page
    # the run without transfer data is named as such, not drawn or tabulated
    caption = transfer_caption([load_run(plain), load_run(transfer)])
    assert "plain: no few-shot error (not trained with --transfer-classes)." in caption
    assert [row["run"] for row in transfer_rows([load_run(plain), load_run(transfer)])] == [
        "transfer"
    ]


def test_a_run_whose_transfer_values_were_all_not_computed_gets_no_section(tmp_path):
    failed = write_transfer_run(tmp_path / "failed", _not_computed, reason=REASON)
    run = load_run(failed)
    assert not has_transfer(run)
    assert transfer_rows([run]) == []
    titles, _ = _sections([failed])
    assert TRANSFER_TITLE not in titles
    # next to a run with data, the caption gives the failed run's reason
    other = load_run(write_transfer_run(tmp_path / "other", _falling))
    caption = transfer_caption([run, other])
    epochs = ", ".join(map(str, SHORT["measured"]))
    assert f"failed: no few-shot error was computed. Not computed at epoch(s) {epochs}" in caption
    assert f"{epochs}: {REASON}." in caption


def test_the_caption_gives_the_first_and_last_values_the_run_wrote(tmp_path):
    directory = write_transfer_run(tmp_path / "run", _falling)
    caption = transfer_caption([load_run(directory)])
    training = _written_training_cdnv(directory)
    new = _written(directory, CDNV_KEY)
    errors = _written(directory, ERROR_KEY)
    stderrs = dict(_written(directory, STDERR_KEY))
    # the untracked epochs (2, 4, 5) hold None and are not read
    assert [epoch for epoch, _ in new] == list(SHORT["measured"])
    assert (
        f"the training classes' CDNV went from {nice_number(training[0][1])} to "
        f"{nice_number(training[-1][1])} (epochs {training[0][0]} to {training[-1][0]})"
    ) in caption
    assert (
        f"the new classes' CDNV went from {nice_number(new[0][1])} to "
        f"{nice_number(new[-1][1])} (epochs {new[0][0]} to {new[-1][0]})"
    ) in caption
    (first_epoch, first), (last_epoch, last) = errors[0], errors[-1]
    assert (
        f"the 5-way 5-shot error went from {nice_number(first)} ± "
        f"{nice_number(stderrs[first_epoch])} to {nice_number(last)} ± "
        f"{nice_number(stderrs[last_epoch])} (epochs {first_epoch} to {last_epoch})"
    ) in caption
    assert "run (withheld classes 5-9, 5-way 5-shot episodes)" in caption


def test_the_vacuous_bound_is_said_when_every_bound_is_one_and_not_otherwise(tmp_path):
    falling = write_transfer_run(tmp_path / "falling", _falling)
    flat = write_transfer_run(tmp_path / "flat", _flat)
    assert all(value == 1 for _, value in _written(flat, BOUND_KEY))
    informative = [(e, v) for e, v in _written(falling, BOUND_KEY) if v < 1]
    assert informative and len(informative) < len(SHORT["measured"])
    caption = transfer_caption([load_run(falling), load_run(flat)])
    flat_part, falling_part = _run_sentence(caption, "flat"), _run_sentence(caption, "falling")
    assert "the bound was vacuous (= 1) at every one of the 5 tracked epoch(s)" in flat_part
    assert "vacuous" not in falling_part
    lowest_epoch, lowest = min(informative, key=lambda point: point[1])
    assert (
        f"the bound was informative (< 1) at {len(informative)} of 5 tracked epochs, lowest "
        f"{nice_number(lowest)} at epoch {lowest_epoch}"
    ) in falling_part


def test_the_change_of_the_error_is_judged_against_its_standard_errors(tmp_path):
    runs = [
        load_run(write_transfer_run(tmp_path / name, values))
        for name, values in (("falling", _falling), ("flat", _flat), ("rising", _rising))
    ]
    caption = transfer_caption(runs)
    falling, flat, rising = (_run_sentence(caption, run.name) for run in runs)
    # falling: 0.6 -> 0.6 exp(-2.1), standard errors 0.01: far beyond 2 sqrt(2) 0.01
    drop = 0.6 - 0.6 * math.exp(-0.3 * 7)
    assert f"it fell by {nice_number(drop)}, more than twice the combined" in falling
    assert "did not change measurably" not in falling
    # flat: 0.5 -> 0.486, standard errors 0.03: a change of 0.014 within 2 sqrt(2) 0.03
    assert "it did not change measurably" in flat and "fell" not in flat and "rose" not in flat
    assert f"2√(s₀² + s₁²) = {nice_number(2 * math.hypot(0.03, 0.03))}" in flat
    assert f"it rose by {nice_number(0.05 * 7)}" in rising


def test_an_error_without_its_standard_error_is_not_judged(tmp_path):
    def no_stderr(epoch: int) -> dict[str, object]:
        return _falling(epoch) | {STDERR_KEY: None}

    run = load_run(write_transfer_run(tmp_path / "run", no_stderr))
    caption = transfer_caption([run])
    sentence = _run_sentence(caption, "run")
    assert "its standard error was not computed, so no change is judged" in sentence
    assert "fell" not in sentence and "rose" not in sentence and "measurably" not in sentence
    figure = plot_transfer([run])
    assert len(figure.axes[1].collections) == 0  # no band where there is no standard error


def test_the_table_holds_the_last_tracked_epoch(tmp_path):
    falling = write_transfer_run(tmp_path / "falling", _falling)

    def last_not_computed(epoch: int) -> dict[str, object]:
        # the bound of the last epoch was not computed; the rest was
        return _flat(epoch) | ({BOUND_KEY: None} if epoch == 7 else {})

    flat = write_transfer_run(tmp_path / "flat", last_not_computed)
    rows_by_run = {row["run"]: row for row in transfer_rows([load_run(falling), load_run(flat)])}
    training = dict(_written_training_cdnv(falling))
    row = rows_by_run["falling"]
    assert row["epoch"] == 7  # the last epoch (7) is tracked
    assert row[schema.CDNV] == training[7]
    for key, value in _falling(7).items():
        assert row[key] == value
    assert rows_by_run["flat"][BOUND_KEY] is None
    assert list(row) == ["run", "epoch", schema.CDNV, *schema.TRANSFER_KEYS]


def test_a_bound_not_computed_with_a_reason_shows_the_reason(tmp_path):
    def no_bound(epoch: int) -> dict[str, object]:
        return _falling(epoch) | {BOUND_KEY: None}

    directory = write_transfer_run(tmp_path / "run", no_bound)
    rows = runformat.read_jsonl(directory / runformat.EPOCHS)
    for row in rows:
        if row["epoch"] in SHORT["measured"]:
            row[schema.NOT_COMPUTED] = {BOUND_KEY: "no CDNV"}
    (directory / runformat.EPOCHS).write_text("".join(schema.dumps(r) + "\n" for r in rows))
    run = load_run(directory)
    (row,) = transfer_rows([run])
    assert isinstance(row[BOUND_KEY], NotComputed) and row[BOUND_KEY].reason == "no CDNV"
    caption = transfer_caption([run])
    assert "the bound was not computed" in caption
    assert "Not computed at epoch(s) 0, 1, 3, 6, 7: no CDNV." in caption
    assert "vacuous" not in caption and "informative" not in caption


def test_the_figure_draws_two_panels_and_skips_untracked_epochs(tmp_path):
    plain = load_run(write_transfer_run(tmp_path / "plain", None))
    runs = [
        load_run(write_transfer_run(tmp_path / "falling", _falling)),
        plain,
        load_run(write_transfer_run(tmp_path / "flat", _flat)),
    ]
    figure = plot_transfer(runs, epoch_axis="linear")
    cdnv_panel, error_panel = figure.axes
    # per run with data: training (solid) and new (dashed) CDNV; error (solid) and bound (dotted)
    assert [line.get_linestyle() for line in cdnv_panel.lines] == ["-", "--"] * 2
    assert [line.get_linestyle() for line in error_panel.lines] == ["-", ":"] * 2
    assert len(error_panel.collections) == 2  # one ±1 s.e. band per run
    assert cdnv_panel.get_yscale() == "log"
    measured = [float(e) for e in SHORT["measured"]]
    for panel in (cdnv_panel, error_panel):
        for line in panel.lines:
            assert list(line.get_xdata()) == measured  # untracked epochs 2, 4, 5 left out
    new_line = cdnv_panel.lines[1]
    assert list(new_line.get_ydata()) == [v for _, v in _written(runs[0].path, CDNV_KEY)]
    # the colours are the runs' indices among all runs: the third run gets the third colour
    from neuralcollapse.viz.style import run_colour

    assert cdnv_panel.lines[2].get_color() == run_colour(2)
    assert "Epochs on a linear axis." in transfer_caption(runs, epoch_axis="linear")


def test_the_report_writes_the_figure_and_the_table(tmp_path):
    transfer = write_transfer_run(tmp_path / "transfer", _falling)
    page = build_run_report([transfer], tmp_path / "out")
    html = page.read_text()
    assert TRANSFER_TITLE in html
    assert (tmp_path / "out" / "figures" / "transfer.png").stat().st_size > 1000
    with (tmp_path / "out" / "tables" / "transfer.csv").open() as handle:
        (row,) = list(csv.DictReader(handle))
    assert list(row) == ["run", "epoch", schema.CDNV, *schema.TRANSFER_KEYS]
    assert float(row[ERROR_KEY]) == pytest.approx(_falling(7)[ERROR_KEY], rel=1e-12)
    for key in schema.TRANSFER_KEYS:  # headers are the schema's labels
        assert schema.RUN_COLUMNS[key].label in html


VERDICTS = ("it fell by", "it rose by", "it did not change measurably")


@pytest.mark.parametrize(
    ("change", "verdict"),
    [(-0.035, VERDICTS[0]), (-0.02, VERDICTS[2]), (0.02, VERDICTS[2]), (0.035, VERDICTS[1])],
)
def test_the_verdict_turns_at_twice_the_combined_standard_error(tmp_path, change, verdict):
    # standard errors 0.01 and 0.01: the threshold is 2 sqrt(2) 0.01 = 0.0283
    def values(epoch: int) -> dict[str, object]:
        error = 0.4 + change * epoch / 7
        return {CDNV_KEY: 0.3, ERROR_KEY: error, STDERR_KEY: 0.01, BOUND_KEY: 1.0}

    run = load_run(write_transfer_run(tmp_path / "run", values))
    sentence = _run_sentence(transfer_caption([run]), "run")
    assert [word for word in VERDICTS if word in sentence] == [verdict]
