"""When the scheduler leader fires the HR sync: on the stored cron, in the stored zone.

`due_slot` is the rule, a pure function: the most recent slot of the cron at or before `now`,
if it is at most `SLOT_MAX_AGE` old and later than the slot this leader fired last. A slot is
fired as `mr.cmd.sync.bamboohr` with the message id `hrsync:<slot in UTC ISO>`, so a new leader
that fires the same slot again (it does not know what the old one fired) is dropped by
JetStream's duplicate window. A leader that was down for longer than `SLOT_MAX_AGE` does not
fire a stale slot: the next run picks up every change since the cursor anyway.

Slots are computed by `common.schedules.timing` on the zone's wall clock: a time a
spring-forward day skips fires at the end of the gap, a repeated time fires once.
`HrSyncTrigger` is the leader's side: it reads the stored cron and zone (in a thread, at most
every `CONFIG_TTL_S`) and publishes the due slot.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Mapping
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import select

from common.appdb import AppDB
from common.bus import DUPLICATE_WINDOW_S, command_subject
from common.errors import FieldError
from common.models.hrsync import SETTINGS_ROW, HrSyncConfig
from common.schedules.timing import Recurrence, next_run, parse_recurrence

log = logging.getLogger(__name__)

SYNC_SUBJECT = command_subject("sync", "bamboohr")
# Within JetStream's duplicate window: whichever leader fires a slot, a second publish of it is
# dropped. A slot found older than this (no leader for that long) is not fired.
SLOT_MAX_AGE = timedelta(seconds=DUPLICATE_WINDOW_S)
CONFIG_TTL_S = 30.0

Publish = Callable[..., Awaitable[object]]


def recurrence_of(cron: str, tz: str) -> Recurrence | None:
    """The stored schedule, or None when there is none (empty cron) or it no longer parses."""
    if not (cron or "").strip():
        return None
    try:
        return parse_recurrence(frequency="cron", cron=cron, tz=tz or "UTC")
    except FieldError:
        return None


def due_slot(cron: str, tz: str, now: datetime, last_fired: datetime | None) -> datetime | None:
    """The slot to fire at ``now`` (aware), as aware UTC, or None."""
    recurrence = recurrence_of(cron, tz)
    if recurrence is None:
        return None
    now = now.astimezone(UTC)
    after = now - SLOT_MAX_AGE
    slot: datetime | None = None
    try:
        while (candidate := next_run(recurrence, after)) <= now:
            slot = after = candidate
    except FieldError:  # no slot before the year 9999
        pass
    if slot is None or (last_fired is not None and slot <= last_fired):
        return None
    return slot


def message_id(slot: datetime) -> str:
    return "hrsync:" + slot.astimezone(UTC).isoformat().replace("+00:00", "Z")


# The sync's name among the scheduled tasks: a command carrying it is recorded as a task run
# (/admin/scheduler/), and its failures in a row alert the site admins.
TASK = "hr_sync"


def command_payload() -> dict[str, Any]:
    return {"dry_run": False, "trigger": "schedule", "startedby": None, "task": TASK}


def stored_schedule(appdb: AppDB) -> tuple[str, str]:
    with appdb.transaction() as session:
        found = session.execute(
            select(HrSyncConfig.cron, HrSyncConfig.tz).where(HrSyncConfig.id == SETTINGS_ROW)
        ).first()
    return ("", "UTC") if found is None else (found.cron or "", found.tz or "UTC")


class HrSyncTrigger:
    """The scheduler leader's state for the HR sync: the slot it fired last, and the schedule
    it read last (re-read every CONFIG_TTL_S, so an admin's change applies within that)."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self.last_fired: datetime | None = None
        self.fired = 0
        self._schedule: tuple[str, str] = ("", "UTC")
        self._read_at: float | None = None
        self._clock = clock

    async def tick(self, appdb: AppDB, publish: Publish, now: datetime) -> datetime | None:
        """Publish the due slot, if any; the slot published."""
        if self._read_at is None or self._clock() - self._read_at >= CONFIG_TTL_S:
            self._schedule = await asyncio.to_thread(stored_schedule, appdb)
            self._read_at = self._clock()
        slot = due_slot(*self._schedule, now, self.last_fired)
        if slot is None:
            return None
        await publish(SYNC_SUBJECT, command_payload(), msg_id=message_id(slot))
        self.last_fired = slot  # only once published: a failed publish is tried next tick
        self.fired += 1
        log.info("fired the HR sync (slot %s)", message_id(slot))
        return slot

    def details(self) -> Mapping[str, Any]:
        return {"last_fired": self.last_fired.isoformat() if self.last_fired else None,
                "fired": self.fired}  # fmt: skip
