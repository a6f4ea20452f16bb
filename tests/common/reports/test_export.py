"""CSV, XLSX and PDF exports: typed cells, neutralised formulas, escaped PDF text that fetches
nothing, and memory that stays flat in the row count."""

from __future__ import annotations

import csv
import io
import logging
import socket
import tracemalloc
import zipfile
from datetime import date, datetime, timedelta
from zoneinfo import ZoneInfo

import openpyxl
import pytest
from openpyxl.worksheet import _writer as openpyxl_writer
from pypdf import PdfReader

from common.reports import export
from common.reports.base import Column
from common.reports.export import FORMATS, ExportDocument, safe_cell

BERLIN = ZoneInfo("Europe/Berlin")
COLUMNS = [
    Column("name", "Learner"),
    Column("attempts", "Attempts", "int"),
    Column("grade", "Grade", "float"),
    Column("completion", "Completion %", "percent"),
    Column("time_spent", "Time spent", "duration"),
    Column("enrolled", "Enrolled", "date"),
    Column("last_access", "Last access", "datetime"),
    Column("course", "Course"),
]
# Each a formula to a spreadsheet if written as is.
FORMULAS = ["=1+2", "+SUM(A1:A2)", "-2+3", "@cmd", "\tTAB", "\rCR",
            "=HYPERLINK(\"http://evil.example\",\"x\")"]  # fmt: skip


def row(i: int, **overrides):
    values = {
        "name": f"Learner {i}",
        "attempts": i,
        "grade": 71.25 + i,
        "completion": 66.7,
        "time_spent": 3725 + i,
        "enrolled": date(2025, 1, 5) + timedelta(days=i),
        # the last Sunday of March: Berlin moves to summer time at 02:00 that night
        "last_access": datetime(2025, 3, 30, 10, 15, 30, tzinfo=BERLIN) + timedelta(hours=i),
        "course": "Fire Safety",
    }
    values.update(overrides)
    return values


def document(**overrides) -> ExportDocument:
    fields = {
        "title": "Learner progress",
        "columns": COLUMNS,
        "filters": [("Company", "Northwind Training"), ("Range", "Last 90 days")],
        "chart": None,
        "generated_at": datetime(2025, 4, 1, 9, 30, tzinfo=BERLIN),
    }
    fields.update(overrides)
    return ExportDocument(**fields)


def run(fmt: str, rows, doc: ExportDocument | None = None) -> bytes:
    return b"".join(FORMATS[fmt].write(doc or document(), iter(rows)))


def workbook(data: bytes):
    return openpyxl.load_workbook(io.BytesIO(data))


def pdf_text(data: bytes) -> str:
    return "\n".join(page.extract_text() for page in PdfReader(io.BytesIO(data)).pages)


def test_the_registry_has_the_three_formats():
    assert list(FORMATS) == ["csv", "xlsx", "pdf"]
    assert {f.extension for f in FORMATS.values()} == {"csv", "xlsx", "pdf"}
    assert FORMATS["xlsx"].media_type.endswith("spreadsheetml.sheet")
    assert FORMATS["pdf"].media_type == "application/pdf"


def test_safe_cell_prefixes_formula_starts_only_on_text():
    assert [safe_cell(v) for v in FORMULAS] == ["'" + v for v in FORMULAS]
    assert safe_cell("Fire Safety") == "Fire Safety"
    assert safe_cell(-5) == -5
    assert safe_cell(None) is None


# -- CSV ------------------------------------------------------------------------------------
def test_csv_round_trips_through_the_csv_module():
    rows = [row(0), row(1, name=None, grade=None), row(2, name='Smith, "Jo"\nsecond line')]
    data = run("csv", rows)
    assert not data.startswith(b"\xef\xbb\xbf")  # no BOM: see the note in export.py
    table = list(csv.reader(io.StringIO(data.decode("utf-8"), newline="")))
    assert table[0] == [c.label for c in COLUMNS]
    assert table[1] == ["Learner 0", "0", "71.25", "66.7", "3725", "2025-01-05",
                        "2025-03-30 10:15+02:00", "Fire Safety"]  # fmt: skip
    assert table[2][0] == "" and table[2][2] == ""
    assert table[3][0] == 'Smith, "Jo"\nsecond line'
    assert len(table) == 4


def test_csv_neutralises_formulas_but_not_numbers():
    rows = [row(i, name=f, attempts=-5) for i, f in enumerate(FORMULAS)]
    table = list(csv.reader(io.StringIO(run("csv", rows).decode("utf-8"), newline="")))
    assert [r[0] for r in table[1:]] == ["'" + f for f in FORMULAS]
    assert {r[1] for r in table[1:]} == {"-5"}


# -- XLSX -----------------------------------------------------------------------------------
def test_xlsx_cells_have_the_types_and_values_of_the_rows():
    rows = [row(0), row(1, attempts=-5, grade=-0.5)]
    wb = workbook(run("xlsx", rows))
    assert wb.sheetnames == ["Report", "About"]
    ws = wb["Report"]
    assert [c.value for c in ws[1]] == [c.label for c in COLUMNS]
    for i, source in enumerate(rows, 2):
        cells = {c.key: cell for c, cell in zip(COLUMNS, ws[i], strict=True)}
        assert cells["name"].value == source["name"] and cells["name"].data_type == "s"
        assert cells["attempts"].value == source["attempts"]
        assert isinstance(cells["attempts"].value, int)
        assert cells["grade"].value == source["grade"]
        assert cells["completion"].value == 66.7  # the on-screen figure ...
        assert cells["completion"].number_format == '0.0" %"'  # ... shown as "66.7 %"
        # a duration is an Excel time: seconds / 86400, shown as [h]:mm:ss
        assert cells["time_spent"].number_format == "[h]:mm:ss"
        assert cells["time_spent"].value == timedelta(seconds=source["time_spent"])
        assert cells["enrolled"].value.date() == source["enrolled"]
        assert cells["enrolled"].number_format == "yyyy-mm-dd"
        # the viewer's local time, without the zone
        assert cells["last_access"].value == source["last_access"].replace(tzinfo=None)
        assert cells["last_access"].value.hour == 10 + i - 2
        assert cells["last_access"].is_date
    assert ws.max_row == 3


def test_xlsx_negative_numbers_stay_numbers():
    ws = workbook(run("xlsx", [row(0, attempts=-5, grade=-2.5)]))["Report"]
    assert ws["B2"].value == -5 and ws["B2"].data_type == "n"
    assert ws["C2"].value == -2.5 and ws["C2"].data_type == "n"


def test_xlsx_empty_values_are_empty_cells():
    empty = {c.key: None for c in COLUMNS}
    ws = workbook(run("xlsx", [empty, row(1)]))["Report"]
    assert [c.value for c in ws[2]] == [None] * len(COLUMNS)
    assert ws["A3"].value == "Learner 1"


def test_xlsx_neutralises_formulas_in_text_cells():
    rows = [row(i, name=f, course=f) for i, f in enumerate(FORMULAS)]
    ws = workbook(run("xlsx", rows))["Report"]
    names = [ws.cell(row=r, column=1) for r in range(2, 2 + len(FORMULAS))]
    assert [c.value for c in names] == ["'" + f for f in FORMULAS]
    assert {c.data_type for c in names} == {"s"}  # text, not formulas
    assert [ws.cell(row=r, column=8).value for r in range(2, 2 + len(FORMULAS))] == [
        "'" + f for f in FORMULAS
    ]


def test_xlsx_text_in_a_number_column_is_text_and_neutralised():
    ws = workbook(run("xlsx", [row(0, attempts="=1+1", completion="n/a")]))["Report"]
    assert ws["B2"].value == "'=1+1" and ws["B2"].data_type == "s"
    assert ws["D2"].value == "n/a"


def test_xlsx_header_is_bold_frozen_and_filtered():
    ws = workbook(run("xlsx", [row(0), row(1)]))["Report"]
    assert ws.freeze_panes == "A2"
    assert all(cell.font.b for cell in ws[1])
    assert ws["A1"].fill.fgColor.rgb.endswith("1F5FBF")
    assert ws.auto_filter.ref == "A1:H3"
    widths = {k: d.width for k, d in ws.column_dimensions.items()}
    assert widths["A"] > widths["B"]  # a name column is wider than a count


def test_xlsx_about_sheet_has_title_filters_and_count():
    doc = document(title="=Progress", filters=[("Course", "@Fire"), ("Range", "Last 90 days")])
    about = workbook(run("xlsx", [row(0)], doc))["About"]
    values = {r[0]: r[1] for r in about.iter_rows(values_only=True)}
    assert values["Report"] == "'=Progress"
    assert values["Course"] == "'@Fire" and values["Range"] == "Last 90 days"
    assert values["Rows"] == 1
    assert values["Generated"] == datetime(2025, 4, 1, 9, 30)
    assert values["Time zone"] == "CEST"


def test_xlsx_drops_characters_a_sheet_cannot_hold():
    ws = workbook(run("xlsx", [row(0, name="Jo\x00\x1bSmith", grade=float("nan"))]))["Report"]
    assert ws["A2"].value == "JoSmith"
    assert ws["C2"].value is None


def test_xlsx_with_no_rows_is_a_header():
    ws = workbook(run("xlsx", []))["Report"]
    assert [c.value for c in ws[1]] == [c.label for c in COLUMNS]
    assert ws.max_row == 1


def test_xlsx_lean_row_step_writes_what_openpyxl_would(monkeypatch):
    rows = [row(i) for i in range(20)] + [{c.key: None for c in COLUMNS}]
    rows += [row(i, name=f, attempts="x", grade=float("nan")) for i, f in enumerate(FORMULAS)]
    lean = zipfile.ZipFile(io.BytesIO(run("xlsx", rows)))
    monkeypatch.setattr(export, "_lean_rows", lambda ws: None)
    stock = zipfile.ZipFile(io.BytesIO(run("xlsx", rows)))
    for name in ("xl/worksheets/sheet1.xml", "xl/worksheets/sheet2.xml", "xl/styles.xml"):
        assert lean.read(name) == stock.read(name), name


def test_xlsx_failed_export_leaves_no_temporary_files():
    before = list(openpyxl_writer.ALL_TEMP_FILES)

    def rows():
        yield row(0)
        raise RuntimeError("the database went away")

    with pytest.raises(RuntimeError, match="went away"):
        run("xlsx", rows())
    assert openpyxl_writer.ALL_TEMP_FILES == before
    # and a client that goes away mid-download
    chunks = FORMATS["xlsx"].write(document(), iter([row(0)] * 5000))
    next(chunks)
    chunks.close()
    assert openpyxl_writer.ALL_TEMP_FILES == before


def _xlsx_peak(n: int) -> int:
    # A text and a datetime column: the plain and the formatted per-cell paths.
    columns = [Column("name", "Learner"), Column("last_access", "Last access", "datetime")]
    when = datetime(2025, 3, 1, tzinfo=BERLIN)
    rows = ({"name": f"Learner {i}", "last_access": when} for i in range(n))
    tracemalloc.start()
    try:
        size = sum(len(chunk) for chunk in FORMATS["xlsx"].write(document(columns=columns), rows))
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert size > 4 * n  # it did write the rows
    return peak


def test_xlsx_memory_is_flat_in_the_row_count():
    small, large = _xlsx_peak(20_000), _xlsx_peak(200_000)
    assert large < 1.5 * small, (small, large)


# -- PDF ------------------------------------------------------------------------------------
def test_pdf_has_title_filters_header_values_and_page_numbers():
    rows = [row(i) for i in range(3)]
    text = pdf_text(run("pdf", rows))
    assert "Learner progress" in text
    assert "Company: Northwind Training" in text and "Range: Last 90 days" in text
    assert "Generated 2025-04-01 09:30 CEST" in text
    for column in COLUMNS:
        assert column.label in text
    assert "Learner 2" in text and "66.7 %" in text and "1:02:05" in text
    assert "2025-03-30 10:15" in text and "2025-01-05" in text and "71.25" in text
    assert "Page 1 of 1" in text


def test_pdf_repeats_the_header_and_counts_pages():
    data = run("pdf", [row(i) for i in range(120)])
    pages = PdfReader(io.BytesIO(data)).pages
    assert len(pages) > 1
    for n, page in enumerate(pages, 1):
        text = page.extract_text()
        assert "Completion %" in text
        assert f"Page {n} of {len(pages)}" in text


def test_pdf_escapes_markup_and_fetches_nothing():
    with socket.create_server(("127.0.0.1", 0)) as server:
        port = server.getsockname()[1]
        img = f'<img src="http://127.0.0.1:{port}/x">'
        doc = document(title="<b>Report</b> & co", filters=[("Course", img)])
        rows = [row(0, name="<script>alert(1)</script>", course=img)]
        text = pdf_text(run("pdf", rows, doc))
        server.settimeout(0.3)
        with pytest.raises(TimeoutError):
            server.accept()
    assert "<script>alert(1)</script>" in text
    assert "<b>Report</b> & co" in text
    assert f"Course: {img}" in text


def test_pdf_link_callback_refuses_urls_even_if_markup_got_through(monkeypatch, caplog):
    # Were the escaping ever lost, the tag would reach xhtml2pdf: the callback and the
    # resource policy still fetch nothing.
    with socket.create_server(("127.0.0.1", 0)) as server:
        port = server.getsockname()[1]
        monkeypatch.setattr(export, "_esc", str)
        rows = [row(0, name=f'<img src="http://127.0.0.1:{port}/x.png">')]
        with caplog.at_level(logging.WARNING, logger="common.reports.export"):
            run("pdf", rows)
        server.settimeout(0.3)
        with pytest.raises(TimeoutError):
            server.accept()
    assert f"refused to fetch 'http://127.0.0.1:{port}/x.png'" in caplog.text


def test_pdf_neutralises_formulas_like_the_spreadsheets():
    text = pdf_text(run("pdf", [row(0, name="=1+2", course="@cmd", attempts=-5)]))
    assert "'=1+2" in text and "'@cmd" in text
    assert "'-5" not in text and "-5" in text


def test_pdf_is_capped_and_says_so(monkeypatch):
    monkeypatch.setattr(export, "PDF_MAX_ROWS", 5)
    text = pdf_text(run("pdf", (row(i) for i in range(12))))
    assert "First 5 of 12 rows — export CSV or XLSX for all" in text
    assert "Learner 4" in text and "Learner 5" not in text
    assert "12 rows" in text


def test_pdf_under_the_cap_has_no_cap_line():
    assert "First " not in pdf_text(run("pdf", [row(0)]))


@pytest.mark.parametrize("kind", ["bar", "line", "pie"])
def test_pdf_draws_the_chart(kind):
    chart = {"type": kind, "labels": ["Fire Safety", "First Aid", "Induction"],
             "series": [{"label": "Completions", "data": [4, 2, 1]}]}  # fmt: skip
    text = pdf_text(run("pdf", [row(0)], document(chart=chart)))
    assert "Completions" in text or "Fire Safety (4" in text  # the legend


@pytest.mark.parametrize(
    "chart",
    [{"type": "radar", "labels": ["a"], "series": [{"label": "x", "data": [1]}]},
     {"type": "bar", "labels": [], "series": []},
     {"type": "pie", "labels": ["a", "b"], "series": [{"label": "x", "data": [0, 0]}]},
     {"type": "line", "labels": ["a", "b"], "series": [{"label": "x", "data": ["?", None]}]},
     {"type": "bar", "labels": ["a"], "series": [{"label": "x"}]}],
)  # fmt: skip
def test_pdf_with_a_chart_it_cannot_draw_still_has_the_rows(chart):
    text = pdf_text(run("pdf", [row(0)], document(chart=chart)))
    assert "Learner 0" in text


def test_pdf_with_no_rows():
    assert "No rows." in pdf_text(run("pdf", []))


# -- every format ----------------------------------------------------------------------------
def test_every_format_neutralises_the_same_cell():
    payload = "=cmd|' /C calc'!A0"
    rows = [row(0, name=payload)]
    table = list(csv.reader(io.StringIO(run("csv", rows).decode("utf-8"))))
    assert table[1][0] == "'" + payload
    assert workbook(run("xlsx", rows))["Report"]["A2"].value == "'" + payload
    assert "'" + payload in pdf_text(run("pdf", rows))
