"""Browsing SCORM analytics within a tenant scope: activities, one activity by id, and the
learners' stored summaries (written by `common.analytics.scorm`)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from sqlalchemy import case, func, select

from common.analytics.tables import TableSpec
from common.appdb import AppDB
from common.models.analytics import ScormSummary
from common.moodle import MoodleSource
from common.reports.base import Column
from common.reports.rows import ListRows, SqlRows
from common.tenancy import TenantScope, load_scoped, scoped
from common.tenancy.scope import id_list


@dataclass(frozen=True)
class ScormActivity:
    scormid: int
    courseid: int
    name: str


def scorm_activities(source: MoodleSource, scope: TenantScope) -> list[ScormActivity]:
    """The SCORM activities of the courses in scope."""
    scorm = source.tables.scorm
    query = select(scorm.c.id, scorm.c.course, scorm.c.name).order_by(scorm.c.course, scorm.c.id)
    with source.engine.connect() as conn:
        rows = conn.execute(scoped(query, scope, source)).all()
    return [ScormActivity(int(r.id), int(r.course), str(r.name)) for r in rows]


def load_scorm(source: MoodleSource, scormid: int, scope: TenantScope) -> ScormActivity:
    """One activity in scope; NotFound if there is none, TenantViolation if it is another's."""
    scorm = source.tables.scorm
    query = select(scorm.c.id, scorm.c.course, scorm.c.name).where(scorm.c.id == scormid)
    with source.engine.connect() as conn:
        row = load_scoped(lambda q: conn.execute(q).first(), query, scope, source,
                          what=f"SCORM activity {scormid}")  # fmt: skip
    return ScormActivity(int(row.id), int(row.course), str(row.name))


def scorm_summaries(
    appdb: AppDB,
    source: MoodleSource,
    scope: TenantScope,
    scorm_ids: list[int],
    userid: int | None = None,
) -> list[ScormSummary]:
    """The stored per-learner summaries of these activities (of one learner if given) that
    the scope may see."""
    query = (
        select(ScormSummary)
        .where(ScormSummary.scormid.in_(scorm_ids))
        .order_by(ScormSummary.scormid, ScormSummary.userid)
    )
    if userid is not None:
        query = query.where(ScormSummary.userid == userid)
    with appdb.transaction() as db:
        rows = list(db.scalars(scoped(query, scope, source)).all())
        db.expunge_all()
    return rows


ACTIVITY_TABLE = TableSpec(
    columns=(
        Column("name", "Activity"),
        Column("course", "Course"),
        Column("learners", "Learners", "int"),
        Column("completed", "Completed", "int"),
        Column("passed", "Passed", "int"),
        Column("average_best", "Average best score", "float"),
        Column("avg_attempt_time_s", "Average attempt time", "duration"),
        Column("resumable", "With suspend data", "int"),
    ),
    default_sort="course",
    row_key=("scormid",),
)


def activity_rows(
    appdb: AppDB,
    source: MoodleSource,
    scope: TenantScope,
    course_names: Callable[[set[int]], dict[int, str]],
) -> ListRows:
    """Every activity in scope with its learners' figures (learners in scope only): how many
    completed and passed their last attempt, the average best score, the average time of an
    attempt and how many left suspend data (a resumable attempt)."""
    activities = scorm_activities(source, scope)
    names = course_names({a.courseid for a in activities})
    s = ScormSummary
    query = (
        select(s.scormid, func.count(),
               func.sum(case((s.completion_status == "completed", 1), else_=0)),
               func.sum(case((s.success_status == "passed", 1), else_=0)), func.avg(s.best_score),
               func.sum(case((s.attempts > 0, s.avg_attempt_time_s), else_=0)),
               func.sum(case((s.attempts > 0, 1), else_=0)),
               func.sum(case((s.has_suspend_data.is_(True), 1), else_=0)))
        .where(id_list(ScormSummary.__table__.c.scormid, [a.scormid for a in activities]))
        .group_by(s.scormid)
    )  # fmt: skip
    with appdb.transaction() as db:
        figures = {int(r[0]): r for r in db.execute(scoped(query, scope, source))}
    rows = []
    for a in activities:
        f = figures.get(a.scormid)
        rows.append({
            "scormid": a.scormid, "courseid": a.courseid, "name": a.name,
            "course": names.get(a.courseid, str(a.courseid)),
            "learners": int(f[1]) if f else 0, "completed": int(f[2] or 0) if f else 0,
            "passed": int(f[3] or 0) if f else 0,
            "average_best": round(float(f[4]), 1) if f and f[4] is not None else None,
            "avg_attempt_time_s": round(int(f[5] or 0) / int(f[6])) if f and f[6] else None,
            "resumable": int(f[7] or 0) if f else 0,
        })  # fmt: skip
    return ListRows(rows)


LEARNER_TABLE = TableSpec(
    columns=(
        Column("learner", "Learner", sortable=False),
        Column("completion_status", "Completion"),
        Column("success_status", "Success"),
        Column("best_score", "Best score", "float"),
        Column("interactions", "Interactions", "int"),
        Column("total_time_s", "Total time", "duration"),
        Column("avg_attempt_time_s", "Average attempt time", "duration"),
        Column("has_suspend_data", "Suspend data"),
        Column("lasttracked", "Last tracked", "datetime"),
        Column("attempts", "Attempts", "int"),
    ),
    default_sort="lasttracked",
    default_direction="desc",
    row_key=("userid",),
)


def learner_rows(appdb: AppDB, source: MoodleSource, scope: TenantScope, scormid: int) -> SqlRows:
    """The stored summary of each learner in scope with tracking in one activity."""
    s = ScormSummary
    query = select(
        s.userid, s.completion_status, s.success_status, s.best_score, s.interactions,
        s.total_time_s, s.avg_attempt_time_s, s.has_suspend_data, s.lasttracked, s.attempts,
    ).where(s.scormid == scormid)  # fmt: skip
    return SqlRows(appdb.engine, scoped(query, scope, source))
