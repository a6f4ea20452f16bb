"""A chunk's recipients held one mailer at a time: claim, release, record outcomes.

A claim is one conditional UPDATE (`pending` → `sending` under a fresh token, or a `sending`
claim older than the lease, whose mailer died), so two mailers given the same recipients get
disjoint sets on SQLite and on MariaDB alike; outcomes are written only under the token that
claimed them. Synchronous: the mailer runs these in worker threads.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import timedelta

from sqlalchemy import bindparam, func, select, update

from common.appdb import AppDB
from common.mail.jobs import stale_claim_filter
from common.mail.unsubscribe import RECIPIENT_SKIPPED
from common.models.base import table_of, utcnow
from common.models.mail import (
    RECIPIENT_FAILED,
    RECIPIENT_PENDING,
    RECIPIENT_SENDING,
    RECIPIENT_SENT,
    CloudJob,
    CloudRecipient,
)
from services.mailer.providers import SendOutcome

_recip = table_of(CloudRecipient)
_STATUS_OF = {
    "sent": RECIPIENT_SENT,
    "failed": RECIPIENT_FAILED,
    "retry": RECIPIENT_PENDING,
    "skipped": RECIPIENT_SKIPPED,
}
# What a claim hands back: (recipient id, address, recipient data as JSON).
Claimed = tuple[int, str, str]


class RecipientClaims:
    def __init__(self, appdb: AppDB, lease_s: float) -> None:
        self.appdb = appdb
        self.lease_s = lease_s

    def claim(self, job_id: int, group: Sequence[int], token: str) -> list[Claimed]:
        """Take the recipients of ``group`` that no live mailer holds; the ones taken."""
        now = utcnow()
        stale_before = now - timedelta(seconds=self.lease_s)
        with self.appdb.transaction() as session:
            session.execute(
                update(CloudRecipient)
                .where(
                    CloudRecipient.id.in_(group),
                    CloudRecipient.jobid == job_id,
                    stale_claim_filter(stale_before),
                )
                .values(
                    status=RECIPIENT_SENDING,
                    claim=token,
                    claimed_at=now,
                    attempts=CloudRecipient.attempts + 1,
                )
                .execution_options(synchronize_session=False)
            )
            rows = session.execute(
                select(CloudRecipient.id, CloudRecipient.email, CloudRecipient.recipient_data)
                .where(CloudRecipient.id.in_(group), CloudRecipient.claim == token)
                .order_by(CloudRecipient.id)
            )
            return [(r.id, r.email, r.recipient_data) for r in rows]

    def release(self, group: Sequence[int], token: str, error: str) -> None:
        """Hand claimed recipients back as pending (the provider refused the whole request)."""
        with self.appdb.transaction() as session:
            session.execute(
                update(CloudRecipient)
                .where(CloudRecipient.id.in_(group), CloudRecipient.claim == token)
                .values(status=RECIPIENT_PENDING, claim=None, last_error=error[:2000])
                .execution_options(synchronize_session=False)
            )

    def record(self, job_id: int, token: str, outcomes: Sequence[SendOutcome]) -> None:
        """Each outcome on its recipient (if still under ``token``) and the job's counts."""
        now = utcnow()
        params = [
            {
                "rid": o.recipient_id,
                "tok": token,
                "st": _STATUS_OF[o.status],
                "pmid": (o.provider_message_id or "")[:255] or None,
                "err": (o.error or "")[:2000] or None,
                # When the provider answered (sent or failed): the job monitor measures the
                # send rate from these times. A retry has no outcome yet; a skip sent nothing.
                "ts": now if o.status in ("sent", "failed") else None,
            }
            for o in outcomes
        ]
        statement = (
            update(_recip)
            .where(_recip.c.id == bindparam("rid"), _recip.c.claim == bindparam("tok"))
            .values(
                status=bindparam("st"),
                provider_message_id=bindparam("pmid"),
                last_error=bindparam("err"),
                timesent=bindparam("ts"),
                claim=None,
            )
        )
        # Counted from the rows changed, not the outcomes given: a claim taken over meanwhile
        # (this mailer outlived its lease) must not count its recipients a second time.
        changed = {"sent": 0, "failed": 0}
        with self.appdb.transaction() as session:
            for status in ("sent", "failed", "retry", "skipped"):
                group = [p for p in params if p["st"] == _STATUS_OF[status]]
                if group:
                    rows = session.connection().execute(statement, group).rowcount
                    if status in changed:
                        changed[status] = int(rows)
            if changed["sent"] or changed["failed"]:
                session.execute(
                    update(CloudJob)
                    .where(CloudJob.id == job_id)
                    .values(
                        emails_sent=CloudJob.emails_sent + changed["sent"],
                        emails_failed=CloudJob.emails_failed + changed["failed"],
                        timemodified=now,
                    )
                    .execution_options(synchronize_session=False)
                )

    def left_to_send(self, job_id: int, ids: Sequence[int]) -> tuple[int, float]:
        """Recipients of the chunk not yet sent or failed, and seconds until held claims expire."""
        with self.appdb.transaction() as session:
            row = session.execute(
                select(func.count(), func.max(CloudRecipient.claimed_at)).where(
                    CloudRecipient.id.in_(ids),
                    CloudRecipient.jobid == job_id,
                    CloudRecipient.status.in_((RECIPIENT_PENDING, RECIPIENT_SENDING)),
                )
            ).one()
        left, last_claim = int(row[0]), row[1]
        if last_claim is None:
            return left, 0.0
        expires = last_claim + timedelta(seconds=self.lease_s)
        return left, (expires - utcnow()).total_seconds()
