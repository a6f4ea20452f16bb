"""The heavy figures dashboards show from the cache: 12-month trends and per-company rollups.

Each builder computes the figures for every scope at once (the whole site and each company),
with one grouped query over the Moodle DB, so a refresh costs one pass, not one per company.
The activity trend, which reads the whole log, is kept incrementally in `activity_months`.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Select, case, func, literal, select
from sqlalchemy.orm import Session

from common.models.analytics import Engagement
from common.moodle import MoodleSource

SITE = None  # the scope key of site-wide figures
Scope = int | None  # a company id, or SITE

MONTHS = 12


def month_starts(now: int, months: int = MONTHS) -> list[int]:
    """Unix times of the first instant of each of the last `months` UTC months, oldest first."""
    moment = datetime.fromtimestamp(now, UTC)
    year, month = moment.year, moment.month
    starts = []
    for _ in range(months):
        starts.append(int(datetime(year, month, 1, tzinfo=UTC).timestamp()))
        year, month = (year, month - 1) if month > 1 else (year - 1, 12)
    return starts[::-1]


def month_bucket(column: Any, starts: list[int]) -> Any:
    # A CASE over the month boundaries: portable SQL for "which month is this time in".
    return case(
        *((column >= start, literal(index)) for index, start in reversed(list(enumerate(starts)))),
        else_=literal(-1),
    )


def _companies(source: MoodleSource) -> bool:
    return source.features().has_iomad


def completion_trend(source: MoodleSource, now: int) -> dict[Scope, dict[str, Any]]:
    """Per month: course completions, site-wide and per company of the learner."""
    starts = month_starts(now)
    cc = source.tables.course_completions
    bucket = month_bucket(cc.c.timecompleted, starts).label("bucket")
    done = (cc.c.timecompleted >= starts[0], cc.c.timecompleted <= now)
    results: dict[Scope, dict[str, Any]] = defaultdict(lambda: empty_trend(starts))
    with source.engine.connect() as conn:
        for index, count in conn.execute(
            select(bucket, func.count()).where(*done).group_by(bucket)
        ):
            results[SITE]["completions"][index] = int(count)
        if _companies(source):
            cu = source.tables.company_users
            members = select(cu.c.companyid, cu.c.userid).distinct().subquery()
            query = (
                select(members.c.companyid, bucket, func.count())
                .join(members, members.c.userid == cc.c.userid)
                .where(*done)
                .group_by(members.c.companyid, bucket)
            )
            for company, index, count in conn.execute(query):
                results[int(company)]["completions"][index] = int(count)
    return dict(results)


def empty_trend(starts: list[int]) -> dict[str, Any]:
    labels = [datetime.fromtimestamp(s, UTC).strftime("%Y-%m") for s in starts]
    zeros = [0] * len(starts)
    return {"months": labels, "events": list(zeros), "active_users": list(zeros),
            "completions": list(zeros)}  # fmt: skip


def company_members(source: MoodleSource) -> dict[int, set[int]]:
    """Company id -> its user ids (empty on a site without IOMAD)."""
    if not _companies(source):
        return {}
    cu = source.tables.company_users
    members: dict[int, set[int]] = defaultdict(set)
    with source.engine.connect() as conn:
        for company, user in conn.execute(select(cu.c.companyid, cu.c.userid)):
            members[int(company)].add(int(user))
    return dict(members)


def engagement_rollup(
    session: Session, members: dict[int, set[int]]
) -> dict[Scope, dict[str, Any]]:
    """Per course: learners active in 7 and 30 days, their time, xAPI statements and video
    time — for the site and for each company. (Flagged learners are not cached: the overview
    counts them from the risk scores when it is read, as the at-risk list does.)"""
    user_scopes: dict[int, list[Scope]] = defaultdict(lambda: [SITE])
    for company, users in members.items():
        for user in users:
            user_scopes[user].append(company)
    courses: dict[Scope, dict[int, dict[str, Any]]] = defaultdict(dict)
    for row in _engagement_rows(session, select):
        for scope in user_scopes[row.userid]:
            _add_learner(courses[scope], row)
    return {scope: _by_course(by_course) for scope, by_course in courses.items()}


def engagement_by_course(
    session: Session,
    restrict: Callable[[Select], Select],  # type: ignore[type-arg]
) -> dict[str, Any]:
    """The same per-course figures over the learners and courses ``restrict`` lets through
    (a tenant scope narrower than a company: a teacher's courses, a department)."""
    by_course: dict[int, dict[str, Any]] = {}
    for row in _engagement_rows(session, lambda *cols: restrict(select(*cols))):
        _add_learner(by_course, row)
    return _by_course(by_course)


def _engagement_rows(session: Session, query: Callable[..., Select]) -> list[Any]:  # type: ignore[type-arg]
    e = Engagement
    return list(
        session.execute(
            query(e.userid, e.courseid, e.active_days_7, e.active_days_30, e.seconds_30,
                  e.estimated, e.xapi_statements_30, e.video_seconds_30)
        )
    )  # fmt: skip


def _add_optional(figures: dict[str, Any], key: str, value: int | None) -> None:
    # None: the source is not tracked on this site; the sum stays None until a value comes.
    if value is not None:
        figures[key] = (figures[key] or 0) + value


def _add_learner(by_course: dict[int, dict[str, Any]], row: Any) -> None:
    figures = by_course.setdefault(
        row.courseid,
        {"course": row.courseid, "active_7": 0, "active_30": 0, "seconds_30": 0,
         "estimated": False, "xapi_statements_30": None, "video_seconds_30": None},
    )  # fmt: skip
    figures["active_7"] += row.active_days_7 > 0
    figures["active_30"] += row.active_days_30 > 0
    figures["seconds_30"] += row.seconds_30
    figures["estimated"] = figures["estimated"] or row.estimated
    _add_optional(figures, "xapi_statements_30", row.xapi_statements_30)
    _add_optional(figures, "video_seconds_30", row.video_seconds_30)


def _by_course(by_course: dict[int, dict[str, Any]]) -> dict[str, Any]:
    return {"courses": sorted(by_course.values(), key=lambda f: f["course"])}


Builder = Callable[..., dict[Scope, dict[str, Any]]]
