"""A self-contained HTML report: sections of captioned figures and tables.

The page needs nothing but itself: figures are embedded as base64 PNG ``<img>`` data URIs and
the style sheet is inline, so report.html opens offline in any browser and can be mailed as one
file. Beside it, :meth:`HtmlReport.write` saves every figure as ``figures/NAME.png`` and every
table as ``tables/NAME.csv`` for papers and spreadsheets.
"""

from __future__ import annotations

import base64
import csv
import html
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
.subtitle { color: #555; margin-top: 0; }
.intro { max-width: 60em; }
figure { margin: 1.2em 0; } figure img { max-width: 100%; height: auto;
border: 1px solid #eee; }
figcaption { max-width: 60em; font-size: 0.95em; color: #333; }
figcaption b { color: #000; }
.table { overflow-x: auto; }
table { border-collapse: collapse; font-size: 0.9em; margin: 0.6em 0; }
th, td { border: 1px solid #ccc; padding: 0.25em 0.6em; text-align: right; }
th { background: #f3f3f3; } td:first-child, th:first-child { text-align: left; }
.table-caption { max-width: 60em; font-size: 0.95em; }
nav ol { columns: 2; max-width: 50em; }
footer { margin-top: 3em; color: #777; font-size: 0.85em; }
"""


def _check_name(name: str) -> None:
    if not _NAME_PATTERN.match(name):
        raise ValueError(
            f"figure/table name {name!r} must be a file-name stem of letters, digits, '_', '-', "
            "'.' (it becomes figures/NAME.png or tables/NAME.csv); rename it"
        )


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
        columns: Sequence[str] | None = None,
    ) -> ReportTable:
        """Add a table; ``columns`` defaults to the keys of the rows in first-seen order."""
        if columns is None:
            columns = list(dict.fromkeys(key for row in rows for key in row))
        item = ReportTable(
            name=name,
            columns=tuple(columns),
            rows=tuple(dict(row) for row in rows),
            caption=caption,
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

    def section(self, title: str, intro: str = "") -> ReportSection:
        """Open a new section at the end of the report and return it."""
        section = ReportSection(title=title, intro=intro)
        self.sections.append(section)
        return section

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
                    parts.append(_table_html(item))
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
    return (
        f'<figure id="figure-{html.escape(item.name, quote=True)}">'
        f'<img src="data:image/png;base64,{encoded}" alt="{alt}">'
        f"<figcaption>{_caption_html(item.caption)}</figcaption></figure>"
    )


def _table_html(item: ReportTable) -> str:
    escape = html.escape
    head = "".join(f"<th>{escape(column)}</th>" for column in item.columns)
    body = []
    for row in item.rows:
        cells = "".join(f"<td>{escape(nice_number(row.get(c)))}</td>" for c in item.columns)
        body.append(f"<tr>{cells}</tr>")
    return (
        f'<div class="table" id="table-{escape(item.name, quote=True)}">'
        f'<p class="table-caption">{_caption_html(item.caption)}</p>'
        f"<table><thead><tr>{head}</tr></thead><tbody>{''.join(body)}</tbody></table></div>"
    )


def write_csv(
    path: str | Path, columns: Sequence[str], rows: Sequence[Mapping[str, object]]
) -> None:
    """Write rows as CSV with a header; missing values are empty, numbers at full precision."""
    with Path(path).open("w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(columns), extrasaction="ignore")
        writer.writeheader()
        for row in rows:
            writer.writerow(
                {column: "" if row.get(column) is None else row.get(column) for column in columns}
            )
