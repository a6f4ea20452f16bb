"""The scheduler admin pages, for site administrators: every scheduled task with its last run,
duration, status, failures in a row and next run, with "Run now"; one task's recent runs; and
the report schedules whose runs failed, each with "Retry".

"Run now" and "Retry" publish a command through the web tier's bus client: the same command
the scheduler fires (with a trigger or tag of its own, so it is never taken for a duplicate of
the slot's). When the bus cannot take it, nothing is queued and the page says so; the admin
tries again. Both are audited.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from flask import Blueprint, abort, flash, redirect, render_template, request, url_for
from flask_wtf import FlaskForm

from common.audit import OUTCOME_FAILED, OUTCOME_SUCCESS, record_audit
from common.bus import command_subject
from common.hrsync.schedule import TASK as HR_SYNC_TASK
from common.hrsync.schedule import recurrence_of, stored_schedule
from common.models.schedules import TaskRun
from common.schedules.commands import manual_tag, run_command
from common.schedules.failures import (
    FAILED,
    failed_schedules,
    schedule_in_scope,
    schedules_summary,
)
from common.schedules.task_runs import detail_of, failure_streak, history, last_run, one_line
from common.schedules.tasks import PeriodicTask, find_task, tasks_with_intervals
from common.schedules.timing import next_run
from web.auth.guards import Tenancy, current_viewer, request_scope, signed_in, web_context
from web.humanize import zone_named
from web.navigation import add_nav_item

bp = Blueprint("scheduler", __name__, url_prefix="/admin/scheduler", template_folder="templates")
# Site admins only: the menu reads the views' SITE declaration.
add_nav_item("Scheduler", "scheduler.index", section="scheduler", group="Administration")

SCHEDULES_TASK = "report_schedules"
SCHEDULES_DESCRIPTION = (
    "Runs each report schedule when it is due and emails the report; each keeps its own "
    "timetable (see Schedules)."
)
HR_SYNC_DESCRIPTION = (
    "Brings Moodle's users in step with BambooHR, on its own cron and zone (see HR sync)."
)
_DESCRIPTIONS = {SCHEDULES_TASK: SCHEDULES_DESCRIPTION, HR_SYNC_TASK: HR_SYNC_DESCRIPTION}
HISTORY_SIZE = 50


class SchedulerForm(FlaskForm):
    """The CSRF token of the "Run now" and "Retry" buttons."""


@dataclass(frozen=True)
class TaskLine:
    """One task as the page lists it."""

    name: str
    description: str
    interval_s: int | None  # None: report schedules, which follow their own timetables
    last: TaskRun | None
    failures: int
    next_run: datetime | None
    runnable: bool
    elsewhere: str | None = None  # the endpoint of the page that runs it (not "Run now" here)


def _now() -> datetime:
    return datetime.fromtimestamp(web_context().clock(), UTC)


def _tasks() -> list[PeriodicTask]:
    return tasks_with_intervals(web_context().settings.task_intervals)


def _task_or_404(name: str) -> PeriodicTask:
    task = find_task(_tasks(), name)
    if task is None:
        abort(404, description=f"no scheduled task {name[:64]!r}")
    return task


def _checked_post() -> None:
    if not SchedulerForm().validate_on_submit():
        abort(400, description="the form expired; reload the page")


def _lines() -> list[TaskLine]:
    now = web_context().clock()
    with web_context().appdb.transaction() as session:
        lines = [TaskLine(t.name, t.description, t.interval_s, last_run(session, t.name),
                          failure_streak(session, t.name), t.next_run(now), runnable=True)
                 for t in _tasks()]  # fmt: skip
        schedules_failures = failure_streak(session, SCHEDULES_TASK)
        hr_sync = TaskLine(HR_SYNC_TASK, HR_SYNC_DESCRIPTION, None, last_run(session, HR_SYNC_TASK),
                           failure_streak(session, HR_SYNC_TASK), _hr_sync_next(now),
                           runnable=False, elsewhere="hrsync.index")  # fmt: skip
        session.expunge_all()
    return [*lines, TaskLine(SCHEDULES_TASK, SCHEDULES_DESCRIPTION, None, None,
                             schedules_failures, None, runnable=False), hr_sync]  # fmt: skip


def _hr_sync_next(now: float) -> datetime | None:
    """The HR sync's next run on its stored cron and zone; None when it is not scheduled."""
    recurrence = recurrence_of(*stored_schedule(web_context().appdb))
    return None if recurrence is None else next_run(recurrence, datetime.fromtimestamp(now, UTC))


def _audit(action: str, object_type: str, object_id: str | int, outcome: str,
           details: dict[str, Any], company_id: int | None = None) -> None:  # fmt: skip
    with web_context().appdb.transaction() as session:
        record_audit(session, actor_id=current_viewer().user_id, action=action,
                     object_type=object_type, object_id=object_id, outcome=outcome,
                     company_id=company_id, ip=request.remote_addr, details=details)  # fmt: skip


def _publish(subject: str, payload: dict[str, Any], msg_id: str) -> str | None:
    """Publish; None when the stream took it, else why not (one line)."""
    try:
        web_context().bus_client.publish(subject, payload, msg_id=msg_id)
    except Exception as exc:  # noqa: BLE001 - any bus failure is told to the admin
        return one_line(str(exc), 300) or type(exc).__name__
    return None


@bp.get("/")
@signed_in(tenancy=Tenancy.SITE)
def index():  # type: ignore[no-untyped-def]
    ctx = web_context()
    summary = schedules_summary(ctx.appdb, ctx.moodle, request_scope())
    return render_template("scheduler/index.html", lines=_lines(), summary=summary,
                           form=SchedulerForm(),
                           zone=zone_named(current_viewer().timezone))  # fmt: skip


@bp.get("/<task>")
@signed_in(tenancy=Tenancy.SITE)
def task_history(task: str):  # type: ignore[no-untyped-def]
    found = find_task(_tasks(), task)
    if found is None and task not in (SCHEDULES_TASK, HR_SYNC_TASK):
        abort(404, description=f"no scheduled task {task[:64]!r}")
    with web_context().appdb.transaction() as session:
        runs = history(session, task, HISTORY_SIZE)
        failures = failure_streak(session, task)
        session.expunge_all()
    return render_template(
        "scheduler/history.html", name=task, task=found, runs=runs, failures=failures,
        details={run.id: detail_of(run) for run in runs}, size=HISTORY_SIZE,
        next_run=found.next_run(web_context().clock()) if found else None,
        description=found.description if found else _DESCRIPTIONS[task],
        form=SchedulerForm(), zone=zone_named(current_viewer().timezone),
    )  # fmt: skip


@bp.post("/<task>/run")
@signed_in(tenancy=Tenancy.SITE)
def run_now(task: str):  # type: ignore[no-untyped-def]
    found = _task_or_404(task)
    _checked_post()
    msg_id = f"manual:{found.name}:{uuid.uuid4().hex[:12]}"
    subject = command_subject(found.service, found.command)
    problem = _publish(subject, {"task": found.name, "trigger": "manual"}, msg_id)
    details = {"service": found.service, "command": found.command, "msg_id": msg_id}
    if problem is None:
        _audit("task_run_now", "task", found.name, OUTCOME_SUCCESS, details)
        flash(f"Queued: {found.name} will run shortly.", "info")
    else:
        _audit("task_run_now", "task", found.name, OUTCOME_FAILED, {**details, "error": problem})
        flash(f"Not queued: the message bus cannot be reached ({problem}). Nothing was run; "
              "try again in a moment.", "error")  # fmt: skip
    back = request.form.get("back")
    if back == "history":
        return redirect(url_for("scheduler.task_history", task=found.name))
    return redirect(url_for("scheduler.index"))


@bp.get("/failed")
@signed_in(tenancy=Tenancy.SITE)
def failed():  # type: ignore[no-untyped-def]
    ctx = web_context()
    rows = failed_schedules(ctx.appdb, ctx.moodle, request_scope())
    return render_template("scheduler/failed.html", rows=rows, form=SchedulerForm(),
                           zone=zone_named(current_viewer().timezone))  # fmt: skip


@bp.post("/failed/<id:schedule_id>/retry")
@signed_in(tenancy=Tenancy.SITE)
def retry(schedule_id: int):  # type: ignore[no-untyped-def]
    ctx = web_context()
    row = schedule_in_scope(ctx.appdb, ctx.moodle, request_scope(), schedule_id)
    _checked_post()
    if row.last_status != FAILED:
        flash(f"“{row.title}” is no longer failed; nothing to retry.", "info")
        return redirect(url_for("scheduler.failed"))
    tag = manual_tag()
    command = run_command(row.id, row.last_run_at or _now(), manual=tag)
    problem = _publish(command.subject, command.payload, command.msg_id)
    details = {"title": row.title, "report": row.report, "msg_id": command.msg_id}
    if problem is None:
        _audit("schedule_retry", "report_schedule", row.id, OUTCOME_SUCCESS, details,
               row.companyid)  # fmt: skip
        flash(f"Queued: “{row.title}” will run again shortly.", "info")
    else:
        _audit("schedule_retry", "report_schedule", row.id, OUTCOME_FAILED,
               {**details, "error": problem}, row.companyid)  # fmt: skip
        flash(f"Not queued: the message bus cannot be reached ({problem}). Nothing was run; "
              "try again in a moment.", "error")  # fmt: skip
    return redirect(url_for("scheduler.failed"))
