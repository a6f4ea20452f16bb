"""App DB model of the BambooHR → Moodle user sync: its settings (one row; secrets encrypted),
its cursor (one row: where the next run resumes in BambooHR's change feed) and its runs."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import BigInteger, Boolean, Float, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from common.models.base import Base, BigId, UTCDateTime, utcnow

SETTINGS_ROW = 1  # the sync has one configuration and one cursor: the row with this id
RUN_STATUSES = ("running", "ok", "error", "aborted")
RUN_TRIGGERS = ("cli", "schedule", "manual")


class HrSyncConfig(Base):
    """What an admin saved on the HR sync page; environment variables win over each field."""

    __tablename__ = "manireports_hr_sync_config"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    bamboohr_base_url: Mapped[str] = mapped_column(String(500), default="")
    moodle_ws_url: Mapped[str] = mapped_column(String(500), default="")
    # {"bamboohr_api_key": ..., "moodle_ws_token": ...} as Fernet ciphertext (common.secrets).
    secrets: Mapped[str] = mapped_column(Text, default="")
    batch_size: Mapped[int] = mapped_column(Integer, default=0)  # 0: every change in one run
    lookback_days: Mapped[int] = mapped_column(Integer, default=30)
    cron: Mapped[str] = mapped_column(String(200), default="")  # "" : not scheduled
    tz: Mapped[str] = mapped_column(String(64), default="UTC")
    # {"username": "workEmail", "email": "workEmail", "idnumber": "employeeNumber", ...,
    #  "profile": {"shortname": "bamboohrField"}}, JSON.
    mapping_json: Mapped[str] = mapped_column(Text, default="{}")
    auth: Mapped[str] = mapped_column(String(20), default="oidc")
    max_suspend_share: Mapped[float] = mapped_column(Float, default=0.10)
    notify_emails: Mapped[str] = mapped_column(Text, default="")  # one address a line
    modifiedby: Mapped[int | None] = mapped_column(BigInteger)
    timemodified: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class HrSyncCursor(Base):
    """Where the next run resumes: the feed's `since` and how many of its changes are done."""

    __tablename__ = "manireports_hr_sync_cursor"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    since: Mapped[str] = mapped_column(String(40))  # ISO 8601, as BambooHR's `latest` gives it
    offset: Mapped[int] = mapped_column(Integer, default=0)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class HrSyncRun(Base):
    """One run (or dry run): its summary as the CLI prints it, and a dry run's diff."""

    __tablename__ = "manireports_hr_sync_runs"

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    trigger: Mapped[str] = mapped_column(String(16))  # RUN_TRIGGERS
    dry_run: Mapped[bool] = mapped_column(Boolean, default=False)
    status: Mapped[str] = mapped_column(String(16), index=True)  # RUN_STATUSES
    started_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, index=True)
    finished_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    duration_ms: Mapped[int | None] = mapped_column(Integer)
    summary_json: Mapped[str] = mapped_column(Text, default="{}")
    diff_json: Mapped[str | None] = mapped_column(Text)
    error: Mapped[str | None] = mapped_column(Text)
    startedby: Mapped[int | None] = mapped_column(BigInteger)  # the admin of a manual run
