"""A report described for machines: the metadata the API and `report list` publish."""

from __future__ import annotations

from typing import Any

from common.reports.base import Report
from common.reports.rows import DEFAULT_PAGE_SIZE, MAX_PAGE_SIZE


def report_description(report: Report) -> dict[str, Any]:
    return {
        "name": report.type_name,
        "title": report.title,
        "description": report.description,
        "columns": [c.as_json() for c in report.columns],
        "parameters": [p.as_json() for p in report.params],
        "sort": {"default": report.default_sort, "direction": report.default_direction,
                 "sortable": [c.key for c in report.columns if c.sortable]},
        "page_size": {"default": DEFAULT_PAGE_SIZE, "max": MAX_PAGE_SIZE},
        "formats": ["csv", "json", "xlsx", "pdf"],
    }  # fmt: skip
