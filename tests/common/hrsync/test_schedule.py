"""When the scheduler leader fires the HR sync: the most recent cron slot in the stored zone,
fired once, never stale; across DST changes; and the leader's side against a real app DB and a
real nats-server stream with its duplicate window."""

from __future__ import annotations

import asyncio
import re
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest

from common.appdb import AppDB
from common.bus import MSG_ID_HEADER, Bus
from common.hrsync.schedule import (
    SLOT_MAX_AGE,
    SYNC_SUBJECT,
    HrSyncTrigger,
    due_slot,
    message_id,
)
from common.models.hrsync import SETTINGS_ROW, HrSyncConfig
from tests.support import service_env, wait_for


def utc(*parts: int) -> datetime:
    return datetime(*parts, tzinfo=UTC)


def test_not_scheduled_or_unreadable_cron_never_fires():
    now = utc(2026, 12, 1, 6, 0)
    assert due_slot("", "UTC", now, None) is None
    assert due_slot("   ", "UTC", now, None) is None
    assert due_slot("61 * * * *", "UTC", now, None) is None
    assert due_slot("0 6 * * *", "Mars/Olympus", now, None) is None


def test_the_slot_fires_at_its_minute_and_once():
    cron = "0 6 * * *"
    assert due_slot(cron, "UTC", utc(2026, 12, 1, 5, 59, 59), None) is None
    slot = due_slot(cron, "UTC", utc(2026, 12, 1, 6, 0), None)
    assert slot == utc(2026, 12, 1, 6, 0)
    assert due_slot(cron, "UTC", utc(2026, 12, 1, 6, 0, 30), slot) is None
    # The next day's slot is due again.
    assert due_slot(cron, "UTC", utc(2026, 12, 2, 6, 0, 5), slot) == utc(2026, 12, 2, 6, 0)


def test_a_stale_slot_is_not_fired():
    cron = "0 6 * * *"
    late = utc(2026, 12, 1, 6, 0) + SLOT_MAX_AGE
    assert due_slot(cron, "UTC", late - timedelta(seconds=1), None) == utc(2026, 12, 1, 6, 0)
    assert due_slot(cron, "UTC", late, None) is None
    assert due_slot(cron, "UTC", utc(2026, 12, 1, 9, 0), None) is None


def test_the_most_recent_of_several_slots_in_the_window_is_fired():
    now = utc(2026, 12, 1, 6, 3, 30)
    assert due_slot("* * * * *", "UTC", now, None) == utc(2026, 12, 1, 6, 3)
    assert due_slot("* * * * *", "UTC", now, utc(2026, 12, 1, 6, 3)) is None
    assert due_slot("* * * * *", "UTC", now, utc(2026, 12, 1, 6, 2)) == utc(2026, 12, 1, 6, 3)


def test_the_zone_is_the_stored_one_winter_and_summer():
    cron = "0 9 * * mon-fri"
    # 09:00 in New York: 14:00Z in winter (EST), 13:00Z in summer (EDT).
    assert due_slot(cron, "America/New_York", utc(2026, 12, 1, 14, 0, 10), None) == utc(
        2026, 12, 1, 14, 0)  # fmt: skip
    assert due_slot(cron, "America/New_York", utc(2026, 7, 1, 13, 0, 10), None) == utc(
        2026, 7, 1, 13, 0)  # fmt: skip
    assert due_slot(cron, "America/New_York", utc(2026, 7, 1, 14, 0, 10), None) is None
    # Saturday: not a slot.
    assert due_slot(cron, "America/New_York", utc(2026, 12, 5, 14, 0, 10), None) is None


def test_a_time_spring_forward_skips_fires_at_the_end_of_the_gap():
    # Europe/London, 29 March 2026: 01:00 GMT becomes 02:00 BST; 01:30 does not exist.
    cron = "30 1 * * *"
    assert due_slot(cron, "Europe/London", utc(2026, 3, 29, 0, 59), None) is None
    assert due_slot(cron, "Europe/London", utc(2026, 3, 29, 1, 0, 5), None) == utc(2026, 3, 29, 1)
    assert due_slot(cron, "Europe/London", utc(2026, 3, 29, 1, 30, 5), None) is None


def test_a_time_fall_back_repeats_fires_once():
    # Europe/London, 25 October 2026: 02:00 BST becomes 01:00 GMT; 01:30 happens twice.
    cron = "30 1 * * *"
    first = due_slot(cron, "Europe/London", utc(2026, 10, 25, 0, 30, 5), None)
    assert first == utc(2026, 10, 25, 0, 30)
    # At the second 01:30 (01:30Z) nothing is due, whether or not this leader fired the first.
    assert due_slot(cron, "Europe/London", utc(2026, 10, 25, 1, 30, 5), first) is None
    assert due_slot(cron, "Europe/London", utc(2026, 10, 25, 1, 30, 5), None) is None


def test_southern_hemisphere_dst():
    # Australia/Sydney, 4 October 2026: 02:00 AEST becomes 03:00 AEDT; 02:15 does not exist.
    slot = due_slot("15 2 * * *", "Australia/Sydney", utc(2026, 10, 3, 16, 0, 5), None)
    assert slot == utc(2026, 10, 3, 16, 0)  # 03:00 AEDT, the gap's end


def test_message_id_is_the_slot_in_utc():
    assert message_id(utc(2026, 12, 1, 6, 0)) == "hrsync:2026-12-01T06:00:00Z"


# -- the leader's side -------------------------------------------------------------------------


@pytest.fixture
def appdb(app_db_url: str) -> Iterator[AppDB]:
    db = AppDB(app_db_url)
    yield db
    db.dispose()


def store_schedule(appdb: AppDB, cron: str, tz: str) -> None:
    with appdb.transaction() as session:
        session.merge(HrSyncConfig(id=SETTINGS_ROW, cron=cron, tz=tz))


def test_the_trigger_reads_the_stored_schedule_and_publishes_each_slot_once(appdb):
    store_schedule(appdb, "0 6 * * *", "Europe/Paris")  # 06:00 Paris = 05:00Z in December
    sent: list[tuple[str, dict, str | None]] = []

    async def publish(subject: str, payload: dict, *, msg_id: str | None = None) -> None:
        sent.append((subject, payload, msg_id))

    clock = [0.0]
    trigger = HrSyncTrigger(clock=lambda: clock[0])

    async def ticks() -> None:
        assert await trigger.tick(appdb, publish, utc(2026, 12, 1, 4, 59)) is None
        await trigger.tick(appdb, publish, utc(2026, 12, 1, 5, 0, 1))
        await trigger.tick(appdb, publish, utc(2026, 12, 1, 5, 0, 3))

    asyncio.run(ticks())
    assert sent == [(SYNC_SUBJECT, {"dry_run": False, "trigger": "schedule", "startedby": None,
                                    "task": "hr_sync"},
                     "hrsync:2026-12-01T05:00:00Z")]  # fmt: skip
    # An admin unschedules it: read again once the cached schedule is old enough.
    store_schedule(appdb, "", "UTC")
    asyncio.run(trigger.tick(appdb, publish, utc(2026, 12, 2, 5, 0, 1)))
    assert len(sent) == 1 + 1  # still the cached schedule
    clock[0] = 60.0
    asyncio.run(trigger.tick(appdb, publish, utc(2026, 12, 3, 5, 0, 1)))
    assert len(sent) == 2


def test_a_failed_publish_is_tried_again_next_tick(appdb):
    store_schedule(appdb, "0 6 * * *", "UTC")
    calls: list[str | None] = []

    async def flaky(subject: str, payload: dict, *, msg_id: str | None = None) -> None:
        calls.append(msg_id)
        if len(calls) == 1:
            raise ConnectionError("bus reconnecting")

    trigger = HrSyncTrigger()
    with pytest.raises(ConnectionError):
        asyncio.run(trigger.tick(appdb, flaky, utc(2026, 12, 1, 6, 0, 1)))
    asyncio.run(trigger.tick(appdb, flaky, utc(2026, 12, 1, 6, 0, 4)))
    assert calls == ["hrsync:2026-12-01T06:00:00Z"] * 2 and trigger.fired == 1


def test_a_new_leader_refiring_the_slot_is_dropped_by_the_stream(appdb, nats_server):
    """Two leaders (one after the other) fire the same slot: the stream keeps one command."""
    store_schedule(appdb, "0 6 * * *", "UTC")
    now = utc(2026, 12, 1, 6, 0, 20)

    async def scenario() -> list[tuple[str, str]]:
        bus = await Bus.connect(nats_server.url, name="test")
        try:
            await bus.ensure_streams()
            for _ in range(2):
                await HrSyncTrigger().tick(appdb, bus.publish, now)
            info = await bus.js.stream_info("COMMANDS")
            found = []
            for seq in range(info.state.first_seq, info.state.last_seq + 1):
                msg = await bus.js.get_msg("COMMANDS", seq)
                if msg.subject == SYNC_SUBJECT:
                    found.append((msg.subject, msg.headers[MSG_ID_HEADER]))
            return found
        finally:
            await bus.close()

    assert asyncio.run(scenario()) == [(SYNC_SUBJECT, "hrsync:2026-12-01T06:00:00Z")]


def sync_commands(url: str) -> list[str]:
    """The message ids of the `mr.cmd.sync.bamboohr` commands in the COMMANDS stream."""

    async def read() -> list[str]:
        bus = await Bus.connect(url, name="test")
        try:
            await bus.ensure_streams()
            info = await bus.js.stream_info("COMMANDS")
            found = []
            if info.state.messages:
                for seq in range(info.state.first_seq, info.state.last_seq + 1):
                    msg = await bus.js.get_msg("COMMANDS", seq)
                    if msg.subject == SYNC_SUBJECT:
                        found.append(msg.headers[MSG_ID_HEADER])
            return found
        finally:
            await bus.close()

    return asyncio.run(read())


def test_the_scheduler_leader_fires_the_stored_cron_and_a_new_leader_does_not_fire_it_again(
    appdb, app_db_url, nats_server, spawn_service, tmp_path
):
    """Real scheduler processes: the leader publishes the current slot of an every-minute cron;
    killed, the next leader fires the same slot again and the stream drops it as a duplicate."""
    if not app_db_url.startswith("sqlite"):
        pytest.skip("the service processes are exercised once, on SQLite")
    store_schedule(appdb, "* * * * *", "Pacific/Chatham")  # +13:45: any zone must work
    env = service_env(tmp_path, nats_server.url, DATABASE_URL=app_db_url,
                      SCHEDULER_LEASE_TTL_S="2")  # fmt: skip
    before = set(sync_commands(nats_server.url))
    first = spawn_service("scheduler", env)
    fired = wait_for(lambda: [i for i in sync_commands(nats_server.url) if i not in before],
                     timeout_s=30, message="the leader to fire the HR sync")  # fmt: skip
    assert re.fullmatch(r"hrsync:\d{4}-\d\d-\d\dT\d\d:\d\d:00Z", fired[0])
    first.kill()
    spawn_service("scheduler", env)
    time.sleep(6)  # the lease expires (2 s) and the new leader ticks several times
    ids = [i for i in sync_commands(nats_server.url) if i not in before]
    assert len(ids) == len(set(ids))  # no slot twice
    # At most the minutes that passed since the first fire, each once.
    assert 1 <= len(ids) <= 2
