"""Report rows as files. Each format streams: it takes the rows as an iterator and yields
bytes, so an export's memory stays flat in the row count. An export holds exactly the
columns and filtered rows of the view it was asked from.

CSV and XLSX hold every row. CSV is written a thousand rows at a time; XLSX goes through
openpyxl's write-only mode (rows go to a temporary file as they are appended) and the
finished workbook is sent from a temporary file in 64 KiB chunks. A PDF is laid out as a
whole, so it holds the first `PDF_MAX_ROWS` rows and says how many there were in all.

Every cell that a spreadsheet would read as a formula is neutralised by `safe_cell`, in
every format, so that a file exported from one place reads the same in another.
"""

from __future__ import annotations

import base64
import csv
import functools
import html
import io
import logging
import math
import re
import tempfile
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import suppress
from dataclasses import dataclass
from datetime import date, datetime
from decimal import Decimal
from itertools import islice
from pathlib import Path
from typing import IO, Any

from openpyxl import Workbook
from openpyxl.cell import WriteOnlyCell
from openpyxl.cell.cell import Cell
from openpyxl.styles import Alignment, Font, PatternFill
from openpyxl.utils import get_column_letter
from openpyxl.utils.datetime import to_excel

from common.reports.base import Column

log = logging.getLogger(__name__)

# Cells starting with these are formulas to a spreadsheet: CSV injection (OWASP).
_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")
CHUNK_BYTES = 64 * 1024

# A PDF is laid out whole (xhtml2pdf builds every cell's flowables before it writes a page),
# so its time and memory grow with the rows. Measured with bench/export.py (7 columns, a
# shared 2-core machine): 2,000 rows take 14-19 s of CPU and a process doing only that
# export peaks at ~230 MB RSS (~60 MB of it the imports); 5,000 rows took ~60 s and ~375 MB,
# too much for a web request. 2,000 rows is ~58 landscape pages, more than anyone reads on
# paper, and CSV and XLSX hold every row. The rows past the cap are counted, not kept.
PDF_MAX_ROWS = 2_000
# A PDF cell's text is cut at this length: a row taller than a page cannot be laid out.
PDF_MAX_CELL_CHARS = 400


@dataclass(frozen=True)
class ExportDocument:
    """What every format prints besides the rows."""

    title: str
    columns: Sequence[Column]
    filters: Sequence[tuple[str, str]]  # applied filters as (label, value), in order
    chart: dict[str, Any] | None  # the view's chart (see ReportData), or None
    generated_at: datetime  # aware, in the viewer's timezone


@dataclass(frozen=True)
class ExportFormat:
    name: str
    media_type: str
    extension: str
    write: Callable[[ExportDocument, Iterable[dict[str, Any]]], Iterator[bytes]]


def safe_cell(value: object) -> object:
    if isinstance(value, str) and value.startswith(_FORMULA_START):
        return "'" + value
    return value


def _chunks(file: IO[bytes]) -> Iterator[bytes]:
    file.seek(0)
    while chunk := file.read(CHUNK_BYTES):
        yield chunk


# -- CSV ------------------------------------------------------------------------------------
# Plain UTF-8, no byte-order mark. The CSV is the machine-readable export: the CLI writes it
# to stdout for pipes, scripts and `csv`/pandas readers, where a BOM glues itself to the
# first header ("\ufeffCourse") and to every concatenated file. Excel users have the XLSX
# export, which carries types and needs no encoding guess.
def write_csv(doc: ExportDocument, rows: Iterable[dict[str, Any]]) -> Iterator[bytes]:
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\r\n")

    def flush() -> bytes:
        data = buffer.getvalue().encode("utf-8")
        buffer.seek(0)
        buffer.truncate()
        return data

    writer.writerow([safe_cell(c.label) for c in doc.columns])
    for n, row in enumerate(rows, 1):
        writer.writerow([safe_cell(_text(row.get(c.key))) for c in doc.columns])
        if n % 1000 == 0:
            yield flush()
    yield flush()


def _text(value: Any) -> Any:
    if isinstance(value, datetime):
        return value.isoformat(sep=" ", timespec="minutes")
    return value


# -- XLSX -----------------------------------------------------------------------------------
# Each value is written as what it is, so sorting, sums and filters work in the sheet:
#   percent  - the number shown on screen (0-100) with the format 0.0" %", so the cell shows
#              "66.7 %" and holds 66.7, the same figure as the page, the CSV and the API;
#   duration - an Excel time (seconds / 86400) with the format [h]:mm:ss, so it shows
#              "12:34:56", sums as time and can pass 24 hours;
#   date     - a date; datetime - the viewer's local time without the zone (Excel has none).
# The header is row 1, bold on a fill, frozen and with an autofilter; title, filters and
# generation time are on a second sheet, "About".
XLSX_SHEET = "Report"
_NUMBER_FORMATS = {
    "percent": '0.0" %"',
    "duration": "[h]:mm:ss",
    "date": "yyyy-mm-dd",
    "datetime": "yyyy-mm-dd hh:mm",
}
_WIDTHS = {"text": 28, "int": 10, "float": 12, "percent": 10, "duration": 11, "date": 12,
           "datetime": 17}  # fmt: skip
# Written as numbers. Decimal is what SQL sums and averages come back as.
_NUMBERS: frozenset[type[int | float | Decimal]] = frozenset({int, float, Decimal})
# What openpyxl refuses in a cell (it raises); stripped from text instead.
_ILLEGAL = re.compile(r"[\000-\010\013\014\016-\037]")
_HEADER_FONT = Font(bold=True, color="FFFFFF")
_HEADER_FILL = PatternFill("solid", start_color="1F5FBF", end_color="1F5FBF")
_HEADER_ALIGN = Alignment(vertical="center")


def _xlsx_text(value: Any) -> Any:
    if value is None:
        return None
    if value.__class__ is not str:
        value = str(value)
    if not value.isprintable():  # fast test; the regex runs only on the rare odd string
        value = _ILLEGAL.sub("", value)
    if value.startswith(_FORMULA_START):
        return "'" + value
    return value


def _xlsx_number(value: Any) -> Any:
    # A string in a number column is written as text, and neutralised like text.
    return value if value.__class__ in _NUMBERS or value is None else _xlsx_text(value)


def _xlsx_float(value: Any) -> Any:
    if value.__class__ is float and not math.isfinite(value):
        return None  # NaN and infinity are not numbers a sheet can hold
    return _xlsx_number(value)


def _xlsx_duration(value: Any) -> Any:
    return value / 86400 if value.__class__ in _NUMBERS else _xlsx_number(value)


def _xlsx_date(value: Any) -> Any:
    # Excel serial numbers, as openpyxl would write them, for a pre-styled cell.
    return to_excel(value) if isinstance(value, date) else _xlsx_number(value)


def _xlsx_datetime(value: Any) -> Any:
    if isinstance(value, datetime):
        return to_excel(value.replace(tzinfo=None))
    return _xlsx_date(value)


_XLSX_CONVERT: dict[str, Callable[[Any], Any]] = {
    "text": _xlsx_text, "int": _xlsx_number, "float": _xlsx_float,
    "percent": _xlsx_float, "duration": _xlsx_duration, "date": _xlsx_date,
    "datetime": _xlsx_datetime,
}  # fmt: skip


class _FormattedCell(Cell):
    """A write-only cell with a fixed number format, reused row after row. openpyxl looks a
    styled cell's style up in the workbook's list each time it writes it; this one's style
    id is found once."""

    def __init__(self, ws: Any, number_format: str) -> None:
        super().__init__(ws, column=1, row=1)
        self.number_format = number_format
        self._fixed_style_id = super().style_id

    @property
    def style_id(self) -> int:
        return self._fixed_style_id


def _lean_rows(ws: Any) -> None:
    """Give a write-only sheet a leaner row-to-cells step. openpyxl's `_values_to_row` tells
    a prepared cell from a value by the ValueError that assigning the cell as a value raises,
    and makes a fresh cell after every styled one. The rows here hold plain values and cells
    (the header's, the reused formatted ones), so this version tells them apart with an
    isinstance and keeps the one shared cell for the plain values: measured, about a fifth
    of the export's time. It is openpyxl 3.1's hook (pinned <3.2); were it gone, the stock
    path would still write the same sheet, only slower, and the tests read every cell."""
    if not callable(getattr(ws, "_values_to_row", None)):
        return

    def values_to_row(values: Iterable[Any], row_idx: int) -> Iterator[Cell]:
        cell = WriteOnlyCell(ws)
        for col_idx, value in enumerate(values, 1):
            if value is None:
                continue
            if isinstance(value, Cell):
                value.column, value.row = col_idx, row_idx
                yield value
                continue
            cell.value = value
            cell.column, cell.row = col_idx, row_idx
            yield cell
            if cell.has_style:  # openpyxl styled it (a datetime would be): not shared
                cell = WriteOnlyCell(ws)

    ws._values_to_row = values_to_row


def write_xlsx(doc: ExportDocument, rows: Iterable[dict[str, Any]]) -> Iterator[bytes]:
    with tempfile.TemporaryFile(prefix="manireports-export-", suffix=".xlsx") as out:
        _build_xlsx(doc, rows, out)
        yield from _chunks(out)


def _build_xlsx(doc: ExportDocument, rows: Iterable[dict[str, Any]], out: IO[bytes]) -> None:
    wb = Workbook(write_only=True)
    try:
        ws = wb.create_sheet(XLSX_SHEET)
        _lean_rows(ws)
        ws.freeze_panes = "A2"
        columns = list(doc.columns)
        for i, column in enumerate(columns, 1):
            width = max(_WIDTHS[column.kind], min(len(column.label) + 4, 60))
            ws.column_dimensions[get_column_letter(i)].width = width
        header = []
        for column in columns:
            cell = WriteOnlyCell(ws, value=_xlsx_text(column.label))
            cell.font, cell.fill, cell.alignment = _HEADER_FONT, _HEADER_FILL, _HEADER_ALIGN
            header.append(cell)
        ws.append(header)

        # The per-cell path: a converter per column, chosen once. A column with a number
        # format gets one styled cell, made once and given each row's value: openpyxl's
        # write-only sheet writes a row's cells as it is appended, so the cell is free again
        # for the next row.
        plain: list[tuple[int, str, Callable[[Any], Any]]] = []
        formatted: list[tuple[int, str, Callable[[Any], Any], _FormattedCell]] = []
        for i, column in enumerate(columns):
            convert = _XLSX_CONVERT[column.kind]
            number_format = _NUMBER_FORMATS.get(column.kind)
            if number_format is None:
                plain.append((i, column.key, convert))
            else:
                formatted.append((i, column.key, convert, _FormattedCell(ws, number_format)))
        template: list[Any] = [None] * len(columns)
        count = 0
        append = ws.append
        for row in rows:
            values = template.copy()
            get = row.get
            for i, key, convert in plain:
                values[i] = convert(get(key))
            for i, key, convert, cell in formatted:
                value = convert(get(key))
                if value is not None:
                    cell.value = value
                    values[i] = cell
            append(values)
            count += 1
        if columns:
            ws.auto_filter.ref = f"A1:{get_column_letter(len(columns))}{count + 1}"
        _xlsx_about(wb, doc, count)
        wb.properties.title = _ILLEGAL.sub("", doc.title)[:255]
        wb.properties.creator = "ManiReports"
        wb.save(out)
    finally:
        _discard_sheets(wb)


def _discard_sheets(wb: Workbook) -> None:
    """After a failed export (the rows raised, the client went away), remove what openpyxl
    keeps until the process exits: each sheet's temporary file and its name in a list."""
    for sheet in wb.worksheets:
        writer = getattr(sheet, "_writer", None)
        path = getattr(writer, "out", None)
        if writer is None or not path or not Path(path).exists():
            continue  # saved: openpyxl cleaned up
        for stream in (getattr(sheet, "_rows", None), getattr(writer, "xf", None)):
            if stream is not None:
                with suppress(Exception):  # a half-written sheet may not close cleanly
                    stream.close()
        with suppress(OSError, ValueError):
            writer.cleanup()


def _xlsx_about(wb: Workbook, doc: ExportDocument, count: int) -> None:
    about = wb.create_sheet("About")
    about.column_dimensions["A"].width = 22
    about.column_dimensions["B"].width = 60
    bold = Font(bold=True)

    def line(label: str, value: Any) -> list[Any]:
        head = WriteOnlyCell(about, value=_xlsx_text(label))
        head.font = bold
        return [head, value]

    generated = WriteOnlyCell(about, value=doc.generated_at.replace(tzinfo=None))
    generated.number_format = _NUMBER_FORMATS["datetime"]
    about.append(line("Report", _xlsx_text(doc.title)))
    about.append(line("Generated", generated))
    about.append(line("Time zone", _xlsx_text(doc.generated_at.tzname() or "")))
    about.append(line("Rows", count))
    for label, value in doc.filters:
        about.append(line(label, _xlsx_text(value)))


# -- PDF ------------------------------------------------------------------------------------
# HTML for xhtml2pdf, every piece of text escaped. Nothing is fetched: the chart is an
# inline SVG image (reportlab's charts, drawn with its pure-Python SVG renderer; xhtml2pdf
# draws SVG as vectors through svglib), the link callback lets through only that image, and
# the resource policy refuses the network and the filesystem for anything that bypasses the
# callback (fonts, backgrounds).
_PDF_CSS = """%(font_faces)s
@page { size: a4 landscape; margin: 1.4cm 1.2cm 1.6cm 1.2cm;
  @frame footer { -pdf-frame-content: footer; bottom: 0.6cm; height: 0.6cm;
                  margin-left: 1.2cm; margin-right: 1.2cm; } }
body { font-family: %(font)s; font-size: 8pt; color: #1d2433; }
h1 { font-size: 15pt; margin: 0 0 3pt 0; }
p { margin: 0 0 2pt 0; }
.meta { color: #5b6475; }
.cap { color: #b3261e; font-weight: bold; margin-top: 4pt; }
table.data { margin-top: 6pt; }
table.data th { background-color: #1f5fbf; color: #ffffff; font-weight: bold;
                padding: 3pt 3pt 1pt 3pt; text-align: left; }
table.data td { padding: 2pt 3pt 0 3pt; }
table.data tr.odd td { background-color: #f2f4f8; }
table.data .num { text-align: right; }
#footer { color: #5b6475; text-align: right; }
"""
# Column widths by kind, relative: names and courses get the room.
_PDF_WEIGHTS = {"text": 2.6, "datetime": 1.5, "date": 1.1}
# The text face: DejaVu Sans where it is installed (Debian: fonts-dejavu-core), for names in
# Cyrillic, Greek, Arabic, Hebrew and the rest of Latin; else the PDF's built-in Helvetica,
# which draws Latin-1 only (other letters come out blank).
_FONT_DIRS = (Path("/usr/share/fonts/truetype/dejavu"), Path("/usr/share/fonts/dejavu"))


@functools.cache
def _pdf_font() -> tuple[Path, Path] | None:
    for folder in _FONT_DIRS:
        regular, bold = folder / "DejaVuSans.ttf", folder / "DejaVuSans-Bold.ttf"
        if regular.is_file() and bold.is_file():
            return regular, bold
    return None


def _pdf_css() -> str:
    font = _pdf_font()
    if font is None:
        return _PDF_CSS % {"font_faces": "", "font": "Helvetica"}
    faces = (f'@font-face {{ font-family: "DejaVu Sans"; src: url("{font[0]}"); }}\n'
             f'@font-face {{ font-family: "DejaVu Sans"; src: url("{font[1]}"); '
             "font-weight: bold; }")  # fmt: skip
    return _PDF_CSS % {"font_faces": faces, "font": '"DejaVu Sans"'}


@functools.cache
def _chart_font() -> str:
    """The chart's face, registered with reportlab (text widths) and svglib (drawing)."""
    font = _pdf_font()
    if font is None:
        return "Helvetica"
    from svglib.fonts import register_font

    name, _ = register_font("DejaVuSans", str(font[0]))
    return name or "Helvetica"


# A bound on the render's time, for the resource policy (a stuck render is abandoned).
_PDF_RENDER_SECONDS = 240


def write_pdf(doc: ExportDocument, rows: Iterable[dict[str, Any]]) -> Iterator[bytes]:
    from xhtml2pdf import pisa
    from xhtml2pdf.config.resources import ResourceAccessPolicy

    rest = iter(rows)
    shown = [_pdf_row(doc.columns, row, i % 2 == 1)
             for i, row in enumerate(islice(rest, PDF_MAX_ROWS))]  # fmt: skip
    total = len(shown) + sum(1 for _ in rest)  # counted, not kept
    chart = _chart_data_uri(doc.chart) if doc.chart else None
    source = _pdf_html(doc, shown, total, chart)
    del shown
    font = _pdf_font()
    allowed = ({chart} if chart else set()) | ({str(p) for p in font} if font else set())

    def link_callback(uri: str, rel: str | None) -> str | None:
        if uri in allowed:
            return None  # keep it: the chart we drew, or the font
        log.warning("PDF export refused to fetch %.80r", uri)
        return "data:,"  # an empty inline resource: the image is left out

    policy = ResourceAccessPolicy(
        allow_remote=False, base_dir=None, extra_roots=(font[0].parent,) if font else (),
        max_render_seconds=_PDF_RENDER_SECONDS,
    )  # fmt: skip
    with tempfile.SpooledTemporaryFile(max_size=4 * 1024 * 1024) as out:
        status = pisa.CreatePDF(source, dest=out, encoding="utf-8",
                                link_callback=link_callback, resource_policy=policy)  # fmt: skip
        if status.err:
            raise RuntimeError(f"the PDF of {doc.title!r} could not be rendered")
        del source
        yield from _chunks(out)


def _esc(value: object) -> str:
    """Text for the HTML: control characters dropped (no face draws them), markup escaped."""
    return html.escape(_ILLEGAL.sub("", str(value)), quote=True)


def _pdf_row(columns: Sequence[Column], row: dict[str, Any], odd: bool) -> str:
    cells = []
    for column in columns:
        text = _pdf_value(column.kind, row.get(column.key))
        if len(text) > PDF_MAX_CELL_CHARS:
            text = text[: PDF_MAX_CELL_CHARS - 1] + "…"
        css = ' class="num"' if column.kind != "text" else ""
        cells.append(f"<td{css}>{_esc(text)}</td>")
    return ('<tr class="odd">' if odd else "<tr>") + "".join(cells) + "</tr>"


def _pdf_value(kind: str, value: Any) -> str:
    """A cell as the page shows it."""
    if value is None:
        return ""
    if kind == "text" or isinstance(value, str):
        return str(safe_cell(str(value)))
    if kind == "int" and isinstance(value, int):
        return f"{value:,}"
    if kind == "float" and isinstance(value, int | float | Decimal):
        return f"{value:,.2f}"
    if kind == "percent" and isinstance(value, int | float | Decimal):
        return f"{value:.1f} %"
    if kind == "duration" and isinstance(value, int | float | Decimal):
        seconds = round(abs(float(value)))
        text = f"{seconds // 3600}:{seconds % 3600 // 60:02d}:{seconds % 60:02d}"
        return "-" + text if value < 0 else text
    if kind == "datetime" and isinstance(value, datetime):
        return f"{value:%Y-%m-%d %H:%M}"
    if isinstance(value, date):
        return value.isoformat()
    return str(value)


def _pdf_html(doc: ExportDocument, shown: list[str], total: int, chart: str | None) -> str:
    title = _esc(safe_cell(doc.title))
    stamp = f"{doc.generated_at:%Y-%m-%d %H:%M} {doc.generated_at.tzname() or ''}".strip()
    parts = [
        '<html><head><meta charset="utf-8"><style>', _pdf_css(),
        "</style></head><body>",
        f'<div id="footer">{title} · Page <pdf:pagenumber> of <pdf:pagecount></div>',
        f"<h1>{title}</h1>",
        f'<p class="meta">Generated {_esc(stamp)} · {total:,} row{"" if total == 1 else "s"}</p>',
    ]  # fmt: skip
    for label, value in doc.filters:
        parts.append(f"<p><b>{_esc(safe_cell(label))}:</b> {_esc(safe_cell(value))}</p>")
    if total > len(shown):
        parts.append(f'<p class="cap">First {len(shown):,} of {total:,} rows — '
                     "export CSV or XLSX for all</p>")  # fmt: skip
    if chart:
        parts.append(
            f'<div><img src="{chart}" style="width: {_CHART_W}pt; height: {_CHART_H}pt"/></div>'
        )
    parts.append('<table class="data" repeat="1"><thead><tr>')
    weights = [max(_PDF_WEIGHTS.get(c.kind, 1.0), len(c.label) / 9) for c in doc.columns]
    for column, weight in zip(doc.columns, weights, strict=True):
        css = ' class="num"' if column.kind != "text" else ""
        width = f"{100 * weight / sum(weights):.1f}%"
        parts.append(f'<th{css} width="{width}">{_esc(safe_cell(column.label))}</th>')
    parts.append("</tr></thead><tbody>")
    if shown:
        parts.extend(shown)
    else:
        parts.append(f'<tr><td colspan="{max(1, len(doc.columns))}">No rows.</td></tr>')
    parts.append("</tbody></table></body></html>")
    return "".join(parts)


# -- the chart --------------------------------------------------------------------------------
# The page's chart spec {type: bar|line|pie, labels, series: [{label, data}]}, drawn with
# reportlab's charts and written as SVG (renderSVG is pure Python; reportlab's PNG renderer
# needs a cairo backend that is not installed). A chart that cannot be drawn is left out:
# the rows are what the export is for.
_CHART_W, _CHART_H = 740, 210
_PALETTE = ("#1f5fbf", "#e07b00", "#1e7b34", "#b3261e", "#6b4fbb", "#0f8b8d", "#8a6d00",
            "#c2185b")  # fmt: skip
_CHART_MAX_POINTS = 400
_CHART_MAX_LABELS = 24


def _chart_data_uri(chart: dict[str, Any]) -> str | None:
    try:
        drawing = _chart_drawing(chart)
        if drawing is None:
            return None
        from reportlab.graphics import renderSVG

        svg = renderSVG.drawToString(drawing)
        # From <svg> on: the prologue names a DTD by URL, and nothing should be tempted to
        # fetch it. renderSVG spells an empty fill "None", which SVG readers warn about.
        svg = svg[svg.index("<svg") :].replace("fill: None", "fill: none")
    except Exception:  # a chart is decoration: the export goes on without it
        log.exception("PDF export: the chart could not be drawn")
        return None
    return "data:image/svg+xml;base64," + base64.b64encode(svg.encode("utf-8")).decode("ascii")


def _short(label: object, size: int = 18) -> str:
    text = str(label)
    return text if len(text) <= size else text[: size - 1] + "…"


def _number(value: Any) -> float:
    try:
        number = float(value)
    except (TypeError, ValueError):
        return 0.0
    return number if math.isfinite(number) else 0.0


def _chart_drawing(chart: dict[str, Any]) -> Any:
    from reportlab.graphics.charts.barcharts import VerticalBarChart
    from reportlab.graphics.charts.legends import Legend
    from reportlab.graphics.charts.linecharts import HorizontalLineChart
    from reportlab.graphics.charts.piecharts import Pie
    from reportlab.graphics.shapes import Drawing
    from reportlab.lib.colors import HexColor

    kind = chart.get("type")
    labels = [str(label) for label in (chart.get("labels") or [])][:_CHART_MAX_POINTS]
    series = []
    for one in chart.get("series") or []:
        data = [_number(v) for v in list(one.get("data") or [])[: len(labels)]]
        series.append((str(one.get("label", "")), data + [0.0] * (len(labels) - len(data))))
    series = series[: len(_PALETTE)]
    if kind not in ("bar", "line", "pie") or not labels or not series:
        return None
    colors = [HexColor(c) for c in _PALETTE]
    font = _chart_font()
    drawing = Drawing(_CHART_W, _CHART_H)
    legend = Legend()
    legend.fontName, legend.fontSize = font, 7
    legend.alignment, legend.boxAnchor = "right", "nw"
    legend.x, legend.y = _CHART_W - 150, _CHART_H - 10
    legend.dx = legend.dy = 7
    legend.columnMaximum = 12

    if kind == "pie":
        values = series[0][1]
        if sum(values) <= 0 or min(values) < 0:
            return None
        pie = Pie()
        pie.x, pie.y, pie.width, pie.height = 40, 10, _CHART_H - 20, _CHART_H - 20
        pie.data = values
        pie.slices.strokeColor = HexColor("#ffffff")
        for i in range(len(values)):
            pie.slices[i].fillColor = colors[i % len(colors)]
        legend.x = _CHART_H + 60
        legend.colorNamePairs = [(colors[i % len(colors)], f"{_short(label, 30)} ({values[i]:g})")
                                 for i, label in enumerate(labels[:36])]  # fmt: skip
        legend.columnMaximum = 12
        drawing.add(pie)
        drawing.add(legend)
        return drawing

    plot: Any = VerticalBarChart() if kind == "bar" else HorizontalLineChart()
    plot.x, plot.y = 45, 45
    plot.width, plot.height = _CHART_W - 45 - 170, _CHART_H - 45 - 10
    plot.data = [tuple(data) for _, data in series]
    step = max(1, math.ceil(len(labels) / _CHART_MAX_LABELS))
    plot.categoryAxis.categoryNames = [_short(label) if i % step == 0 else ""
                                       for i, label in enumerate(labels)]  # fmt: skip
    plot.categoryAxis.labels.angle = 30
    plot.categoryAxis.labels.boxAnchor = "ne"
    plot.categoryAxis.labels.dy = -2
    for axis in (plot.categoryAxis, plot.valueAxis):
        axis.labels.fontName, axis.labels.fontSize = font, 7
        axis.strokeColor = HexColor("#5b6475")
    low = min(min(data) for _, data in series)
    high = max(max(data) for _, data in series)
    plot.valueAxis.valueMin = min(0.0, low)
    if high <= plot.valueAxis.valueMin:
        plot.valueAxis.valueMax = plot.valueAxis.valueMin + 1
    plot.valueAxis.visibleGrid = True
    plot.valueAxis.gridStrokeColor = HexColor("#dde1ea")
    for i in range(len(series)):
        if kind == "bar":
            plot.bars[i].fillColor = colors[i]
            plot.bars[i].strokeColor = None
        else:
            plot.lines[i].strokeColor = colors[i]
            plot.lines[i].strokeWidth = 1.5
    if kind == "bar":
        plot.barSpacing = 1
        plot.groupSpacing = max(1, min(10, 200 // max(1, len(labels))))
    legend.colorNamePairs = [(colors[i], _short(label, 28)) for i, (label, _) in enumerate(series)]
    drawing.add(plot)
    drawing.add(legend)
    return drawing


FORMATS: dict[str, ExportFormat] = {
    "csv": ExportFormat("csv", "text/csv; charset=utf-8", "csv", write_csv),
    "xlsx": ExportFormat(
        "xlsx",
        "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
        "xlsx",
        write_xlsx,
    ),  # fmt: skip
    "pdf": ExportFormat("pdf", "application/pdf", "pdf", write_pdf),
}
