"""Engagement per learner and course: active days and time over the last 7 and 30 days,
plus xAPI statements and video watch time where the site has them.

Built from the daily time table (heartbeats where present, else the log estimate) by
INSERT ... SELECT in the app DB, so nothing goes through Python but the optional xAPI and
video figures.

The first refresh computes every learner. Later ones recompute only the (user, course) pairs
whose figures can have changed since the previous refresh: those with daily rows written
since, and those with activity on a date that left the 7- or 30-day window or entered it as
the date moved on. So a refresh costs what changed, not the size of the site, and gives
exactly what a full one would (tests/common/analytics/test_engagement.py).
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import date, datetime, timedelta
from typing import Any

from sqlalchemy import (
    Integer,
    Select,
    bindparam,
    case,
    delete,
    func,
    select,
    tuple_,
    update,
)
from sqlalchemy.orm import Session

from common.analytics.intervals import day_start
from common.analytics.optional_sources import video_seconds, xapi_statements
from common.analytics.state import daily_writes_seen, read_mark, write_mark
from common.analytics.upsert import upsert
from common.analytics.usertime import DailyFigure, grouped_figures
from common.appdb import AppDB
from common.models.analytics import Engagement, UsertimeDaily
from common.models.base import UTCDateTime, table_of, utcnow
from common.moodle import MoodleSource
from common.settings import Settings

AS_OF_MARK = "engagement.as_of"  # the date (ordinal) the stored figures are as of
SEEN_MARK = "engagement.daily_writes_seen"  # daily rows written after it are not in them
SOURCES_MARK = "engagement.optional_sources"  # 1 + which optional figures they carry
USER_BATCH = 500
MOST_USERS = 2  # recomputing more than 1/MOST_USERS of the learners: a full refresh instead
COLUMNS = ["userid", "courseid", "active_days_7", "active_days_30", "seconds_7", "seconds_30",
           "estimated", "xapi_statements_30", "video_seconds_30", "lastactive",
           "computed_at"]  # fmt: skip

Pair = tuple[int, int]


def refresh_engagement(
    appdb: AppDB, source: MoodleSource, settings: Settings, *, today: date
) -> int:
    """Bring the engagement table up to `today` (UTC); returns the rows it holds."""
    since_30 = today - timedelta(days=29)
    start = day_start(since_30)
    xapi = xapi_statements(source, settings, start)
    video = video_seconds(source, settings, start)
    sources = 1 + (xapi is not None) + 2 * (video is not None)
    now = utcnow()
    tracked = (today, xapi is not None, video is not None, now)
    extra = {pair: _extra(pair, xapi, video, now) for pair in set(xapi or {}) | set(video or {})}
    e = table_of(Engagement)
    with appdb.transaction() as session:
        writes = daily_writes_seen(session)
        stored_as_of = read_mark(session, AS_OF_MARK)  # 0 before the first refresh
        as_of = date.fromordinal(stored_as_of or 1)
        seen = read_mark(session, SEEN_MARK)
        incremental = (
            stored_as_of > 0
            and seen > 0
            and read_mark(session, SOURCES_MARK) == sources
            and as_of <= today < as_of + timedelta(days=30)
        )  # fmt: skip
        users = _users_to_recompute(session, as_of, today, seen) if incremental else []
        if incremental and len(users) * MOST_USERS > _users_held(session):
            incremental = False  # most learners changed: one grouped pass beats batches
        if incremental:
            for offset in range(0, len(users), USER_BATCH):
                batch = users[offset : offset + USER_BATCH]
                session.execute(delete(e).where(e.c.userid.in_(batch)))
                for mine in _figures(*tracked, UsertimeDaily.userid.in_(batch)):
                    session.execute(e.insert().from_select(COLUMNS, mine))
            _clear_optional(session, xapi, video)
        else:
            session.execute(delete(e))
            for every in _figures(*tracked):
                session.execute(e.insert().from_select(COLUMNS, every))
        # Learners with statements or video but no time get a row of their own.
        upsert(session, e, list(extra.values()), key=("userid", "courseid"),
               update=("xapi_statements_30", "video_seconds_30"))  # fmt: skip
        if incremental:
            _drop_rows_left_empty(session, set(extra))
        write_mark(session, AS_OF_MARK, today.toordinal())
        write_mark(session, SEEN_MARK, writes)
        write_mark(session, SOURCES_MARK, sources)
        written = session.scalar(select(func.count()).select_from(e))
    return int(written or 0)


def _figures(
    today: date, has_xapi: bool, has_video: bool, now: datetime, *where: Any
) -> list[Select[Any]]:
    """Learners' figures as of `today`, one row per (user, course) with activity in the 30
    days (of the daily rows matching `where`), over the queries' rows together; the optional
    columns 0 where tracked (filled in afterwards), NULL where not."""
    in_7 = today - timedelta(days=6)

    def columns(f: DailyFigure) -> list[Any]:
        return [
            f.userid, f.courseid,
            func.sum(case((f.date >= in_7, 1), else_=0)), func.count(),
            func.sum(case((f.date >= in_7, f.seconds), else_=0)), func.sum(f.seconds),
            # Compared, not the bare MAX: a boolean on PostgreSQL, 0/1 elsewhere.
            func.max(f.is_estimate) == 1,
            bindparam("xapi", 0 if has_xapi else None, type_=Integer),
            bindparam("video", 0 if has_video else None, type_=Integer),
            func.max(f.date), bindparam("computed_at", now, type_=UTCDateTime()),
        ]  # fmt: skip

    return grouped_figures(lambda f: (f.userid, f.courseid), columns,
                           today - timedelta(days=29), today, *where)  # fmt: skip


def _extra(
    pair: Pair, xapi: dict[Pair, int] | None, video: dict[Pair, int] | None, now: datetime
) -> dict[str, object]:
    return {"userid": pair[0], "courseid": pair[1], "computed_at": now,
            "xapi_statements_30": None if xapi is None else xapi.get(pair, 0),
            "video_seconds_30": None if video is None else video.get(pair, 0)}  # fmt: skip


def _users_to_recompute(session: Session, as_of: date, today: date, seen: int) -> list[int]:
    """Learners with daily rows written since the last refresh, or with activity on a date
    that moved across a window's edge between `as_of` and `today`: out of the 30 or the 7
    days, or into them (a row dated ahead of the clock)."""
    d = UsertimeDaily
    conditions = [
        d.writeseq > seen,
        d.date.between(as_of - timedelta(days=29), today - timedelta(days=30)),
        d.date.between(as_of - timedelta(days=6), today - timedelta(days=7)),
        d.date.between(as_of + timedelta(days=1), today),
    ]
    # One query a condition, each served by its own index (an OR of them is a table scan).
    users: set[int] = set()
    for condition in conditions:
        found = session.scalars(select(d.userid).where(condition).distinct())
        users.update(int(user) for user in found)
    return sorted(users)


def _users_held(session: Session) -> int:
    return int(session.scalar(select(func.count(func.distinct(Engagement.userid)))) or 0)


def _clear_optional(
    session: Session, xapi: dict[Pair, int] | None, video: dict[Pair, int] | None
) -> None:
    """Zero the xAPI and video figures of learners who have none in the 30 days any more
    (the rows recomputed here start at 0; the others keep the previous refresh's)."""
    e = Engagement
    for column, now_counted in ((e.xapi_statements_30, xapi), (e.video_seconds_30, video)):
        if now_counted is None:
            continue
        held = session.execute(select(e.userid, e.courseid).where(column > 0)).all()
        gone = [(int(u), int(c)) for u, c in held if (int(u), int(c)) not in now_counted]
        for batch in _batches(gone):
            session.execute(
                update(e).where(tuple_(e.userid, e.courseid).in_(batch)).values({column: 0})
            )


def _drop_rows_left_empty(session: Session, extra: set[Pair]) -> None:
    """Rows with no active day exist only for xAPI or video figures: drop those whose learner
    has none now (a full refresh would not write them)."""
    e = Engagement
    held = session.execute(select(e.userid, e.courseid).where(e.active_days_30 == 0)).all()
    gone = [(int(u), int(c)) for u, c in held if (int(u), int(c)) not in extra]
    for batch in _batches(gone):
        session.execute(delete(e).where(tuple_(e.userid, e.courseid).in_(batch)))


def _batches(pairs: list[Pair]) -> Iterable[list[Pair]]:
    for offset in range(0, len(pairs), USER_BATCH):
        yield pairs[offset : offset + USER_BATCH]
