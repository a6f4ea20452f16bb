"""High-water marks of the incremental jobs, kept in `manireports_analytics_state`."""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.orm import Session

from common.analytics.upsert import table_of, upsert
from common.models.analytics import AnalyticsState
from common.models.base import utcnow


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
