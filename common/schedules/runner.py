"""One run of a report schedule: render the report for each audience, keep the files, and queue
one `scheduled_report` mail job, all or nothing.

Each audience's rendering is its own row in `manireports_report_runs` (origin `schedule`, with
the schedule, the slot, the attempt and the file), so the run history shows who received what.
The files are kept in `manireports_report_files`; the mailer attaches them, or, over the
attachment size, the email carries a link to `/schedules/files/<token>` instead. The job is
created in the transaction that records the command as processed, so a command delivered twice
(a redelivery, a re-publish after the duplicate window) queues one job.

A run stops at `SCHEDULE_RUN_TIMEOUT_S`: the rows are checked against the deadline as they are
written (a custom report's query also carries the database's own time limit), and nothing is
queued past it; the run is recorded as a timeout.
"""

from __future__ import annotations

import hashlib
import io
import logging
import secrets
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy.exc import IntegrityError

from common.appdb import AppDB
from common.customreports.catalog import find_report
from common.customreports.stored_report import StoredReport
from common.customsql.execute import QueryTimeout
from common.idempotency import already_processed, mark_processed
from common.mail.jobs import create_job
from common.mail.recipients import RecipientSpec
from common.mail.templates import SITE_WIDE
from common.models.base import utcnow
from common.models.schedules import ReportFile, ReportSchedule
from common.moodle import MoodleSource
from common.reports import Report, RunContext
from common.reports.export import FORMATS
from common.reports.render import export_chunks
from common.reports.runs import ScheduledSlot, recorded_run
from common.schedules.audiences import Addressee, Audience, audiences_of
from common.schedules.commands import due_text
from common.schedules.store import filters_of
from common.settings import Settings

log = logging.getLogger(__name__)

CONSUMER = "schedule-runs"
JOB_TYPE = "scheduled_report"


class RunFailed(Exception):
    """The run cannot go ahead; the message says why (stored on the schedule)."""


@dataclass(frozen=True)
class RunRequest:
    schedule_id: int
    due: datetime
    msg_id: str
    manual: bool = False


@dataclass(frozen=True)
class RunOutcome:
    job_id: int | None  # None: nothing to send (already done, schedule gone or paused)
    recipients: int = 0
    files: int = 0
    left_out: tuple[str, ...] = ()


@dataclass(frozen=True)
class StoredFile:
    id: int
    token: str
    name: str
    size: int
    rows: int


def _until(
    rows: Iterable[dict[str, Any]], deadline: float, limit_s: float
) -> Iterator[dict[str, Any]]:
    for row in rows:
        if time.monotonic() > deadline:
            raise QueryTimeout(limit_s)
        yield row


def _file_name(report: Report, due: datetime, fmt: str) -> str:
    stem = "".join(c if c.isalnum() or c in "-_" else "-" for c in report.type_name)[:60]
    return f"{stem}-{due.strftime('%Y%m%d-%H%M')}.{FORMATS[fmt].extension}"


class Renderer:
    """Renders one schedule's report per audience, inside the run's deadline and size cap."""

    def __init__(self, appdb: AppDB, source: MoodleSource, settings: Settings) -> None:
        self.appdb = appdb
        self.source = source
        self.settings = settings

    def render(self, row: ReportSchedule, report: Report, audience: Audience, request: RunRequest,
               attempt: int, deadline: float) -> StoredFile:  # fmt: skip
        params = report.parse_params(filters_of(row))
        slot = ScheduledSlot(row.id, request.due, attempt)
        limit_s = float(self.settings.schedule_run_timeout_s)
        cap = self.settings.schedule_max_file_mb * 1024 * 1024
        with recorded_run(self.appdb, viewer_id=audience.viewer_id, company_id=row.companyid,
                          report=report, params=params, origin="schedule",
                          slot=slot) as run:  # fmt: skip
            if isinstance(report, StoredReport):
                params = report.bind_company(params, audience.scope)
            ctx = RunContext(source=self.source, scope=audience.scope, now=int(time.time()),
                             timezone=row.tz, appdb=self.appdb)  # fmt: skip
            page = report.page_request({})
            rows = _until(report.stream(ctx, params, page), deadline, limit_s)
            out = io.BytesIO()
            for chunk in export_chunks(row.format, report, ctx, params, page, run, rows):
                out.write(chunk)
                if out.tell() > cap:
                    raise RunFailed(f"the file is over SCHEDULE_MAX_FILE_MB "
                                    f"({self.settings.schedule_max_file_mb} MB)")  # fmt: skip
            if time.monotonic() > deadline:
                raise QueryTimeout(limit_s)
            name = _file_name(report, request.due, row.format)
            run.file_name, run.file_size = name, out.tell()
            return self._keep(row, run.id, name, out.getvalue(), run.row_count or 0)

    def _keep(self, row: ReportSchedule, run_id: int, name: str, content: bytes,
              rows: int) -> StoredFile:  # fmt: skip
        media_type = FORMATS[row.format].media_type.split(";")[0]
        now = utcnow()
        expires = now + timedelta(days=self.settings.schedule_link_days)
        with self.appdb.transaction() as session:
            stored = ReportFile(run_id=run_id, schedule_id=row.id, companyid=row.companyid,
                                filename=name, content_type=media_type, size=len(content),
                                content=content, token=secrets.token_urlsafe(32), created_at=now,
                                expires_at=expires)  # fmt: skip
            session.add(stored)
            session.flush()
            return StoredFile(int(stored.id), stored.token, name, len(content), rows)


def _recipient(person: Addressee, row: ReportSchedule, report: Report, file: StoredFile,
               link: str, expires: str, source_ref: str) -> RecipientSpec:  # fmt: skip
    return RecipientSpec(
        email=person.email, userid=person.userid, source_ref=source_ref,
        data={"firstname": person.firstname, "lastname": person.lastname,
              "schedule": row.title, "report": report.title, "rows": file.rows,
              "file_id": file.id, "filename": file.name, "link": link, "expires": expires},
    )  # fmt: skip


def _link(settings: Settings, file: StoredFile) -> str:
    """The download link when the file is over the attachment size ("" to attach it)."""
    if file.size <= settings.schedule_attach_max_kb * 1024:
        return ""
    return f"{settings.public_base}/schedules/files/{file.token}"


def execute(
    appdb: AppDB, source: MoodleSource, settings: Settings, request: RunRequest
) -> RunOutcome:
    """Run `request`; the caller publishes the returned job's dispatch. Raises on failure
    (the caller retries or marks the schedule failed)."""
    with appdb.transaction() as session:
        if already_processed(session, CONSUMER, request.msg_id):
            return RunOutcome(None)
        row = session.get(ReportSchedule, request.schedule_id)
        if row is None or not (row.active or request.manual):
            return RunOutcome(None)  # deleted or paused since it was due
        session.expunge(row)
    report = find_report(row.report, appdb)
    if report is None:
        raise RunFailed(f"the report {row.report!r} no longer exists")
    audiences = audiences_of(appdb, source, row, report)
    if not audiences.groups:
        raise RunFailed("no recipient may receive this report: " + "; ".join(audiences.left_out))
    deadline = time.monotonic() + settings.schedule_run_timeout_s
    attempt = int(row.attempts or 0) + 1
    renderer = Renderer(appdb, source, settings)
    files = [renderer.render(row, report, a, request, attempt, deadline) for a in audiences.groups]
    if time.monotonic() > deadline:
        raise QueryTimeout(float(settings.schedule_run_timeout_s))
    return _queue(appdb, settings, row, report, request, audiences.groups, files,
                  audiences.left_out)  # fmt: skip


def _queue(appdb: AppDB, settings: Settings, row: ReportSchedule, report: Report,
           request: RunRequest, groups: list[Audience], files: list[StoredFile],
           left_out: list[str]) -> RunOutcome:  # fmt: skip
    expires = (utcnow() + timedelta(days=settings.schedule_link_days)).strftime("%Y-%m-%d")
    pairs = [(person, file) for group, file in zip(groups, files, strict=True)
             for person in group.people]  # fmt: skip
    # source_ref is unique per recipient row (64 characters at most): the run and the position.
    run_key = hashlib.sha256(request.msg_id.encode()).hexdigest()[:12]
    recipients = [_recipient(person, row, report, file, _link(settings, file), expires,
                             f"schedule:{row.id}:{run_key}:{n}")
                  for n, (person, file) in enumerate(pairs)]  # fmt: skip
    try:
        with appdb.transaction() as session:
            if already_processed(session, CONSUMER, request.msg_id):
                return RunOutcome(None)
            job = create_job(session, company_id=row.companyid or SITE_WIDE, job_type=JOB_TYPE,
                             recipients=recipients, source="schedule", actor_id=row.createdby,
                             payload={"schedule": row.id, "due": due_text(request.due),
                                      "left_out": left_out})  # fmt: skip
            mark_processed(session, CONSUMER, request.msg_id)
            stored = session.get(ReportSchedule, row.id)
            if stored is not None:
                stored.last_run_at, stored.last_status = utcnow(), "ok"
                stored.failed_error, stored.attempts = None, 0
            session.flush()
            job_id = int(job.id)
    except IntegrityError:  # another worker queued this very run a moment ago
        log.info("schedule %s: run %s was queued by another worker", row.id, request.msg_id)
        return RunOutcome(None)
    log.info("schedule %s (%s): job %s for %d recipient(s)", row.id, due_text(request.due),
             job_id, len(recipients))  # fmt: skip
    return RunOutcome(job_id, len(recipients), len(files), tuple(left_out))
