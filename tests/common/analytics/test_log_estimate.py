"""Time estimated from the Moodle log by the session-gap method, against hand-computed values."""

from datetime import date

import pytest
from sqlalchemy import select

from common.analytics.log_estimate import estimate_time_from_log
from common.analytics.usertime import daily_time
from common.appdb import AppDB
from common.db import make_engine
from common.migrate import upgrade
from common.models.analytics import UsertimeDaily, UsertimeSession
from common.moodle import MoodleSource
from tests.factories.moodle import MoodleFactory

GAP = 600
MIDNIGHT = 1_795_046_400  # 2026-11-19 00:00 UTC
T0 = MIDNIGHT - 12 * 3600  # noon on the 18th
DAY1, DAY2 = date(2026, 11, 18), date(2026, 11, 19)


@pytest.fixture
def moodle(moodle_url):
    engine = make_engine(moodle_url)
    factory = MoodleFactory(engine, now=MIDNIGHT)
    yield factory
    engine.dispose()


@pytest.fixture
def source(moodle, moodle_url):
    src = MoodleSource(moodle_url)
    yield src
    src.dispose()


def estimated_daily(appdb):
    with appdb.transaction() as session:
        d = UsertimeDaily
        rows = session.execute(
            select(d.userid, d.courseid, d.date, d.seconds).where(d.estimated.is_(True))
        )
        return {(r.userid, r.courseid, r.date): r.seconds for r in rows}


def estimated_sessions(appdb):
    with appdb.transaction() as session:
        s = UsertimeSession
        rows = session.execute(
            select(s.userid, s.courseid, s.sessionstart, s.duration).where(s.estimated.is_(True))
        )
        return sorted((r.userid, r.courseid, int(r.sessionstart.timestamp()), r.duration)
                      for r in rows)  # fmt: skip


def test_sessions_split_at_the_timeout_and_at_midnight(moodle, source, appdb):
    ana, ben = moodle.user(), moodle.user()
    fire, aid = moodle.course(), moodle.course()
    for offset in (0, 100, 400, 1400, 1500, 5000):  # 400 s, then 100 s, then a lone click
        moodle.log(userid=ana, courseid=fire, timecreated=T0 + offset)
    moodle.log(userid=ana, courseid=aid, timecreated=T0 + 50)  # another course: 0 s
    for offset in (-300, -10, 200, 500):  # across midnight: 290 s + 500 s
        moodle.log(userid=ben, courseid=fire, timecreated=MIDNIGHT + offset)
    # Not activity of a learner in a course: guest, not logged in, logged-in-as, anonymous,
    # no course (a login).
    moodle.log(userid=1, courseid=fire, timecreated=T0 + 200)
    moodle.log(userid=0, courseid=fire, timecreated=T0 + 200)
    moodle.log(userid=ana, courseid=fire, timecreated=T0 + 3000, realuserid=2)
    moodle.log(userid=ana, courseid=fire, timecreated=T0 + 3000, anonymous=1)
    moodle.log(userid=ana, courseid=0, timecreated=T0 + 3000)

    run = estimate_time_from_log(appdb, source, gap_s=GAP)

    assert run.spans_read == 5
    assert estimated_sessions(appdb) == sorted([
        (ana, fire, T0, 400), (ana, fire, T0 + 1400, 100), (ana, fire, T0 + 5000, 0),
        (ana, aid, T0 + 50, 0), (ben, fire, MIDNIGHT - 300, 800),
    ])  # fmt: skip
    assert estimated_daily(appdb) == {
        (ana, fire, DAY1): 500, (ana, aid, DAY1): 0, (ben, fire, DAY1): 300,
        (ben, fire, DAY2): 500,
    }  # fmt: skip


def test_an_incremental_run_equals_one_full_run(moodle, source, appdb, tmp_path):
    ana = moodle.user()
    fire = moodle.course()
    for offset in (0, 300, 900):
        moodle.log(userid=ana, courseid=fire, timecreated=T0 + offset)
    estimate_time_from_log(appdb, source, gap_s=GAP)
    assert estimated_daily(appdb) == {(ana, fire, DAY1): 900}
    # The next day's logs: one event extends the last session, then a new one.
    for offset in (1400, 5000, 5200):
        moodle.log(userid=ana, courseid=fire, timecreated=T0 + offset)
    again = estimate_time_from_log(appdb, source, gap_s=GAP)
    assert again.spans_read == 2
    assert estimate_time_from_log(appdb, source, gap_s=GAP).spans_read == 0  # nothing new

    url = f"sqlite:///{tmp_path / 'full.db'}"
    upgrade(url)
    full = AppDB(url)
    estimate_time_from_log(full, source, gap_s=GAP)
    assert estimated_daily(appdb) == estimated_daily(full) == {(ana, fire, DAY1): 1600}
    assert estimated_sessions(appdb) == estimated_sessions(full)
    full.dispose()


def test_heartbeat_figures_win_over_estimates_for_the_same_day(moodle, source, appdb):
    from common.analytics.heartbeats import Beat, apply_beats

    ana = moodle.user()
    fire = moodle.course()
    for offset in (0, 1000):
        moodle.log(userid=ana, courseid=fire, timecreated=T0 + offset)
        moodle.log(userid=ana, courseid=fire, timecreated=MIDNIGHT + 3600 + offset)
    estimate_time_from_log(appdb, source, gap_s=GAP * 2)
    with appdb.transaction() as session:
        apply_beats(session, [Beat("b1", ana, fire, 0, T0), Beat("b2", ana, fire, 0, T0 + 60)],
                    gap_s=120)  # fmt: skip
        figures = daily_time(session, since=DAY1, until=DAY2)
    assert [(f.date, f.seconds, f.estimated) for f in figures] == [
        (DAY1, 60, False), (DAY2, 1000, True)
    ]  # fmt: skip


def _busy_log(moodle):
    """Sessions that cross midnight, lone clicks, two courses, several users."""
    users = [moodle.user() for _ in range(3)]
    courses = [moodle.course(), moodle.course()]
    offsets = (-4000, -700, -10, 0, 300, 1300, 9000, 9000, 9500, 40_000, 86_400 * 2 - 200)
    for i, user in enumerate(users):
        for j, course in enumerate(courses):
            for offset in offsets[i + j :]:
                moodle.log(userid=user, courseid=course, timecreated=MIDNIGHT + offset + 7 * i)
    return users, courses


# Key batches of 1: chunks of several keys load their timelines by one read of the window.
@pytest.mark.parametrize(("chunk_ids", "key_batch"), [(3, 400), (20, 1)])
def test_the_first_run_equals_merging_chunk_by_chunk(
    moodle, source, appdb, tmp_path, monkeypatch, chunk_ids, key_batch
):
    from common.analytics import log_estimate, timelines

    _busy_log(moodle)
    estimate_time_from_log(appdb, source, gap_s=GAP)  # empty tables: the bulk first run

    url = f"sqlite:///{tmp_path / 'chunked.db'}"
    upgrade(url)
    chunked = AppDB(url)
    # One event first, then the rest merged a few log ids at a time into what is stored.
    monkeypatch.setattr(log_estimate, "CHUNK_IDS", 1)
    monkeypatch.setattr(log_estimate, "_top_id", lambda src: 1)
    estimate_time_from_log(chunked, source, gap_s=GAP)
    assert len(estimated_sessions(chunked)) == 1
    monkeypatch.undo()
    monkeypatch.setattr(log_estimate, "CHUNK_IDS", chunk_ids)
    monkeypatch.setattr(timelines, "KEY_BATCH", key_batch)
    estimate_time_from_log(chunked, source, gap_s=GAP)

    assert estimated_sessions(chunked) == estimated_sessions(appdb)
    assert estimated_daily(chunked) == estimated_daily(appdb)
    assert len(estimated_daily(appdb)) > 6  # the crafted log reaches several dates
    chunked.dispose()


def test_an_interrupted_first_run_resumes_at_the_last_user_stored(
    moodle, source, appdb, tmp_path, monkeypatch
):
    from common.analytics import log_estimate

    users, _ = _busy_log(moodle)
    url = f"sqlite:///{tmp_path / 'clean.db'}"
    upgrade(url)
    clean = AppDB(url)
    estimate_time_from_log(clean, source, gap_s=GAP)

    monkeypatch.setattr(log_estimate, "FIRST_RUN_BATCH", 1)  # a commit at every user
    calls = []
    real_insert = log_estimate.insert_many

    def failing_insert(session, table, rows):
        calls.append(table.name)
        if len(calls) > 2:  # the second user's batch
            raise RuntimeError("killed")
        real_insert(session, table, rows)

    monkeypatch.setattr(log_estimate, "insert_many", failing_insert)
    with pytest.raises(RuntimeError):
        estimate_time_from_log(appdb, source, gap_s=GAP)
    assert {s[0] for s in estimated_sessions(appdb)} == {users[0]}
    monkeypatch.setattr(log_estimate, "insert_many", real_insert)

    again = estimate_time_from_log(appdb, source, gap_s=GAP)

    assert {s[0] for s in estimated_sessions(appdb)} == set(users)
    assert again.spans_read < len(estimated_sessions(clean))  # the first user was not reread
    assert estimated_sessions(appdb) == estimated_sessions(clean)
    assert estimated_daily(appdb) == estimated_daily(clean)
    assert estimate_time_from_log(appdb, source, gap_s=GAP).spans_read == 0
    clean.dispose()
