"""App DB models: the audit log, capability grants, web sessions and sign-in counters."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import BigInteger, Index, Integer, String, Text, UniqueConstraint
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


class WebSession(Base):
    """A signed-in browser. The cookie carries a random session id; only its SHA-256 is stored,
    so a copy of this table cannot be replayed as a cookie. `expires` is the absolute deadline,
    pulled in to the moment a session ends (sign-out, revocation, idle), so one index finds
    every row old enough to purge."""

    __tablename__ = "manireports_web_sessions"

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    sid_hash: Mapped[str] = mapped_column(String(64), unique=True)
    userid: Mapped[int] = mapped_column(BigInteger, index=True)
    created: Mapped[datetime] = mapped_column(UTCDateTime)
    last_seen: Mapped[datetime] = mapped_column(UTCDateTime)
    expires: Mapped[datetime] = mapped_column(UTCDateTime, index=True)
    revoked: Mapped[datetime | None] = mapped_column(UTCDateTime)
    revoked_reason: Mapped[str | None] = mapped_column(String(64))
    ip: Mapped[str | None] = mapped_column(String(45))
    user_agent: Mapped[str | None] = mapped_column(String(255))


class SigninCounter(Base):
    """Sign-in attempts reserved in one throttling bucket (a SHA-256 of e.g. account + client)
    since `window_start`. Reserved by a conditional UPDATE before a password is checked, so
    concurrent attempts can never pass the bucket's limit."""

    __tablename__ = "manireports_signin_counters"

    bucket: Mapped[str] = mapped_column(String(64), primary_key=True)
    attempts: Mapped[int] = mapped_column(Integer)
    window_start: Mapped[datetime] = mapped_column(UTCDateTime, index=True)
