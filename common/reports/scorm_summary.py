"""SCORM summary: per SCORM activity, learners with attempts, attempts, completed, passed,
average best score and average time.

Figures come from the aggregator's per-learner summaries (`manireports_scorm_summary`, built
from either SCORM tracking layout by `common.analytics.scorm`), grouped per activity in the app
DB; activity and course names come from Moodle. Every activity of the courses in scope is
listed, those nobody attempted with zeros.

Who counts: every user with a summary (Moodle's own SCORM report also lists any enrolled user
who may save tracks, teachers included) who is visible in the scope — except deleted users:
Moodle keeps a deleted user's tracking, so their summaries are excluded by the ids of the
deleted accounts (read from Moodle through the scope). "Completed" is a last attempt whose
completion status is `completed` (SCORM 1.2 `passed`/`failed` are completed too), "passed" one
whose success status is `passed`. The average score is over the learners who have a score; the
average time is the mean of each learner's total time over all their attempts.
"""

from __future__ import annotations

import functools
from collections.abc import Mapping, Sequence
from typing import Any

from sqlalchemy import BigInteger, ColumnElement, Select, bindparam, case, func, select

from common.access import capabilities as caps
from common.models.analytics import ScormSummary
from common.moodle import MoodleTables
from common.reports.base import Column, Report, ReportData, RunContext, register
from common.reports.params import course_filter
from common.reports.rows import ListRows
from common.tenancy import id_list, scoped

CHART_ACTIVITIES = 25  # the chart shows the activities with most learners; the table all


@register
class ScormSummaryReport(Report):
    type_name = "scorm_summary"
    title = "SCORM summary"
    description = "Attempts, completions, passes, scores and time per SCORM activity."
    capabilities = (
        caps.VIEW_ADMIN_DASHBOARD,
        caps.VIEW_MANAGER_DASHBOARD,
        caps.VIEW_TEACHER_DASHBOARD,
    )
    columns = (
        Column("course", "Course", drill="course"),
        Column("activity", "Activity"),
        Column("learners", "Learners with attempts", "int"),
        Column("attempts", "Attempts", "int"),
        Column("completed", "Completed", "int"),
        Column("passed", "Passed", "int"),
        Column("avg_score", "Average score", "float"),
        Column("avg_time", "Average time per learner", "duration"),
    )
    params = (course_filter(),)
    default_sort = "course"
    row_key = ("course", "activity", "scorm_id")

    def run(self, ctx: RunContext, params: Mapping[str, Any]) -> ReportData:
        source, appdb = ctx.source, ctx.require_appdb()
        course = params.get("course")
        values: dict[str, Any] = {"course": course}
        with source.engine.connect() as conn:
            activities = conn.execute(
                scoped(_activities_query(source.prefix, course is not None), ctx.scope, source),
                values,
            ).all()
            deleted = conn.scalars(scoped(_deleted_query(source.prefix), ctx.scope, source)).all()
        figures: dict[int, Any] = {}
        distinct_learners = 0
        if activities:
            grouped, learners = _figures_queries(
                course is not None,
                tuple(sorted(int(u) for u in deleted)),
                tuple(sorted(int(a.id) for a in activities)),
            )
            with appdb.engine.connect() as conn:
                figures = {
                    int(r.scormid): r
                    for r in conn.execute(scoped(grouped, ctx.scope, source), values)
                }
                distinct_learners = int(
                    conn.scalar(scoped(learners, ctx.scope, source), values) or 0
                )
        rows = _rows(activities, figures)
        return ReportData(
            rows=ListRows(rows),
            chart=lambda: _chart(rows),
            kpis=lambda: _kpis(rows, distinct_learners),
        )


@functools.cache
def _activities_query(prefix: str, by_course: bool) -> Select:  # type: ignore[type-arg]
    """Every SCORM activity of the courses in scope, with its course's name."""
    t = MoodleTables(prefix)
    scorm, course = t.scorm, t.course
    query = select(
        scorm.c.id, scorm.c.name, course.c.id.label("course_id"), course.c.fullname
    ).join(course, course.c.id == scorm.c.course)
    if by_course:
        query = query.where(scorm.c.course == bindparam("course", type_=BigInteger))
    return query


@functools.cache
def _deleted_query(prefix: str) -> Select:  # type: ignore[type-arg]
    user = MoodleTables(prefix).user
    return select(user.c.id).where(user.c.deleted != 0)


@functools.lru_cache(maxsize=64)
def _figures_queries(
    by_course: bool, deleted: tuple[int, ...], scorms: tuple[int, ...]
) -> tuple[Select, Select]:  # type: ignore[type-arg]
    """Per activity figures, and the distinct learners over the activities listed, in the app
    DB, leaving out the `deleted` users (ids written into the SQL: there may be more than
    SQLite binds). The same lists give the same query objects, so the tenancy layer scopes
    them once rather than on every request."""
    s = ScormSummary
    conditions: list[ColumnElement[bool]] = [~id_list(s.userid, deleted)]
    if by_course:
        conditions.append(s.courseid == bindparam("course", type_=BigInteger))
    grouped = (
        select(
            s.scormid,
            func.count().label("learners"),
            func.coalesce(func.sum(s.attempts), 0).label("attempts"),
            func.coalesce(
                func.sum(case((s.completion_status == "completed", 1), else_=0)), 0
            ).label("completed"),
            func.coalesce(func.sum(case((s.success_status == "passed", 1), else_=0)), 0).label(
                "passed"
            ),
            func.avg(s.best_score).label("avg_score"),
            func.avg(s.total_time_s).label("avg_time"),
        )
        .where(*conditions)
        .group_by(s.scormid)
    )
    learners = select(func.count(func.distinct(s.userid))).where(
        *conditions, id_list(s.scormid, scorms)
    )
    return grouped, learners


def _rows(activities: Sequence[Any], figures: Mapping[int, Any]) -> list[dict[str, Any]]:
    rows = []
    for activity in activities:
        found = figures.get(int(activity.id))
        score = None if found is None or found.avg_score is None else float(found.avg_score)
        rows.append({
            "scorm_id": int(activity.id),
            "course_id": int(activity.course_id),
            "course": activity.fullname,
            "activity": activity.name,
            "learners": int(found.learners) if found else 0,
            "attempts": int(found.attempts) if found else 0,
            "completed": int(found.completed) if found else 0,
            "passed": int(found.passed) if found else 0,
            "avg_score": None if score is None else round(score, 1),
            "avg_time": int(round(float(found.avg_time))) if found and found.avg_time else 0,
        })  # fmt: skip
    rows.sort(key=lambda r: (r["course"], r["activity"], r["scorm_id"]))
    return rows


def _chart(rows: list[dict[str, Any]]) -> dict[str, Any] | None:
    """Learners who attempted and who completed, for the activities with most learners;
    clicking one filters by its course."""
    if not rows:
        return None
    shown = sorted(rows, key=lambda r: (-r["learners"], r["course"], r["activity"],
                                        r["scorm_id"]))[:CHART_ACTIVITIES]  # fmt: skip
    return {
        "type": "bar",
        "labels": [f"{r['activity']} ({r['course']})" for r in shown],
        "series": [
            {"label": "Attempted", "data": [r["learners"] for r in shown]},
            {"label": "Completed", "data": [r["completed"] for r in shown]},
        ],
        "drill": {"param": "course", "values": [r["course_id"] for r in shown]},
    }


def _kpis(rows: list[dict[str, Any]], learners: int) -> list[dict[str, Any]]:
    attempted = sum(r["learners"] for r in rows)
    completed = sum(r["completed"] for r in rows)
    return [
        {"key": "activities", "label": "SCORM activities", "value": len(rows), "kind": "int"},
        {"key": "learners", "label": "Learners with attempts", "value": learners, "kind": "int"},
        {"key": "attempts", "label": "Attempts", "value": sum(r["attempts"] for r in rows),
         "kind": "int"},
        {"key": "completion_pct", "label": "Completed of attempted", "kind": "percent",
         "value": round(100.0 * completed / attempted, 1) if attempted else 0.0},
        {"key": "passed", "label": "Passed", "value": sum(r["passed"] for r in rows),
         "kind": "int"},
    ]  # fmt: skip
