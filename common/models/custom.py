"""App DB models for what administrators build themselves: custom SQL and GUI-built reports,
dashboards laid out on a grid, and the history of every report run.

A stored report is reached by the name `custom_<id>` everywhere a report name is taken (page,
data endpoint, exports, CLI, API, schedules), so renaming its title never breaks a schedule.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import BigInteger, Boolean, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from common.models.base import Base, BigId, UTCDateTime, utcnow

REPORT_KINDS = ("sql", "builder")
DASHBOARD_VISIBILITY = ("global", "company", "private")
RUN_STATUSES = ("running", "ok", "error", "timeout", "rejected", "cancelled")


class CustomReport(Base):
    """A report an administrator wrote in SQL or built in the GUI builder.

    `sql_text` is what runs — for a built report, the SQL the builder generated from
    `builder_json` — and it passed the validator when it was saved; it is validated again
    before every run (the whitelist may have narrowed since).
    """

    __tablename__ = "manireports_custom_reports"

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    kind: Mapped[str] = mapped_column(String(16))  # sql | builder
    title: Mapped[str] = mapped_column(String(200))
    description: Mapped[str] = mapped_column(Text, default="")
    sql_text: Mapped[str] = mapped_column(Text)
    # The builder's document (tables, joins, columns, filters, grouping, sort); None for SQL.
    builder_json: Mapped[str | None] = mapped_column(Text)
    # The declared parameters: [{"name", "type", "label", "required", "default"}], JSON.
    params_json: Mapped[str] = mapped_column(Text, default="[]")
    # The result's columns as learned when it was saved: [{"key", "label", "kind"}], JSON
    # (kind as in common.reports.base.COLUMN_KINDS), so a page can lay out its table first.
    columns_json: Mapped[str] = mapped_column(Text, default="[]")
    # A company manager may run it only when set, and then `:companyid` is bound to their
    # company; the SQL must use that parameter (checked at save).
    company_safe: Mapped[bool] = mapped_column(Boolean, default=False)
    createdby: Mapped[int] = mapped_column(BigInteger)
    modifiedby: Mapped[int] = mapped_column(BigInteger)
    timecreated: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    timemodified: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class CustomDashboard(Base):
    """A dashboard laid out in the dashboard builder: widgets bound to reports on a grid.

    `visibility` is checked on every read: global (every viewer with the dashboard
    capability), company (viewers of `companyid` only) or private (its owner only).
    """

    __tablename__ = "manireports_dashboards"

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    title: Mapped[str] = mapped_column(String(200))
    visibility: Mapped[str] = mapped_column(String(16))  # global | company | private
    companyid: Mapped[int | None] = mapped_column(BigInteger, index=True)
    ownerid: Mapped[int] = mapped_column(BigInteger, index=True)
    # [{"id", "type": kpi|line|bar|pie|table, "report", "filters": {}, "options": {},
    #   "x", "y", "w", "h"}], JSON.
    layout_json: Mapped[str] = mapped_column(Text, default="[]")
    timecreated: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    timemodified: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class ReportRun(Base):
    """One execution of any report (prebuilt, custom or built), from any caller."""

    __tablename__ = "manireports_report_runs"

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    userid: Mapped[int | None] = mapped_column(BigInteger, index=True)
    # The company the run was scoped to (None: site-wide), so a manager sees their own.
    companyid: Mapped[int | None] = mapped_column(BigInteger, index=True)
    report: Mapped[str] = mapped_column(String(100), index=True)  # the report's name
    report_title: Mapped[str] = mapped_column(String(200))
    origin: Mapped[str] = mapped_column(String(16))  # web | api | cli | schedule | dashboard
    params_json: Mapped[str] = mapped_column(Text, default="{}")
    status: Mapped[str] = mapped_column(String(16), index=True)
    row_count: Mapped[int | None] = mapped_column(Integer)
    error: Mapped[str | None] = mapped_column(Text)
    started_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, index=True)
    finished_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    duration_ms: Mapped[int | None] = mapped_column(Integer)
    # A scheduled run: its schedule, the slot it ran for and which attempt (1 + retries).
    schedule_id: Mapped[int | None] = mapped_column(BigInteger, index=True)
    due_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    attempt: Mapped[int | None] = mapped_column(Integer)
    # The file it produced (scheduled runs: `manireports_report_files` holds the bytes).
    file_name: Mapped[str | None] = mapped_column(String(255))
    file_size: Mapped[int | None] = mapped_column(BigInteger)
