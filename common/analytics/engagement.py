"""Engagement per learner and course: active days and time over the last 7 and 30 days,
plus xAPI statements and video watch time where the site has them.

Built from the daily time table (heartbeats where present, else the log estimate), so it
costs one read of 30 days of daily rows, not of the log.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from datetime import date, timedelta

from sqlalchemy import delete, insert

from common.analytics.intervals import day_start
from common.analytics.optional_sources import video_seconds, xapi_statements
from common.analytics.usertime import daily_time
from common.appdb import AppDB
from common.models.analytics import Engagement
from common.models.base import utcnow
from common.moodle import MoodleSource
from common.settings import Settings

INSERT_BATCH = 2000


@dataclass
class _Tally:
    days_7: int = 0
    days_30: int = 0
    seconds_7: int = 0
    seconds_30: int = 0
    estimated: bool = False
    last: date | None = None


def refresh_engagement(
    appdb: AppDB, source: MoodleSource, settings: Settings, *, today: date
) -> int:
    """Recompute the engagement table as of `today` (UTC); returns the rows written."""
    since_30, since_7 = today - timedelta(days=29), today - timedelta(days=6)
    tallies: dict[tuple[int, int], _Tally] = defaultdict(_Tally)
    with appdb.transaction() as session:
        for figure in daily_time(session, since=since_30, until=today):
            tally = tallies[(figure.userid, figure.courseid)]
            tally.days_30 += 1
            tally.seconds_30 += figure.seconds
            if figure.date >= since_7:
                tally.days_7 += 1
                tally.seconds_7 += figure.seconds
            tally.estimated = tally.estimated or figure.estimated
            tally.last = max(tally.last or figure.date, figure.date)
    start = day_start(since_30)
    xapi = xapi_statements(source, settings, start)
    video = video_seconds(source, settings, start)
    keys = set(tallies) | set(xapi or {}) | set(video or {})
    now = utcnow()
    rows = [
        {
            "userid": user, "courseid": course,
            "active_days_7": tallies[(user, course)].days_7,
            "active_days_30": tallies[(user, course)].days_30,
            "seconds_7": tallies[(user, course)].seconds_7,
            "seconds_30": tallies[(user, course)].seconds_30,
            "estimated": tallies[(user, course)].estimated,
            "xapi_statements_30": None if xapi is None else xapi.get((user, course), 0),
            "video_seconds_30": None if video is None else video.get((user, course), 0),
            "lastactive": tallies[(user, course)].last,
            "computed_at": now,
        }
        for user, course in sorted(keys)
    ]  # fmt: skip
    with appdb.transaction() as session:
        session.execute(delete(Engagement))
        for offset in range(0, len(rows), INSERT_BATCH):
            session.execute(insert(Engagement), rows[offset : offset + INSERT_BATCH])
    return len(rows)
