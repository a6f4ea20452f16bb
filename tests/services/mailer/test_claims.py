"""The per-recipient claim (pending → sending) on SQLite and MariaDB: one mailer per recipient,
an expired claim taken over, outcomes written only under the claim that holds them."""

from __future__ import annotations

import threading
from datetime import timedelta

from sqlalchemy import update

from common.models.base import utcnow
from common.models.mail import CloudRecipient
from services.mailer.claims import RecipientClaims
from services.mailer.providers import SendOutcome
from tests.services.mailer.conftest import job_row, make_job, recipient_statuses, recipients


def test_mailers_racing_for_the_same_recipients_each_get_a_disjoint_share(appdb):
    job_id = make_job(appdb, 200)
    ids = [r.id for r in recipients(appdb, job_id)]
    claims = RecipientClaims(appdb, lease_s=60)
    won: dict[str, list[int]] = {}
    start = threading.Barrier(4)

    def mailer(token: str) -> None:
        start.wait()
        won[token] = [row[0] for row in claims.claim(job_id, ids, token)]

    threads = [threading.Thread(target=mailer, args=(f"mailer-{i}",)) for i in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    taken = [rid for share in won.values() for rid in share]
    assert sorted(taken) == sorted(ids)  # every recipient claimed exactly once
    assert recipient_statuses(appdb, job_id) == {"sending": 200}


def test_a_claim_older_than_the_lease_is_taken_over(appdb):
    job_id = make_job(appdb, 3)
    ids = [r.id for r in recipients(appdb, job_id)]
    claims = RecipientClaims(appdb, lease_s=60)
    assert len(claims.claim(job_id, ids, "dead-mailer")) == 3
    assert claims.claim(job_id, ids, "live-mailer") == []  # held, and the lease runs
    with appdb.transaction() as session:
        session.execute(update(CloudRecipient).where(CloudRecipient.id == ids[0])
                        .values(claimed_at=utcnow() - timedelta(seconds=61)))  # fmt: skip

    taken = claims.claim(job_id, ids, "live-mailer")

    assert [row[0] for row in taken] == [ids[0]]
    assert {r.id: r.attempts for r in recipients(appdb, job_id)}[ids[0]] == 2


def test_outcomes_count_only_under_the_claim_that_holds_them(appdb):
    job_id = make_job(appdb, 2)
    first, second = [r.id for r in recipients(appdb, job_id)]
    claims = RecipientClaims(appdb, lease_s=60)
    claims.claim(job_id, [first, second], "mine")

    # A mailer whose claim was taken over reports late: nothing of it counts.
    claims.record(job_id, "someone-else", [SendOutcome(first, "sent", "m-1")])
    outcomes = [SendOutcome(first, "sent", "m-1"), SendOutcome(second, "failed", error="x")]
    claims.record(job_id, "mine", outcomes)
    claims.record(job_id, "mine", outcomes)  # a second write of the same outcomes: no change

    assert recipient_statuses(appdb, job_id) == {"sent": 1, "failed": 1}
    job = job_row(appdb, job_id)
    assert (job.emails_sent, job.emails_failed) == (1, 1)
    assert claims.left_to_send(job_id, [first, second])[0] == 0
