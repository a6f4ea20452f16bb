"""Prebuilt reports: one definition feeds the dashboard page, the API, exports and schedules."""

from common.reports.base import (
    Column,
    Report,
    ReportResult,
    get_report,
    register,
    registered_reports,
)

# Importing a report module registers it.
from common.reports import course_completion  # noqa: E402,F401  isort: skip

__all__ = [
    "Column",
    "Report",
    "ReportResult",
    "get_report",
    "register",
    "registered_reports",
]
