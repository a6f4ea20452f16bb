"""Engagement figures from crafted daily rows, against hand-computed values."""

from datetime import date, timedelta

import pytest
from sqlalchemy import insert, select

from common.analytics.engagement import refresh_engagement
from common.db import make_engine
from common.models.analytics import Engagement, UsertimeDaily
from common.moodle import MoodleSource
from common.settings import load_settings
from tests.factories.moodle import MoodleFactory

TODAY = date(2026, 11, 18)


@pytest.fixture
def source(moodle_url):
    engine = make_engine(moodle_url)
    MoodleFactory(engine, now=1_795_000_000)  # an empty site: no xAPI or video tables
    src = MoodleSource(moodle_url)
    yield src
    src.dispose()
    engine.dispose()


def daily(user, course, days_ago, seconds, estimated):
    return {"userid": user, "courseid": course, "date": TODAY - timedelta(days=days_ago),
            "seconds": seconds, "estimated": estimated}  # fmt: skip


def test_7_and_30_day_figures_take_heartbeats_over_estimates(appdb, source, tmp_path):
    with appdb.transaction() as session:
        session.execute(insert(UsertimeDaily), [
            daily(2, 10, 0, 600, True), daily(2, 10, 0, 60, False),  # the beat's 60 s win
            daily(2, 10, 6, 100, True), daily(2, 10, 7, 50, True), daily(2, 10, 29, 10, True),
            daily(2, 10, 30, 999, True),  # 31 days ago: outside the window
            daily(3, 10, 3, 300, False),
            daily(3, 11, 30, 40, True),  # nothing within 30 days: no row
            daily(3, 10, -1, 70, False),  # tomorrow: not yet
        ])  # fmt: skip
    settings = load_settings({"MANIREPORTS_INSTANCE": str(tmp_path / "instance")})

    written = refresh_engagement(appdb, source, settings, today=TODAY)

    with appdb.transaction() as session:
        e = Engagement
        rows = session.execute(
            select(e.userid, e.courseid, e.active_days_7, e.active_days_30, e.seconds_7,
                   e.seconds_30, e.estimated, e.lastactive, e.xapi_statements_30,
                   e.video_seconds_30).order_by(e.userid, e.courseid)
        ).all()  # fmt: skip
    assert written == 2
    assert [tuple(r) for r in rows] == [
        (2, 10, 2, 4, 60 + 100, 60 + 100 + 50 + 10, True, TODAY, None, None),
        (3, 10, 1, 1, 300, 300, False, TODAY - timedelta(days=3), None, None),
    ]  # fmt: skip


def test_a_refresh_replaces_the_previous_figures(appdb, source, tmp_path):
    settings = load_settings({"MANIREPORTS_INSTANCE": str(tmp_path / "instance")})
    with appdb.transaction() as session:
        session.execute(insert(UsertimeDaily), [daily(2, 10, 0, 600, True)])
    refresh_engagement(appdb, source, settings, today=TODAY)
    assert refresh_engagement(appdb, source, settings, today=TODAY + timedelta(days=40)) == 0
    with appdb.transaction() as session:
        assert session.scalars(select(Engagement.userid)).all() == []
