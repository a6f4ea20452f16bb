"""Putting a job's chunks on the bus (or on the company's SQS queue), and dead letters.

Chunk messages carry the job id and recipient ids only; their message id
`job:{id}:chunk:{n}` lets JetStream drop a second publish of the same chunk, so a dispatch
that is redelivered after a crash half-way publishes only what is missing. A retry publishes
under `job:{id}:retry:{k}:chunk:{n}`.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from sqlalchemy import update

from common.appdb import AppDB
from common.audit import record_audit
from common.bus import Bus
from common.mail import failures
from common.mail.config import load_config
from common.mail.job_status import change_status, finish_if_done
from common.mail.jobs import chunk_plan, stalled_jobs, touch
from common.models.base import utcnow
from common.models.mail import (
    JOB_PENDING,
    JOB_QUEUED,
    RECIPIENT_FAILED,
    RECIPIENT_PENDING,
    RECIPIENT_SENDING,
    CloudDeadChunk,
    CloudJob,
    CloudRecipient,
)

log = logging.getLogger(__name__)

CHUNK_SUBJECT = "mr.mail.chunk"
DEAD_SUBJECT = "mr.mail.dead"


def chunk_msg_id(job_id: int, chunk: int, retry: str | None = None) -> str:
    if retry:
        return f"job:{job_id}:retry:{retry}:chunk:{chunk}"
    return f"job:{job_id}:chunk:{chunk}"


async def publish_chunks(
    bus: Bus, job: CloudJob, plan: dict[int, list[int]], *, retry: str | None = None
) -> int:
    """Publish every chunk of ``plan``; JetStream acks each before the next is counted."""
    pending = [
        bus.publish(
            CHUNK_SUBJECT,
            {"job": job.id, "company": job.companyid, "chunk": chunk, "ids": ids},
            msg_id=chunk_msg_id(job.id, chunk, retry),
        )
        for chunk, ids in sorted(plan.items())
    ]
    # In groups: each publish waits for its stream ack, so a few hundred go in flight at once.
    for start in range(0, len(pending), 256):
        await asyncio.gather(*pending[start : start + 256])
    return len(pending)


async def dispatch_job(
    bus: Bus,
    appdb: AppDB,
    job_id: int,
    *,
    secret_key: str,
    cloud: Any = None,
    retry: str | None = None,
) -> str:
    """Send a pending job on its way; returns the route taken ("local", "sqs" or "none").

    ``cloud`` sends to the company's SQS queue (services.mailer.cloud.sqs.send_job); when it
    fails the job falls back to the local mailers.
    """

    def load() -> tuple[CloudJob | None, Any, dict[int, list[int]]]:
        with appdb.transaction() as session:
            job = session.get(CloudJob, job_id)
            if job is None:
                return None, None, {}
            config = load_config(session, job.companyid, secret_key)
            return job, config, chunk_plan(session, job_id)

    job, config, plan = await asyncio.to_thread(load)
    if job is None:
        raise LookupError(f"no email job {job_id}")
    if not plan:
        await asyncio.to_thread(_finish, appdb, job_id)
        return "none"
    route = "local"
    fallback_reason = None
    if cloud is not None and config is not None and config.use_sqs and retry is None:
        try:
            await cloud(job, config, plan)
            plan, route = {}, "sqs"
        except Exception as exc:  # noqa: BLE001 - any cloud failure falls back to local
            handed_over = set(getattr(exc, "sent", ()))
            plan = {chunk: ids for chunk, ids in plan.items() if chunk not in handed_over}
            route = "mixed" if handed_over else "local"
            fallback_reason = failures.CLOUD_UNAVAILABLE
            log.warning("job %s: %s: %s", job_id, fallback_reason, exc)
    if plan:
        await publish_chunks(bus, job, plan, retry=retry)
    await asyncio.to_thread(_mark_queued, appdb, job_id, route, fallback_reason)
    return route


def _mark_queued(appdb: AppDB, job_id: int, route: str, note: str | None) -> None:
    with appdb.transaction() as session:
        job = session.get(CloudJob, job_id)
        assert job is not None
        job.route = route
        if note:
            job.last_error = note
        change_status(
            session, job, JOB_QUEUED, allowed_from=(JOB_PENDING,), details={"route": route}
        )


def _finish(appdb: AppDB, job_id: int) -> None:
    with appdb.transaction() as session:
        finish_if_done(session, job_id)


async def dead_letter(
    bus: Bus, appdb: AppDB, letter: dict[str, Any], stream_seq: int | None
) -> None:
    """Park a chunk that used up its deliveries: on MAIL_DEAD, and on the job for the UI."""
    job_id = int(letter["job"])
    await bus.publish(
        DEAD_SUBJECT, letter, msg_id=f"dead:{job_id}:{letter.get('chunk')}:{stream_seq}"
    )

    def record() -> None:
        reason = str(letter.get("reason") or "")[:2000]
        with appdb.transaction() as session:
            session.add(
                CloudDeadChunk(
                    jobid=job_id,
                    chunk=int(letter.get("chunk", 0)),
                    reason=reason,
                    deliveries=int(letter.get("deliveries", 0)),
                    stream_seq=stream_seq,
                )
            )
            failed = session.execute(
                update(CloudRecipient)
                .where(
                    CloudRecipient.id.in_([int(i) for i in letter["ids"]]),
                    CloudRecipient.jobid == job_id,
                    CloudRecipient.status.in_((RECIPIENT_PENDING, RECIPIENT_SENDING)),
                )
                .values(
                    status=RECIPIENT_FAILED,
                    claim=None,
                    last_error=f"dead-lettered after {letter.get('deliveries')} attempts: {reason}",
                )
                .execution_options(synchronize_session=False)
            ).rowcount  # type: ignore[attr-defined]  # an UPDATE's result is a CursorResult
            session.execute(
                update(CloudJob)
                .where(CloudJob.id == job_id)
                .values(
                    chunks_dead=CloudJob.chunks_dead + 1,
                    emails_failed=CloudJob.emails_failed + int(failed or 0),
                    last_error=f"chunk {letter.get('chunk')} dead-lettered: {reason}"[:2000],
                    timemodified=utcnow(),
                )
            )
            job = session.get(CloudJob, job_id)
            record_audit(
                session, actor_id=None, action="cloud_job_chunk_dead", object_type="cloud_job",
                object_id=job_id, company_id=job.companyid if job else None,
                details={"chunk": letter.get("chunk"), "recipients_failed": int(failed or 0),
                         "deliveries": letter.get("deliveries"), "reason": reason[:300]},
            )  # fmt: skip
            finish_if_done(session, job_id)

    await asyncio.to_thread(record)
    log.warning(
        "job %s chunk %s dead-lettered: %s", job_id, letter.get("chunk"), letter.get("reason")
    )


STALLED_AFTER_S = 900.0


async def resume_stalled_jobs(
    bus: Bus, appdb: AppDB, *, idle_s: float = STALLED_AFTER_S, now_tag: str
) -> list[int]:
    """Publish again the chunks of jobs that stopped making progress; their ids.

    A chunk published twice is harmless: recipients are claimed one mailer at a time.
    """

    def find() -> list[tuple[CloudJob, dict[int, list[int]]]]:
        with appdb.transaction() as session:
            found = []
            for job_id in stalled_jobs(session, idle_s):
                job = session.get(CloudJob, job_id)
                assert job is not None
                found.append((job, chunk_plan(session, job_id)))
                touch(session, job_id)
            return found

    resumed = []
    for job, plan in await asyncio.to_thread(find):
        await publish_chunks(bus, job, plan, retry=f"resume-{now_tag}")
        log.warning("job %s had stalled: %d chunk(s) published again", job.id, len(plan))
        resumed.append(job.id)
    return resumed
