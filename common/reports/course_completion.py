"""Course completion: per course, enrolled, completed, completion % and the recent trend.

"Enrolled" counts learners as Moodle's completion report does: an active enrolment (NOTES.md
§6: an enabled enrol instance, an active user_enrolments row inside its time window, a user not
deleted) and a student-archetype role in the course context (Moodle's default gradebookroles),
so teachers enrolled in their course are not counted as learners. "Completed" is a
course_completions row with timecompleted set (NULL until complete, NOTES.md §5).
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Select, and_, case, func, or_, select

from common.access import capabilities as caps
from common.moodle import MoodleSource, MoodleTables
from common.reports.base import Column, Report, ReportResult, choice_param, register
from common.tenancy import TenantScope

DAY_S = 86400
SITE_COURSE_ID = 1
CONTEXT_COURSE = 50


def _active_enrolments(t: MoodleTables, scope: TenantScope, now: int) -> Select:  # type: ignore[type-arg]
    """(courseid, userid) of every actively enrolled learner the scope may see, once per pair."""
    e, ue, u = t.enrol, t.user_enrolments, t.user
    ra, ctx, role = t.role_assignments, t.context, t.role
    is_learner = (
        select(ra.c.id)
        .join(ctx, ctx.c.id == ra.c.contextid)
        .join(role, role.c.id == ra.c.roleid)
        .where(
            ra.c.userid == ue.c.userid,
            ctx.c.contextlevel == CONTEXT_COURSE,
            ctx.c.instanceid == e.c.courseid,
            role.c.archetype == "student",
        )
        .exists()
    )
    return (
        select(e.c.courseid.label("courseid"), ue.c.userid.label("userid"))
        .join(ue, ue.c.enrolid == e.c.id)
        .join(u, u.c.id == ue.c.userid)
        .where(
            e.c.status == 0,
            ue.c.status == 0,
            ue.c.timestart <= now,
            or_(ue.c.timeend == 0, ue.c.timeend > now),
            u.c.deleted == 0,
            e.c.courseid != SITE_COURSE_ID,
            scope.restrict_courses(e.c.courseid, t),
            scope.restrict_users(ue.c.userid, t),
            is_learner,
        )
        .distinct()
    )


@register
class CourseCompletionReport(Report):
    type_name = "course_completion"
    title = "Course completion"
    description = "Enrolled and completed learners per course, with the completion trend."
    capabilities = (
        caps.VIEW_ADMIN_DASHBOARD,
        caps.VIEW_MANAGER_DASHBOARD,
        caps.VIEW_TEACHER_DASHBOARD,
    )
    columns = [
        Column("course", "Course"),
        Column("enrolled", "Enrolled", "int"),
        Column("completed", "Completed", "int"),
        Column("completion_pct", "Completion %", "percent"),
        Column("completed_in_range", "Completed in range", "int"),
    ]

    def parse_params(self, raw: Mapping[str, str]) -> dict[str, Any]:
        return {"days": choice_param(raw, "days", (30, 90), 30)}

    def run(
        self,
        source: MoodleSource,
        scope: TenantScope,
        params: Mapping[str, Any],
        *,
        now: int,
        tz_offset_s: int = 0,
    ) -> ReportResult:
        t = source.tables
        since = now - params["days"] * DAY_S
        enrolled = _active_enrolments(t, scope, now).subquery("enrolled")
        cc, course = t.course_completions, t.course
        done = cc.c.timecompleted.isnot(None)
        per_course = (
            select(
                course.c.id,
                course.c.fullname,
                func.count().label("enrolled"),
                func.sum(case((done, 1), else_=0)).label("completed"),
                func.sum(case((and_(done, cc.c.timecompleted >= since), 1), else_=0)).label(
                    "completed_in_range"
                ),
            )
            .select_from(enrolled)
            .join(course, course.c.id == enrolled.c.courseid)
            .outerjoin(
                cc, and_(cc.c.course == enrolled.c.courseid, cc.c.userid == enrolled.c.userid)
            )
            .group_by(course.c.id, course.c.fullname)
            .order_by(course.c.fullname, course.c.id)
        )
        # Day start by integer modulo: plain division is decimal on MariaDB, and casting rounds.
        local = cc.c.timecompleted + tz_offset_s
        day = local - (local % DAY_S)
        trend = (
            select(day.label("day"), func.count().label("n"))
            .select_from(enrolled)
            .join(cc, and_(cc.c.course == enrolled.c.courseid, cc.c.userid == enrolled.c.userid))
            .where(cc.c.timecompleted >= since)
            .group_by(day)
        )
        with source.engine.connect() as conn:
            rows = [_row(r) for r in conn.execute(per_course)]
            by_day = {int(r.day) // DAY_S: int(r.n) for r in conn.execute(trend)}
        return ReportResult(
            columns=self.columns,
            rows=rows,
            chart=_trend_chart(by_day, since, now, tz_offset_s),
            params=dict(params),
        )


def _row(r: Any) -> dict[str, Any]:
    enrolled, completed = int(r.enrolled), int(r.completed or 0)
    return {
        "course_id": int(r.id),
        "course": r.fullname,
        "enrolled": enrolled,
        "completed": completed,
        "completion_pct": round(100.0 * completed / enrolled, 1) if enrolled else 0.0,
        "completed_in_range": int(r.completed_in_range or 0),
    }


def _trend_chart(by_day: dict[int, int], since: int, now: int, tz_offset_s: int) -> dict[str, Any]:
    """Completions per local day over the range, zero-filled so the line has no gaps."""
    first, last = (since + tz_offset_s) // DAY_S, (now + tz_offset_s) // DAY_S
    days = range(first, last + 1)
    return {
        "type": "line",
        "labels": [datetime.fromtimestamp(d * DAY_S, UTC).date().isoformat() for d in days],
        "series": [{"label": "Completions", "data": [by_day.get(d, 0) for d in days]}],
    }
