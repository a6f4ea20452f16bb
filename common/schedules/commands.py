"""The one command that runs a report schedule, and its message id.

The scheduler leader publishes `mr.cmd.scheduler.run_schedule` for each due schedule with the
id `schedule:<id>:<due>`: the due time (the schedule's `next_run_at`, UTC) names the slot, so a
leader that dies after publishing and a new leader publishing again send the same id, which
JetStream drops inside its duplicate window; the worker also remembers the id as processed in
the transaction that queues the mail, for a re-publish after the window. A manual run (the
failed-runs page, `manireports schedule run ID`) carries a tag of its own: it is a new run,
never a duplicate of the slot's.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from common.bus import command_subject

RUN_SUBJECT = command_subject("scheduler", "run_schedule")


@dataclass(frozen=True)
class RunCommand:
    subject: str
    payload: dict[str, Any]
    msg_id: str


def due_text(due: datetime) -> str:
    """`2027-03-29T08:00:00Z`: the slot, as the message id and payload carry it."""
    return due.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def parse_due(text: str) -> datetime:
    return datetime.strptime(text, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=UTC)


def run_command(schedule_id: int, due: datetime, *, manual: str | None = None) -> RunCommand:
    """The run of `schedule_id` for the slot `due`; `manual` (a tag) makes it a run of its own."""
    payload: dict[str, Any] = {"schedule": schedule_id, "due": due_text(due)}
    msg_id = f"schedule:{schedule_id}:{payload['due']}"
    if manual:
        payload["manual"] = manual
        msg_id += f":manual:{manual}"
    return RunCommand(RUN_SUBJECT, payload, msg_id)


def manual_tag() -> str:
    return uuid.uuid4().hex[:12]
