"""App DB models: the audit log and capability grants."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import BigInteger, Index, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from common.models.base import Base, BigId, UTCDateTime, utcnow


class AuditLog(Base):
    """Who did what, when, to which object, with what outcome. Never updated, only added."""

    __tablename__ = "manireports_audit_logs"
    __table_args__ = (
        Index("ix_manireports_audit_logs_action_time", "action", "timecreated"),
        Index("ix_manireports_audit_logs_ip_time", "ip", "timecreated"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    userid: Mapped[int | None] = mapped_column(BigInteger, index=True)
    action: Mapped[str] = mapped_column(String(64))
    object_type: Mapped[str] = mapped_column(String(64))
    object_id: Mapped[str | None] = mapped_column(String(255))
    outcome: Mapped[str] = mapped_column(String(16))
    companyid: Mapped[int | None] = mapped_column(BigInteger, index=True)
    ip: Mapped[str | None] = mapped_column(String(45))
    details: Mapped[str | None] = mapped_column(Text)
    timecreated: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, index=True)


class CapabilityGrant(Base):
    """A capability given to one Moodle user beyond what their roles carry."""

    __tablename__ = "manireports_capability_grants"
    __table_args__ = (UniqueConstraint("userid", "capability"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    userid: Mapped[int] = mapped_column(BigInteger, index=True)
    capability: Mapped[str] = mapped_column(String(100))
    grantedby: Mapped[int | None] = mapped_column(BigInteger)
    timecreated: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
