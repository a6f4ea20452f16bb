"""Role dashboards: which widgets each role sees, each one a view of a registered report.

A widget shows a report's headline figures (`kpis`), its chart or a short table, under the
dashboard's shared filters; the page and the JSON API (`/api/v1/dashboard`) both read
`dashboard_data`, so a dashboard is data, not code. Widgets of a report that is not
registered or not enabled on this site are left out.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass
from typing import Any

from common.access import capabilities as caps
from common.access.viewer import Viewer
from common.reports import Report, RunContext, get_report
from common.reports.base import ReportPage, present
from common.reports.filters import describe_filters

SHOWS = ("kpis", "chart", "table")


@dataclass(frozen=True)
class Widget:
    key: str
    title: str
    report: str
    show: str  # kpis | chart | table
    sort: str | None = None  # table widgets: the report column to order by…
    direction: str = "asc"  # …and which way
    page_size: int = 10
    # Only these of the report's columns (tables) or KPI keys (kpis); None: all of them.
    only: tuple[str, ...] | None = None

    def __post_init__(self) -> None:
        if self.show not in SHOWS:
            raise ValueError(f"widget {self.key}: show {self.show!r} is not one of {SHOWS}")


@dataclass(frozen=True)
class Dashboard:
    role: str
    title: str
    capability: str
    widgets: tuple[Widget, ...]
    # The filters the page offers; each report takes those it declares and ignores the rest.
    filters: tuple[str, ...] = ("days", "course", "cohort", "q")


DASHBOARDS: tuple[Dashboard, ...] = (
    Dashboard(
        "admin",
        "Site overview",
        caps.VIEW_ADMIN_DASHBOARD,
        (
            Widget("completion_kpis", "Completion", "course_completion", "kpis"),
            Widget("companies", "Companies compared", "company_summary", "chart"),
            Widget(
                "company_table", "Companies", "company_summary", "table", "completion_pct", "desc"
            ),
            Widget("completion_trend", "Completions per day", "course_completion", "chart"),
            Widget(
                "courses",
                "Courses by completion",
                "course_completion",
                "table",
                "completion_pct",
                "asc",
            ),
            Widget("engagement_kpis", "Engagement", "user_engagement", "kpis"),
        ),
    ),
    Dashboard(
        "manager",
        "Company overview",
        caps.VIEW_MANAGER_DASHBOARD,
        (
            Widget("completion_kpis", "Completion", "course_completion", "kpis"),
            Widget("progress", "Learners by progress", "course_progress", "chart"),
            Widget("completion_trend", "Completions per day", "course_completion", "chart"),
            Widget(
                "courses",
                "Courses by completion",
                "course_completion",
                "table",
                "completion_pct",
                "asc",
            ),
            Widget(
                "engagement",
                "Least active learners",
                "user_engagement",
                "table",
                "seconds_30",
                "asc",
            ),
        ),
    ),
    Dashboard(
        "teacher",
        "My courses",
        caps.VIEW_TEACHER_DASHBOARD,
        (
            Widget("completion_kpis", "Completion", "course_completion", "kpis"),
            Widget("progress", "Learners by progress", "course_progress", "chart"),
            Widget("learners", "Learners' progress", "course_progress", "table", "progress"),
            Widget("quizzes", "Quizzes", "quiz_attempts", "table", "attempts", "desc"),
            Widget("quiz_chart", "Quiz grades", "quiz_attempts", "chart"),
        ),
    ),
    Dashboard(
        "student",
        "My learning",
        caps.VIEW_STUDENT_DASHBOARD,
        (
            # A learner's own figures: no "learners" counts, no columns naming themselves.
            Widget(
                "my_progress_kpis",
                "My progress",
                "course_progress",
                "kpis",
                only=("enrolments", "average_progress", "completed"),
            ),
            Widget(
                "my_courses",
                "My courses",
                "course_progress",
                "table",
                "course",
                only=(
                    "course",
                    "activities_completed",
                    "activities",
                    "progress",
                    "course_completed",
                    "last_access",
                ),
            ),
            Widget(
                "my_time",
                "My time",
                "user_engagement",
                "table",
                only=("active_days_7", "seconds_7", "active_days_30", "seconds_30"),
            ),
        ),
        filters=("course",),
    ),
)


def dashboards_for(viewer: Viewer) -> list[Dashboard]:
    return [d for d in DASHBOARDS if viewer.can(d.capability)]


def get_dashboard(role: str) -> Dashboard | None:
    return next((d for d in DASHBOARDS if d.role == role), None)


def widget_reports(dashboard: Dashboard, enabled: Any) -> list[tuple[Widget, Report]]:
    """The widgets whose report exists and `enabled(report)` allows, with their report."""
    found = []
    for widget in dashboard.widgets:
        report = get_report(widget.report)
        if report is not None and enabled(report):
            found.append((widget, report))
    return found


def dashboard_data(
    dashboard: Dashboard,
    ctx: RunContext,
    raw_filters: Mapping[str, str],
    enabled: Any = lambda report: True,
    recorded: Callable[[Report, dict[str, Any]], AbstractContextManager[Any]] | None = None,
) -> dict[str, Any]:
    """Every widget's figures under the same filters: one run per report, however many
    widgets show it — inside `recorded(report, params)` when given (the run history). A bad
    filter raises FieldError (400) naming it, before any report runs."""
    raw = {k: v for k, v in raw_filters.items() if k in dashboard.filters}
    chosen = widget_reports(dashboard, enabled)
    params_of = {r.type_name: r.parse_params(raw) for _, r in chosen}
    shown: dict[int, dict[str, Any]] = {}
    filters: dict[str, str] = {}
    for name, params in params_of.items():
        mine = [(i, w, r) for i, (w, r) in enumerate(chosen) if r.type_name == name]
        report = mine[0][2]
        with recorded(report, params) if recorded else nullcontext():
            data = report.run(ctx, params)
            filters.update(dict(describe_filters(report, ctx, params)))
            for i, widget, _ in mine:
                shown[i] = _shown(widget, report, ctx, params, data)
    widgets = [
        {"key": widget.key, "title": widget.title, "report": report.type_name,
         "show": widget.show, **shown[i]}
        for i, (widget, report) in enumerate(chosen)
    ]  # fmt: skip
    return {
        "dashboard": dashboard.role,
        "title": dashboard.title,
        "filters": [{"label": k, "value": v} for k, v in filters.items()],
        "widgets": widgets,
    }


def _shown(
    widget: Widget, report: Report, ctx: RunContext, params: Any, data: Any
) -> dict[str, Any]:
    if widget.show == "kpis":
        kpis = data.kpis() if data.kpis else []
        return {"kpis": [k for k in kpis if widget.only is None or k["key"] in widget.only]}
    if widget.show == "chart":
        return {"chart": (data.chart() if data.chart else None) or {}}
    raw = {"page_size": str(widget.page_size)}
    if widget.sort:
        raw.update(sort=widget.sort, dir=widget.direction)
    request = report.page_request(raw)
    rows, total = data.rows.page(request, report.row_key)
    page = ReportPage(report=report, params=dict(params), rows=present(report, rows, ctx),
                      total=total, request=request)  # fmt: skip
    shown = page.as_json()
    columns = [c for c in shown["columns"] if widget.only is None or c["key"] in widget.only]
    return {"columns": columns, "rows": shown["rows"], "total": total, "sort": shown["sort"]}
