"""Prebuilt reports: one definition feeds the pages, the data endpoint, every export format,
the CLI, the JSON API and schedules. See `base` for the shapes and `rows` for paging."""

from common.reports.base import (
    Column,
    Report,
    ReportData,
    ReportPage,
    RunContext,
    get_report,
    register,
    registered_reports,
    require_report,
)
from common.reports.params import Param
from common.reports.rows import ListRows, PageRequest, RowSource, SqlRows

# Importing a report module registers it.
from common.reports import course_completion  # noqa: E402,F401  isort: skip
from common.reports import course_progress  # noqa: E402,F401  isort: skip
from common.reports import quiz_attempts  # noqa: E402,F401  isort: skip
from common.reports import scorm_summary  # noqa: E402,F401  isort: skip
from common.reports import user_engagement  # noqa: E402,F401  isort: skip
from common.reports import company_summary  # noqa: E402,F401  isort: skip

__all__ = [
    "Column",
    "ListRows",
    "PageRequest",
    "Param",
    "Report",
    "ReportData",
    "ReportPage",
    "RowSource",
    "RunContext",
    "SqlRows",
    "get_report",
    "register",
    "registered_reports",
    "require_report",
]
