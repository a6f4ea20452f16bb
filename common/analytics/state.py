"""High-water marks of the incremental jobs, kept in `manireports_analytics_state`, and the
numbering of the writes of daily time rows that the refreshes reading them follow."""

from __future__ import annotations

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from common.analytics.upsert import upsert
from common.models.analytics import AnalyticsState
from common.models.base import table_of, utcnow

# The number of the last write of daily time rows: created at 1 by migration 0017, so a
# refresh that has seen any number has a mark above 0.
DAILY_WRITES = "usertime_daily.writes"


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


def next_daily_write(session: Session) -> int:
    """Number this transaction's write of daily rows (stamp them with it), one more than the
    last. Taking the number locks the counter until the transaction ends, so the writes of
    daily rows commit one at a time in the order of their numbers: when a reader sees the
    counter at N, every write numbered up to N has committed, and the rows a refresh has not
    seen yet are exactly those stamped above the counter it last read (`daily_writes_seen`)."""
    state = AnalyticsState
    bumped = session.execute(
        update(state).where(state.name == DAILY_WRITES).values(value=state.value + 1)
    )
    if not bumped.rowcount:  # type: ignore[attr-defined]
        # Starting the count again would hide new rows from refreshes that saw higher numbers.
        raise RuntimeError(f"analytics state {DAILY_WRITES!r} is missing: run the migrations")
    return read_mark(session, DAILY_WRITES)


def daily_writes_seen(session: Session) -> int:
    """The number of the last committed write of daily rows. Read it in the transaction that
    then reads the rows (or before it): they hold every write up to it."""
    return read_mark(session, DAILY_WRITES)
