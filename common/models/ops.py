"""Operational tables: which bus messages each consumer has already applied."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from common.models.base import Base, BigId, UTCDateTime, utcnow


class ProcessedMessage(Base):
    """Written in the same transaction as a message's effect, so a redelivery is a no-op."""

    __tablename__ = "manireports_processed_msgs"
    __table_args__ = (UniqueConstraint("consumer", "msg_id"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    consumer: Mapped[str] = mapped_column(String(64))
    msg_id: Mapped[str] = mapped_column(String(128))
    processed_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, index=True)
