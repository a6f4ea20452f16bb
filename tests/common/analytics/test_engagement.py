"""Engagement figures from crafted daily rows, against hand-computed values."""

import random
import threading
from datetime import date, timedelta

import pytest
from sqlalchemy import delete, func, insert, select

from common.analytics import state
from common.analytics.engagement import AS_OF_MARK, refresh_engagement
from common.analytics.upsert import upsert
from common.db import make_engine
from common.models.analytics import AnalyticsState, Engagement, UsertimeDaily
from common.models.base import table_of, utcnow
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
            # estimates only, the pass without heartbeat figures to pick from
            daily(4, 10, 2, 500, True), daily(4, 10, 8, 200, True), daily(4, 10, 31, 9, True),
            daily(4, 11, 0, 0, True),  # a single click
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
    assert written == 4
    assert [tuple(r) for r in rows] == [
        (2, 10, 2, 4, 60 + 100, 60 + 100 + 50 + 10, True, TODAY, None, None),
        (3, 10, 1, 1, 300, 300, False, TODAY - timedelta(days=3), None, None),
        (4, 10, 1, 2, 500, 700, True, TODAY - timedelta(days=2), None, None),
        (4, 11, 1, 1, 0, 0, True, TODAY, None, None),
    ]  # fmt: skip


def test_a_refresh_replaces_the_previous_figures(appdb, source, tmp_path):
    settings = load_settings({"MANIREPORTS_INSTANCE": str(tmp_path / "instance")})
    with appdb.transaction() as session:
        session.execute(insert(UsertimeDaily), [daily(2, 10, 0, 600, True)])
    refresh_engagement(appdb, source, settings, today=TODAY)
    assert refresh_engagement(appdb, source, settings, today=TODAY + timedelta(days=40)) == 0
    with appdb.transaction() as session:
        assert session.scalars(select(Engagement.userid)).all() == []


# -- incremental refreshes give exactly what a full one gives ----------------------------------
def engagement_rows(appdb):
    e = Engagement
    with appdb.transaction() as session:
        return session.execute(
            select(e.userid, e.courseid, e.active_days_7, e.active_days_30, e.seconds_7,
                   e.seconds_30, e.estimated, e.lastactive, e.xapi_statements_30,
                   e.video_seconds_30).order_by(e.userid, e.courseid)
        ).all()  # fmt: skip


def full_refresh(appdb, source, settings, today):
    """What a first refresh gives: the marks forgotten, every learner computed."""
    with appdb.transaction() as session:
        session.execute(delete(AnalyticsState).where(AnalyticsState.name == AS_OF_MARK))
    refresh_engagement(appdb, source, settings, today=today)
    return engagement_rows(appdb)


def random_daily(rng, today, count, users=range(2, 40), courses=(10, 11, 12)):
    """`count` daily rows: estimates, heartbeat figures beside them, and a few rows dated
    ahead of the clock; keyed like the table's unique constraint."""
    rows = {}
    for _ in range(count):
        user, course = rng.choice(users), rng.choice(courses)
        day = today - timedelta(days=rng.randint(-2, 40))
        estimated = rng.random() < 0.7
        rows[(user, course, day, estimated)] = rng.randint(0, 3600)
    return rows


def write_daily(appdb, rows, written_at=None):
    stamped = [
        {"userid": u, "courseid": c, "date": d, "estimated": e, "seconds": s,
         "timemodified": written_at or utcnow()} for (u, c, d, e), s in rows.items()
    ]  # fmt: skip
    with appdb.transaction() as session:
        write = {"writeseq": state.next_daily_write(session)}  # numbered as writers do
        upsert(session, table_of(UsertimeDaily), [row | write for row in stamped],
               key=("userid", "courseid", "date", "estimated"),
               update=("seconds", "timemodified", "writeseq"))  # fmt: skip


@pytest.mark.parametrize("seed", [1, 2])
def test_incremental_refreshes_equal_a_full_refresh_as_days_pass(appdb, source, tmp_path, seed):
    rng = random.Random(seed)
    settings = load_settings({"MANIREPORTS_INSTANCE": str(tmp_path / "instance")})
    today = TODAY
    write_daily(appdb, random_daily(rng, today, 300))
    refresh_engagement(appdb, source, settings, today=today)
    kept = 0  # rows an incremental refresh left as they were
    # Same day, next day, a few days, a week, then a jump past the window (a full refresh);
    # a few learners active each time (a refresh with most of them changed is a full one).
    for step in (0, 1, 3, 7, 0, 2, 31):
        today += timedelta(days=step)
        write_daily(appdb, random_daily(rng, today, 6))
        started = utcnow()
        written = refresh_engagement(appdb, source, settings, today=today)
        incremental = engagement_rows(appdb)
        with appdb.transaction() as session:
            kept += session.scalar(
                select(func.count()).where(Engagement.computed_at < started)
            )  # fmt: skip
        assert written == len(incremental) > 0
        assert incremental == full_refresh(appdb, source, settings, today), (step, today)
    assert kept > 0, "no refresh was incremental"


def test_an_incremental_refresh_recomputes_only_learners_whose_figures_can_change(
    appdb, source, tmp_path
):
    settings = load_settings({"MANIREPORTS_INSTANCE": str(tmp_path / "instance")})
    # Written well before the refresh (past the margin left for late commits).
    an_hour_ago = utcnow() - timedelta(hours=1)
    write_daily(appdb, {(2, 10, TODAY - timedelta(days=20), True): 100,
                        (3, 10, TODAY - timedelta(days=20), True): 200}, an_hour_ago)  # fmt: skip
    refresh_engagement(appdb, source, settings, today=TODAY)
    with appdb.transaction() as session:
        before = dict(session.execute(select(Engagement.userid, Engagement.computed_at)).all())
    write_daily(appdb, {(3, 10, TODAY, False): 60})
    refresh_engagement(appdb, source, settings, today=TODAY)
    with appdb.transaction() as session:
        after = dict(session.execute(select(Engagement.userid, Engagement.computed_at)).all())
    assert after[2] == before[2]  # untouched: nothing of theirs changed
    assert after[3] > before[3]


# -- the numbering of daily writes: what a refresh has not seen, exactly ----------------------
def test_writes_of_daily_rows_commit_in_the_order_of_their_numbers(appdb):
    with appdb.transaction() as session:
        before = state.daily_writes_seen(session)
    taken: list[int] = []

    def second_writer() -> None:
        with appdb.transaction() as session:
            taken.append(state.next_daily_write(session))

    thread = threading.Thread(target=second_writer)
    first = appdb.sessions()
    try:
        number = state.next_daily_write(first)  # taken, not committed
        assert number == before + 1
        with appdb.transaction() as session:
            assert state.daily_writes_seen(session) == before  # not counted until it commits
        thread.start()
        thread.join(0.5)
        assert taken == [], "a second write took a number while the first was still open"
        first.commit()
    finally:
        first.close()
    thread.join(10)
    assert taken == [number + 1]
    with appdb.transaction() as session:
        assert state.daily_writes_seen(session) == number + 1


def test_a_write_that_commits_after_a_refresh_read_is_counted_by_the_next(appdb, source, tmp_path):
    if appdb.engine.dialect.name == "sqlite":
        pytest.skip("SQLite runs one writer at a time: no refresh runs while a write is open")
    settings = load_settings({"MANIREPORTS_INSTANCE": str(tmp_path / "instance")})
    rng = random.Random(3)
    write_daily(appdb, random_daily(rng, TODAY, 200))
    refresh_engagement(appdb, source, settings, today=TODAY)
    late = appdb.sessions()  # numbered before the next refresh reads, committed after it
    try:
        write = {"writeseq": state.next_daily_write(late), "timemodified": utcnow()}
        upsert(late, table_of(UsertimeDaily),
               [daily(90, 10, 1, 1234, True) | write, daily(91, 11, 0, 99, False) | write],
               key=("userid", "courseid", "date", "estimated"),
               update=("seconds", "timemodified", "writeseq"))  # fmt: skip
        refresh_engagement(appdb, source, settings, today=TODAY)
        assert 90 not in {r.userid for r in engagement_rows(appdb)}  # not committed yet
        late.commit()
    finally:
        late.close()
    refresh_engagement(appdb, source, settings, today=TODAY)
    counted = engagement_rows(appdb)
    assert {(90, 10), (91, 11)} <= {(r.userid, r.courseid) for r in counted}
    assert counted == full_refresh(appdb, source, settings, TODAY)
