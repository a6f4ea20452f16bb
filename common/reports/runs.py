"""The report run history (`manireports_report_runs`): one row per execution of any report,
from any caller (web page, export, JSON API, CLI, dashboard), and who may read which rows.

`recorded_run(...)` writes the row as `running` before the report reads anything and sets
its outcome after: ok, error, timeout, rejected (the query or its parameters were refused) or
cancelled (the caller went away mid-export). Parameters are stored as JSON without anything
secret-looking; an error is stored as one short line, never a stack trace.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Protocol

from sqlalchemy import Select, select, update
from sqlalchemy.exc import SQLAlchemyError

from common.access.viewer import Viewer
from common.analytics.tables import TableSpec
from common.appdb import AppDB
from common.customsql.execute import QueryTimeout
from common.errors import FieldError
from common.models.base import utcnow
from common.models.custom import RUN_STATUSES, ReportRun
from common.reports.base import Column, json_value
from common.tenancy import TenantScope, TenantViolation, default_company, sees_every_company

log = logging.getLogger(__name__)

ORIGINS = ("web", "api", "cli", "schedule", "dashboard")
MAX_ERROR_CHARS = 300
MAX_PARAMS_CHARS = 4000
_SECRET_WORDS = ("password", "secret", "token", "key", "credential")


class NamedReport(Protocol):
    @property
    def type_name(self) -> str: ...

    @property
    def title(self) -> str: ...


@dataclass
class RunRecord:
    """The row of a run in progress; set `row_count` before the run ends."""

    id: int
    started: float = field(default_factory=time.monotonic)
    row_count: int | None = None
    status: str | None = None
    file_name: str | None = None  # the file the run wrote, if any (scheduled runs)
    file_size: int | None = None


@dataclass(frozen=True)
class ScheduledSlot:
    """Which schedule a run belongs to, the slot it ran for and which attempt it is."""

    schedule_id: int
    due_at: datetime
    attempt: int


def public_params(params: Mapping[str, Any]) -> str:
    """The parameters as JSON, leaving out any whose name looks secret."""
    kept = {
        str(k): json_value(v)
        for k, v in params.items()
        if not any(word in str(k).lower() for word in _SECRET_WORDS)
    }
    text = json.dumps(kept, default=str, sort_keys=True)
    return text if len(text) <= MAX_PARAMS_CHARS else json.dumps({"truncated": True})


def outcome_of(exc: BaseException | None) -> tuple[str, str | None]:
    """(status, short error text) for how a run ended."""
    if exc is None:
        return "ok", None
    if isinstance(exc, GeneratorExit | KeyboardInterrupt):
        return "cancelled", "the caller went away before the end"
    first_line = (str(exc).strip().splitlines() or [""])[0]
    if isinstance(exc, QueryTimeout):
        return "timeout", first_line[:MAX_ERROR_CHARS] or "the time limit was reached"
    if isinstance(exc, FieldError):
        return "rejected", f"{exc.field}: {exc.reason}"[:MAX_ERROR_CHARS]
    text = f"{type(exc).__name__}: {first_line}" if first_line else type(exc).__name__
    return "error", text[:MAX_ERROR_CHARS]


def start_run(
    appdb: AppDB,
    *,
    viewer_id: int | None,
    company_id: int | None,
    report: NamedReport,
    params: Mapping[str, Any],
    origin: str,
    slot: ScheduledSlot | None = None,
) -> RunRecord:
    if origin not in ORIGINS:
        raise ValueError(f"unknown run origin {origin!r}: one of {', '.join(ORIGINS)}")
    with appdb.transaction() as db:
        row = ReportRun(
            userid=viewer_id, companyid=company_id, report=report.type_name[:100],
            report_title=report.title[:200], origin=origin, params_json=public_params(params),
            status="running", started_at=utcnow(),
        )  # fmt: skip
        if slot is not None:
            row.schedule_id, row.due_at, row.attempt = slot.schedule_id, slot.due_at, slot.attempt
        db.add(row)
        db.flush()
        return RunRecord(int(row.id))


def finish_run(appdb: AppDB, run: RunRecord, exc: BaseException | None) -> None:
    """Store how the run ended (once). A failure to write is logged, never raised over the
    run's own outcome."""
    if run.status is not None:
        return
    status, error = outcome_of(exc)
    run.status = status
    assert status in RUN_STATUSES
    duration_ms = int((time.monotonic() - run.started) * 1000)
    try:
        with appdb.transaction() as db:
            db.execute(
                update(ReportRun).where(ReportRun.id == run.id).values(
                    status=status, error=error, row_count=run.row_count,
                    finished_at=utcnow(), duration_ms=duration_ms, file_name=run.file_name,
                    file_size=run.file_size,
                )
            )  # fmt: skip
    except Exception:
        log.exception("report run %s: could not store its outcome (%s)", run.id, status)


@contextmanager
def recorded_run(
    appdb: AppDB,
    *,
    viewer_id: int | None,
    company_id: int | None,
    report: NamedReport,
    params: Mapping[str, Any],
    origin: str,
    required: bool = True,
    slot: ScheduledSlot | None = None,
) -> Iterator[RunRecord]:
    """Record the block as one run of `report`: `running`, then its outcome. With
    `required` off (the CLI), an app DB that cannot take the row leaves the run unrecorded
    (logged) instead of failing it."""
    try:
        run = start_run(appdb, viewer_id=viewer_id, company_id=company_id, report=report,
                        params=params, origin=origin, slot=slot)  # fmt: skip
    except SQLAlchemyError as exc:
        if required:
            raise
        log.warning("report run not recorded: the app DB refused it (%s)", exc.__class__.__name__)
        run = RunRecord(0, status="unrecorded")
    try:
        yield run
    except BaseException as exc:
        finish_run(appdb, run, exc)
        raise
    finish_run(appdb, run, None)


# ---- Reading the history ------------------------------------------------------------------

RUNS_TABLE = TableSpec(
    columns=(
        Column("started_at", "Started", "datetime"),
        Column("report_title", "Report"),  # with its parameters below
        Column("userid", "User", sortable=False),
        Column("companyid", "Company", sortable=False),
        Column("origin", "From"),
        Column("status", "Status"),  # with the error below
        Column("duration_ms", "Duration", "int"),
        Column("row_count", "Rows", "int"),
    ),
    default_sort="started_at",
    default_direction="desc",
    row_key=("id",),
)


def history_scope(viewer: Viewer, company_id: int | None) -> TenantScope:
    """Whose runs `viewer` may read: a site admin every run (or one company's), a company's
    manager the runs in the company they manage, anyone else only their own (in the company
    asked for, if any). A company they are not in is a TenantViolation (an audited 403)."""
    if sees_every_company(viewer):
        return TenantScope(company_ids=None if not company_id else (company_id,))
    mine = frozenset({viewer.user_id})
    if not viewer.has_iomad:
        return TenantScope(company_ids=None, user_ids=mine)
    if company_id and viewer.membership(company_id) is None:
        raise TenantViolation(company_id)
    chosen = company_id or default_company(viewer)
    if chosen is not None and chosen in viewer.managed_company_ids:
        return TenantScope(company_ids=(chosen,))
    return TenantScope(company_ids=(company_id,) if company_id else None, user_ids=mine)


@dataclass(frozen=True)
class RunFilters:
    report: str | None = None
    user_ids: list[int] | None = None  # None: anyone; empty: nobody
    status: str | None = None
    since: datetime | None = None  # UTC, inclusive
    until: datetime | None = None  # UTC, exclusive


def runs_query(filters: RunFilters) -> Select:  # type: ignore[type-arg]
    """Runs matching `filters`, unscoped: pass it through `scoped(query, history_scope(...))`.
    Its columns are RUNS_TABLE's sort keys."""
    r = ReportRun
    query = select(r.id, r.started_at, r.finished_at, r.report, r.report_title, r.userid,
                   r.companyid, r.origin, r.status, r.duration_ms, r.row_count,
                   r.params_json, r.error)  # fmt: skip
    if filters.report:
        query = query.where(r.report == filters.report)
    if filters.user_ids is not None:
        query = query.where(r.userid.in_(filters.user_ids))
    if filters.status:
        if filters.status not in RUN_STATUSES:
            raise FieldError("status", f"one of {', '.join(RUN_STATUSES)}", status=400)
        query = query.where(r.status == filters.status)
    if filters.since is not None:
        query = query.where(r.started_at >= filters.since)
    if filters.until is not None:
        query = query.where(r.started_at < filters.until)
    return query
