"""Time on task and active learners per day over the last 30 days, for the overview's charts.

Read from the daily time table within the viewer's tenant scope, one grouped query: a day's
heartbeat figure of a learner in a course beats the log estimate of the same day (the rule
`usertime.daily_time` and the engagement table follow).
"""

from __future__ import annotations

from datetime import date, timedelta
from typing import Any

from sqlalchemy import case, distinct, exists, func, or_, select
from sqlalchemy.orm import Session, aliased

from common.models.analytics import UsertimeDaily
from common.moodle import MoodleSource
from common.tenancy import TenantScope, scoped

DAYS = 30


def daily_time(
    session: Session, scope: TenantScope, source: MoodleSource, today: date, days: int = DAYS
) -> dict[str, Any]:
    """{days: ISO dates oldest first, seconds: per day, learners: active per day, estimated:
    whether any figure of the window is a log estimate}; every day present, zeros included."""
    since = today - timedelta(days=days - 1)
    d, measured = UsertimeDaily, aliased(UsertimeDaily)
    has_beats = exists().where(
        measured.userid == d.userid, measured.courseid == d.courseid,
        measured.date == d.date, measured.estimated.is_(False),
    )  # fmt: skip
    query = (
        select(d.date, func.sum(d.seconds), func.count(distinct(d.userid)),
               func.max(case((d.estimated.is_(True), 1), else_=0)))
        .where(d.date >= since, d.date <= today, or_(d.estimated.is_(False), ~has_beats))
        .group_by(d.date)
    )  # fmt: skip
    found = {row[0]: row for row in session.execute(scoped(query, scope, source))}
    labels, seconds, learners, estimated = [], [], [], False
    for offset in range(days):
        day = since + timedelta(days=offset)
        row = found.get(day)
        labels.append(day.isoformat())
        seconds.append(int(row[1] or 0) if row else 0)
        learners.append(int(row[2] or 0) if row else 0)
        estimated = estimated or bool(row and row[3])
    return {"days": labels, "seconds": seconds, "learners": learners, "estimated": estimated}
