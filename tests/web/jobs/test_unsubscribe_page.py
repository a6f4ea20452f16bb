"""The unsubscribe link (RFC 8058): GET asks and changes nothing, POST (one-click, no session,
no CSRF token) stores the opt-out; forged, tampered and expired links are refused."""

from __future__ import annotations

import time

from sqlalchemy import select

from common.mail.unsubscribe import UnsubscribeLinks, links_for, unsubscribed_among
from common.models.access import AuditLog
from common.models.unsubscribe import MailUnsubscribe
from tests.services.mailer.conftest import make_job, recipients


def link(app, site, *, now: float | None = None):  # type: ignore[no-untyped-def]
    ctx = app.extensions["manireports"]
    job_id = make_job(ctx.appdb, 2, site.companies["A"])
    recipient = sorted(recipients(ctx.appdb, job_id), key=lambda r: r.id)[0]
    token = links_for(ctx.settings).token(recipient.id, now=now)
    return f"/unsubscribe/{token}", recipient


def stored(app) -> list[MailUnsubscribe]:
    with app.extensions["manireports"].appdb.transaction() as session:
        return list(session.scalars(select(MailUnsubscribe)))


def test_get_asks_and_changes_nothing_post_one_click_unsubscribes(app, site):
    url, recipient = link(app, site)
    client = app.test_client()  # nobody signed in: the link alone
    page = client.get(url)
    assert page.status_code == 200
    body = page.get_data(as_text=True)
    assert "Stop bulk email" in body and "l••••••@learners.example" in body
    assert recipient.email not in body  # the address is masked: links get forwarded
    assert stored(app) == []

    # What a mail client sends for RFC 8058: no cookie, no CSRF token.
    one_click = client.post(url, data={"List-Unsubscribe": "One-Click"})
    assert one_click.status_code == 200
    assert "is unsubscribed" in one_click.get_data(as_text=True)
    [row] = stored(app)
    assert (row.companyid, row.email) == (site.companies["A"], recipient.email)
    with app.extensions["manireports"].appdb.transaction() as session:
        assert unsubscribed_among(session, site.companies["A"], [recipient.email.upper()]) == {
            recipient.email
        }
        assert unsubscribed_among(session, site.companies["B"], [recipient.email]) == set()
        [entry] = session.scalars(select(AuditLog).where(AuditLog.action == "mail_unsubscribed"))
        assert entry.companyid == site.companies["A"] and '"one_click": true' in entry.details
    # A second click is harmless and says so.
    again = client.post(url)
    assert again.status_code == 200 and len(stored(app)) == 1
    assert "is unsubscribed" in client.get(url).get_data(as_text=True)


def test_forged_tampered_and_expired_links_are_refused(app, site):
    url, recipient = link(app, site)
    client = app.test_client()
    rid, expires, mac = url.rsplit("/", 1)[1].split(".")
    forged = UnsubscribeLinks("not the site's key", "http://x").token(recipient.id)
    for bad in (
        f"/unsubscribe/{forged}",
        f"/unsubscribe/{int(rid) + 1}.{expires}.{mac}",  # someone else's recipient id
        f"/unsubscribe/{rid}.{int(expires) + 86400}.{mac}",  # a longer life
        f"/unsubscribe/{rid}.{expires}",
        "/unsubscribe/x" * 1 + "y" * 500,
        "/unsubscribe/-1.1.abc",
    ):
        for method in (client.get, client.post):
            response = method(bad)
            assert response.status_code == 404, (bad, response.status_code)
    old_url, _ = link(app, site, now=time.time() - 400 * 86400)
    expired = client.post(old_url)
    assert expired.status_code == 410
    assert "expired" in expired.get_data(as_text=True)
    assert stored(app) == []


def test_the_confirm_button_posts_to_the_same_signed_url(app, site):
    url, _ = link(app, site)
    page = app.test_client().get(url).get_data(as_text=True)
    assert f'<form method="post" action="{url}">' in page
