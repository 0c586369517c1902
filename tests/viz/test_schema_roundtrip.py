"""Every metric of the schema is written by the fixtures, read back, and drawn or tabled."""

from __future__ import annotations

import csv
import html
import json
import math
import re

import numpy as np
import pytest

from neuralcollapse import schema
from neuralcollapse.viz.report import (
    SUMMARY_METRICS,
    build_run_report,
    final_metric_rows,
    metric_column,
)
from neuralcollapse.viz.runs import load_run
from neuralcollapse.viz.training_figures import PANEL_SPECS, plot_training_panels

from .fake_runs import METRIC_KEYS, write_fake_run


def _strict_rows(path):
    """The rows of a JSONL file, parsed by a parser that rejects NaN/Infinity tokens."""

    def refuse(token):
        raise ValueError(f"invalid JSON token {token}")

    return [json.loads(line, parse_constant=refuse) for line in path.read_text().splitlines()]


@pytest.fixture(scope="module")
def odd_report(tmp_path_factory) -> dict:
    """A report of a run with an infinite NC1 and UNC3 (CV) at the last epoch and a layer
    whose metrics were not computed there."""
    root = tmp_path_factory.mktemp("odd")
    path = write_fake_run(
        root / "odd",
        not_computed={(11, "layer1"): "class means coincide"},
        infinite=("nc1", "unc3_cv"),
    )
    page = build_run_report([path], root / "out")
    return {"run": path, "out": root / "out", "page": page.read_text()}


def test_fixture_writes_every_schema_metric_in_strict_json(fake_run):
    rows = _strict_rows(fake_run / "metrics.jsonl")
    assert METRIC_KEYS == tuple(schema.METRICS)
    for row in rows:
        assert set(schema.METRICS) <= set(row)
    post = [row for row in rows if row["layer"] == "penultimate_post"]
    # the classifier's layer has every metric computed
    assert all(row[key] is not None for row in post for key in schema.METRICS)


def test_every_metric_is_read_back_with_the_values_written(fake_run):
    written = [
        row
        for row in _strict_rows(fake_run / "metrics.jsonl")
        if row["layer"] == "penultimate_post" and row["split"] == "train"
    ]
    run = load_run(fake_run)
    for key in schema.METRICS:
        epochs, values = run.series(key)
        assert list(epochs) == [row["epoch"] for row in written]
        np.testing.assert_allclose(values, [row[key] for row in written], err_msg=key)


def test_every_metric_is_tabled_under_its_schema_label(built_report):
    with (built_report["out"] / "tables" / "final_metrics.csv").open() as handle:
        header = next(csv.reader(handle))
    assert set(schema.METRICS) <= set(header)
    page = built_report["page"].read_text()
    table = page[page.index('id="table-final_metrics"') :]
    table = table[: table.index("</table>")]
    shown_headers = [html.unescape(h) for h in re.findall(r"<th(?: [^>]*)?>(.*?)</th>", table)]
    caption = html.unescape(table[: table.index("<table>")])
    for key in schema.METRICS:
        title = metric_column(key).title
        # a column, or (one value in every row) named with that value in the caption
        assert title in shown_headers or f"; {title} = " in caption or f": {title} = " in caption


def test_every_key_the_figures_and_tables_name_is_a_schema_metric():
    drawn = {key for _, columns in PANEL_SPECS for key, _, _ in columns}
    drawn |= {"nc1", "ncc_mismatch", "of_gap_means", "global_mean_ratio", "etf_gap_means"}
    assert drawn <= set(schema.METRICS)
    assert set(SUMMARY_METRICS) <= set(schema.METRICS)


def test_headers_carry_labels_and_units_from_the_schema():
    assert metric_column("nc1").title == "NC1"
    assert (
        metric_column("ncc_mismatch").title == "NC4 (%)" and metric_column("ncc_mismatch").percent
    )
    assert metric_column("accuracy").title == "accuracy (%)"
    assert metric_column("within_class_variance").title == "Tr Σ_W (feature units²)"
    assert "lower is better" in metric_column("nc1").note


def test_an_infinite_value_is_skipped_by_the_figures(odd_report):
    run = load_run(odd_report["run"])
    raw = _strict_rows(odd_report["run"] / "metrics.jsonl")
    assert any(row["nc1"] == "Infinity" for row in raw)
    epochs, nc1 = run.series("nc1")
    assert math.isinf(nc1[-1])
    figure = plot_training_panels([run])
    line = next(line for line in figure.axes[1].get_lines() if len(line.get_xdata()) > 1)
    assert np.all(np.isfinite(line.get_ydata()))
    assert list(line.get_xdata()) == list(epochs[:-1])


def test_tables_show_infinity_and_not_computed(odd_report):
    page = odd_report["page"]
    table = page[page.index('id="table-final_metrics"') :]
    assert "<td>∞</td>" in table
    assert re.search(r'<td class="nc" title="class means coincide">not computed</td>', table)
    caption = html.unescape(table[: table.index("<table>")])
    infinite = caption.split("Infinite (∞): ")[1].split(".")[0].split("; ")
    assert "NC1 (odd, train, penultimate_post)" in infinite
    assert "UNC3 (CV) (odd, test, penultimate_post)" in infinite
    assert "odd, train, layer1: class means coincide" in html.unescape(table)
    # the CSV keeps the value (inf) and leaves the not-computed cells empty
    with (odd_report["out"] / "tables" / "final_metrics.csv").open() as handle:
        rows = {(row["split"], row["layer"]): row for row in csv.DictReader(handle)}
    assert float(rows[("train", "penultimate_post")]["unc3_cv"]) == math.inf
    assert rows[("train", "layer1")]["nc1"] == ""
    assert rows[("train", "layer1")][schema.NOT_COMPUTED] == "class means coincide"


def test_summary_and_captions_cope_with_infinite_and_missing_values(odd_report):
    page = html.unescape(odd_report["page"])
    # NC1's last value is infinite: the summary reads the last finite one (epoch 8)
    assert re.search(r"→ [0-9.e-]+ \(epoch 8\): ÷", page)
    assert "NC1 falls in odd (÷" in page


def test_final_rows_decode_the_strings_of_the_run_files(odd_report):
    rows = final_metric_rows([load_run(odd_report["run"])])
    post = next(r for r in rows if r["layer"] == "penultimate_post" and r["split"] == "train")
    assert post["unc3_cv"] == math.inf and post["nc1"] == math.inf


def test_constant_columns_are_left_out_of_the_page_and_named_in_the_caption(built_report):
    page = built_report["page"].read_text()
    table = page[page.index('id="table-final_metrics"') :]
    headers = [html.unescape(h) for h in re.findall(r"<th(?: [^>]*)?>(.*?)</th>", table)]
    table = html.unescape(table)
    assert "learning rate" not in headers and "test error (%)" not in headers
    assert "Same in every row (column left out): " in table
    assert "learning rate = 0.1" in table and "test error (%) = 20" in table
    # the CSV keeps them
    with (built_report["out"] / "tables" / "final_metrics.csv").open() as handle:
        assert {"lr", "test_error"} <= set(next(csv.reader(handle)))
    # no column of the page's table holds one value in every row
    body = table[: table.index("</table>")]
    cells = [re.findall(r"<td[^>]*>(.*?)</td>", r) for r in re.findall(r"<tr>(.*?)</tr>", body)]
    cells = [row for row in cells if row]
    assert all(len({row[i] for row in cells}) > 1 for i in range(len(cells[0])))


def test_fractions_are_percentages_in_every_page_table(built_report):
    page = built_report["page"].read_text()
    headers = [html.unescape(h) for h in re.findall(r"<th(?: [^>]*)?>(.*?)</th>", page)]
    # no fraction is shown as a fraction: its header is the percentage's
    for bare in ("train_error", "train error", "NC4", "ncc_mismatch", "accuracy", "NCC accuracy"):
        assert bare not in headers
    assert {"NC4 (%)", "accuracy (%)", "NCC accuracy (%)"} <= set(headers)
    with (built_report["out"] / "tables" / "summary.csv").open() as handle:
        row = next(csv.DictReader(handle))
    shown = re.findall(r"<td[^>]*>(.*?)</td>", page[page.index('id="table-summary"') :])
    # the CSV keeps the fraction; the page shows it times 100
    assert f"{100 * float(row['ncc_mismatch']):.3g}" in shown


def test_a_tpt_column_empty_in_every_row_reads_not_reached(tmp_path):
    from neuralcollapse.viz.html import HtmlReport
    from neuralcollapse.viz.report import _add_table, summary_rows
    from neuralcollapse.viz.runs import load_runs

    runs = load_runs(
        [
            write_fake_run(tmp_path / "a", final_train_error=0.1),
            write_fake_run(tmp_path / "b", final_train_error=0.2),
        ]
    )
    section = HtmlReport("t").section("s")
    rows = summary_rows(runs)
    _add_table(section, "summary", rows, "Rows.", list(rows[0]))
    caption = section.items[0].caption
    assert "TPT epoch: zero training error not reached in any row." in caption
    assert "Not computed in any row: TPT epoch" not in caption
    assert "tpt_epoch" not in [column.key for column in section.items[0].shown]
