"""What the SMTP server receives: a plain-text part beside the HTML and, for bulk mail, the
recipient's signed one-click unsubscribe headers (RFC 8058); an unsubscribe is honoured by the
next job (skipped, not failed), and transactional mail still goes out."""

from __future__ import annotations

import re

from common.mail.unsubscribe import UnsubscribeLinks, link_target, unsubscribe
from tests.services.mailer.conftest import (
    COMPANY_A,
    configure,
    dispatch,
    mailer_env,
    make_job,
    recipient_statuses,
    recipients,
    smtp_config,
    wait_final,
)
from tests.support import TEST_SECRET

PUBLIC_URL = "https://reports.school.example"
LINK = re.compile(r"^<(?P<url>https://reports\.school\.example/unsubscribe/(?P<token>[\w.-]+))>$")


def test_text_part_unsubscribe_headers_and_the_next_job_honours_it(
    tmp_path, fresh_nats, appdb, smtp_sink, spawn_service
):
    configure(appdb, COMPANY_A, "smtp", smtp_config(smtp_sink))
    spawn_service("mailer", mailer_env(tmp_path, fresh_nats.url, appdb, PUBLIC_URL=PUBLIC_URL))
    html = (
        '<h1>News</h1><p>Hello {{firstname}}, see <a href="https://lms.example/c/1">the course'
        "</a>.</p>"
    )
    first = make_job(appdb, 3, html=html, subject="News for {{firstname}}")
    dispatch(fresh_nats.url, first)
    assert wait_final(appdb, first).status == "completed"

    received = smtp_sink.received("learner1@learners.example")[0]
    assert received.message.is_multipart()
    assert "Hello L1, see [the course](https://lms.example/c/1)." in received.text
    assert received.text.startswith("# News")
    assert "<h1>News</h1>" in received.html
    match = LINK.match(str(received.message["List-Unsubscribe"]))
    assert match, received.message["List-Unsubscribe"]
    assert received.message["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    # Each recipient's link is their own and verifies with the site's key.
    links = UnsubscribeLinks(TEST_SECRET, PUBLIC_URL)
    by_email = {r.email: r.id for r in recipients(appdb, first)}
    assert links.recipient_of(match["token"]) == by_email["learner1@learners.example"]
    other = smtp_sink.received("learner2@learners.example")[0].message["List-Unsubscribe"]
    assert other != received.message["List-Unsubscribe"]

    # learner1 clicks it (what POST /unsubscribe/<token> stores).
    with appdb.transaction() as session:
        assert unsubscribe(session, link_target(session, links.recipient_of(match["token"])))

    second = make_job(appdb, 3, html=html)
    dispatch(fresh_nats.url, second)
    job = wait_final(appdb, second)
    assert job.status == "completed"  # a skip is not a failure
    assert (job.emails_sent, job.emails_failed) == (2, 0)
    assert recipient_statuses(appdb, second) == {"sent": 2, "skipped": 1}
    skipped = next(r for r in recipients(appdb, second) if r.status == "skipped")
    assert (skipped.email, skipped.last_error) == ("learner1@learners.example", "unsubscribed")
    assert len(smtp_sink.received("learner1@learners.example")) == 1  # only the first job's
    assert len(smtp_sink.received("learner2@learners.example")) == 2

    # A welcome email with a password is transactional: sent anyway, and no unsubscribe link.
    welcome = make_job(appdb, 2, job_type="user_created")
    dispatch(fresh_nats.url, welcome)
    assert wait_final(appdb, welcome).status == "completed"
    [_, latest] = smtp_sink.received("learner1@learners.example")
    assert latest.message["List-Unsubscribe"] is None
    assert "your password is pw1" in latest.text  # the plain part is there too
