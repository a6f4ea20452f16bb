"""App DB model of report schedules: which report, with which filters, when (a `Recurrence` in
an IANA zone, stored as the raw fields `Recurrence.as_raw` gives), to whom and in which format.

A schedule with a `companyid` belongs to that company: its manager sees and edits it, no one
of another company does. None is site-wide (site admins). `next_run_at` is worked out in the
schedule's zone when it is saved or activated, and stored in UTC for the scheduler to find.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import BigInteger, Boolean, Integer, LargeBinary, String, Text
from sqlalchemy.dialects import mysql
from sqlalchemy.orm import Mapped, mapped_column

from common.models.base import Base, BigId, UTCDateTime, utcnow

SCHEDULE_FORMATS = ("csv", "xlsx", "pdf")


class ReportSchedule(Base):
    __tablename__ = "manireports_report_schedules"

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    title: Mapped[str] = mapped_column(String(200))
    # A registered report's name, or `custom_<id>` for a stored one.
    report: Mapped[str] = mapped_column(String(100), index=True)
    # The report's filters as its parse_params accepts them: {name: raw string}, JSON.
    params_json: Mapped[str] = mapped_column(Text, default="{}")
    frequency: Mapped[str] = mapped_column(String(16))  # daily | weekly | monthly | cron
    at: Mapped[str] = mapped_column(String(5), default="")  # HH:MM local, "" for cron
    weekdays: Mapped[str] = mapped_column(String(40), default="")  # "mon,wed"
    day: Mapped[str] = mapped_column(String(2), default="")  # "1".."31"
    cron: Mapped[str] = mapped_column(String(200), default="")
    tz: Mapped[str] = mapped_column(String(64))
    # {"users": [Moodle user ids], "emails": [plain addresses]}, JSON.
    recipients_json: Mapped[str] = mapped_column(Text, default="{}")
    format: Mapped[str] = mapped_column(String(8))  # csv | xlsx | pdf
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    companyid: Mapped[int | None] = mapped_column(BigInteger, index=True)
    createdby: Mapped[int] = mapped_column(BigInteger)
    timecreated: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    timemodified: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    next_run_at: Mapped[datetime | None] = mapped_column(UTCDateTime, index=True)
    last_run_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    last_status: Mapped[str | None] = mapped_column(String(16))
    failed_error: Mapped[str | None] = mapped_column(Text)
    attempts: Mapped[int] = mapped_column(Integer, default=0)


# Up to 4 GB on MariaDB (a plain BLOB stops at 64 KB); the size setting caps what is stored.
FileBytes = LargeBinary().with_variant(mysql.LONGBLOB(), "mysql", "mariadb")


class ReportFile(Base):
    """A file a scheduled run produced: attached by the mailer, or fetched through its link
    (`/schedules/files/<token>`) when it is over the attachment size. Removed with its run
    (report-run retention) or when it expires."""

    __tablename__ = "manireports_report_files"

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    run_id: Mapped[int] = mapped_column(BigInteger, index=True)
    schedule_id: Mapped[int] = mapped_column(BigInteger, index=True)
    companyid: Mapped[int | None] = mapped_column(BigInteger, index=True)
    filename: Mapped[str] = mapped_column(String(255))
    content_type: Mapped[str] = mapped_column(String(100))
    size: Mapped[int] = mapped_column(BigInteger)
    content: Mapped[bytes] = mapped_column(FileBytes)
    # An unguessable download token (secrets.token_urlsafe), for the link instead of a file.
    token: Mapped[str] = mapped_column(String(64), unique=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, index=True)
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime, index=True)


TASK_STATUSES = ("running", "ok", "error", "timeout")


class TaskRun(Base):
    """One run of a scheduled task (aggregation steps, retention, the email watcher, syncs,
    report schedules), fired by the scheduler or by an admin's "run now"."""

    __tablename__ = "manireports_task_runs"

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    task: Mapped[str] = mapped_column(String(64), index=True)
    trigger: Mapped[str] = mapped_column(String(16))  # schedule | manual
    status: Mapped[str] = mapped_column(String(16))  # TASK_STATUSES
    started_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, index=True)
    finished_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    duration_ms: Mapped[int | None] = mapped_column(Integer)
    error: Mapped[str | None] = mapped_column(Text)
    detail_json: Mapped[str] = mapped_column(Text, default="{}")
