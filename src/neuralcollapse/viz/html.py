"""A self-contained HTML report: sections of captioned figures and tables.

The page needs nothing but itself: figures are embedded as base64 PNG ``<img>`` data URIs and
the style sheet is inline, so report.html opens offline in any browser and can be mailed as one
file. Beside it, :meth:`HtmlReport.write` saves every figure as ``figures/NAME.png`` and every
table as ``tables/NAME.csv`` for papers and spreadsheets.

On a narrow screen every figure is scaled to the width of the page; clicking it (or pressing
space on it) shows it at full size in a box that scrolls sideways, and clicking again scales it
back. This is done with a hidden checkbox and CSS alone: the page has no script, and no copy of
the image (a second data URI would double the page's size).

Tables keep their data in the CSV (column keys, full precision, fractions as fractions); the
HTML shows them through :class:`Column` (a readable header, a tooltip, percentages) and writes
non-finite numbers as ``∞``/``−∞``/``NaN``, ``None`` as ``—`` and :class:`NotComputed` cells as
"not computed". A ``"duration"`` column shows seconds as minutes and seconds ("19 min 10 s",
:func:`format_duration`); a :class:`SectionLink` cell links to a section of the page by its
title (the report's opening summary links each verdict to the section that shows it).
"""

from __future__ import annotations

import base64
import csv
import html
import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path

from matplotlib.figure import Figure

from neuralcollapse.viz.style import figure_png, nice_number

_NAME_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")
_PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"

_STYLE = """
body { font-family: -apple-system, 'Segoe UI', Helvetica, Arial, sans-serif; margin: 0 auto;
       max-width: 1500px; padding: 1.5em 2em; color: #222; line-height: 1.45; }
h1 { margin-bottom: 0.2em; } h2 { border-bottom: 2px solid #ddd; padding-bottom: 0.2em;
margin-top: 2em; }
p, figcaption, li, h1, h2 { overflow-wrap: anywhere; }
.subtitle { color: #555; margin-top: 0; }
.intro { max-width: 60em; }
figure { margin: 1.2em 0; }
.scroll-x { display: block; max-width: 100%; overflow-x: auto; }
figure img { display: block; box-sizing: border-box; max-width: 100%; height: auto;
             border: 1px solid #eee;
             cursor: zoom-in; }
.zoom { position: absolute; opacity: 0; width: 1px; height: 1px; margin: 0; }
.zoom:checked + label img { max-width: none; cursor: zoom-out; }
.zoom:focus-visible + label img { outline: 2px solid #0072B2; }
figcaption { max-width: 60em; font-size: 0.95em; color: #333; }
figcaption b { color: #000; }
.hint { color: #777; font-size: 0.85em; }
table { border-collapse: collapse; font-size: 0.9em; margin: 0.6em 0; }
details > summary { cursor: pointer; color: #1a5fb4; margin: 0.3em 0; }
th, td { border: 1px solid #ccc; padding: 0.25em 0.6em; text-align: right; }
th { background: #f3f3f3; } td:first-child, th:first-child { text-align: left; }
td.text, th.text { text-align: left; }
td.holds { background: #e3f4ea; } td.fails { background: #fbe3dc; }
td.unknown { background: #f3f3f3; } td.nc { color: #777; }
td.holds, td.fails, td.unknown { text-align: left; white-space: nowrap; }
.table-caption { max-width: 60em; font-size: 0.95em; }
nav ol { columns: 2; max-width: 50em; }
footer { margin-top: 3em; color: #777; font-size: 0.85em; }
@media (max-width: 700px) {
  body { padding: 0.8em 0.7em; } nav ol { columns: 1; padding-left: 1.4em; }
  table { font-size: 0.8em; } th, td { padding: 0.2em 0.35em; }
}
"""

#: verdict words of a "verdict" column and their cell classes (coloured in the style sheet)
VERDICT_CLASSES = {"holds": "holds", "does not hold": "fails", "unknown": "unknown"}


def _check_name(name: str) -> None:
    if not _NAME_PATTERN.match(name):
        raise ValueError(
            f"figure/table name {name!r} must be a file-name stem of letters, digits, '_', '-', "
            "'.' (it becomes figures/NAME.png or tables/NAME.csv); rename it"
        )


@dataclass(frozen=True)
class NotComputed:
    """A table cell whose value was not computed, and why (shown as "not computed").

    The CSV writes it as an empty cell, as it writes ``None``: both are missing values.
    """

    reason: str = ""
    #: what the cell shows (e.g. "not reached" for a terminal phase that never began)
    label: str = "not computed"

    def __str__(self) -> str:
        return self.label


#: the kinds of :class:`Column`
KINDS = ("number", "text", "verdict", "duration")


@dataclass(frozen=True)
class SectionLink:
    """A table cell that links to the section titled ``section`` of the same page.

    The page shows the section's number and title ("3. Depth profile"), or only "§3" with
    ``short`` (e.g. the rows after the first of a group of rows about one section), as a link
    to the section; the CSV writes the title. :meth:`HtmlReport.to_html` refuses a link to a
    title no section has.
    """

    section: str
    short: bool = False

    def __str__(self) -> str:
        return self.section


def format_duration(seconds: float) -> str:
    """Seconds as a person reads them: "42.3 s", "19 min 10 s", "2 h 05 min"."""
    if not isinstance(seconds, (int, float)) or isinstance(seconds, bool):
        raise TypeError(f"seconds must be a number; got {type(seconds).__name__}")
    if not math.isfinite(seconds) or seconds < 0:
        return nice_number(seconds)
    if round(seconds, 1) < 10:
        return f"{seconds:.1f} s"
    total = round(seconds)
    if total < 60:
        return f"{total} s"
    hours, rest = divmod(total, 3600)
    minutes, secs = divmod(rest, 60)
    if hours:
        return f"{hours} h {minutes:02d} min"
    return f"{minutes} min {secs:02d} s"


@dataclass(frozen=True)
class Column:
    """How a table column is shown in the page (the CSV keeps ``key`` and the raw value).

    key : the key of the rows (the CSV header).
    header : the header shown (default: ``key``); " (%)" is added when ``percent``.
    note : a tooltip on the header (what the column is).
    percent : the values are fractions, shown times 100.
    kind : "number" (right-aligned), "text" (left-aligned), "verdict" (holds / does not
        hold / unknown, coloured) or "duration" (seconds, shown as "19 min 10 s"; the CSV keeps
        the seconds).
    """

    key: str
    header: str = ""
    note: str = ""
    percent: bool = False
    kind: str = "number"

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            kinds = ", ".join(map(repr, KINDS))
            raise ValueError(f"kind must be one of {kinds}; got {self.kind!r}")

    @property
    def title(self) -> str:
        """The header as shown."""
        head = self.header or self.key
        return f"{head} (%)" if self.percent else head


@dataclass(frozen=True)
class ReportFigure:
    """A figure of the report: PNG bytes and the caption saying what to look at."""

    name: str
    png: bytes
    caption: str


@dataclass(frozen=True)
class ReportTable:
    """A table of the report: column names, rows (one mapping per row) and a caption."""

    name: str
    columns: tuple[str, ...]
    rows: tuple[Mapping[str, object], ...]
    caption: str
    #: how each column is shown in the page, in the order of ``columns``
    shown: tuple[Column, ...] = ()


@dataclass
class ReportSection:
    """A titled section: an introduction and a sequence of figures and tables."""

    title: str
    intro: str = ""
    items: list[ReportFigure | ReportTable] = field(default_factory=list)
    _names: set[str] = field(default_factory=set, repr=False)

    def add_figure(self, name: str, figure: Figure | bytes, caption: str) -> ReportFigure:
        """Add a figure (a matplotlib Figure, rendered now, or PNG bytes) with its caption."""
        png = figure_png(figure) if isinstance(figure, Figure) else bytes(figure)
        if not png.startswith(_PNG_SIGNATURE):
            raise ValueError(f"figure {name!r}: expected a matplotlib Figure or PNG bytes")
        item = ReportFigure(name=name, png=png, caption=caption)
        self._add(item)
        return item

    def add_table(
        self,
        name: str,
        rows: Sequence[Mapping[str, object]],
        caption: str,
        *,
        columns: Sequence[str | Column] | None = None,
        shown: Sequence[str | Column] | None = None,
    ) -> ReportTable:
        """Add a table.

        ``columns`` (keys or :class:`Column`) are the CSV's columns, by default the keys of the
        rows in first-seen order. ``shown`` are the columns the page shows (default: the same);
        e.g. the page can leave out columns that hold one value in every row while the CSV
        keeps them.
        """
        if columns is None:
            columns = list(dict.fromkeys(key for row in rows for key in row))
        specs = tuple(c if isinstance(c, Column) else Column(c) for c in columns)
        by_key = {spec.key: spec for spec in specs}
        if shown is None:
            shown_specs = specs
        else:
            shown_specs = tuple(
                c if isinstance(c, Column) else by_key.get(c, Column(c)) for c in shown
            )
        item = ReportTable(
            name=name,
            columns=tuple(spec.key for spec in specs),
            rows=tuple(dict(row) for row in rows),
            caption=caption,
            shown=shown_specs,
        )
        self._add(item)
        return item

    def _add(self, item: ReportFigure | ReportTable) -> None:
        _check_name(item.name)
        self.items.append(item)


class HtmlReport:
    """Builder of a self-contained HTML report.

    Examples
    --------
    >>> report = HtmlReport("My runs")
    >>> section = report.section("Training", "What happened.")
    >>> rows = [{"run": "a", "nc1": 0.1}]
    >>> section.add_table("summary", rows, "One row per run.")  # doctest: +SKIP
    >>> report.write("out")  # doctest: +SKIP
    """

    def __init__(self, title: str, subtitle: str = "") -> None:
        self.title = title
        self.subtitle = subtitle
        self.sections: list[ReportSection] = []

    def section(self, title: str, intro: str = "", *, first: bool = False) -> ReportSection:
        """Open a new section at the end of the report (at the top with ``first``) and return
        it."""
        section = ReportSection(title=title, intro=intro)
        if first:
            self.sections.insert(0, section)
        else:
            self.sections.append(section)
        return section

    def anchors(self) -> dict[str, int]:
        """``{section title: its number}`` (its id on the page is ``section-N``)."""
        anchors: dict[str, int] = {}
        for number, section in enumerate(self.sections, start=1):
            anchors.setdefault(section.title, number)
        return anchors

    @property
    def figures(self) -> list[ReportFigure]:
        return [item for s in self.sections for item in s.items if isinstance(item, ReportFigure)]

    @property
    def tables(self) -> list[ReportTable]:
        return [item for s in self.sections for item in s.items if isinstance(item, ReportTable)]

    def _check_unique_names(self) -> None:
        for kind, items in (("figure", self.figures), ("table", self.tables)):
            names = [item.name for item in items]
            duplicates = sorted({name for name in names if names.count(name) > 1})
            if duplicates:
                raise ValueError(
                    f"{kind} names must be unique (each becomes a file); repeated: {duplicates}"
                )

    def to_html(self) -> str:
        """The whole page as one string."""
        self._check_unique_names()
        anchors = self.anchors()
        escape = html.escape
        parts = [
            "<!DOCTYPE html>",
            '<html lang="en"><head><meta charset="utf-8">',
            '<meta name="viewport" content="width=device-width, initial-scale=1">',
            f"<title>{escape(self.title)}</title><style>{_STYLE}</style></head><body>",
            f"<h1>{escape(self.title)}</h1>",
        ]
        if self.subtitle:
            parts.append(f'<p class="subtitle">{escape(self.subtitle)}</p>')
        if len(self.sections) > 1:
            parts.append("<nav><ol>")
            for number, section in enumerate(self.sections, start=1):
                parts.append(f'<li><a href="#section-{number}">{escape(section.title)}</a></li>')
            parts.append("</ol></nav>")
        for number, section in enumerate(self.sections, start=1):
            parts.append(f'<section id="section-{number}">')
            parts.append(f"<h2>{number}. {escape(section.title)}</h2>")
            if section.intro:
                parts.append(f'<p class="intro">{escape(section.intro)}</p>')
            for item in section.items:
                if isinstance(item, ReportFigure):
                    parts.append(_figure_html(item))
                else:
                    parts.append(_table_html(item, anchors))
            parts.append("</section>")
        stamp = datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC")  # noqa: UP017
        parts.append(
            f"<footer>Generated by neuralcollapse on {stamp}. Figures are also saved as "
            "figures/*.png and tables as tables/*.csv next to this file.</footer>"
        )
        parts.append("</body></html>")
        return "\n".join(parts)

    def write(self, out_dir: str | Path) -> Path:
        """Write ``report.html``, ``figures/NAME.png`` and ``tables/NAME.csv`` under ``out_dir``.

        Returns
        -------
        Path of report.html.
        """
        out = Path(out_dir)
        page = self.to_html()
        (out / "figures").mkdir(parents=True, exist_ok=True)
        (out / "tables").mkdir(parents=True, exist_ok=True)
        for item in self.figures:
            (out / "figures" / f"{item.name}.png").write_bytes(item.png)
        for item in self.tables:
            write_csv(out / "tables" / f"{item.name}.csv", item.columns, item.rows)
        report_path = out / "report.html"
        report_path.write_text(page, encoding="utf-8")
        return report_path


def _caption_html(text: str) -> str:
    """Escape a caption, keeping a leading 'Look at: ...' style phrase in bold up to the colon."""
    escaped = html.escape(text)
    head, separator, tail = escaped.partition(": ")
    if separator and len(head) <= 40:
        return f"<b>{head}:</b> {tail}"
    return escaped


def _figure_html(item: ReportFigure) -> str:
    encoded = base64.b64encode(item.png).decode("ascii")
    alt = html.escape(item.caption.partition(". ")[0], quote=True)
    name = html.escape(item.name, quote=True)
    # the checkbox before the label toggles the image between page width and full size
    # (CSS ".zoom:checked + label img"); the label's box scrolls sideways when enlarged
    return (
        f'<figure id="figure-{name}">'
        f'<input type="checkbox" class="zoom" id="zoom-{name}" '
        f'aria-label="show this figure at full size">'
        f'<label for="zoom-{name}" class="scroll-x" title="click to enlarge or shrink">'
        f'<img src="data:image/png;base64,{encoded}" alt="{alt}"></label>'
        f"<figcaption>{_caption_html(item.caption)} "
        f'<span class="hint">(Click or tap the figure for its full size.)</span>'
        f"</figcaption></figure>"
    )


def cell_text(value: object, column: Column | None = None) -> str:
    """A value as a table cell shows it (before HTML escaping).

    None is "—" (missing), :class:`NotComputed` "not computed", booleans "yes"/"no",
    non-finite floats "∞", "−∞", "NaN"; fractions of a ``percent`` column times 100.
    """
    if value is None:
        return "—"
    if isinstance(value, (NotComputed, SectionLink)):
        return str(value)
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, (int, float)) and column is not None and column.percent:
        value = 100 * value
    if isinstance(value, (int, float)) and column is not None and column.kind == "duration":
        return format_duration(value)
    if isinstance(value, float) and not math.isfinite(value):
        return "NaN" if math.isnan(value) else ("∞" if value > 0 else "−∞")
    return nice_number(value)  # type: ignore[arg-type]


def _cell_html(value: object, column: Column, anchors: Mapping[str, int] | None = None) -> str:
    text = html.escape(cell_text(value, column))
    if isinstance(value, SectionLink):
        if anchors is None or value.section not in anchors:
            raise ValueError(
                f"a table links to the section {value.section!r}, which the page lacks"
            )
        number = anchors[value.section]
        shown = f"§{number}" if value.short else f"{number}. {text}"
        text = f'<a href="#section-{number}" title="{text}">{shown}</a>'

    classes = []
    title = ""
    if isinstance(value, NotComputed):
        classes.append("nc")
        if value.reason:
            title = f' title="{html.escape(value.reason, quote=True)}"'
    if column.kind == "text" or isinstance(value, SectionLink):
        classes.append("text")
    elif column.kind == "verdict":
        classes.append(VERDICT_CLASSES.get(str(value), "unknown"))
    attribute = f' class="{" ".join(classes)}"' if classes else ""
    return f"<td{attribute}{title}>{text}</td>"


def _header_html(column: Column) -> str:
    """A header cell: the column's title, its note as a tooltip, aligned like its cells."""
    escape = html.escape
    attributes = ""
    if column.note:
        attributes += f' title="{escape(column.note, quote=True)}"'
    if column.kind not in ("number", "duration"):
        attributes += ' class="text"'
    return f"<th{attributes}>{escape(column.title)}</th>"


#: tables with more rows than this are folded into a <details> element on the page
FOLD_ROWS = 30


def _table_html(item: ReportTable, anchors: Mapping[str, int] | None = None) -> str:
    escape = html.escape
    shown = item.shown or tuple(Column(key) for key in item.columns)
    head = "".join(_header_html(column) for column in shown)
    body = []
    for row in item.rows:
        cells = "".join(_cell_html(row.get(c.key), c, anchors) for c in shown)
        body.append(f"<tr>{cells}</tr>")
    # the caption stays on the page's width; only the table scrolls sideways
    table = (
        f'<div class="scroll-x"><table><thead><tr>{head}</tr></thead>'
        f"<tbody>{''.join(body)}</tbody></table></div>"
    )
    if len(item.rows) > FOLD_ROWS:
        # a long table would push the next figure screens away: folded, one tap opens it
        table = (
            f"<details><summary>Show all {len(item.rows)} rows (also in "
            f"tables/{escape(item.name)}.csv)</summary>{table}</details>"
        )
    return (
        f'<div class="table" id="table-{escape(item.name, quote=True)}">'
        f'<p class="table-caption">{_caption_html(item.caption)}</p>{table}</div>'
    )


def write_csv(
    path: str | Path, columns: Sequence[str], rows: Sequence[Mapping[str, object]]
) -> None:
    """Write rows as CSV with a header; missing values are empty, numbers at full precision."""
    with Path(path).open("w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(columns), extrasaction="ignore")
        writer.writeheader()
        for row in rows:
            writer.writerow({column: _csv_value(row.get(column)) for column in columns})


def _csv_value(value: object) -> object:
    """A cell of the CSV: missing (None, not computed) is empty, anything else as is."""
    if isinstance(value, SectionLink):
        return str(value)
    return "" if value is None or isinstance(value, NotComputed) else value
