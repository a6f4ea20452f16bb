"""Applying a cloud worker's report: signed, fresh, not replayed, and only for its own company.

The checks run in this order, each with its own refusal: company header (400), company known
and its key (401), signature and timestamp window (401), job belongs to that company (403),
signature not seen before (409). Outcomes are applied once: only recipients still pending
or sending change, so a report that overlaps an earlier one changes nothing twice. A reported
error is stored only if it is one of the fixed texts of `failures.py`.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from typing import Any

from sqlalchemy import update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from common.errors import FieldError
from common.ids import parse_id
from common.mail import failures
from common.mail.config import load_config
from common.mail.job_status import change_status, finish_if_done
from common.mail.signing import SignatureRejected, verify
from common.models.base import utcnow
from common.models.mail import (
    JOB_PENDING,
    JOB_PROCESSING,
    JOB_QUEUED,
    RECIPIENT_FAILED,
    RECIPIENT_PENDING,
    RECIPIENT_SENDING,
    RECIPIENT_SENT,
    CloudCallbackSeen,
    CloudJob,
    CloudRecipient,
)
from common.tenancy import NotFound, TenantScope, TenantViolation, load_job


class CallbackRejected(Exception):
    def __init__(self, status: int, reason: str) -> None:
        super().__init__(reason)
        self.status = status


@dataclass(frozen=True)
class CallbackApplied:
    job_id: int
    sent: int
    failed: int
    retry: int
    # Names this report's retry of what the cloud worker could not send (see queue.py):
    # unique per report, as a report is applied once.
    retry_tag: str = ""


def apply_cloud_callback(
    session: Session,
    *,
    secret_key: str,
    company_header: str | None,
    timestamp: str | None,
    signature: str | None,
    body: bytes,
    now: float | None = None,
) -> CallbackApplied:
    try:
        company_id = parse_id(company_header, "company")
    except FieldError:
        raise CallbackRejected(400, "missing or malformed company header") from None
    config = load_config(session, company_id, secret_key)
    if config is None or not config.callback_secret:
        raise CallbackRejected(401, "unknown company")
    try:
        verify(config.callback_secret, timestamp, signature, body, now=now)
    except SignatureRejected as exc:
        raise CallbackRejected(401, str(exc)) from None
    try:
        report = json.loads(body)
        job_id = parse_id(str(report["job_id"]), "job_id")
        results = [r for r in report["results"] if isinstance(r, dict)]
    except (ValueError, KeyError, TypeError):
        raise CallbackRejected(400, "body must be JSON with job_id and results") from None
    try:
        job = load_job(session, job_id, TenantScope(company_ids=(company_id,)))
    except (NotFound, TenantViolation):
        raise CallbackRejected(403, "job does not belong to this company") from None
    digest = hashlib.sha256((signature or "").encode()).hexdigest()
    try:
        with session.begin_nested():
            session.add(CloudCallbackSeen(signature=digest, companyid=company_id))
    except IntegrityError:
        raise CallbackRejected(409, "replayed callback") from None
    return _apply(session, job, results, retry_tag=f"cloud-{digest[:16]}")


def _recipient_id(result: dict[str, Any]) -> int:
    """The reported recipient id, or 0 (matches no row) when it is not an id."""
    try:
        return parse_id(str(result.get("recipient_id", "")), "recipient_id")
    except FieldError:
        return 0


def _apply(
    session: Session, job: CloudJob, results: list[dict[str, Any]], *, retry_tag: str
) -> CallbackApplied:
    change_status(session, job, JOB_PROCESSING, allowed_from=(JOB_PENDING, JOB_QUEUED))
    counts = {"sent": 0, "failed": 0, "retry": 0}
    now = utcnow()
    for result in results:
        status = result.get("status")
        if status not in counts:
            continue
        outcome_values: dict[str, dict[str, Any]] = {
            "sent": {"status": RECIPIENT_SENT, "timesent": now},
            "failed": {"status": RECIPIENT_FAILED},
            "retry": {"status": RECIPIENT_PENDING},
        }
        values = outcome_values[status]
        changed = session.execute(
            update(CloudRecipient)
            .where(
                CloudRecipient.id == _recipient_id(result),
                CloudRecipient.jobid == job.id,
                CloudRecipient.status.in_((RECIPIENT_PENDING, RECIPIENT_SENDING)),
            )
            .values(
                **values,
                attempts=CloudRecipient.attempts + 1,
                provider_message_id=str(result.get("provider_message_id") or "")[:255] or None,
                # The Lambda reports fixed texts; anything else is not shown as it came.
                last_error=failures.shown(result.get("error")),
                claim=None,
            )
            .execution_options(synchronize_session=False)
        ).rowcount  # type: ignore[attr-defined]
        counts[status] += int(changed or 0)
    session.execute(
        update(CloudJob)
        .where(CloudJob.id == job.id)
        .values(
            emails_sent=CloudJob.emails_sent + counts["sent"],
            emails_failed=CloudJob.emails_failed + counts["failed"],
            timemodified=now,
        )
        .execution_options(synchronize_session=False)
    )
    finish_if_done(session, job.id)
    return CallbackApplied(job.id, counts["sent"], counts["failed"], counts["retry"], retry_tag)
