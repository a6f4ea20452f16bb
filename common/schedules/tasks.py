"""The built-in periodic tasks: which service runs each, how often, and what it does.

The scheduler fires each task once per interval slot as a command to its service; the command's
message id names the slot, so a command fired twice around a leader hand-over is dropped by
JetStream's duplicate window. The web tier reads the same list for the scheduler admin page
(its descriptions, its next runs), so it lives here rather than in the scheduler service.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime


@dataclass(frozen=True)
class PeriodicTask:
    name: str
    service: str
    command: str
    interval_s: int
    description: str = ""

    def slot(self, now: float) -> int:
        return int(now // self.interval_s)

    def message_id(self, slot: int) -> str:
        return f"schedule:{self.name}:{slot}"

    def next_run(self, now: float) -> datetime:
        """The start of the next interval slot: when the scheduler fires it next."""
        return datetime.fromtimestamp((self.slot(now) + 1) * self.interval_s, UTC)


DEFAULT_TASKS: tuple[PeriodicTask, ...] = (
    PeriodicTask("retention_cleanup", "aggregator", "retention_cleanup", 86400,
                 "Deletes what is past the retention settings, in small batches."),
    PeriodicTask("scorm_summary", "aggregator", "scorm_summary", 300,
                 "Summarises new SCORM attempts for the SCORM reports."),
    PeriodicTask("estimate_time", "aggregator", "estimate_time", 3600,
                 "Estimates time spent from Moodle's logs where no heartbeat was recorded."),
    PeriodicTask("engagement", "aggregator", "engagement", 3600,
                 "Works out learners' engagement scores."),
    PeriodicTask("refresh_caches", "aggregator", "refresh_caches", 900,
                 "Rebuilds the cached dashboard figures."),
    PeriodicTask("risk_scores", "aggregator", "risk_scores", 86400,
                 "Scores at-risk learners and emails their managers when enabled."),
    PeriodicTask("watch_email_queue", "mailer", "watch_email_queue", 60,
                 "Takes over the emails IOMAD queued for offloading and turns them into jobs."),
    PeriodicTask("classroom_sync", "sync", "classroom", 3600,
                 "Brings each mapped Google Classroom course's roster in step with Moodle's "
                 "enrolments, and retries the people parked for want of a Google email."),
    PeriodicTask("auto_unenroll", "sync", "unenroll", 86400,
                 "Runs the auto-unenroll policy (nothing while it is off; only audit events "
                 "while it is a dry run)."),
)  # fmt: skip


def tasks_with_intervals(overrides: dict[str, int]) -> list[PeriodicTask]:
    """The default tasks with TASK_INTERVALS' intervals where it names them."""
    return [
        PeriodicTask(
            t.name, t.service, t.command, overrides.get(t.name, t.interval_s), t.description
        )  # fmt: skip
        for t in DEFAULT_TASKS
    ]


def find_task(tasks: list[PeriodicTask], name: str) -> PeriodicTask | None:
    return next((t for t in tasks if t.name == name), None)
