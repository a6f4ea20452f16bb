"""Where the next run resumes in BambooHR's change feed: `{since, offset}` in one app DB row.

The first run starts `lookback_days` before now at offset 0. A run moves the cursor only when
it had no error: with changes left it keeps `since` and advances `offset`; when done it takes the
feed's `latest` with offset 0. Any error keeps both, so the next run retries the same changes.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy.orm import Session

from common.models.base import utcnow
from common.models.hrsync import SETTINGS_ROW, HrSyncCursor


@dataclass(frozen=True)
class Cursor:
    since: str
    offset: int = 0

    def as_dict(self) -> dict[str, object]:
        return {"since": self.since, "offset": self.offset}


def iso(moment: datetime) -> str:
    """BambooHR's own spelling of an instant: 2026-12-01T06:00:00+00:00 → ...Z, seconds."""
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


def read_cursor(session: Session, now: datetime, lookback_days: int) -> tuple[Cursor, bool]:
    """The stored cursor, or the first run's (now − look-back, 0); and whether it was stored."""
    row = session.get(HrSyncCursor, SETTINGS_ROW)
    if row is None:
        return Cursor(iso(now - timedelta(days=lookback_days)), 0), False
    return Cursor(row.since, int(row.offset or 0)), True


def next_cursor(
    before: Cursor, *, had_errors: bool, processed: int, remaining: int, latest: str | None
) -> Cursor:
    """The cursor after a run (the issue's step 5)."""
    if had_errors:
        return before
    if remaining > 0:
        return Cursor(before.since, before.offset + processed)
    return Cursor(latest or before.since, 0)


def write_cursor(session: Session, cursor: Cursor) -> None:
    row = session.get(HrSyncCursor, SETTINGS_ROW)
    if row is None:
        session.add(
            HrSyncCursor(
                id=SETTINGS_ROW, since=cursor.since, offset=cursor.offset, updated_at=utcnow()
            )
        )
    else:
        row.since, row.offset, row.updated_at = cursor.since, cursor.offset, utcnow()
