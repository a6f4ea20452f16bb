"""xAPI statements and video watch time join engagement where their tables exist and their
settings are on, and are absent (None) otherwise."""

from datetime import UTC, date, datetime, timedelta

import pytest
from sqlalchemy import insert, select

from common.analytics.engagement import refresh_engagement
from common.analytics.optional_sources import video_table, xapi_table
from common.db import make_engine
from common.models.analytics import Engagement, UsertimeDaily
from common.moodle import MoodleSource
from common.settings import load_settings
from tests.factories.moodle import MoodleFactory

TODAY = date(2026, 11, 18)
YESTERDAY = int(datetime(2026, 11, 17, 12, tzinfo=UTC).timestamp())
LONG_AGO = int(datetime(2026, 9, 1, tzinfo=UTC).timestamp())  # before the 30-day window


def numbered(rows):
    # The plugin tables' stand-ins have BIGINT ids, which SQLite does not auto-number.
    return [{"id": n, **row} for n, row in enumerate(rows, start=1)]


def daily_row(course):
    return {
        "userid": 2,
        "courseid": course,
        "date": TODAY - timedelta(days=1),
        "seconds": 60,
        "estimated": False,
    }


@pytest.fixture
def site(moodle_url):
    engine = make_engine(moodle_url)
    moodle = MoodleFactory(engine, now=YESTERDAY)
    course = moodle.course()
    video = moodle.module(course)  # mod_videotime is a plugin; any course module will do
    xapi, watched = xapi_table("mdl_"), video_table("mdl_")
    xapi.create(engine)
    watched.create(engine)
    with engine.begin() as conn:
        conn.execute(insert(xapi), numbered([
            {"userid": 2, "courseid": course, "timecreated": YESTERDAY},
            {"userid": 2, "courseid": course, "timecreated": YESTERDAY - 3600},
            {"userid": 2, "courseid": course, "timecreated": YESTERDAY - 10 * 86400},
            {"userid": 2, "courseid": course, "timecreated": LONG_AGO},  # outside the window
            {"userid": 2, "courseid": 0, "timecreated": YESTERDAY},  # no course: not counted
            {"userid": 4, "courseid": course, "timecreated": YESTERDAY},
            {"userid": 4, "courseid": course, "timecreated": YESTERDAY},
        ]))  # fmt: skip
        conn.execute(insert(watched), numbered([
            {"user_id": 2, "module_id": video.cm_id, "time": 100, "timestarted": YESTERDAY},
            {"user_id": 2, "module_id": video.cm_id, "time": 50, "timestarted": YESTERDAY - 60},
            {"user_id": 2, "module_id": video.cm_id, "time": 999, "timestarted": LONG_AGO},
        ]))  # fmt: skip
    source = MoodleSource(moodle_url)
    yield source, course
    source.dispose()
    engine.dispose()


def engagement(appdb, source, tmp_path, **env):
    settings = load_settings({"MANIREPORTS_INSTANCE": str(tmp_path / "instance"), **env})
    refresh_engagement(appdb, source, settings, today=TODAY)
    with appdb.transaction() as session:
        e = Engagement
        rows = session.execute(
            select(e.userid, e.courseid, e.xapi_statements_30, e.video_seconds_30)
            .order_by(e.userid)
        ).all()  # fmt: skip
    return [tuple(r) for r in rows]


def test_statements_and_video_are_counted_when_enabled(appdb, site, tmp_path):
    source, course = site
    with appdb.transaction() as session:
        session.execute(insert(UsertimeDaily), [daily_row(course)])
    rows = engagement(appdb, source, tmp_path, ANALYTICS_XAPI_ENABLED="true",
                      ANALYTICS_VIDEO_ENABLED="true")  # fmt: skip
    # User 4 has statements but no tracked time: a row of their own.
    assert rows == [(2, course, 3, 150), (4, course, 2, 0)]


def test_disabled_sources_are_absent_not_zero(appdb, site, tmp_path):
    source, course = site
    with appdb.transaction() as session:
        session.execute(insert(UsertimeDaily), [daily_row(course)])
    assert engagement(appdb, source, tmp_path) == [(2, course, None, None)]
