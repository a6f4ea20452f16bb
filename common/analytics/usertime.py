"""Reading time on task: heartbeat figures where they exist, the log estimate elsewhere."""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass
from datetime import date
from typing import Any

from sqlalchemy import Subquery, case, func, select
from sqlalchemy.orm import Session

from common.models.analytics import UsertimeDaily


@dataclass(frozen=True)
class DailyTime:
    userid: int
    courseid: int
    date: date
    seconds: int
    estimated: bool


def daily_time(
    session: Session,
    *,
    since: date,
    until: date,
    user_ids: Collection[int] | None = None,
    course_ids: Collection[int] | None = None,
) -> list[DailyTime]:
    """One figure per (user, course, date) in [since, until]: measured by heartbeats when any
    beat arrived that day, else estimated from the log (and marked so)."""
    d = UsertimeDaily
    query = select(d.userid, d.courseid, d.date, d.seconds, d.estimated).where(
        d.date >= since, d.date <= until
    )
    if user_ids is not None:
        query = query.where(d.userid.in_(sorted(user_ids)))
    if course_ids is not None:
        query = query.where(d.courseid.in_(sorted(course_ids)))
    chosen: dict[tuple[int, int, date], DailyTime] = {}
    for row in session.execute(query):
        key = (row.userid, row.courseid, row.date)
        if key in chosen and not chosen[key].estimated:
            continue  # a heartbeat figure beats an estimate
        chosen[key] = DailyTime(row.userid, row.courseid, row.date, row.seconds, row.estimated)
    return sorted(chosen.values(), key=lambda t: (t.userid, t.courseid, t.date))


def chosen_daily(since: date, until: date, *where: Any) -> Subquery:
    """The same choice in SQL, for grouping in the database: per (user, course, date) in
    [since, until] (and `where`), `measured` (the heartbeat seconds, NULL when no beat came)
    and `estimate` (the log estimate's). The figure is COALESCE(measured, estimate)."""
    d = UsertimeDaily
    return (
        select(d.userid, d.courseid, d.date,
               func.max(case((d.estimated.is_(False), d.seconds))).label("measured"),
               func.max(case((d.estimated.is_(True), d.seconds))).label("estimate"))
        .where(d.date >= since, d.date <= until, *where)
        .group_by(d.userid, d.courseid, d.date)
        .subquery()
    )  # fmt: skip
