"""App DB model of identity mapping and auto-unenroll, with the table names of the tool they
replace: `lms_identity_map` (an LMS user → their Google Workspace email), `lms_identity_import`
(staged CSV rows, one batch per upload, applied or not) and `lms_unenroll_policy` (one row)."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import BigInteger, Boolean, Float, Index, Integer, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from common.models.base import Base, BigId, UTCDateTime, utcnow

POLICY_ROW = 1


class IdentityMapping(Base):
    __tablename__ = "lms_identity_map"
    __table_args__ = (UniqueConstraint("source", "lms_user_id"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    source: Mapped[str] = mapped_column(String(50))  # canvas | moodle | blackboard | configured
    lms_user_id: Mapped[str] = mapped_column(String(100))  # the LMS's own id, as text
    google_email: Mapped[str] = mapped_column(String(254), index=True)
    full_name: Mapped[str | None] = mapped_column(String(255))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class IdentityImportRow(Base):
    """One row of an uploaded file, staged until its batch is applied. `errors` is a JSON list
    of {field, error}; a batch with any row in error cannot be applied."""

    __tablename__ = "lms_identity_import"
    __table_args__ = (Index("ix_lms_identity_import_batch_line", "batch_id", "line"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    batch_id: Mapped[str] = mapped_column(String(36))
    line: Mapped[int] = mapped_column(Integer)  # the line in the file (the header is line 1)
    source: Mapped[str] = mapped_column(String(50), default="")
    lms_user_id: Mapped[str] = mapped_column(String(100), default="")
    google_email: Mapped[str] = mapped_column(String(254), default="")
    full_name: Mapped[str | None] = mapped_column(String(255))
    errors: Mapped[str | None] = mapped_column(Text)
    imported: Mapped[bool] = mapped_column(Boolean, default=True)
    imported_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    applied: Mapped[bool] = mapped_column(Boolean, default=False)
    applied_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    importedby: Mapped[int | None] = mapped_column(BigInteger)


class UnenrollPolicy(Base):
    """The auto-unenroll policy (one row, id 1): off and dry-run until an admin says otherwise."""

    __tablename__ = "lms_unenroll_policy"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    enabled: Mapped[bool] = mapped_column(Boolean, default=False)
    dry_run: Mapped[bool] = mapped_column(Boolean, default=True)
    grace_days: Mapped[int] = mapped_column(Integer, default=7)
    protected_domains: Mapped[str] = mapped_column(Text, default="")  # one a line
    protected_emails: Mapped[str] = mapped_column(Text, default="")  # one a line
    sources: Mapped[str] = mapped_column(Text, default="")  # "" every source; else one a line
    max_remove_share: Mapped[float] = mapped_column(Float, default=0.20)
    modifiedby: Mapped[int | None] = mapped_column(BigInteger)
    timemodified: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class ParkedIdentity(Base):
    """Someone a roster sync could not place in a course: no Google email is mapped for their
    (source, LMS user id). Pending while `resolved_at` is empty; every sync tries again (and a
    mapping import that maps them triggers one), and the first that resolves them sets it."""

    __tablename__ = "lms_identity_parked"
    __table_args__ = (UniqueConstraint("source", "lms_user_id", "course_id"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    source: Mapped[str] = mapped_column(String(50))
    lms_user_id: Mapped[str] = mapped_column(String(100))
    course_id: Mapped[int] = mapped_column(BigInteger)  # the Moodle course they are enrolled in
    error: Mapped[str] = mapped_column(Text, default="")
    attempts: Mapped[int] = mapped_column(Integer, default=1)
    first_parked_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    last_tried_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    resolved_at: Mapped[datetime | None] = mapped_column(UTCDateTime, index=True)
