"""One auto-unenroll run under the stored policy.

- Policy off: nothing is read or written.
- Dry run: one `dry_unenroll` audit event per candidate (email, source, course, days inactive);
  no one is removed.
- Live: first every course is checked against the share limit; when any course would lose more
  than `max_remove_share` of its roster, the run stops before removing anyone from any course,
  records `unenroll_run_stopped` and emails the site administrators. Otherwise each candidate is
  removed through the `Remover` and each removal logged as `auto_unenroll` (a failed one with
  outcome `failed` and the error).

Removing people from Google Classroom is the roster-sync work's: it provides a `Remover`. Until
one is configured (passed in, named by `UNENROLL_REMOVER`, or the Classroom configured on its
page or by its variables), a live run stops with `NoRemover` — a configuration error — before
removing anyone.
"""

from __future__ import annotations

import importlib
import logging
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

from sqlalchemy.orm import Session

from common.appdb import AppDB
from common.audit import OUTCOME_FAILED, OUTCOME_SUCCESS, record_audit
from common.mail.jobs import create_job
from common.mail.recipients import RecipientSpec
from common.moodle import MoodleSource
from common.schedules.task_runs import one_line, site_admins
from common.settings import Settings, SettingsError
from common.unenroll.candidates import (
    CourseRef,
    Person,
    Preview,
    find_candidates,
    identity_resolver,
)
from common.unenroll.policy import OBJECT_TYPE, Policy, load_policy

log = logging.getLogger(__name__)

DRY_ACTION = "dry_unenroll"
LIVE_ACTION = "auto_unenroll"
STOPPED_ACTION = "unenroll_run_stopped"
ALERT_SOURCE = "unenroll_policy"
ALERT_JOB_TYPE = "task_alert"  # the site-level admin alert type the task alerts use
NO_COMPANY = 0

ALERT_SUBJECT = "ManiReports: auto-unenroll stopped before removing anyone"
ALERT_HTML = (
    "<p>Dear {{firstname}},</p><p>The auto-unenroll run stopped before removing anyone: "
    "{{reason}}.</p><p>Open <em>Unenroll policy</em> under Administration in ManiReports to "
    "review the candidates, the grace period and the share limit.</p>"
)
ALERT_TEXT = (
    "Dear {{firstname}},\n\nThe auto-unenroll run stopped before removing anyone: {{reason}}."
    "\n\nOpen Unenroll policy under Administration in ManiReports to review the candidates, "
    "the grace period and the share limit.\n"
)


class Remover(Protocol):
    """Removes one person from the Classroom course of a Moodle course; raises on failure."""

    def remove(self, course_mapping: CourseRef, email: str) -> None: ...


class NoRemover(SettingsError):
    """A live run without a configured Remover (configuration error: exit 2 in the CLI)."""


@dataclass
class RunSummary:
    enabled: bool
    dry_run: bool
    candidates: int = 0
    removed: int = 0
    protected: int = 0
    failed: int = 0
    stopped: str | None = None
    alert_job: int | None = None
    errors: list[dict[str, Any]] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return {
            "enabled": self.enabled,
            "dry_run": self.dry_run,
            "candidates": self.candidates,
            "removed": self.removed,
            "protected": self.protected,
            "failed": self.failed,
            "stopped": self.stopped,
            "errors": self.errors,
        }

    @property
    def exit_code(self) -> int:
        return 1 if self.stopped or self.failed else 0


def _event(person: Person) -> dict[str, Any]:
    return {
        "email": person.email,
        "source": person.source,
        "course": person.course.fullname,
        "course_id": person.course.course_id,
        "days_inactive": person.days_inactive,
        "user_id": person.user_id,
        "why": person.why,
    }


def over_share(preview: Preview, policy: Policy) -> str | None:
    """The first course whose candidates exceed the share of its roster, said in one line."""
    per_course: dict[int, int] = {}
    for person in preview.candidates:
        per_course[person.course.course_id] = per_course.get(person.course.course_id, 0) + 1
    for course_id, count in per_course.items():
        roster = preview.rosters.get(course_id, 0)
        if count > policy.max_remove_share * roster:
            course = preview.courses[course_id]
            return (
                f"{count} of {roster} people in {course.fullname} would be removed, more "
                f"than the {policy.max_remove_share:.0%} limit"
            )
    return None


def run_policy(
    appdb: AppDB,
    moodle: MoodleSource,
    *,
    now: float,
    remover: Remover | None = None,
    actor_id: int | None = None,
    via: str = "cli",
    ip: str | None = None,
    policy: Policy | None = None,
) -> RunSummary:
    if policy is None:
        with appdb.transaction() as session:
            policy = load_policy(session)
    summary = RunSummary(enabled=policy.enabled, dry_run=policy.dry_run)
    if not policy.enabled:
        return summary
    if not policy.dry_run and remover is None:
        raise NoRemover(
            "no Classroom remover is configured: a live auto-unenroll run cannot "
            "remove anyone (keep the policy in dry-run until roster sync is set up)"
        )
    preview = find_candidates(moodle, policy, now, identity_resolver(appdb))
    summary.candidates, summary.protected = len(preview.candidates), len(preview.protected)
    if policy.dry_run:
        with appdb.transaction() as session:
            for person in preview.candidates:
                _audit(session, DRY_ACTION, person, actor_id, via, ip)
        return summary
    assert remover is not None
    reason = over_share(preview, policy)
    if reason:
        summary.stopped = reason
        with appdb.transaction() as session:
            record_audit(
                session,
                actor_id=actor_id,
                action=STOPPED_ACTION,
                object_type=OBJECT_TYPE,
                outcome=OUTCOME_FAILED,
                ip=ip,
                details={"reason": reason, "candidates": summary.candidates, "via": via},
            )
        summary.alert_job = alert_admins(appdb, moodle, reason)
        log.warning("auto-unenroll stopped before removing anyone: %s", reason)
        return summary
    for person in preview.candidates:
        try:
            remover.remove(person.course, person.email)
        except Exception as exc:  # noqa: BLE001 - one failure must not stop the others
            error = one_line(f"{type(exc).__name__}: {exc}")
            summary.failed += 1
            summary.errors.append(
                {"email": person.email, "course": person.course.fullname, "error": error}
            )
            with appdb.transaction() as session:
                _audit(session, LIVE_ACTION, person, actor_id, via, ip, error=error)
            continue
        summary.removed += 1
        with appdb.transaction() as session:
            _audit(session, LIVE_ACTION, person, actor_id, via, ip)
    return summary


def _audit(
    session: Session,
    action: str,
    person: Person,
    actor_id: int | None,
    via: str,
    ip: str | None,
    error: str | None = None,
) -> None:
    details = {**_event(person), "via": via, **({"error": error} if error else {})}
    record_audit(
        session,
        actor_id=actor_id,
        action=action,
        object_type="user",
        object_id=person.user_id,
        ip=ip,
        details=details,
        outcome=OUTCOME_FAILED if error else OUTCOME_SUCCESS,
    )


def alert_admins(appdb: AppDB, moodle: MoodleSource, reason: str) -> int | None:
    """Email Moodle's site administrators (the task alerts' lookup) that a run stopped; the
    email job's id (the mailers' watcher dispatches it), or None when no admin has an address."""
    admins = site_admins(moodle)
    if not admins:
        log.warning("auto-unenroll stopped, but no site administrator has an address to tell")
        return None
    recipients = [
        RecipientSpec(
            email=a.email, userid=a.userid, data={"firstname": a.firstname, "lastname": a.lastname}
        )
        for a in admins
    ]
    with appdb.transaction() as session:
        job = create_job(
            session,
            company_id=NO_COMPANY,
            job_type=ALERT_JOB_TYPE,
            recipients=recipients,
            source=ALERT_SOURCE,
            subject=ALERT_SUBJECT,
            html=ALERT_HTML,
            text=ALERT_TEXT,
            payload={"source": ALERT_SOURCE, "variables": {"reason": reason}},
        )
        return int(job.id)


REMOVER_ENV = "UNENROLL_REMOVER"


def configured_remover(
    env: Mapping[str, str] | None = None,
    *,
    appdb: AppDB | None = None,
    settings: Settings | None = None,
) -> Remover | None:
    """The Remover named by `UNENROLL_REMOVER` ("package.module:factory", the factory called with
    no arguments); without it, the Classroom's from the stored configuration when the Classroom
    is configured (``appdb``/``settings``: the caller's, else opened from the environment), or
    None. A name that cannot be loaded is a configuration error naming the variable."""
    env = os.environ if env is None else env
    spec = (env.get(REMOVER_ENV) or "").strip()
    if not spec:
        from common.classroom.remover import default_remover, stored_remover

        if appdb is not None and settings is not None:
            return stored_remover(appdb, settings, env)
        return default_remover(env)
    module_name, colon, attr = spec.partition(":")
    if not colon or not module_name or not attr:
        raise SettingsError(f"{REMOVER_ENV}: {spec[:80]!r} is not 'package.module:factory'")
    try:
        factory = getattr(importlib.import_module(module_name), attr)
    except (ImportError, AttributeError) as exc:
        raise SettingsError(f"{REMOVER_ENV}: cannot load {spec[:80]!r}: {exc}") from None
    remover: Remover = factory()
    return remover
