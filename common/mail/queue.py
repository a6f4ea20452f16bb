"""Queueing an email job: create it, then tell the mailers, under one message-id rule.

The job is created in its own committed transaction first, so a mailer that handles the
command always finds it; then the `mailer.dispatch_job` command is published with the id
`dispatch:<job>` (a retry of failed or dead-lettered recipients: `dispatch:<job>:retry:<tag>`).
JetStream drops a second publish of the same id within its duplicate window, whoever sends it:
the job pages and API (sync, through `web.bus_client.BusClient.publish`), the aggregator's risk
digests and the mailers' IOMAD watcher (async, through `common.bus.Bus.publish`), the cloud
callback. When the bus cannot be reached the job stays `pending` and the mailers' watcher
dispatches it a few minutes later.
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections.abc import Awaitable, Mapping
from dataclasses import dataclass
from typing import Any, Protocol

from common.appdb import AppDB
from common.bus import command_subject
from common.mail.jobs import create_job

log = logging.getLogger(__name__)

DISPATCH_SUBJECT = command_subject("mailer", "dispatch_job")


class Publish(Protocol):
    """`BusClient.publish`: blocks until the stream acknowledged the message."""

    def __call__(
        self, subject: str, payload: Mapping[str, Any], *, msg_id: str | None = None
    ) -> object: ...


class PublishAsync(Protocol):
    """`Bus.publish`."""

    def __call__(
        self, subject: str, payload: Mapping[str, Any], *, msg_id: str | None = None
    ) -> Awaitable[object]: ...


@dataclass(frozen=True)
class DispatchCommand:
    subject: str
    payload: dict[str, Any]
    msg_id: str


@dataclass(frozen=True)
class QueuedJob:
    job_id: int
    dispatched: bool  # False: the bus was unreachable; the watcher dispatches it later


def dispatch_command(job_id: int, retry: str | None = None) -> DispatchCommand:
    """The one dispatch command for a job (or for one retry of it)."""
    payload: dict[str, Any] = {"job": job_id}
    msg_id = f"dispatch:{job_id}"
    if retry:
        payload["retry"] = retry
        msg_id += f":retry:{retry}"
    return DispatchCommand(DISPATCH_SUBJECT, payload, msg_id)


def new_retry_tag() -> str:
    """A tag for one retry: each retry is a command of its own, not a duplicate."""
    return uuid.uuid4().hex[:12]


def dispatch(publish: Publish, job_id: int, *, retry: str | None = None) -> bool:
    """Publish the job's dispatch command; False (logged) when the bus cannot take it."""
    command = dispatch_command(job_id, retry)
    try:
        publish(command.subject, command.payload, msg_id=command.msg_id)
    except Exception as exc:  # noqa: BLE001 - any bus failure: the watcher dispatches it later
        log.warning("email job %s saved but not dispatched: %s", job_id, exc)
        return False
    return True


async def dispatch_async(publish: PublishAsync, job_id: int, *, retry: str | None = None) -> bool:
    """`dispatch` for asyncio services."""
    command = dispatch_command(job_id, retry)
    try:
        await publish(command.subject, command.payload, msg_id=command.msg_id)
    except Exception as exc:  # noqa: BLE001 - any bus failure: the watcher dispatches it later
        log.warning("email job %s saved but not dispatched: %s", job_id, exc)
        return False
    return True


def queue_job(appdb: AppDB, publish: Publish, **job: Any) -> QueuedJob:
    """Create a job (``job``: `create_job`'s keyword arguments) and dispatch it.

    FieldError, before anything is written, when the job is not valid.
    """
    job_id = _create(appdb, job)
    return QueuedJob(job_id, dispatch(publish, job_id))


async def queue_job_async(appdb: AppDB, publish: PublishAsync, **job: Any) -> QueuedJob:
    """`queue_job` for asyncio services: the database part runs in a worker thread."""
    job_id = await asyncio.to_thread(_create, appdb, job)
    return QueuedJob(job_id, await dispatch_async(publish, job_id))


def _create(appdb: AppDB, job: Mapping[str, Any]) -> int:
    with appdb.transaction() as session:
        return create_job(session, **job).id
