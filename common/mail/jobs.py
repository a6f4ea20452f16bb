"""Email jobs in the app DB: creation, chunk plans, status changes (each audited), cancel/retry.

Everything here is synchronous SQLAlchemy, used by the web tier (UI, API) and by the mailer
(through a worker thread). Publishing the chunks is `dispatch.py`'s job.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from sqlalchemy import and_, case, insert, or_, select, update
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
    JOB_TYPES,
    RECIPIENT_CANCELLED,
    RECIPIENT_FAILED,
    RECIPIENT_PENDING,
    RECIPIENT_SENDING,
    CloudConf,
    CloudDeadChunk,
    CloudJob,
    CloudRecipient,
    CloudTemplate,
)
from common.templating import TemplateError, validate

INSERT_BATCH = 1000
DEFAULT_CHUNK_SIZE = 100
# Used when neither the company nor the site has a template for a job type: intercepted IOMAD
# emails arrive rendered by Moodle, so their subject and body pass through as they are.
PASSTHROUGH = ("{{{subject}}}", "{{{body}}}")
DEFAULT_TEMPLATES: dict[str, tuple[str, str]] = {t: PASSTHROUGH for t in JOB_TYPES}
DEFAULT_TEMPLATES["certificate"] = (
    "Your certificate: {{course}}",
    "<p>Dear {{firstname}},</p><p>Congratulations on completing {{course}}.</p>"
    '{{#certificate_url}}<p><a href="{{certificate_url}}">Download your certificate</a>'
    "</p>{{/certificate_url}}{{^certificate_url}}<p>Your certificate is attached.</p>"
    "{{/certificate_url}}",
)


class JobInvalid(ValueError):
    def __init__(self, errors: list[str]) -> None:
        super().__init__("; ".join(errors))
        self.errors = errors


@dataclass(frozen=True)
class RecipientSpec:
    email: str
    data: Mapping[str, Any]
    userid: int | None = None
    source_ref: str | None = None


def templates_for(session: Session, company_id: int, job_type: str) -> tuple[str, str, str | None]:
    """(subject, html, text) for a job type: the company's, else the site's, else built in."""
    rows = session.scalars(
        select(CloudTemplate).where(
            CloudTemplate.companyid.in_((company_id, 0)), CloudTemplate.jobtype == job_type
        )
    ).all()
    chosen = sorted(rows, key=lambda r: r.companyid != company_id)
    if chosen:
        return chosen[0].subject, chosen[0].html, chosen[0].text
    subject, html = DEFAULT_TEMPLATES.get(job_type, PASSTHROUGH)
    return subject, html, None


def configured_chunk_size(session: Session, company_id: int) -> int:
    """The company's offload setting, or the default for companies that have none."""
    size = session.scalar(select(CloudConf.chunk_size).where(CloudConf.companyid == company_id))
    return int(size) if size else DEFAULT_CHUNK_SIZE


def create_job(
    session: Session,
    *,
    company_id: int,
    job_type: str,
    recipients: Iterable[RecipientSpec],
    source: str,
    chunk_size: int | None = None,
    subject: str | None = None,
    html: str | None = None,
    text: str | None = None,
    payload: Mapping[str, Any] | None = None,
    actor_id: int | None = None,
) -> CloudJob:
    """A pending job with one row per recipient, numbered into chunks of ``chunk_size``
    (by default the company's configured chunk size)."""
    errors = []
    if chunk_size is None:
        chunk_size = configured_chunk_size(session, company_id)
    if job_type not in JOB_TYPES:
        errors.append(f"type: must be one of {', '.join(JOB_TYPES)}")
    if not 1 <= chunk_size <= 1000:
        errors.append("chunk_size: must be from 1 to 1000")
    if subject is None or html is None:
        default_subject, default_html, default_text = templates_for(session, company_id, job_type)
        subject = default_subject if subject is None else subject
        html = default_html if html is None else html
        text = default_text if text is None else text
    for name, template in (("subject", subject), ("html", html), ("text", text)):
        if template is None:
            continue
        try:
            validate(template)
        except TemplateError as exc:
            errors.append(f"{name}: {exc}")
    if errors:
        raise JobInvalid(errors)
    job = CloudJob(
        companyid=company_id,
        type=job_type,
        status=JOB_PENDING,
        source=source,
        createdby=actor_id,
        subject_template=subject,
        html_template=html,
        text_template=text,
        payload=json.dumps(dict(payload or {}), default=str),
        chunk_size=chunk_size,
    )
    session.add(job)
    session.flush()
    count = 0
    batch: list[dict[str, Any]] = []
    for spec in recipients:
        batch.append(
            {
                "jobid": job.id,
                "chunk": count // chunk_size,
                "email": spec.email.strip()[:255],
                "userid": spec.userid,
                "recipient_data": json.dumps(dict(spec.data), default=str),
                "source_ref": spec.source_ref,
                "status": RECIPIENT_PENDING,
                "attempts": 0,
            }
        )
        count += 1
        if len(batch) >= INSERT_BATCH:
            session.execute(insert(CloudRecipient), batch)
            batch = []
    if batch:
        session.execute(insert(CloudRecipient), batch)
    if count == 0:
        raise JobInvalid(["recipients: a job needs at least one recipient"])
    job.recipients_total = count
    job.chunks_total = (count + chunk_size - 1) // chunk_size
    record_audit(
        session,
        actor_id=actor_id,
        action="cloud_job_created",
        object_type="cloud_job",
        object_id=job.id,
        company_id=company_id,
        details={"type": job_type, "source": source, "recipients": count},
    )
    return job


def chunk_plan(session: Session, job_id: int) -> dict[int, list[int]]:
    """Recipient ids still to send, by chunk number."""
    rows = session.execute(
        select(CloudRecipient.chunk, CloudRecipient.id)
        .where(
            CloudRecipient.jobid == job_id,
            CloudRecipient.status.in_((RECIPIENT_PENDING, RECIPIENT_SENDING)),
        )
        .order_by(CloudRecipient.id)
    )
    plan: dict[int, list[int]] = {}
    for chunk, recipient_id in rows:
        plan.setdefault(chunk, []).append(recipient_id)
    return plan


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
    if not change_status(
        session, job, JOB_CANCELLED, allowed_from=(JOB_PENDING, JOB_QUEUED, JOB_PROCESSING),
        actor_id=actor_id,
    ):  # fmt: skip
        return False
    session.execute(
        update(CloudRecipient)
        .where(CloudRecipient.jobid == job.id, CloudRecipient.status == RECIPIENT_PENDING)
        .values(status=RECIPIENT_CANCELLED)
    )
    return True


def reopen_failed(
    session: Session, job: CloudJob, *, actor_id: int | None, chunks: Iterable[int] | None = None
) -> list[int]:
    """Put failed recipients (all, or those of ``chunks``) back to pending; their ids."""
    where = [CloudRecipient.jobid == job.id, CloudRecipient.status == RECIPIENT_FAILED]
    if chunks is not None:
        where.append(CloudRecipient.chunk.in_(list(chunks)))
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
    dead = open_dead_chunks(session, job.id)
    if not dead:
        return []
    chunks = {d.chunk for d in dead}
    now = utcnow()
    for record in dead:
        record.timeretried = now
    session.execute(update(CloudJob).where(CloudJob.id == job.id).values(chunks_dead=0))
    return reopen_failed(session, job, actor_id=actor_id, chunks=chunks)


def stale_claim_filter(stale_before: Any) -> Any:
    """Recipients a mailer may claim: pending, or `sending` under a claim that has expired."""
    return or_(
        CloudRecipient.status == RECIPIENT_PENDING,
        and_(
            CloudRecipient.status == RECIPIENT_SENDING,
            CloudRecipient.claimed_at < stale_before,
        ),
    )


def undispatched_jobs(session: Session, idle_s: float) -> list[int]:
    """Jobs still `pending` ``idle_s`` after creation: their dispatch command never reached the
    bus (it was down when the job was created), so the watcher dispatches them."""
    cutoff = utcnow() - timedelta(seconds=idle_s)
    query = select(CloudJob.id).where(CloudJob.status == JOB_PENDING, CloudJob.timecreated < cutoff)
    return list(session.scalars(query.order_by(CloudJob.id)))


def stalled_jobs(session: Session, idle_s: float) -> list[int]:
    """Locally sent jobs with recipients left and no outcome recorded for ``idle_s``.

    Their chunks were lost to the mailers (e.g. a chunk used up its JetStream deliveries in
    crashes before it could be dead-lettered); the watcher publishes them again.
    """
    cutoff = utcnow() - timedelta(seconds=idle_s)
    open_recipients = select(CloudRecipient.id).where(
        CloudRecipient.jobid == CloudJob.id,
        CloudRecipient.status.in_((RECIPIENT_PENDING, RECIPIENT_SENDING)),
    )
    query = select(CloudJob.id).where(
        CloudJob.status.in_((JOB_QUEUED, JOB_PROCESSING)),
        CloudJob.route.in_(("local", "mixed")),
        CloudJob.timemodified < cutoff,
        open_recipients.exists(),
    )
    return list(session.scalars(query))


def touch(session: Session, job_id: int) -> None:
    session.execute(update(CloudJob).where(CloudJob.id == job_id).values(timemodified=utcnow()))
