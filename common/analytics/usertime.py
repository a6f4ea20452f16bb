"""Reading time on task: heartbeat figures where they exist, the log estimate elsewhere."""

from __future__ import annotations

from collections.abc import Callable, Collection, Sequence
from dataclasses import dataclass
from datetime import date
from typing import Any

from sqlalchemy import Select, Subquery, case, func, inspect, select, tuple_
from sqlalchemy.orm import Session, aliased
from sqlalchemy.sql.util import ClauseAdapter

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


@dataclass(frozen=True)
class DailyFigure:
    """SQL expressions for one figure per (user, course, date), for `grouped_figures`."""

    userid: Any
    courseid: Any
    date: Any
    seconds: Any
    is_estimate: Any  # 1 when the figure is a log estimate, else 0


def grouped_figures(
    keys: Callable[[DailyFigure], Sequence[Any]],
    columns: Callable[[DailyFigure], Sequence[Any]],
    since: date,
    until: date,
    *where: Any,
) -> list[Select[Any]]:
    """`columns` grouped by `keys` over the daily figures in [since, until] (and `where`, on
    UsertimeDaily), a heartbeat figure beating an estimate of the same (user, course, date).

    Two queries, whose rows together are every group's: the groups with estimates only, where
    each row is one date's figure and one GROUP BY over the table gives them (most groups on
    most sites, and a fifth of the cost of picking per date first), and the groups with
    heartbeat figures, where a date may have both and is grouped first to pick one."""
    d = UsertimeDaily
    table = DailyFigure(d.userid, d.courseid, d.date, d.seconds,
                        case((d.estimated.is_(True), 1), else_=0))  # fmt: skip
    estimates_only = (
        select(*columns(table))
        .where(d.date >= since, d.date <= until, *where)
        .group_by(*keys(table))
        .having(func.min(table.is_estimate) == 1)
    )
    m = aliased(UsertimeDaily)
    on_m = ClauseAdapter(inspect(m).selectable)  # `where` said of the table, said of the alias
    beaten = select(*keys(DailyFigure(m.userid, m.courseid, m.date, m.seconds, None))).where(
        m.date >= since, m.date <= until, m.estimated.is_(False),
        *(on_m.traverse(clause) for clause in where),
    )  # fmt: skip
    k = chosen_daily(since, until, *where, tuple_(*keys(table)).in_(beaten))
    picked = DailyFigure(k.c.userid, k.c.courseid, k.c.date,
                         func.coalesce(k.c.measured, k.c.estimate),
                         case((k.c.measured.is_(None), 1), else_=0))  # fmt: skip
    with_heartbeats = select(*columns(picked)).group_by(*keys(picked))
    return [estimates_only, with_heartbeats]
