"""Engagement per learner and course: active days and time over the last 7 and 30 days,
plus xAPI statements and video watch time where the site has them.

Built from the daily time table (heartbeats where present, else the log estimate) by one
INSERT ... SELECT in the app DB, so a refresh costs one grouped pass over 30 days of daily
rows and sends nothing through Python but the optional xAPI and video figures.
"""

from __future__ import annotations

from datetime import date, timedelta

from sqlalchemy import Integer, bindparam, case, delete, exists, func, or_, select
from sqlalchemy.orm import aliased

from common.analytics.intervals import day_start
from common.analytics.optional_sources import video_seconds, xapi_statements
from common.analytics.upsert import table_of, upsert
from common.appdb import AppDB
from common.models.analytics import Engagement, UsertimeDaily
from common.models.base import UTCDateTime, utcnow
from common.moodle import MoodleSource
from common.settings import Settings


def refresh_engagement(
    appdb: AppDB, source: MoodleSource, settings: Settings, *, today: date
) -> int:
    """Recompute the engagement table as of `today` (UTC); returns the rows written."""
    since_30, since_7 = today - timedelta(days=29), today - timedelta(days=6)
    start = day_start(since_30)
    xapi = xapi_statements(source, settings, start)
    video = video_seconds(source, settings, start)
    now = utcnow()
    d, measured = UsertimeDaily, aliased(UsertimeDaily)
    # A heartbeat figure beats an estimate of the same date (as in usertime.daily_time).
    has_beats = exists().where(
        measured.userid == d.userid, measured.courseid == d.courseid,
        measured.date == d.date, measured.estimated.is_(False),
    )  # fmt: skip
    in_7 = d.date >= since_7
    figures = (
        select(
            d.userid, d.courseid,
            func.sum(case((in_7, 1), else_=0)), func.count(),
            func.sum(case((in_7, d.seconds), else_=0)), func.sum(d.seconds),
            func.max(case((d.estimated.is_(True), 1), else_=0)),
            bindparam("xapi", None if xapi is None else 0, type_=Integer),
            bindparam("video", None if video is None else 0, type_=Integer),
            func.max(d.date), bindparam("computed_at", now, type_=UTCDateTime()),
        )
        .where(d.date >= since_30, d.date <= today, or_(d.estimated.is_(False), ~has_beats))
        .group_by(d.userid, d.courseid)
    )  # fmt: skip
    e = table_of(Engagement)
    columns = ["userid", "courseid", "active_days_7", "active_days_30", "seconds_7",
               "seconds_30", "estimated", "xapi_statements_30", "video_seconds_30",
               "lastactive", "computed_at"]  # fmt: skip
    with appdb.transaction() as session:
        session.execute(delete(e))
        session.execute(e.insert().from_select(columns, figures))
        extra = [
            {"userid": user, "courseid": course, "computed_at": now,
             "xapi_statements_30": None if xapi is None else xapi.get((user, course), 0),
             "video_seconds_30": None if video is None else video.get((user, course), 0)}
            for user, course in sorted(set(xapi or {}) | set(video or {}))
        ]  # fmt: skip
        # Learners with statements or video but no time get a row of their own.
        upsert(session, e, extra, key=("userid", "courseid"),
               update=("xapi_statements_30", "video_seconds_30"))  # fmt: skip
        written = session.scalar(select(func.count()).select_from(e))
    return int(written or 0)
