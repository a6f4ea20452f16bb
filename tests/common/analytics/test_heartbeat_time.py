"""Heartbeats become sessions and daily seconds exactly, whatever the order and repetition."""

import random
from datetime import date

from sqlalchemy import select

from common.analytics.heartbeats import Beat, apply_beats
from common.models.analytics import UsertimeDaily, UsertimeSession

GAP = 120
T0 = 1_795_000_000 - 1_795_000_000 % 86_400 + 10 * 3600  # 10:00 UTC on 2026-11-18
DAY0 = date(2026, 11, 18)


def beats(user, course, cm, times):
    return [Beat(f"{user}-{course}-{cm}-{t}", user, course, cm, T0 + t) for t in times]


def apply(appdb, batch, gap=GAP):
    with appdb.transaction() as session:
        apply_beats(session, batch, gap)


def sessions(appdb):
    with appdb.transaction() as session:
        rows = session.execute(
            select(
                UsertimeSession.userid, UsertimeSession.courseid, UsertimeSession.cmid,
                UsertimeSession.sessionstart, UsertimeSession.lastbeat, UsertimeSession.duration,
            ).where(UsertimeSession.estimated.is_(False))
        )  # fmt: skip
        return sorted(
            (r.userid, r.courseid, r.cmid, int(r.sessionstart.timestamp()) - T0,
             int(r.lastbeat.timestamp()) - T0, r.duration)
            for r in rows
        )  # fmt: skip


def daily(appdb):
    with appdb.transaction() as session:
        rows = session.execute(
            select(UsertimeDaily.userid, UsertimeDaily.courseid, UsertimeDaily.date,
                   UsertimeDaily.seconds).where(UsertimeDaily.estimated.is_(False))
        )  # fmt: skip
        return {(r.userid, r.courseid, r.date): r.seconds for r in rows}


def test_a_gap_over_the_timeout_closes_the_session(appdb):
    # 0..100 every 25 s, then a 300 s pause, then 400..450.
    apply(appdb, beats(7, 3, 0, [0, 25, 50, 75, 100, 400, 425, 450]))
    assert sessions(appdb) == [(7, 3, 0, 0, 100, 100), (7, 3, 0, 400, 450, 50)]
    assert daily(appdb) == {(7, 3, DAY0): 150}


def test_duplicates_and_redelivery_change_nothing(appdb):
    batch = beats(7, 3, 5, [0, 30, 60, 90])
    apply(appdb, batch)
    apply(appdb, batch + batch[:2])  # the whole batch redelivered, two beats twice more
    assert sessions(appdb) == [(7, 3, 5, 0, 90, 90)]
    assert daily(appdb) == {(7, 3, DAY0): 90}


def test_out_of_order_beat_bridges_two_sessions(appdb):
    apply(appdb, beats(7, 3, 5, [0, 100, 300, 400]))
    assert sessions(appdb) == [(7, 3, 5, 0, 100, 100), (7, 3, 5, 300, 400, 100)]
    assert daily(appdb) == {(7, 3, DAY0): 200}
    apply(appdb, beats(7, 3, 5, [200]))  # late: falls in the gap, within 120 s of both
    assert sessions(appdb) == [(7, 3, 5, 0, 400, 400)]
    assert daily(appdb) == {(7, 3, DAY0): 400}
    apply(appdb, beats(7, 3, 5, [-100]))  # later still, and earlier than everything
    assert sessions(appdb) == [(7, 3, 5, -100, 400, 500)]
    assert daily(appdb) == {(7, 3, DAY0): 500}


def test_a_session_across_midnight_is_split_between_the_dates(appdb):
    midnight = 14 * 3600
    apply(appdb, beats(7, 3, 0, [midnight - 60, midnight - 30, midnight + 30, midnight + 90]))
    assert daily(appdb) == {(7, 3, DAY0): 60, (7, 3, date(2026, 11, 19)): 90}


def test_course_time_is_the_union_of_its_activities_with_short_gaps_bridged(appdb):
    apply(appdb, beats(7, 3, 0, [0, 25, 50]))  # course page
    apply(appdb, beats(7, 3, 11, [60, 85, 110, 135]))  # an activity, 10 s later
    apply(appdb, beats(7, 3, 12, [100, 125, 150]))  # a second tab, overlapping
    assert [s[2:] for s in sessions(appdb)] == [(0, 0, 50, 50), (11, 60, 135, 75),
                                               (12, 100, 150, 50)]  # fmt: skip
    assert daily(appdb) == {(7, 3, DAY0): 150}


def test_a_single_beat_makes_an_active_day_of_zero_seconds(appdb):
    apply(appdb, beats(8, 4, 0, [0]))
    assert sessions(appdb) == [(8, 4, 0, 0, 0, 0)]
    assert daily(appdb) == {(8, 4, DAY0): 0}


def test_any_split_and_order_of_the_same_beats_gives_the_same_figures(appdb, tmp_path):
    rng = random.Random(4)
    every = []
    for user in (1, 2):
        for course, cm in ((10, 0), (10, 5), (11, 0)):
            t = rng.randrange(0, 3000)
            for _ in range(40):
                t += rng.choice((20, 25, 30, 30, 200, 2000))
                every += beats(user, course, cm, [t])
    expected_sessions, expected_daily = _in_one_batch(every, tmp_path)
    shuffled = every + rng.sample(every, 30)  # with duplicates
    rng.shuffle(shuffled)
    for offset in range(0, len(shuffled), 17):
        apply(appdb, shuffled[offset : offset + 17])
    assert sessions(appdb) == expected_sessions
    assert daily(appdb) == expected_daily


def _in_one_batch(batch, tmp_path):
    from common.appdb import AppDB
    from common.migrate import upgrade

    url = f"sqlite:///{tmp_path / 'reference.db'}"
    upgrade(url)
    reference = AppDB(url)
    try:
        apply(reference, sorted(batch, key=lambda b: b.time))
        return sessions(reference), daily(reference)
    finally:
        reference.dispose()
