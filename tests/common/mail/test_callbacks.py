"""A cloud worker's report: errors are stored only as the fixed texts users may read."""

from __future__ import annotations

import json

from common.mail import failures
from common.mail.callbacks import apply_cloud_callback
from common.mail.config import load_config
from common.mail.signing import SIGNATURE_HEADER, TIMESTAMP_HEADER, signed_headers
from tests.services.mailer.conftest import configure, make_job, recipients
from tests.support import TEST_SECRET

ACME = 11
NOW = 1_800_000_000


def report(appdb, job_id, errors):  # type: ignore[no-untyped-def]
    with appdb.transaction() as session:
        key = load_config(session, ACME, TEST_SECRET).callback_secret
    ids = [r.id for r in recipients(appdb, job_id)]
    results = [{"recipient_id": rid, "status": "failed", "error": error}
               for rid, error in zip(ids, errors, strict=True)]  # fmt: skip
    body = json.dumps({"job_id": job_id, "results": results}).encode()
    headers = signed_headers(key, ACME, body, now=NOW)
    with appdb.transaction() as session:
        return apply_cloud_callback(
            session, secret_key=TEST_SECRET, company_header=str(ACME),
            timestamp=headers[TIMESTAMP_HEADER], signature=headers[SIGNATURE_HEADER],
            body=body, now=NOW,
        )  # fmt: skip


def test_reported_errors_are_kept_only_as_fixed_texts(appdb):
    configure(appdb, ACME, "ses", {"region": "us-east-1"})
    job_id = make_job(appdb, 4, ACME)
    reported = [
        failures.RECIPIENT_REFUSED,
        failures.template_failed(ValueError("html: sections nested more than 5 deep")),
        'SES MessageRejected: INFO {"server_id":"NSECRET"} from http://169.254.169.254/',
        "x" * 5000,
    ]

    applied = report(appdb, job_id, reported)

    stored = [r.last_error for r in sorted(recipients(appdb, job_id), key=lambda r: r.id)]
    assert stored == [reported[0], reported[1], failures.CLOUD_ERROR, failures.CLOUD_ERROR]
    assert applied.failed == 4 and applied.retry_tag.startswith("cloud-")
