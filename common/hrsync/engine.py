"""One HR sync run, as `manireports sync bamboohr` and the sync service's `bamboohr` command run
it (issue 13, steps 1-6):

1. read the cursor (first run: now − look-back days, offset 0);
2. read BambooHR's change feed since the cursor (ordered by lastChanged, then id) and the
   directory, once each;
3. take `changes[offset:offset+batch]` (all remaining when batch is 0);
4. plan every employee of the batch (Moodle reads only), then, unless this is a dry run or the
   plan would suspend more than the allowed share of active synced users, write the plan;
5. move the cursor only when nothing failed (`common.hrsync.cursor`);
6. return the summary the CLI prints, recorded in `manireports_hr_sync_runs` (and, for a real
   run, audited in the same transaction as the cursor).

A per-employee error (a Moodle error for that user, BambooHR failing on that employee) is
recorded and the others go on. A refused token or key, an unreadable feed, or Moodle unreachable
several times in a row ends the run at once (status error).
"""

from __future__ import annotations

import json
import logging
import time
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from sqlalchemy import select

from common.appdb import AppDB
from common.audit import OUTCOME_FAILED, OUTCOME_SUCCESS, record_audit
from common.hrsync.bamboohr import BambooHR, BambooHRAuthError, BambooHRError
from common.hrsync.cursor import Cursor, next_cursor, read_cursor, write_cursor
from common.hrsync.moodlews import (
    MoodleWS,
    MoodleWSError,
    MoodleWSTokenError,
    MoodleWSUnavailable,
    MoodleWSUnusable,
)
from common.hrsync.plan import (
    CREATE,
    SKIP,
    SUSPEND,
    UNCHANGED,
    UNSUSPEND,
    UPDATE,
    Action,
    Planner,
)
from common.hrsync.settings import HrSyncSettings
from common.idempotency import mark_processed
from common.models.base import utcnow
from common.models.hrsync import HrSyncRun
from common.settings import Settings

log = logging.getLogger(__name__)

STATUS_OK, STATUS_ERROR, STATUS_ABORTED = "ok", "error", "aborted"
# A real run still `running` after this long is taken for dead (its process was killed).
BUSY_WINDOW_MIN = 30
IDEMPOTENCY_CONSUMER = "hrsync"
AUDIT_ACTION = "hr_sync_run"
# Moodle unreachable for this many employees in a row: the rest would fail the same way.
UNREACHABLE_AFTER = 3
COUNTED = {
    CREATE: "created",
    UPDATE: "updated",
    SUSPEND: "suspended",
    UNSUSPEND: "unsuspended",
    UNCHANGED: "unchanged",
    SKIP: "skipped",
}


class RunStopped(Exception):
    """The run cannot go on (token, key, feed, Moodle unreachable): its one-line reason."""


@dataclass
class Summary:
    dry_run: bool
    cursor_before: Cursor
    cursor_after: Cursor
    created: int = 0
    updated: int = 0
    suspended: int = 0
    unsuspended: int = 0
    unchanged: int = 0
    skipped: int = 0
    errors: list[dict[str, Any]] = field(default_factory=list)
    duration_s: float = 0.0
    status: str = STATUS_OK
    error: str | None = None  # the run's own failure (token, threshold...), else None
    diff: list[dict[str, Any]] = field(default_factory=list)  # a dry run's, in feed order
    skipped_detail: list[dict[str, Any]] = field(default_factory=list)
    run_id: int | None = None

    @property
    def exit_code(self) -> int:
        return 0 if self.status == STATUS_OK and not self.errors else 1

    def as_dict(self) -> dict[str, Any]:
        """What the CLI prints: these keys; a dry run adds `diff`, a failed run `error`."""
        summary: dict[str, Any] = {
            "created": self.created,
            "updated": self.updated,
            "suspended": self.suspended,
            "unsuspended": self.unsuspended,
            "unchanged": self.unchanged,
            "skipped": self.skipped,
            "errors": list(self.errors),
            "cursor_before": self.cursor_before.as_dict(),
            "cursor_after": self.cursor_after.as_dict(),
            "dry_run": self.dry_run,
            "duration_s": round(self.duration_s, 3),
        }
        if self.dry_run:
            summary["diff"] = list(self.diff)
        if self.error:
            summary["error"] = self.error
        return summary


def run_sync(
    appdb: AppDB,
    settings: Settings,
    hr: HrSyncSettings,
    *,
    dry_run: bool,
    trigger: str,
    startedby: int | None = None,
    now: datetime | None = None,
    msg_id: str | None = None,
    publish: Any = None,
    bamboohr: BambooHR | None = None,
    moodle: MoodleWS | None = None,
) -> Summary:
    """Run the sync once. ``msg_id`` (a bus command's) is marked processed with the run's
    record; ``publish`` dispatches the summary mail at once (else the mailers' watcher does)."""
    started = time.monotonic()
    now = now or datetime.now(UTC)
    hr.require_connection()
    cursor, run_id, busy = _start_run(appdb, now, hr.lookback_days, trigger=trigger,
                                      dry_run=dry_run, startedby=startedby)  # fmt: skip
    summary = Summary(dry_run=dry_run, cursor_before=cursor, cursor_after=cursor, run_id=run_id)
    if busy is not None:
        # Two real runs at once (the timetable's and an admin's) would both create the same
        # people; this one stands aside, the cursor untouched.
        summary.status = STATUS_ERROR
        summary.error = (f"run {busy} is still going (started in the last {BUSY_WINDOW_MIN} "
                         "min): this one changed nothing")  # fmt: skip
        summary.errors.append({"employee_id": None, "error": summary.error})
        summary.duration_s = time.monotonic() - started
        _finish(appdb, summary, trigger=trigger, startedby=startedby, msg_id=msg_id)
        return summary
    own_bamboohr = bamboohr is None
    own_moodle = moodle is None
    bamboohr = bamboohr or BambooHR(hr.bamboohr_base_url, hr.bamboohr_api_key)
    moodle = moodle or MoodleWS(hr.moodle_ws_url, hr.moodle_ws_token)
    try:
        _Run(hr, bamboohr, moodle, summary, now).run()
    except RunStopped as exc:
        summary.status = STATUS_ABORTED if isinstance(exc, _Aborted) else STATUS_ERROR
        summary.error = str(exc)
    except Exception as exc:  # noqa: BLE001 - recorded as the run's failure, then re-raised
        summary.status, summary.error = STATUS_ERROR, f"{type(exc).__name__}: {exc}"
        summary.duration_s = time.monotonic() - started
        _finish(appdb, summary, trigger=trigger, startedby=startedby, msg_id=msg_id)
        raise
    finally:
        if own_bamboohr:
            bamboohr.close()
        if own_moodle:
            moodle.close()
    if summary.error and not any(e["employee_id"] is None for e in summary.errors):
        summary.errors.append({"employee_id": None, "error": summary.error})
    summary.duration_s = time.monotonic() - started
    _finish(appdb, summary, trigger=trigger, startedby=startedby, msg_id=msg_id)
    _notify(appdb, settings, summary, publish)
    return summary


def _start_run(appdb: AppDB, now: datetime, lookback_days: int, *, trigger: str,
               dry_run: bool, startedby: int | None) -> tuple[Cursor, int, int | None]:  # fmt: skip
    """(the cursor the run starts from, its `running` row's id, the id of a real run still
    going when this is a real run too)."""
    with appdb.transaction() as session:
        cursor, _stored = read_cursor(session, now, lookback_days)
        busy = None if dry_run else _real_run_in_progress(session)
        run = HrSyncRun(trigger=trigger, dry_run=dry_run, status="running",
                        startedby=startedby, started_at=utcnow())  # fmt: skip
        session.add(run)
        session.flush()
        return cursor, int(run.id), busy


def _real_run_in_progress(session: Any) -> int | None:
    """The id of a real run still `running` that started recently (an older one died)."""
    since = utcnow() - timedelta(minutes=BUSY_WINDOW_MIN)
    query = (select(HrSyncRun.id)
             .where(HrSyncRun.dry_run.is_(False), HrSyncRun.status == "running",
                    HrSyncRun.started_at >= since)
             .order_by(HrSyncRun.id.desc()).limit(1))  # fmt: skip
    found = session.scalar(query)
    return None if found is None else int(found)


class _Run:
    def __init__(
        self,
        hr: HrSyncSettings,
        bamboohr: BambooHR,
        moodle: MoodleWS,
        summary: Summary,
        now: datetime,
    ) -> None:
        self.hr = hr
        self.bamboohr = bamboohr
        self.moodle = moodle
        self.summary = summary
        self.now = now
        self._unreachable = 0

    def run(self) -> None:
        summary = self.summary
        before = summary.cursor_before
        try:
            feed = self.bamboohr.changed(before.since)
            directory = self.bamboohr.directory()
        except BambooHRError as exc:
            raise RunStopped(f"BambooHR: {exc}") from None
        end = before.offset + self.hr.batch_size if self.hr.batch_size else None
        batch = feed.changes[before.offset : end]
        remaining = max(0, len(feed.changes) - before.offset - len(batch))
        planner = Planner(self.hr, self.bamboohr, self.moodle, directory, self._today())
        actions = [a for a in (self._step(c.employee_id, planner.plan, c) for c in batch) if a]
        summary.diff = [a.diff_entry() for a in actions if a.kind != UNCHANGED]
        summary.skipped_detail = [a.diff_entry() for a in actions if a.kind == SKIP]
        for skipped in summary.skipped_detail:
            log.info("HR sync: skipped employee %s: %s", skipped["employee_id"], skipped["reason"])
        self._check_suspend_share(actions, directory_size=len(directory))
        for action in actions:  # a dry run counts its plan; a real run what it wrote
            if summary.dry_run or action.kind in (SKIP, UNCHANGED):
                self._count(action)
        if not summary.dry_run:
            for action in actions:
                self._step(action.employee_id, self._write, action)
        summary.cursor_after = next_cursor(
            before,
            had_errors=bool(summary.errors),
            processed=len(batch),
            remaining=remaining,
            latest=feed.latest,
        )

    def _today(self) -> date:
        """Today where the company is (the schedule's zone): a termination dated today takes
        effect from its midnight there, not UTC's."""
        try:
            return self.now.astimezone(ZoneInfo(self.hr.tz or "UTC")).date()
        except (ZoneInfoNotFoundError, ValueError):
            return self.now.astimezone(UTC).date()

    def _step(self, employee_id: str, work: Any, arg: Any) -> Any:
        """``work(arg)`` for one employee: their error is recorded and the run goes on, unless
        it means nothing else can work (a refused token or key, Moodle unreachable again)."""
        try:
            result = work(arg)
        except MoodleWSTokenError as exc:
            raise RunStopped(
                f"Moodle refused the web-service token ({exc.errorcode}): {exc.message}"
            ) from None
        except MoodleWSUnusable as exc:
            raise RunStopped(f"Moodle: {exc.message}") from None
        except MoodleWSUnavailable as exc:
            self._error(employee_id, f"Moodle: {exc}")
            self._unreachable += 1
            if self._unreachable >= UNREACHABLE_AFTER:
                raise RunStopped(
                    f"Moodle unreachable for {UNREACHABLE_AFTER} employees in a "
                    f"row ({exc.message}); the rest wait for the next run"
                ) from None
            return None
        except MoodleWSError as exc:
            self._unreachable = 0
            self._error(employee_id, f"Moodle: {exc}")
            return None
        except BambooHRError as exc:
            if isinstance(exc, BambooHRAuthError):
                raise RunStopped(f"BambooHR: {exc}") from None
            self._error(employee_id, f"BambooHR: {exc}")
            return None
        self._unreachable = 0
        return result

    def _error(self, employee_id: str, error: str) -> None:
        log.warning("HR sync: employee %s: %s", employee_id, error)
        self.summary.errors.append({"employee_id": employee_id, "error": error})

    def _check_suspend_share(self, actions: list[Action], *, directory_size: int) -> None:
        """Before any write: a plan suspending more than the allowed share of the active synced
        users stops here (as Google's directory sync and Entra Connect stop over a limit)."""
        suspending = sum(1 for a in actions if a.kind == SUSPEND)
        if not suspending:
            return
        try:
            users = self.moodle.users_with_auth(self.hr.auth)
        except MoodleWSError as exc:
            raise RunStopped(f"cannot count the active synced users: {exc}") from None
        if users is None:  # core_user_get_users not allowed: the directory's size instead
            active = directory_size + suspending
        else:
            active = sum(1 for u in users if u.get("idnumber") and not u.get("suspended"))
        allowed = self.hr.max_suspend_share * active
        if suspending > allowed:
            raise _Aborted(
                f"would suspend {suspending} of {active} active synced users, more than "
                f"the allowed {self.hr.max_suspend_share:.0%}; nothing was changed"
            )

    def _write(self, action: Action) -> None:
        if action.kind == CREATE:
            action.userid = self.moodle.create_user(action.send, self.hr.auth)
        elif action.kind in (UPDATE, SUSPEND, UNSUSPEND):
            assert action.userid is not None
            self.moodle.update_user(action.userid, action.send)
        else:
            return
        self._count(action)

    def _count(self, action: Action) -> None:
        name = COUNTED[action.kind]
        setattr(self.summary, name, getattr(self.summary, name) + 1)


class _Aborted(RunStopped):
    """The suspension guard stopped the run (status aborted, not error)."""


def _finish(
    appdb: AppDB, summary: Summary, *, trigger: str, startedby: int | None, msg_id: str | None
) -> None:
    """The run's record, and for a real run its cursor and audit entry, in one transaction."""
    if summary.status == STATUS_OK and summary.errors:
        summary.status = STATUS_ERROR
    finished = utcnow()
    with appdb.transaction() as session:
        run = session.get(HrSyncRun, summary.run_id)
        assert run is not None
        run.status = summary.status
        run.finished_at = finished
        run.duration_ms = int(summary.duration_s * 1000)
        run.summary_json = json.dumps({k: v for k, v in summary.as_dict().items() if k != "diff"})
        run.diff_json = json.dumps(summary.diff) if summary.dry_run else None
        run.error = summary.error
        if not summary.dry_run:
            write_cursor(session, summary.cursor_after)
            record_audit(
                session,
                actor_id=startedby,
                action=AUDIT_ACTION,
                object_type="hr_sync_run",
                object_id=summary.run_id,
                outcome=OUTCOME_SUCCESS if summary.status == STATUS_OK else OUTCOME_FAILED,
                details={
                    "trigger": trigger,
                    "status": summary.status,
                    **{k: getattr(summary, k) for k in COUNTED.values()},
                    "errors": len(summary.errors),
                    "cursor_before": summary.cursor_before.as_dict(),
                    "cursor_after": summary.cursor_after.as_dict(),
                },
            )
        if msg_id:
            mark_processed(session, IDEMPOTENCY_CONSUMER, msg_id)


def _notify(appdb: AppDB, settings: Settings, summary: Summary, publish: Any) -> None:
    """The summary mail: after every real run, and after a dry run that failed."""
    failed = summary.exit_code != 0
    if summary.dry_run and not failed:
        return
    try:
        from common.hrsync.notify import notify_run
    except ImportError:
        return
    try:
        notify_run(appdb, settings, summary.as_dict(), failed=failed, publish=publish)
    except Exception as exc:  # noqa: BLE001 - a mail problem never fails the run itself
        log.error("HR sync: the summary mail could not be queued: %s", exc)


def record_config_error(
    appdb: AppDB,
    settings: Settings,
    error: str,
    *,
    dry_run: bool,
    trigger: str,
    startedby: int | None = None,
    msg_id: str | None = None,
    publish: Any = None,
) -> Summary:
    """A run that could not start (a bad or missing setting): recorded in the run history and
    told to the notification addresses, so a scheduled run failing this way is seen. The cursor
    is not touched."""
    now = datetime.now(UTC)
    cursor, run_id, _busy = _start_run(appdb, now, 0, trigger=trigger, dry_run=dry_run,
                                       startedby=startedby)  # fmt: skip
    summary = Summary(
        dry_run=dry_run,
        cursor_before=cursor,
        cursor_after=cursor,
        run_id=run_id,
        status=STATUS_ERROR,
        error=f"configuration: {error}",
    )
    summary.errors.append({"employee_id": None, "error": summary.error})
    _finish(appdb, summary, trigger=trigger, startedby=startedby, msg_id=msg_id)
    _notify(appdb, settings, summary, publish)
    return summary
