"""Beats through the web endpoint, the bus and a real aggregator process into exact seconds,
with a kill -9 mid-batch, duplicates and beats arriving out of order."""

import asyncio
import random
import sqlite3
import uuid
from collections import defaultdict
from datetime import UTC, datetime

import pytest
from sqlalchemy import select

from common.appdb import AppDB
from common.bus import Bus
from common.db import make_engine
from common.migrate import upgrade
from common.models.analytics import UsertimeDaily, UsertimeSession
from common.nats_server import EmbeddedNatsServer
from tests.factories.moodle import MoodleFactory
from tests.support import TEST_SECRET, make_settings, service_env, wait_for
from web.app import create_app
from web.tracking.tokens import HeartbeatTokens

GAP = 120  # HEARTBEAT_TIMEOUT default
START = 1_795_040_000  # 2026-11-18 20:53:20 UTC: the plan runs past midnight


@pytest.fixture
def fresh_nats(tmp_path):
    server = EmbeddedNatsServer(tmp_path / "nats").start()
    yield server
    server.stop()


def enrol_planned_learners(moodle_url):
    """The Moodle side the endpoint checks: the planned users (and the lone 999) enrolled in the
    planned courses, which hold the planned activities."""
    engine = make_engine(moodle_url)
    moodle = MoodleFactory(engine, now=START)
    for course in (2, 3):
        moodle.course(id=course)
        for cm in (course * 10 + 1, course * 10 + 2):
            moodle.module(course, id=cm)
    for user in (101, 102, 103, 999):
        moodle.user(id=user, username=f"learner{user}")
        for course in (2, 3):
            moodle.enrol(user, course, timestart=START - 86400)
    engine.dispose()


@pytest.fixture
def web(tmp_path, fresh_nats):
    settings = make_settings(tmp_path, NATS_URL=fresh_nats.url)
    upgrade(settings.database_url)
    enrol_planned_learners(settings.moodle_database_url)
    app = create_app(settings)
    clock = [float(START)]
    app.extensions["manireports"].clock = lambda: clock[0]
    yield app, clock
    app.extensions["manireports"].close()


def plan_beats(rng, users, courses):
    """(user, course, cm, time) beats of a few visits each, with pauses long and short."""
    beats = []
    for user in users:
        for course in courses:
            t = START + rng.randrange(0, 600)
            for _ in range(rng.randint(20, 40)):
                cm = rng.choice((0, 0, course * 10 + 1, course * 10 + 2))
                beats.append((user, course, cm, t))
                t += rng.choice((20, 25, 30, 30, 25, 90, 400, 2500))
    return beats


def expected_figures(beats):
    """Independent reference: sessions per activity, daily seconds per course."""

    def clusters(times):
        out = []
        for t in sorted(set(times)):
            if out and t - out[-1][1] <= GAP:
                out[-1][1] = t
            else:
                out.append([t, t])
        return out

    by_activity, by_course = defaultdict(list), defaultdict(list)
    for user, course, cm, t in beats:
        by_activity[(user, course, cm)].append(t)
        by_course[(user, course)].append(t)
    sessions = sorted(
        (*key, first, last) for key, times in by_activity.items() for first, last in clusters(times)
    )
    daily = defaultdict(int)
    for (user, course), times in by_course.items():
        for first, last in clusters(times):
            t = first
            while True:
                midnight = (t // 86400 + 1) * 86400
                day = datetime.fromtimestamp(t, UTC).date()
                daily[(user, course, day)] += min(last, midnight) - t
                if last <= midnight:
                    break
                t = midnight
    return sessions, dict(daily)


def actual_figures(appdb):
    with appdb.transaction() as session:
        s = UsertimeSession
        sessions = sorted(
            (r.userid, r.courseid, r.cmid, int(r.sessionstart.timestamp()),
             int(r.lastbeat.timestamp()))
            for r in session.execute(select(s.userid, s.courseid, s.cmid, s.sessionstart,
                                            s.lastbeat))
        )  # fmt: skip
        d = UsertimeDaily
        daily = {
            (r.userid, r.courseid, r.date): r.seconds
            for r in session.execute(select(d.userid, d.courseid, d.date, d.seconds))
        }
    return sessions, daily


def post_beats(app, clock, tokens, beats):
    client = app.test_client()
    for user, course, cm, t in beats:
        clock[0] = float(t)
        token, _ = tokens.issue(user, t)
        body = {"token": token, "course": course, "cm": cm, "id": uuid.uuid4().hex}
        response = client.post("/tracking/beat", json=body)
        assert response.status_code == 204, response.get_data(as_text=True)


def publish_directly(url, beats):
    """Beats as the web tier publishes them, each under a new message id (so JetStream's
    duplicate window does not catch the repeats: only the aggregator can)."""

    async def go():
        bus = await Bus.connect(url, name="test")
        for user, course, cm, t in beats:
            beat_id = uuid.uuid4().hex
            payload = {"id": beat_id, "u": user, "c": course, "m": cm, "t": t}
            await bus.publish("mr.heartbeat", payload, msg_id=f"hb:{user}:{beat_id}")
        await bus.close()

    asyncio.run(go())


def ack_pending(url):
    async def go():
        bus = await Bus.connect(url, name="test")
        info = await bus.js.consumer_info("HEARTBEATS", "aggregator-heartbeats")
        await bus.close()
        return info.num_ack_pending

    return asyncio.run(go())


def test_beats_become_exact_seconds_through_kill_redelivery_duplicates_and_reordering(
    tmp_path, fresh_nats, web, spawn_service
):
    app, clock = web
    rng = random.Random(11)
    tokens = HeartbeatTokens(TEST_SECRET, ttl_s=3600)
    appdb = AppDB(f"sqlite:///{tmp_path / 'app.db'}")
    env = service_env(tmp_path, fresh_nats.url, BUS_ACK_WAIT_S="2")
    beats = plan_beats(rng, users=(101, 102, 103), courses=(2, 3))
    first, held = beats[: len(beats) // 2], beats[len(beats) // 2 :]

    # 1. Half the beats, in time order, through the endpoint and a running aggregator.
    aggregator = spawn_service("aggregator", env)
    post_beats(app, clock, tokens, sorted(first, key=lambda b: b[3]))
    wait_for(lambda: actual_figures(appdb) == expected_figures(first), timeout_s=60,
             message="first half applied")  # fmt: skip

    # 2. While the app DB is locked, a lone beat of a new user: the aggregator fetches it and
    #    blocks; killed there, only redelivery to the next aggregator can bring it back.
    lock = sqlite3.connect(tmp_path / "app.db", isolation_level=None)
    lock.execute("BEGIN IMMEDIATE")
    lone = [(999, 2, 0, START + 7200)]
    post_beats(app, clock, tokens, lone)
    wait_for(lambda: ack_pending(fresh_nats.url) > 0, message="the lone beat in flight")
    aggregator.kill()
    lock.execute("ROLLBACK")
    lock.close()
    assert actual_figures(appdb) == expected_figures(first)
    post_beats(app, clock, tokens, sorted(held, key=lambda b: b[3]))
    spawn_service("aggregator", env)
    wait_for(lambda: actual_figures(appdb) == expected_figures(first + held + lone),
             timeout_s=60, message="the rest and the redelivered beat applied")  # fmt: skip

    # 3. Meanwhile duplicates of everything and some beats from the past arrive, shuffled.
    late = [(u, c, cm, t - 3 * 86400) for u, c, cm, t in rng.sample(beats, 15)]
    again = rng.sample(beats, 60) + late
    rng.shuffle(again)
    publish_directly(fresh_nats.url, again)

    expected = expected_figures(beats + late + lone)
    wait_for(lambda: actual_figures(appdb) == expected, timeout_s=60, message="all applied")
    sessions, daily = expected
    assert len({day for _, _, day in daily}) >= 2  # the plan did cross midnight
    appdb.dispose()
