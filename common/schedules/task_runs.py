"""Runs of the scheduled tasks, recorded in `manireports_task_runs`, and the email to the site
administrators when a task keeps failing and when it recovers.

A run is written as `running` before the task starts and given its outcome after: `ok`,
`error` with a one-line reason (never a traceback; a cancelled run reads "cancelled") or
`timeout`. Failing to write the outcome is logged and never hides the task's own outcome.
Work timed elsewhere (a report schedule's run) is recorded whole with `record_task_run`.

A command redelivered by JetStream carries the same message id: a run of it that finished
`ok` is not run or recorded again, and a `running` row a dead worker left is taken over
instead of a second one being added. A failed delivery that is retried is a run of its own.

Alerts are derived from the rows alone: when the task's last N finished runs all failed
(`TASK_ALERT_AFTER_FAILURES`) the admins are told once for that streak, and once more when a
run succeeds after it. "Once" is kept by the recipients' `source_ref` (unique), which names
the streak's first failed run (or the recovering run): a second check, a redelivery or a
concurrent worker finds it taken and sends nothing.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import AsyncIterator, Callable, Iterator, Mapping
from contextlib import asynccontextmanager, contextmanager
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any

from sqlalchemy import and_, func, or_, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from common.mail.jobs import create_job
from common.mail.recipients import RecipientSpec
from common.models.base import utcnow
from common.models.mail import CloudRecipient
from common.models.schedules import TaskRun
from common.service import RetryLater

if TYPE_CHECKING:
    from common.appdb import AppDB
    from common.moodle import MoodleSource
    from common.settings import Settings

log = logging.getLogger(__name__)

TRIGGERS = ("schedule", "manual")
OK, ERROR, TIMEOUT, RUNNING = "ok", "error", "timeout", "running"
FAILED = (ERROR, TIMEOUT)
ERROR_MAX_CHARS = 1000
TASK_MAX_CHARS = 64
# How far back a redelivered message looks for its own run: redeliveries come within minutes.
REDELIVERY_LOOKBACK = 50
ALERT_SOURCE = "task_alert"
ALERT_JOB_TYPE = "task_alert"
NO_COMPANY = 0

FAILED_SUBJECT = "ManiReports: task {{task}} failed {{count}} times in a row"
FAILED_HTML = (
    "<p>Dear {{firstname}},</p>"
    "<p>The scheduled task <strong>{{task}}</strong> failed {{count}} times in a row, "
    "most recently at {{when}} (UTC).</p><p>Last error: <code>{{error}}</code></p>"
    "<p>Open <em>Scheduler</em> under Administration in ManiReports to see its runs and to "
    "run it again. You will be told once more when it recovers.</p>"
)
FAILED_TEXT = (
    "Dear {{firstname}},\n\nThe scheduled task {{task}} failed {{count}} times in a row, most "
    "recently at {{when}} (UTC).\n\nLast error: {{error}}\n\nOpen Scheduler under "
    "Administration in ManiReports to see its runs and to run it again. You will be told once "
    "more when it recovers.\n"
)
RECOVERED_SUBJECT = "ManiReports: task {{task}} recovered"
RECOVERED_HTML = (
    "<p>Dear {{firstname}},</p>"
    "<p>The scheduled task <strong>{{task}}</strong> ran successfully at {{when}} (UTC) after "
    "failing {{count}} times in a row.</p>"
)
RECOVERED_TEXT = (
    "Dear {{firstname}},\n\nThe scheduled task {{task}} ran successfully at {{when}} (UTC) "
    "after failing {{count}} times in a row.\n"
)


def one_line(text: str, limit: int = ERROR_MAX_CHARS) -> str:
    """`text` on one line (whitespace runs as one space), cut to `limit` characters."""
    flat = " ".join(str(text).split())
    return flat if len(flat) <= limit else flat[: limit - 1] + "…"


def error_text(exc: BaseException) -> str:
    """What went wrong, on one line: the exception's message, or its type when it has none."""
    message = one_line(str(exc))
    return one_line(f"{type(exc).__name__}: {message}") if message else type(exc).__name__


def outcome_of(exc: BaseException | None) -> tuple[str, str | None]:
    """(status, error) of a run that ended with `exc` (None: it returned)."""
    if exc is None:
        return OK, None
    if isinstance(exc, RetryLater):
        return ERROR, one_line(f"retrying: {one_line(str(exc)) or 'later'}")
    if isinstance(exc, asyncio.CancelledError | GeneratorExit):
        return ERROR, "cancelled"
    if isinstance(exc, TimeoutError):
        return TIMEOUT, one_line(str(exc)) or "timed out"
    if not isinstance(exc, Exception):  # KeyboardInterrupt, SystemExit
        return ERROR, f"interrupted ({type(exc).__name__})"
    return ERROR, error_text(exc)


def _task_name(task: str) -> str:
    return str(task)[:TASK_MAX_CHARS]


def _trigger(trigger: str) -> str:
    return trigger if trigger in TRIGGERS else "schedule"


def _detail_json(detail: Mapping[str, Any] | None) -> str:
    return json.dumps(dict(detail or {}), default=str, sort_keys=True)


def detail_of(row: TaskRun) -> dict[str, Any]:
    try:
        found = json.loads(row.detail_json or "{}")
    except ValueError:
        return {}
    return found if isinstance(found, dict) else {}


def _duration_ms(started_at: datetime, finished_at: datetime) -> int:
    return max(0, int((finished_at - started_at).total_seconds() * 1000))


def record_task_run(
    appdb: AppDB,
    task: str,
    trigger: str,
    status: str,
    started_at: datetime,
    finished_at: datetime,
    error: str | None = None,
    detail: Mapping[str, Any] | None = None,
) -> int:
    """Record a finished run timed elsewhere; its id. `status` one of ok, error, timeout."""
    if status not in (OK, *FAILED):
        raise ValueError(f"status: one of {OK}, {ERROR}, {TIMEOUT}")
    with appdb.transaction() as session:
        row = TaskRun(task=_task_name(task), trigger=_trigger(trigger), status=status,
                      started_at=started_at, finished_at=finished_at,
                      duration_ms=_duration_ms(started_at, finished_at),
                      error=one_line(error) if error else None,
                      detail_json=_detail_json(detail))  # fmt: skip
        session.add(row)
        session.flush()
        return int(row.id)


@dataclass
class RecordedRun:
    """A run being recorded. The task may add to `detail` (counts, what it did); after the
    run, `status` and `error` are its outcome. `already_done`: a redelivered message whose run
    finished before; the caller skips the work (nothing more is recorded)."""

    task: str
    trigger: str
    detail: dict[str, Any] = field(default_factory=dict)
    run_id: int | None = None
    started_at: datetime = field(default_factory=utcnow)
    already_done: bool = False
    status: str | None = None
    error: str | None = None
    duration_ms: int | None = None
    _started: float = field(default_factory=time.monotonic)


def _own_row(session: Session, task: str, msg_id: str) -> TaskRun | None:
    """The newest recent run of `task` for the message `msg_id`, if any."""
    rows = session.scalars(select(TaskRun).where(TaskRun.task == task)
                           .order_by(TaskRun.id.desc()).limit(REDELIVERY_LOOKBACK))  # fmt: skip
    return next((row for row in rows if detail_of(row).get("msg_id") == msg_id), None)


def _begin(appdb: AppDB, run: RecordedRun, msg_id: str | None) -> None:
    """Write the `running` row (or find this message's own); a failure is logged, and the
    run is then recorded whole when it ends."""
    if msg_id:
        run.detail["msg_id"] = msg_id
    try:
        with appdb.transaction() as session:
            own = _own_row(session, run.task, msg_id) if msg_id else None
            if own is not None and own.status == OK:
                run.already_done, run.run_id = True, int(own.id)
                return
            if own is not None and own.status == RUNNING:
                # A worker died mid-run (or the ack was late): this delivery carries it on.
                own.started_at = run.started_at
                own.detail_json = _detail_json({**detail_of(own), **run.detail})
                run.run_id = int(own.id)
                return
            row = TaskRun(task=run.task, trigger=run.trigger, status=RUNNING,
                          started_at=run.started_at,
                          detail_json=_detail_json(run.detail))  # fmt: skip
            session.add(row)
            session.flush()
            run.run_id = int(row.id)
    except Exception as exc:  # noqa: BLE001 - the task runs even when its row cannot be written
        log.error("task %s: cannot record its start: %s", run.task, error_text(exc))


def _end(appdb: AppDB, run: RecordedRun, exc: BaseException | None) -> None:
    run.status, run.error = outcome_of(exc)
    finished_at = utcnow()
    run.duration_ms = max(0, int((time.monotonic() - run._started) * 1000))
    try:
        if run.run_id is None:
            run.run_id = record_task_run(appdb, run.task, run.trigger, run.status,
                                         run.started_at, finished_at, run.error,
                                         run.detail)  # fmt: skip
            return
        with appdb.transaction() as session:
            session.execute(
                update(TaskRun).where(TaskRun.id == run.run_id)
                .values(status=run.status, finished_at=finished_at, duration_ms=run.duration_ms,
                        error=run.error, detail_json=_detail_json(run.detail))
            )  # fmt: skip
    except Exception as write_error:  # noqa: BLE001 - the task's own outcome comes first
        log.error("task %s: cannot record its outcome (%s): %s", run.task, run.status,
                  error_text(write_error))  # fmt: skip


@contextmanager
def recorded_task(
    appdb: AppDB,
    task: str,
    trigger: str = "schedule",
    *,
    msg_id: str | None = None,
    detail: Mapping[str, Any] | None = None,
) -> Iterator[RecordedRun]:
    """Record the run of the block: `running` first, then its outcome and duration. The
    block's exception is re-raised after it is recorded."""
    run = RecordedRun(_task_name(task), _trigger(trigger), dict(detail or {}))
    _begin(appdb, run, msg_id)
    if run.already_done:
        yield run
        return
    try:
        yield run
    except BaseException as exc:
        _end(appdb, run, exc)
        raise
    _end(appdb, run, None)


@asynccontextmanager
async def recorded_task_async(
    appdb: AppDB,
    task: str,
    trigger: str = "schedule",
    *,
    msg_id: str | None = None,
    detail: Mapping[str, Any] | None = None,
) -> AsyncIterator[RecordedRun]:
    """`recorded_task` for asyncio services: the writes run in worker threads. A cancelled
    run's outcome is still written (the thread finishes even if the await is cancelled)."""
    run = RecordedRun(_task_name(task), _trigger(trigger), dict(detail or {}))
    await asyncio.to_thread(_begin, appdb, run, msg_id)
    if run.already_done:
        yield run
        return
    try:
        yield run
    except BaseException as exc:
        await asyncio.shield(asyncio.to_thread(_end, appdb, run, exc))
        raise
    await asyncio.to_thread(_end, appdb, run, None)


# --- what the rows say ---------------------------------------------------------------------


def _finished(task: str) -> Any:
    return and_(TaskRun.task == task, TaskRun.status != RUNNING)


def _after(row: TaskRun | None) -> Any:
    """Rows started after `row` (ties by id), or every row when there is none."""
    if row is None:
        return True
    return or_(TaskRun.started_at > row.started_at,
               and_(TaskRun.started_at == row.started_at, TaskRun.id > row.id))  # fmt: skip


def _before(row: TaskRun) -> Any:
    return or_(TaskRun.started_at < row.started_at,
               and_(TaskRun.started_at == row.started_at, TaskRun.id < row.id))  # fmt: skip


def _newest_first() -> tuple[Any, Any]:
    return TaskRun.started_at.desc(), TaskRun.id.desc()


def last_run(session: Session, task: str) -> TaskRun | None:
    """The task's newest run, finished or not."""
    query = select(TaskRun).where(TaskRun.task == task).order_by(*_newest_first()).limit(1)
    return session.scalars(query).first()


def failure_streak(session: Session, task: str, *, before: TaskRun | None = None) -> int:
    """How many of the task's finished runs failed in a row, counted back from the newest
    (or from the one before `before`)."""
    limit = _finished(task) if before is None else and_(_finished(task), _before(before))
    last_ok = session.scalars(select(TaskRun).where(limit, TaskRun.status == OK)
                              .order_by(*_newest_first()).limit(1)).first()  # fmt: skip
    count = session.scalar(select(func.count()).select_from(TaskRun)
                           .where(limit, TaskRun.status.in_(FAILED), _after(last_ok)))  # fmt: skip
    return int(count or 0)


def failure_streaks(session: Session, tasks: list[str]) -> dict[str, int]:
    return {task: failure_streak(session, task) for task in tasks}


def history(session: Session, task: str, limit: int = 50) -> list[TaskRun]:
    query = select(TaskRun).where(TaskRun.task == task).order_by(*_newest_first()).limit(limit)
    return list(session.scalars(query))


# --- alerts ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Alert:
    kind: str  # "failed" | "recovered"
    key_run_id: int  # the streak's first failed run, or the run that recovered
    count: int  # failures in the streak
    last: TaskRun  # the run that just finished


def due_alert(session: Session, task: str, after_failures: int) -> Alert | None:
    """The alert the task's runs call for now, if any (already sent or not)."""
    newest = session.scalars(select(TaskRun).where(_finished(task))
                             .order_by(*_newest_first()).limit(1)).first()  # fmt: skip
    if newest is None:
        return None
    if newest.status == OK:
        count = failure_streak(session, task, before=newest)
        if count < after_failures:
            return None
        return Alert("recovered", int(newest.id), count, newest)
    count = failure_streak(session, task)
    if count < after_failures:
        return None
    last_ok = session.scalars(select(TaskRun).where(_finished(task), TaskRun.status == OK)
                              .order_by(*_newest_first()).limit(1)).first()  # fmt: skip
    first = session.scalars(select(TaskRun).where(_finished(task), _after(last_ok))
                            .order_by(TaskRun.started_at, TaskRun.id).limit(1)).first()  # fmt: skip
    assert first is not None
    return Alert("failed", int(first.id), count, newest)


def _ref_prefix(alert: Alert) -> str:
    return f"{ALERT_SOURCE}:{alert.kind}:{alert.key_run_id}:"


def _already_sent(session: Session, alert: Alert) -> bool:
    taken = CloudRecipient.source_ref.like(_ref_prefix(alert) + "%")
    query = select(CloudRecipient.id).where(taken)
    return session.scalars(query.limit(1)).first() is not None


@dataclass(frozen=True)
class Admin:
    userid: int
    email: str
    firstname: str
    lastname: str


def site_admins(source: MoodleSource) -> list[Admin]:
    """Moodle's site administrators (config `siteadmins`) who can be mailed: not deleted, not
    suspended, with an address; in the config's order."""
    ids = list(source.site_admin_ids())
    if not ids:
        return []
    u = source.tables.user
    query = select(u.c.id, u.c.email, u.c.firstname, u.c.lastname).where(
        u.c.id.in_(ids), u.c.deleted == 0, u.c.suspended == 0, u.c.email != ""
    )
    with source.engine.connect() as conn:
        found = {int(r.id): Admin(int(r.id), str(r.email), str(r.firstname), str(r.lastname))
                 for r in conn.execute(query)}  # fmt: skip
    return [found[i] for i in ids if i in found]


def _send(session: Session, alert: Alert, task: str, admins: list[Admin]) -> int:
    failed = alert.kind == "failed"
    when = alert.last.finished_at or alert.last.started_at
    variables = {"task": task, "count": alert.count, "error": alert.last.error or "",
                 "when": when.strftime("%Y-%m-%d %H:%M:%S")}  # fmt: skip
    recipients = [RecipientSpec(email=a.email, userid=a.userid,
                                source_ref=f"{_ref_prefix(alert)}{a.userid}",
                                data={"firstname": a.firstname, "lastname": a.lastname})
                  for a in admins]  # fmt: skip
    job = create_job(
        session, company_id=NO_COMPANY, job_type=ALERT_JOB_TYPE, recipients=recipients,
        source=ALERT_SOURCE, subject=FAILED_SUBJECT if failed else RECOVERED_SUBJECT,
        html=FAILED_HTML if failed else RECOVERED_HTML,
        text=FAILED_TEXT if failed else RECOVERED_TEXT,
        payload={"source": ALERT_SOURCE, "task": task, "alert": alert.kind,
                 "run": alert.key_run_id, "variables": variables},
    )  # fmt: skip
    return int(job.id)


def alert_on_streak(
    appdb: AppDB,
    source: MoodleSource | Callable[[], MoodleSource],
    settings: Settings,
    task: str,
) -> int | None:
    """After a run of `task` finished: email the site admins if its failures just reached
    `settings.task_alert_after_failures` in a row, or it ran fine after such a streak, unless
    they were told already. The email job's id (to dispatch), or None. `source` may be a
    callable, opened only when an alert is due."""
    task = _task_name(task)
    with appdb.transaction() as session:
        alert = due_alert(session, task, settings.task_alert_after_failures)
        if alert is None or _already_sent(session, alert):
            return None
        session.expunge(alert.last)
    moodle = source() if callable(source) else source
    admins = site_admins(moodle)
    if not admins:
        log.warning("task %s %s, but no site administrator has an address to tell", task,
                    "keeps failing" if alert.kind == "failed" else "recovered")  # fmt: skip
        return None
    try:
        with appdb.transaction() as session:
            job_id = _send(session, alert, task, admins)
    except IntegrityError:  # another worker told them first: the source_ref is taken
        log.info("task %s: the %s alert was sent by another run", task, alert.kind)
        return None
    log.warning("task %s %s: site administrators alerted (email job %d)", task,
                f"failed {alert.count} times in a row" if alert.kind == "failed"
                else "recovered", job_id)  # fmt: skip
    return job_id
