"""High-water marks of the incremental jobs, kept in `manireports_analytics_state`."""

from __future__ import annotations

from datetime import UTC, datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from common.analytics.upsert import table_of, upsert
from common.models.analytics import AnalyticsState
from common.models.base import utcnow

# A daily row is stamped as it is written, in the statement before its transaction commits
# (`timelines.write_daily`, the log estimate's first run): a job that read the rows at time T
# records T - LATE_COMMIT_S as where it has seen them up to, and so reads rows stamped in
# those seconds again next time, which costs a little and is harmless; a row whose commit
# came more than LATE_COMMIT_S after its stamp would be missed until it is written again.
LATE_COMMIT_S = 30


def read_mark(session: Session, name: str) -> int:
    value = session.scalar(select(AnalyticsState.value).where(AnalyticsState.name == name))
    return int(value or 0)


def write_mark(session: Session, name: str, value: int) -> None:
    """Call in the transaction that stores what the mark says is done."""
    upsert(
        session,
        table_of(AnalyticsState),
        [{"name": name, "value": value, "timemodified": utcnow()}],
        key=("name",),
        update=("value", "timemodified"),
    )


def seen_mark(read_at: datetime) -> int:
    """The value of a "rows written from then on are not counted yet" mark (Unix ms) for a job
    that started reading at `read_at`."""
    return int((read_at.timestamp() - LATE_COMMIT_S) * 1000)


def seen_since(mark: int) -> datetime:
    """The write time a `seen_mark` stands for."""
    return datetime.fromtimestamp(mark / 1000, UTC)
