"""The HR sync's summary mail: after every run (and dry run) one email job to the notification
addresses, through the mailers, as the replaced job's SNS topic told its operators.

The addresses are the stored ones (HrSyncConfig.notify_emails, one a line) unless
`HR_SYNC_NOTIFY` (comma-separated) is set, which wins as every HR sync environment variable
does. The message is rendered by the mailers from Mustache templates with the run's numbers as
variables, so an error text from BambooHR or Moodle is escaped in the HTML body and can never be
read as a template tag. At most `MAX_ERRORS_MAILED` errors are listed; the run's page has them
all.
"""

from __future__ import annotations

import asyncio
import logging
import os
from collections.abc import Mapping
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from common.appdb import AppDB
from common.mail.addresses import address_problem
from common.mail.jobs import create_job
from common.mail.queue import Publish, PublishAsync, dispatch, dispatch_async
from common.mail.recipients import RecipientSpec
from common.models.hrsync import SETTINGS_ROW, HrSyncConfig

log = logging.getLogger(__name__)

JOB_TYPE = "hr_sync_report"
SOURCE = "hr_sync"
NO_COMPANY = 0  # a site-level mail, as the task alerts are
NOTIFY_ENV = "HR_SYNC_NOTIFY"
MAX_ERRORS_MAILED = 50
REASON_MAX_CHARS = 200
ERROR_MAX_CHARS = 1000
COUNTS = ("created", "updated", "suspended", "unsuspended", "unchanged", "skipped")
CHANGES = ("created", "updated", "suspended", "unsuspended")

SUBJECT = "{{headline}}"
HTML = (
    "<p>{{headline}}</p>"
    '<table>{{#counts}}<tr><th style="text-align:left">{{name}}</th>'
    '<td style="text-align:right">{{value}}</td></tr>{{/counts}}</table>'
    "<p>Cursor: {{cursor_before}} → {{cursor_after}}. Duration: {{duration}}.</p>"
    "{{#has_errors}}<p>Errors: {{error_count}}{{#errors_more}} (the first {{errors_shown}} "
    "below; the run's page in ManiReports lists them all){{/errors_more}}</p>"
    "<ul>{{#errors}}<li><code>{{employee_id}}</code>: {{error}}</li>{{/errors}}</ul>"
    "{{/has_errors}}"
    "<p>Open <em>HR sync</em> under Administration in ManiReports for the run history.</p>"
)
TEXT = (
    "{{headline}}\n\n{{#counts}}{{name}}: {{value}}\n{{/counts}}\n"
    "Cursor: {{cursor_before}} -> {{cursor_after}}. Duration: {{duration}}.\n"
    "{{#has_errors}}\nErrors: {{error_count}}{{#errors_more}} (the first {{errors_shown}} "
    "below){{/errors_more}}\n{{#errors}}- {{employee_id}}: {{error}}\n{{/errors}}{{/has_errors}}"
    "\nOpen HR sync under Administration in ManiReports for the run history.\n"
)


def notification_addresses(session: Session, env: Mapping[str, str] | None = None) -> list[str]:
    """Where summaries go: `HR_SYNC_NOTIFY` when set, else the stored lines; blank lines,
    duplicates (case-insensitive) and addresses that cannot be sent to are left out (logged)."""
    env = os.environ if env is None else env
    raw_env = (env.get(NOTIFY_ENV) or "").strip()
    if raw_env:
        candidates = raw_env.split(",")
    else:
        stored = session.scalar(
            select(HrSyncConfig.notify_emails).where(HrSyncConfig.id == SETTINGS_ROW)
        )
        candidates = (stored or "").splitlines()
    addresses: list[str] = []
    seen: set[str] = set()
    for candidate in candidates:
        address = candidate.strip()
        if not address or address.lower() in seen:
            continue
        problem = address_problem(address)
        if problem:
            log.warning("HR sync notification address %r skipped: %s", address, problem)
            continue
        seen.add(address.lower())
        addresses.append(address)
    return addresses


def headline(summary: Mapping[str, Any], *, failed: bool) -> str:
    """The subject: "HR sync: 3 created, 1 suspended", "HR sync FAILED: <reason>"."""
    dry = " (dry run)" if summary.get("dry_run") else ""
    if failed:
        return f"HR sync{dry} FAILED: {failure_reason(summary)}"
    changes = [f"{_count(summary, name)} {name}" for name in CHANGES if _count(summary, name)]
    return f"HR sync{dry}: " + (", ".join(changes) if changes else "no changes")


def failure_reason(summary: Mapping[str, Any]) -> str:
    """One line: the run's own error (configuration, threshold, invalid token), else how many
    employees failed."""
    reason = str(summary.get("error") or "").strip()
    if not reason:
        errors = _errors(summary)
        if len(errors) == 1:
            reason = f"employee {errors[0]['employee_id']}: {errors[0]['error']}"
        elif errors:
            reason = f"{len(errors)} errors"
        else:
            reason = "see the run history"
    reason = " ".join(reason.split())  # one line, whatever the error text held
    return reason if len(reason) <= REASON_MAX_CHARS else reason[: REASON_MAX_CHARS - 1] + "…"


def mail_variables(summary: Mapping[str, Any], *, failed: bool) -> dict[str, Any]:
    """The template variables of one summary (bounded: the first MAX_ERRORS_MAILED errors)."""
    errors = _errors(summary)
    shown = errors[:MAX_ERRORS_MAILED]
    duration = summary.get("duration_s")
    return {
        "headline": headline(summary, failed=failed),
        "failed": failed,
        "dry_run": bool(summary.get("dry_run")),
        "counts": [{"name": name, "value": _count(summary, name)} for name in COUNTS],
        "cursor_before": _cursor_text(summary.get("cursor_before")),
        "cursor_after": _cursor_text(summary.get("cursor_after")),
        "duration": f"{float(duration):.1f} s" if isinstance(duration, int | float) else "—",
        "has_errors": bool(errors),
        "error_count": len(errors),
        "errors_more": len(errors) > len(shown),
        "errors_shown": len(shown),
        "errors": shown,
    }


def notify_run(
    appdb: AppDB,
    settings: object,
    summary: Mapping[str, Any],
    *,
    failed: bool,
    publish: Publish | None = None,
    env: Mapping[str, str] | None = None,
) -> int | None:
    """Create the summary mail of one run: the email job's id, or None when there is no one to
    tell. With ``publish`` (`BusClient.publish`) the job is dispatched at once; without it the
    mailers' watcher dispatches it within minutes (asyncio callers: `notify_run_async`).

    ``settings`` (the app's Settings) is accepted for symmetry with the engine's calls; the
    addresses are read from the app DB and ``env``.
    """
    del settings  # nothing in the app settings changes who is told
    with appdb.transaction() as session:
        addresses = notification_addresses(session, env)
        if not addresses:
            return None
        variables = mail_variables(summary, failed=failed)
        job = create_job(
            session,
            company_id=NO_COMPANY,
            job_type=JOB_TYPE,
            recipients=[RecipientSpec(email=address, data={}) for address in addresses],
            source=SOURCE,
            subject=SUBJECT,
            html=HTML,
            text=TEXT,
            payload={"source": SOURCE, "failed": failed, "variables": variables},
        )
        job_id = int(job.id)
    log.info("HR sync summary mailed to %d address(es) (email job %d)", len(addresses), job_id)
    if publish is not None:
        dispatch(publish, job_id)
    return job_id


async def notify_run_async(
    appdb: AppDB,
    settings: object,
    summary: Mapping[str, Any],
    *,
    failed: bool,
    publish: PublishAsync | None = None,
    env: Mapping[str, str] | None = None,
) -> int | None:
    """`notify_run` for asyncio services (`Bus.publish`): the database part in a thread."""
    job_id = await asyncio.to_thread(
        notify_run, appdb, settings, summary, failed=failed, publish=None, env=env
    )
    if job_id is not None and publish is not None:
        await dispatch_async(publish, job_id)
    return job_id


def _count(summary: Mapping[str, Any], name: str) -> int:
    value = summary.get(name)
    return int(value) if isinstance(value, int | float) and not isinstance(value, bool) else 0


def _errors(summary: Mapping[str, Any]) -> list[dict[str, str]]:
    raw = summary.get("errors")
    if not isinstance(raw, list):
        return []
    errors = []
    for item in raw:
        if isinstance(item, Mapping):
            employee, error = item.get("employee_id"), item.get("error")
        else:
            employee, error = None, item
        text = str(error if error is not None else "")
        errors.append({"employee_id": "" if employee is None else str(employee),
                       "error": text[:ERROR_MAX_CHARS]})  # fmt: skip
    return errors


def _cursor_text(cursor: object) -> str:
    if isinstance(cursor, Mapping):
        return f"since {cursor.get('since') or '—'}, offset {cursor.get('offset', 0)}"
    return "—" if cursor is None else str(cursor)
