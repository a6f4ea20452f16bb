"""What the analytics overview shows besides the cached document: its course table, headline
figures and the chart specs (the shape `reportkit.js` `drawChart` draws)."""

from __future__ import annotations

from typing import Any

from common.analytics.caches import Overview
from common.analytics.optional_sources import OptionalSources
from common.analytics.tables import TableSpec
from common.reports.base import Column

COURSE_TABLE = TableSpec(
    columns=(
        Column("name", "Course"),
        Column("active_7", "Active, 7 days", "int"),
        Column("active_30", "Active, 30 days", "int"),
        Column("seconds_30", "Time, 30 days", "duration"),
        Column("xapi_statements_30", "xAPI statements, 30 days", "int"),
        Column("video_seconds_30", "Video, 30 days", "duration"),
        Column("flagged", "Flagged", "int"),
    ),
    default_sort="name",
    row_key=("course",),
)


def _total(rows: list[dict[str, Any]], key: str) -> int:
    return sum(int(r.get(key) or 0) for r in rows)


def overview_kpis(
    rows: list[dict[str, Any]], flagged: int | None, sources: OptionalSources
) -> list[dict[str, Any]]:
    """Headline figures over every course row (not only the page shown). `kind` says how the
    template writes the value; a None value is written as "not yet"."""
    kpis: list[dict[str, Any]] = [
        {"key": "seconds_30", "label": "Time on task, 30 days", "value": _total(rows, "seconds_30"),
         "kind": "duration"},
        {"key": "active_30", "label": "Active enrolments, 30 days",
         "value": _total(rows, "active_30"), "kind": "int"},
        {"key": "flagged", "label": "Flagged learners (at risk in a course)", "value": flagged,
         "kind": "int", "link": "analytics.at_risk"},
    ]  # fmt: skip
    if sources.xapi:
        kpis.append({"key": "xapi_statements_30", "label": "xAPI statements, 30 days",
                     "value": _total(rows, "xapi_statements_30"), "kind": "int"})  # fmt: skip
    if sources.video:
        kpis.append({"key": "video_seconds_30", "label": "Video watched, 30 days",
                     "value": _total(rows, "video_seconds_30"), "kind": "duration"})  # fmt: skip
    return kpis


def overview_charts(shown: Overview | None) -> list[dict[str, Any]]:
    """{key, title, note?, spec} per chart: time on task and active learners per day over 30
    days (the viewer's scope), and the 12-month engagement trend (whole companies only)."""
    charts: list[dict[str, Any]] = []
    if shown is None:
        return charts
    time_trend = shown.daily_time
    hours = [round(s / 3600, 2) for s in time_trend["seconds"]]
    note = "Includes time estimated from the Moodle log." if time_trend["estimated"] else None
    charts.append({
        "key": "time-on-task", "title": "Time on task per day, last 30 days", "note": note,
        "spec": {"type": "bar", "labels": time_trend["days"],
                 "series": [{"label": "Hours on task", "data": hours}]},
    })  # fmt: skip
    charts.append({
        "key": "active-learners", "title": "Active learners per day, last 30 days",
        "spec": {"type": "line", "labels": time_trend["days"],
                 "series": [{"label": "Active learners", "data": time_trend["learners"]}]},
    })  # fmt: skip
    if shown.trend is not None:
        trend = shown.trend
        charts.append({
            "key": "engagement-trend", "title": "Engagement, last 12 months",
            "spec": {"type": "line", "labels": trend["months"],
                     "series": [{"label": "Active users", "data": trend["active_users"]},
                                {"label": "Completions", "data": trend["completions"]}]},
        })  # fmt: skip
    return charts
