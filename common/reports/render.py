"""A report rendered to a file format, rows counted into its run record: one path for every
caller that writes a whole report out of a request (the CLI, scheduled runs)."""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from datetime import datetime
from typing import Any

from common.reports.base import Report, RunContext
from common.reports.export import FORMATS, ExportDocument
from common.reports.filters import describe_filters
from common.reports.runs import RunRecord


def counted(rows: Iterable[dict[str, Any]], run: RunRecord) -> Iterator[dict[str, Any]]:
    """The rows, counted into the run's record as they are written."""
    run.row_count = 0
    for row in rows:
        run.row_count += 1
        yield row


def export_document(
    report: Report, ctx: RunContext, params: dict[str, Any], fmt: str
) -> ExportDocument:
    """What the file prints besides the rows: title, columns, filters, the chart (PDF)."""
    chart = report.run(ctx, params).chart if fmt == "pdf" else None
    return ExportDocument(
        title=report.title, columns=report.columns,
        filters=describe_filters(report, ctx, params), chart=chart() if chart else None,
        generated_at=datetime.fromtimestamp(ctx.now, ctx.zone),
    )  # fmt: skip


def export_chunks(
    fmt: str,
    report: Report,
    ctx: RunContext,
    params: dict[str, Any],
    page: Any,
    run: RunRecord,
    rows: Iterable[dict[str, Any]] | None = None,
) -> Iterator[bytes]:
    """The report as `fmt` (csv, xlsx, pdf) bytes; `rows` (default: the report's stream)
    lets a caller wrap the rows, e.g. to stop at a deadline."""
    source_rows = report.stream(ctx, params, page) if rows is None else rows
    return FORMATS[fmt].write(export_document(report, ctx, params, fmt), counted(source_rows, run))
