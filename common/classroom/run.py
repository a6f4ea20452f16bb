"""One Classroom roster sync run, as the scheduler, the Classroom page's "Sync now", an applied
identity import and `manireports classroom sync` ask for it.

- Not configured (no key, no endpoint) or no course mapped: nothing is called; the summary says
  why with status "skipped" — not an error, so the hourly task does not alert about a feature
  nobody set up.
- Otherwise `sync_rosters` over the mapped courses (or only the requested ones; a requested
  course that is not mapped is an error of the summary), then in one transaction: the parked
  people of the synced courses (`common.identity.parked.record_sync`: pending or resolved) and
  one `classroom_sync` audit event with the counts and the trigger.
- A failed call is an error of the summary (status "errors"); a bad configuration raises
  SettingsError before anything is called.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from datetime import UTC, datetime

from common.appdb import AppDB
from common.audit import OUTCOME_FAILED, OUTCOME_SUCCESS, record_audit
from common.classroom.config import OBJECT_TYPE, load_classroom_settings
from common.classroom.sync import SyncSummary, sync_rosters
from common.identity.parked import record_sync
from common.moodle import MoodleSource
from common.settings import Settings

log = logging.getLogger(__name__)

AUDIT_ACTION = "classroom_sync"
TRIGGERS = ("schedule", "manual", "import", "cli")
AUDITED_ERRORS = 20  # the first errors kept in the audit event; the count is always whole


def run_classroom_sync(
    appdb: AppDB,
    moodle: MoodleSource,
    settings: Settings,
    *,
    now: float,
    courses: Iterable[int] | None = None,
    trigger: str,
    actor_id: int | None = None,
    ip: str | None = None,
) -> SyncSummary:
    config = load_classroom_settings(appdb, settings)
    if not config.configured:
        return _skipped("the Classroom is not configured (no service account key)")
    if not config.course_map:
        return _skipped("no Moodle course is mapped to a Classroom course")
    requested = None if courses is None else sorted(set(courses))
    course_map = config.course_map
    if requested is not None:
        course_map = {c: course_map[c] for c in requested if c in config.course_map}
    client = config.client()
    summary = (
        sync_rosters(appdb, moodle, client, course_map, now=now) if course_map else (SyncSummary())
    )
    for course_id in requested or ():
        if course_id not in config.course_map:
            summary.errors.append({"course_id": course_id,
                                   "error": "not mapped to a Classroom course"})  # fmt: skip
    summary.status = "errors" if summary.errors else "ok"
    with appdb.transaction() as session:
        record_sync(session, sorted(course_map), summary.parked, datetime.fromtimestamp(now, UTC))
        record_audit(
            session,
            actor_id=actor_id,
            action=AUDIT_ACTION,
            object_type=OBJECT_TYPE,
            outcome=OUTCOME_FAILED if summary.errors else OUTCOME_SUCCESS,
            ip=ip,
            details=audit_details(summary, trigger, sorted(course_map)),
        )
    log.info("classroom sync (%s): %s", trigger, counts_line(summary))
    return summary


def _skipped(why: str) -> SyncSummary:
    return SyncSummary(status="skipped", skipped=why)


def audit_details(summary: SyncSummary, trigger: str, courses: list[int]) -> dict[str, object]:
    return {
        "trigger": trigger if trigger in TRIGGERS else "schedule",
        "courses": courses,
        "added": summary.added,
        "invited": summary.invited,
        "removed": summary.removed,
        "unchanged": summary.unchanged,
        "parked": len(summary.parked),
        "removals_held": summary.removals_held,
        "error_count": len(summary.errors),
        "errors": summary.errors[:AUDITED_ERRORS],
    }


def counts_line(summary: SyncSummary) -> str:
    if summary.status == "skipped":
        return f"skipped: {summary.skipped}"
    return (
        f"{summary.courses} courses: {summary.added} added, {summary.invited} invited, "
        f"{summary.removed} removed, {summary.unchanged} unchanged, {len(summary.parked)} "
        f"parked, {len(summary.errors)} errors"
    )
