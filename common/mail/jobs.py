"""Email jobs in the app DB: creating one (recipients numbered into chunks), the chunk plan a
dispatch publishes, and the queries the mailers' watcher runs.

Everything here is synchronous SQLAlchemy, used by the web tier (UI, API), the aggregator and
the mailers (through a worker thread). Creating and dispatching together is `queue.py`'s job;
status changes after creation are `job_status.py`'s.
"""

from __future__ import annotations

import itertools
import json
from collections.abc import Iterable, Mapping
from datetime import timedelta
from typing import Any

from sqlalchemy import and_, insert, or_, select, update
from sqlalchemy.orm import Session

from common.audit import record_audit
from common.errors import FieldError, raise_all
from common.mail.recipients import RecipientSpec
from common.mail.template_checks import job_template_problems
from common.mail.templates import templates_for
from common.models.base import utcnow
from common.models.mail import (
    JOB_PENDING,
    JOB_PROCESSING,
    JOB_QUEUED,
    JOB_TYPES,
    RECIPIENT_PENDING,
    RECIPIENT_SENDING,
    CloudConf,
    CloudJob,
    CloudRecipient,
)

INSERT_BATCH = 1000
DEFAULT_CHUNK_SIZE = 100
MAX_CHUNK_SIZE = 1000


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
    (by default the company's configured chunk size). Without ``subject`` and ``html`` the
    company's template for the type applies. Bad input raises FieldError, every field at once.
    """
    errors: list[FieldError] = []
    if chunk_size is None:
        chunk_size = configured_chunk_size(session, company_id)
    if job_type not in JOB_TYPES:
        errors.append(FieldError("type", f"must be one of {', '.join(JOB_TYPES)}"))
    if not 1 <= chunk_size <= MAX_CHUNK_SIZE:
        errors.append(FieldError("chunk_size", f"must be from 1 to {MAX_CHUNK_SIZE}"))
    if subject is None or html is None:
        default_subject, default_html, default_text = templates_for(session, company_id, job_type)
        subject = default_subject if subject is None else subject
        html = default_html if html is None else html
        text = default_text if text is None else text
    pending = iter(recipients)
    first = next(pending, None)
    if first is None:
        errors.append(FieldError("recipients", "a job needs at least one recipient"))
    variables = dict((payload or {}).get("variables") or {})
    if first is not None:
        variables.update({**first.data, "email": first.email})
    errors += job_content_problems(subject, html, text, variables)
    raise_all(errors)
    assert first is not None
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
    count = _insert_recipients(session, job.id, itertools.chain([first], pending), chunk_size)
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


def job_content_problems(
    subject: str, html: str, text: str | None, variables: Mapping[str, Any]
) -> list[FieldError]:
    """What is wrong with a job's subject and bodies: empty, too long, a syntax error (with
    its line and column) or a render that breaks a limit with these variables. The one
    check of job content: `create_job` runs it, and the compose page before it, to name every
    problem of the form at once."""
    errors = [FieldError(name, "required") for name, value in (("subject", subject), ("html", html))
              if not value.strip()]  # fmt: skip
    return errors + job_template_problems(subject, html, text, variables)


def _insert_recipients(
    session: Session, job_id: int, recipients: Iterable[RecipientSpec], chunk_size: int
) -> int:
    count = 0
    batch: list[dict[str, Any]] = []
    for spec in recipients:
        batch.append(
            {
                "jobid": job_id,
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
    return count


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
