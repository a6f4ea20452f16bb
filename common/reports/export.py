"""Report rows as files. Each format streams: it takes the rows as an iterator and yields
bytes, so an export's memory stays flat in the row count. An export holds exactly the
columns and filtered rows of the view it was asked from."""

from __future__ import annotations

import csv
import io
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from common.reports.base import Column

# Cells starting with these are formulas to a spreadsheet: CSV injection (OWASP).
_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


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


FORMATS: dict[str, ExportFormat] = {
    "csv": ExportFormat("csv", "text/csv; charset=utf-8", "csv", write_csv),
}
