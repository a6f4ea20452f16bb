"""Apply a bus message at most once per consumer, even when JetStream redelivers it."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from common.models.ops import ProcessedMessage


def already_processed(session: Session, consumer: str, msg_id: str) -> bool:
    query = select(ProcessedMessage.id).where(
        ProcessedMessage.consumer == consumer, ProcessedMessage.msg_id == msg_id
    )
    return session.execute(query).first() is not None


def mark_processed(session: Session, consumer: str, msg_id: str) -> None:
    """Call inside the transaction that applies the message's effect."""
    session.add(ProcessedMessage(consumer=consumer, msg_id=msg_id))


def forget_processed_before(session: Session, cutoff: datetime) -> int:
    result = session.execute(delete(ProcessedMessage).where(ProcessedMessage.processed_at < cutoff))
    return int(result.rowcount or 0)  # type: ignore[attr-defined]
