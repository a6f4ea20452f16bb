"""What the scheduler leader reads and writes about report schedules: which are due, moving a
schedule past the slot it published, and how a run's failure is counted.

A slot is published first and the schedule moved on after, with a compare-and-set on the slot
(`next_run_at` still equal to the due time), so a leader that dies in between leaves the slot
due and the next leader publishes it again under the same message id (a duplicate the bus and
the worker both drop). The next run is worked out from now, not from the slot: a scheduler that
was down for three days runs a daily schedule once, not three times.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import select, update

from common.appdb import AppDB
from common.errors import FieldError
from common.models.base import utcnow
from common.models.schedules import ReportSchedule
from common.schedules.store import recurrence_of
from common.schedules.timing import next_run

log = logging.getLogger(__name__)

MAX_RETRIES = 3
DUE_BATCH = 1000
MAX_ERROR_CHARS = 500


@dataclass(frozen=True)
class DueSlot:
    schedule_id: int
    due: datetime


def due_schedules(appdb: AppDB, now: datetime, limit: int = DUE_BATCH) -> list[DueSlot]:
    """Active schedules whose next run is at or before `now`, the longest-waiting first."""
    s = ReportSchedule
    query = (select(s.id, s.next_run_at)
             .where(s.active.is_(True), s.next_run_at.is_not(None), s.next_run_at <= now)
             .order_by(s.next_run_at, s.id).limit(limit))  # fmt: skip
    with appdb.transaction() as session:
        return [DueSlot(int(r.id), r.next_run_at) for r in session.execute(query)]


def advance(appdb: AppDB, slot: DueSlot, now: datetime) -> datetime | None:
    """Move the schedule past `slot` to its first run after `now`; None when another leader
    already did (or the schedule changed meanwhile). A timing that no longer parses pauses
    the schedule with the reason."""
    with appdb.transaction() as session:
        row = session.get(ReportSchedule, slot.schedule_id)
        if row is None or row.next_run_at != slot.due:
            return None
        try:
            following = next_run(recurrence_of(row), max(now, slot.due))
        except FieldError as exc:
            log.error("schedule %s: its timing is invalid (%s); paused", row.id, exc)
            row.active, row.next_run_at = False, None
            row.last_status, row.failed_error = "failed", f"invalid timing: {exc}"[:MAX_ERROR_CHARS]
            return None
        result = session.execute(
            update(ReportSchedule)
            .where(ReportSchedule.id == slot.schedule_id, ReportSchedule.next_run_at == slot.due)
            .values(next_run_at=following)
        )  # fmt: skip
        return following if result.rowcount else None  # type: ignore[attr-defined]


@dataclass(frozen=True)
class FailureCount:
    attempts: int  # attempts made so far, this one included
    retry: bool  # True: try again after `retry_delay`; False: the schedule is marked failed


def count_failure(appdb: AppDB, schedule_id: int, error: str) -> FailureCount:
    """Record a failed attempt: `retrying` while retries remain, then `failed` with the error."""
    with appdb.transaction() as session:
        row = session.get(ReportSchedule, schedule_id, with_for_update=True)
        if row is None:
            return FailureCount(0, retry=False)
        row.attempts = int(row.attempts or 0) + 1
        retry = row.attempts <= MAX_RETRIES
        row.last_run_at = utcnow()
        row.last_status = "retrying" if retry else "failed"
        row.failed_error = error[:MAX_ERROR_CHARS]
        return FailureCount(row.attempts, retry)


def retry_delay(base_s: float, attempts: int) -> float:
    """base, 2×base, 4×base after the first, second and third failure."""
    return base_s * 2 ** max(attempts - 1, 0)


def start_manual_run(appdb: AppDB, schedule_id: int) -> None:
    """A manual run (retry after failure, "run now") starts with its own three retries."""
    with appdb.transaction() as session:
        session.execute(update(ReportSchedule).where(ReportSchedule.id == schedule_id)
                        .values(attempts=0))  # fmt: skip
