"""A job's status changes after creation, each audited in the same transaction: the mailers'
progress (processing, final status), cancel, and putting failed or dead-lettered recipients
back to pending for a retry.

Which of the monitor's actions apply in which state is decided here (`job_actions`), for the
buttons and for the POSTs alike: Cancel while the job can still send (pending, queued,
processing); Retry failed recipients once a job has finished with failures; Retry dead letters
while a dead-lettered chunk is still open. A cancelled job is retried by nothing: its recipients
would be reopened under a status the mailers skip.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from sqlalchemy import case, select, update
from sqlalchemy.orm import Session

from common.audit import record_audit
from common.models.base import utcnow
from common.models.mail import (
    JOB_CANCELLED,
    JOB_COMPLETED,
    JOB_FAILED,
    JOB_FINAL_STATES,
    JOB_PARTIALLY_FAILED,
    JOB_PENDING,
    JOB_PROCESSING,
    JOB_QUEUED,
    RECIPIENT_CANCELLED,
    RECIPIENT_FAILED,
    RECIPIENT_PENDING,
    RECIPIENT_SENDING,
    CloudDeadChunk,
    CloudJob,
    CloudRecipient,
)

CANCELLABLE = (JOB_PENDING, JOB_QUEUED, JOB_PROCESSING)
RETRYABLE_FAILED = (JOB_PARTIALLY_FAILED, JOB_FAILED)


@dataclass(frozen=True)
class JobActions:
    cancel: bool
    retry_failed: bool
    retry_dead: bool


def job_actions(status: str, *, failed: int, dead_open: int) -> JobActions:
    """The monitor actions that apply to a job in ``status`` with ``failed`` failed recipients
    and ``dead_open`` dead-lettered chunks not yet retried."""
    return JobActions(
        cancel=status in CANCELLABLE,
        retry_failed=status in RETRYABLE_FAILED and failed > 0,
        retry_dead=status != JOB_CANCELLED and dead_open > 0,
    )


def change_status(
    session: Session,
    job: CloudJob,
    to: str,
    *,
    allowed_from: Iterable[str],
    actor_id: int | None = None,
    details: Mapping[str, Any] | None = None,
) -> bool:
    """Move a job to ``to`` if it is in one of ``allowed_from``; audited. False if it was not."""
    allowed = tuple(allowed_from)
    now = utcnow()
    values: dict[str, Any] = {"status": to, "timemodified": now}
    if to == JOB_PROCESSING:
        values["timestarted"] = now
    if to in JOB_FINAL_STATES:
        values["timecompleted"] = now
    result = session.execute(
        update(CloudJob)
        .where(CloudJob.id == job.id, CloudJob.status.in_(allowed))
        .values(**values)
        .execution_options(synchronize_session=False)
    )
    if not result.rowcount:  # type: ignore[attr-defined]
        return False
    record_audit(
        session,
        actor_id=actor_id,
        action="cloud_job_status",
        object_type="cloud_job",
        object_id=job.id,
        company_id=job.companyid,
        details={"to": to, "from": list(allowed), **dict(details or {})},
    )
    return True


def finish_if_done(session: Session, job_id: int) -> str | None:
    """Give a job its final status once no recipient is left to send; the status or None."""
    open_left = session.scalar(
        select(CloudRecipient.id)
        .where(
            CloudRecipient.jobid == job_id,
            CloudRecipient.status.in_((RECIPIENT_PENDING, RECIPIENT_SENDING)),
        )
        .limit(1)
    )
    if open_left is not None:
        return None
    job = session.get(CloudJob, job_id, populate_existing=True)
    if job is None or job.status in JOB_FINAL_STATES:
        return None
    if job.emails_failed == 0:
        final = JOB_COMPLETED
    elif job.emails_sent == 0:
        final = JOB_FAILED
    else:
        final = JOB_PARTIALLY_FAILED
    details = {"sent": job.emails_sent, "failed": job.emails_failed}
    moved = change_status(
        session, job, final, allowed_from=(JOB_PENDING, JOB_QUEUED, JOB_PROCESSING),
        details=details,
    )  # fmt: skip
    return final if moved else None


def cancel_job(session: Session, job: CloudJob, *, actor_id: int | None) -> bool:
    """Stop a job: recipients not yet sent are cancelled; chunks on the bus are skipped."""
    if not change_status(session, job, JOB_CANCELLED, allowed_from=CANCELLABLE, actor_id=actor_id):
        return False
    session.execute(
        update(CloudRecipient)
        .where(CloudRecipient.jobid == job.id, CloudRecipient.status == RECIPIENT_PENDING)
        .values(status=RECIPIENT_CANCELLED)
    )
    return True


def reopen_failed(
    session: Session,
    job: CloudJob,
    *,
    actor_id: int | None,
    chunks: Iterable[int] | None = None,
    recipients: Iterable[int] | None = None,
) -> list[int]:
    """Put failed recipients (all, those of ``chunks``, or those named) back to pending;
    their ids."""
    if job.status == JOB_CANCELLED:
        return []
    where = [CloudRecipient.jobid == job.id, CloudRecipient.status == RECIPIENT_FAILED]
    if chunks is not None:
        where.append(CloudRecipient.chunk.in_(list(chunks)))
    if recipients is not None:
        where.append(CloudRecipient.id.in_(list(recipients)))
    ids = list(session.scalars(select(CloudRecipient.id).where(*where)))
    if not ids:
        return []
    session.execute(
        update(CloudRecipient).where(*where).values(status=RECIPIENT_PENDING, claim=None)
    )
    reopened = len(ids)
    session.execute(
        update(CloudJob)
        .where(CloudJob.id == job.id)
        .values(
            emails_failed=case(
                (CloudJob.emails_failed > reopened, CloudJob.emails_failed - reopened), else_=0
            )
        )
    )
    change_status(
        session, job, JOB_QUEUED,
        allowed_from=(JOB_COMPLETED, JOB_PARTIALLY_FAILED, JOB_FAILED, JOB_PROCESSING, JOB_QUEUED),
        actor_id=actor_id, details={"retried_recipients": len(ids)},
    )  # fmt: skip
    return ids


def retry_failed(session: Session, job: CloudJob, *, actor_id: int | None) -> list[int]:
    return reopen_failed(session, job, actor_id=actor_id)


def open_dead_chunks(session: Session, job_id: int | None = None) -> list[CloudDeadChunk]:
    query = select(CloudDeadChunk).where(CloudDeadChunk.timeretried.is_(None))
    if job_id is not None:
        query = query.where(CloudDeadChunk.jobid == job_id)
    return list(session.scalars(query.order_by(CloudDeadChunk.id)))


def retry_dead_chunks(session: Session, job: CloudJob, *, actor_id: int | None) -> list[int]:
    """Reopen the recipients of the job's dead-lettered chunks; their ids."""
    if job.status == JOB_CANCELLED:
        return []
    dead = open_dead_chunks(session, job.id)
    if not dead:
        return []
    chunks = {d.chunk for d in dead}
    now = utcnow()
    for record in dead:
        record.timeretried = now
    session.execute(update(CloudJob).where(CloudJob.id == job.id).values(chunks_dead=0))
    return reopen_failed(session, job, actor_id=actor_id, chunks=chunks)


def retry_recipients(
    session: Session, job: CloudJob, recipient_ids: Iterable[int], *, actor_id: int | None
) -> list[int]:
    """Reopen the named failed recipients of ``job`` (the dead-letter view's bulk retry); a
    dead-lettered chunk they belong to counts as retried. Their ids."""
    wanted = sorted(set(recipient_ids))
    chunks = set(
        session.scalars(
            select(CloudRecipient.chunk).where(
                CloudRecipient.jobid == job.id,
                CloudRecipient.id.in_(wanted),
                CloudRecipient.status == RECIPIENT_FAILED,
            )
        )
    )
    reopened = reopen_failed(session, job, actor_id=actor_id, recipients=wanted)
    if reopened and chunks:
        session.execute(
            update(CloudDeadChunk)
            .where(
                CloudDeadChunk.jobid == job.id,
                CloudDeadChunk.chunk.in_(sorted(chunks)),
                CloudDeadChunk.timeretried.is_(None),
            )
            .values(timeretried=utcnow())
        )
        session.execute(
            update(CloudJob)
            .where(CloudJob.id == job.id)
            .values(chunks_dead=len(open_dead_chunks(session, job.id)))
        )
    return reopened
