"""Built-in periodic tasks the scheduler fires as commands to other services.

A task fires once per interval slot; the command's message id names the slot, so a command
fired twice around a leader hand-over is dropped by JetStream's duplicate window.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class PeriodicTask:
    name: str
    service: str
    command: str
    interval_s: int

    def slot(self, now: float) -> int:
        return int(now // self.interval_s)

    def message_id(self, slot: int) -> str:
        return f"schedule:{self.name}:{slot}"


DEFAULT_TASKS: tuple[PeriodicTask, ...] = (
    PeriodicTask("retention_cleanup", "aggregator", "retention_cleanup", 86400),
    PeriodicTask("scorm_summary", "aggregator", "scorm_summary", 300),
    PeriodicTask("estimate_time", "aggregator", "estimate_time", 3600),
    PeriodicTask("engagement", "aggregator", "engagement", 3600),
    PeriodicTask("refresh_caches", "aggregator", "refresh_caches", 900),
    PeriodicTask("risk_scores", "aggregator", "risk_scores", 86400),
    PeriodicTask("watch_email_queue", "mailer", "watch_email_queue", 60),
)


def tasks_with_intervals(overrides: dict[str, int]) -> list[PeriodicTask]:
    return [
        PeriodicTask(t.name, t.service, t.command, overrides.get(t.name, t.interval_s))
        for t in DEFAULT_TASKS
    ]
