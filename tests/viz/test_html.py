import base64
import csv
import re

import pytest
from matplotlib.figure import Figure

from neuralcollapse.viz.html import HtmlReport


def _small_figure(value: float) -> Figure:
    figure = Figure(figsize=(2, 2))
    axes = figure.subplots()
    axes.plot([0, 1], [0, value])
    return figure


def _report() -> HtmlReport:
    report = HtmlReport("Title <T>", subtitle="sub")
    first = report.section("First", "intro & more")
    first.add_figure("fig_a", _small_figure(1.0), "Look at: the line <rising>.")
    second = report.section("Second")
    second.add_figure("fig_b", _small_figure(2.0), "Another.")
    second.add_table("numbers", [{"name": "x", "value": 1 / 3}, {"name": "y"}], "Values.")
    return report


def test_figures_are_embedded_as_the_same_png_written_beside_the_page(tmp_path):
    path = _report().write(tmp_path)
    page = path.read_text()
    embedded = re.findall(r'src="data:image/png;base64,([A-Za-z0-9+/=]+)"', page)
    assert len(embedded) == 2
    for name, data in zip(("fig_a", "fig_b"), embedded, strict=True):
        assert base64.b64decode(data) == (tmp_path / "figures" / f"{name}.png").read_bytes()


def test_page_references_no_external_resource(tmp_path):
    page = _report().write(tmp_path).read_text()
    assert not re.search(r'(src|href)="(?!data:|#)', page)
    assert "<script" not in page and "<link" not in page


def test_tables_are_written_as_csv_at_full_precision(tmp_path):
    _report().write(tmp_path)
    with (tmp_path / "tables" / "numbers.csv").open() as handle:
        rows = list(csv.DictReader(handle))
    assert rows == [{"name": "x", "value": repr(1 / 3)}, {"name": "y", "value": ""}]


def test_text_is_escaped_and_sections_are_numbered(tmp_path):
    page = _report().to_html()
    assert "Title &lt;T&gt;" in page and "<rising>" not in page
    assert "intro &amp; more" in page
    assert "<h2>1. First</h2>" in page and "<h2>2. Second</h2>" in page
    assert "<b>Look at:</b>" in page


def test_repeated_figure_name_is_refused():
    report = HtmlReport("t")
    section = report.section("s")
    section.add_figure("same", _small_figure(1.0), "c")
    section.add_figure("same", _small_figure(2.0), "c")
    with pytest.raises(ValueError, match=r"repeated: \['same'\]"):
        report.to_html()


def test_name_that_is_not_a_file_stem_is_refused():
    section = HtmlReport("t").section("s")
    with pytest.raises(ValueError, match="file-name stem"):
        section.add_figure("../escape", _small_figure(1.0), "c")


def test_bytes_that_are_not_png_are_refused():
    section = HtmlReport("t").section("s")
    with pytest.raises(ValueError, match="PNG bytes"):
        section.add_figure("x", b"GIF89a", "c")


def test_long_tables_are_folded_and_short_ones_are_not(tmp_path):
    from neuralcollapse.viz.html import FOLD_ROWS, HtmlReport

    report = HtmlReport("Folding")
    section = report.section("Tables")
    section.add_table("short", [{"i": i} for i in range(FOLD_ROWS)], "Short.")
    section.add_table("long", [{"i": i} for i in range(FOLD_ROWS + 1)], "Long.")
    page = report.write(tmp_path).read_text()
    short = page.split('id="table-short"')[1].split('id="table-long"')[0]
    long = page.split('id="table-long"')[1]
    assert "<details>" not in short and short.count("<tr>") == FOLD_ROWS + 1
    assert f"<details><summary>Show all {FOLD_ROWS + 1} rows (also in tables/long.csv)" in long
    assert long.count("<tr>") == FOLD_ROWS + 2  # every row is still in the page, folded
    with (tmp_path / "tables" / "long.csv").open() as handle:
        assert len(handle.readlines()) == FOLD_ROWS + 2


def test_duration_columns_show_minutes_and_seconds_and_the_csv_keeps_seconds(tmp_path):
    from neuralcollapse.viz.html import Column, format_duration

    assert format_duration(1150.4) == "19 min 10 s"
    assert format_duration(59.6) == "1 min 00 s"
    assert format_duration(42.3) == "42 s"
    assert format_duration(5.25) == "5.2 s"
    assert format_duration(7325) == "2 h 02 min"
    report = HtmlReport("t")
    rows = [{"stage": "total", "seconds": 1150.4}]
    report.section("Run time").add_table(
        "timings", rows, "Time.", columns=["stage", Column("seconds", "time", kind="duration")]
    )
    page = report.to_html()
    assert "19 min 10 s" in page and "e+03" not in page
    report.write(tmp_path)
    assert "1150.4" in (tmp_path / "tables" / "timings.csv").read_text()


def test_section_links_point_to_the_numbered_section_and_refuse_a_missing_one():
    from neuralcollapse.viz.html import SectionLink

    report = HtmlReport("t")
    report.section("Body").add_figure("f", _small_figure(1.0), "A figure.")
    top = report.section("Top", first=True)
    top.add_table(
        "links",
        [{"where": SectionLink("Body")}, {"where": SectionLink("Body", short=True)}],
        "Links.",
    )
    page = report.to_html()
    assert re.search(r'<section id="section-2">\s*<h2>2\. Body</h2>', page)
    assert '<a href="#section-2" title="Body">2. Body</a>' in page
    assert '<a href="#section-2" title="Body">§2</a>' in page
    top.add_table("broken", [{"where": SectionLink("Nowhere")}], "Broken.")
    with pytest.raises(ValueError, match="Nowhere"):
        report.to_html()
