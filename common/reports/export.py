"""Report results as files: CSV (exactly the columns and rows on screen)."""

from __future__ import annotations

import csv
import io

from common.reports.base import ReportResult

# Cells starting with these are formulas to a spreadsheet: CSV injection (OWASP).
_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


def _safe_cell(value: object) -> object:
    if isinstance(value, str) and value.startswith(_FORMULA_START):
        return "'" + value
    return value


def to_csv(result: ReportResult) -> str:
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\r\n")
    for row in result.table():
        writer.writerow([_safe_cell(v) for v in row])
    return buffer.getvalue()
