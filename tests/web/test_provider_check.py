"""The connection check on saving email settings: real SMTP servers and provider fakes, a wrong
port or key found at once, every form error together with the input kept, and the SMTP host
rules (SSRF) applied before any connection."""

from __future__ import annotations

from sqlalchemy import select

from common.mail.provider_check import check_connection
from common.mail.site import MailSite
from common.models.access import AuditLog
from common.models.mail import CloudConf
from tests.fakes.smtp_sink import SmtpSink, free_port
from tests.fakes.tcp_listener import TcpListener
from tests.web.conftest import csrf_token

URL = "/admin/email-offload/"


def form(client, company: int, **overrides):  # type: ignore[no-untyped-def]
    values = {
        "csrf_token": csrf_token(client, f"{URL}?company={company}"),
        "enabled": "on", "provider": "smtp", "sender_email": "noreply@acme.example",
        "chunk_size": "100", "rate_per_s": "20", "smtp__security": "none",
        "allow_private_smtp_host": "on",
    }  # fmt: skip
    values.update(overrides)
    return values


def stored(app):  # type: ignore[no-untyped-def]
    with app.extensions["manireports"].appdb.transaction() as session:
        return session.scalar(select(CloudConf))


def fields(errors) -> dict[str, str]:  # type: ignore[no-untyped-def]
    return {e.field: e.reason for e in errors}


# -- through the settings page -------------------------------------------------------------------
def test_a_working_smtp_server_is_checked_and_saved(app, site, client_as, smtp_sink):
    client = client_as("admin")
    company = site.companies["A"]
    data = form(client, company, smtp__host=smtp_sink.host, smtp__port=str(smtp_sink.port))
    response = client.post(f"{URL}?company={company}", data=data, follow_redirects=True)
    assert response.status_code == 200, response.get_data(as_text=True)
    assert "saved and the connection works" in response.get_data(as_text=True)
    assert stored(app).provider == "smtp"
    assert smtp_sink.recipients == set()  # checked, nothing sent
    with app.extensions["manireports"].appdb.transaction() as session:
        [entry] = session.scalars(select(AuditLog).where(AuditLog.action == "email_offload_saved"))
        assert '"connection_checked": true' in entry.details


def test_a_wrong_port_fails_the_save_with_every_error_and_the_input_kept(app, site, client_as):
    client = client_as("admin")
    company = site.companies["A"]
    closed = free_port()
    data = form(client, company, smtp__host="127.0.0.1", smtp__port=str(closed),
                smtp__username="relay", smtp__password="Pa55-Secret-Typed")  # fmt: skip
    response = client.post(f"{URL}?company={company}", data=data)
    body = response.get_data(as_text=True)
    assert response.status_code == 422
    assert f"nothing answers at 127.0.0.1:{closed}" in body
    assert 'id="error-smtp__port-1"' in body and 'aria-invalid="true"' in body
    assert f'value="{closed}"' in body and 'value="relay"' in body  # input kept
    assert "Pa55-Secret-Typed" not in body  # a secret is never echoed
    assert stored(app) is None

    # Several problems at once: the bad number, the bad sender, the bad test address.
    data = form(client, company, smtp__host="127.0.0.1", smtp__port="25x", chunk_size="0",
                sender_email="nope", test_to="also nope")  # fmt: skip
    body = client.post(f"{URL}?company={company}", data=data).get_data(as_text=True)
    for field in ("port", "chunk_size", "sender_email", "test_to"):
        assert f'id="error-{field if field != "port" else "smtp__port"}-1"' in body, field
    assert "(4 problems)" in body
    assert stored(app) is None


def test_save_without_checking_is_possible_and_audited(app, site, client_as):
    client = client_as("admin")
    company = site.companies["A"]
    data = form(client, company, smtp__host="127.0.0.1", smtp__port=str(free_port()),
                skip_connection_check="on")  # fmt: skip
    assert client.post(f"{URL}?company={company}", data=data).status_code == 302
    with app.extensions["manireports"].appdb.transaction() as session:
        [entry] = session.scalars(select(AuditLog).where(AuditLog.action == "email_offload_saved"))
        assert '"connection_checked": false' in entry.details


def test_a_manager_cannot_point_the_check_at_a_private_host(app, site, client_as):
    client = client_as("mgr_a")
    company = site.companies["A"]
    with TcpListener(banner=b"220 internal-service ready\r\n") as internal:
        data = form(client, company, smtp__host="127.0.0.1", smtp__port=str(internal.port))
        data.pop("allow_private_smtp_host")
        response = client.post(f"{URL}?company={company}", data=data)
        assert response.status_code == 422
        assert "private or local address" in response.get_data(as_text=True)
        assert internal.connections == 0
    assert stored(app) is None


# -- the checks themselves -----------------------------------------------------------------------
def test_smtp_check_refuses_private_hosts_before_connecting():
    with TcpListener(banner=b"220 metadata\r\n") as internal:
        config = {"host": "127.0.0.1", "port": internal.port, "security": "none"}
        assert "host" in fields(check_connection("smtp", config, MailSite()))
        config = {"host": "localhost", "port": internal.port, "security": "none"}
        assert "host" in fields(check_connection("smtp", config, MailSite()))
        assert internal.connections == 0
        # Not an SMTP server at all (a banner that is not a 220 greeting): refused, its words
        # are not shown.
        allowed = MailSite(allow_private_smtp_hosts=True)
        config = {"host": "127.0.0.1", "port": internal.port, "security": "none"}
        problems = check_connection("smtp", config, allowed, timeout_s=2)
        assert problems and "metadata" not in str(fields(problems))
        assert internal.connections == 1


def test_smtp_check_logs_in_and_names_the_password_when_refused():
    allowed = MailSite(allow_private_smtp_hosts=True)
    with SmtpSink(security="tls", credentials=("relay", "right")) as sink:
        config = {"host": sink.host, "port": sink.port, "security": "tls",
                  "validate_certs": False, "username": "relay", "password": "right"}  # fmt: skip
        assert check_connection("smtp", config, allowed) == []
        wrong = check_connection("smtp", {**config, "password": "wrong"}, allowed)
        assert fields(wrong) == {"password": "the SMTP server refused the username and password"}
        # The certificate is self-signed: with validation on, the session fails on security.
        strict = check_connection("smtp", {**config, "validate_certs": True}, allowed)
        assert list(fields(strict)) in (["security"], ["port"])
    with SmtpSink(security="starttls") as sink:
        config = {"host": sink.host, "port": sink.port, "security": "none"}
        assert check_connection("smtp", {**config, "security": "starttls",
                                         "validate_certs": False}, allowed) == []  # fmt: skip


def test_sendgrid_key_checked_against_the_api(sendgrid_server):
    good = {"api_key": sendgrid_server.api_key}
    assert check_connection("sendgrid", good, sendgrid_server.site) == []
    bad = check_connection("sendgrid", {"api_key": "SG.revoked"}, sendgrid_server.site)
    assert fields(bad) == {"api_key": "SendGrid refused the API key"}
    sendgrid_server.fail(times=1, status=503)
    assert "provider" in fields(check_connection("sendgrid", good, sendgrid_server.site))
    assert sendgrid_server.accepted_requests == []  # nothing was sent


def test_mailgun_key_and_domain_checked_against_the_api(mailgun_server):
    good = {"api_key": mailgun_server.api_key, "domain": mailgun_server.domain}
    assert check_connection("mailgun", good, mailgun_server.site) == []
    bad_key = check_connection("mailgun", {**good, "api_key": "key-wrong"}, mailgun_server.site)
    assert fields(bad_key) == {"api_key": "Mailgun refused the API key"}
    other = check_connection("mailgun", {**good, "domain": "mg.other.example"},
                             mailgun_server.site)  # fmt: skip
    assert list(fields(other)) == ["domain"]


def test_ses_checked_with_a_send_quota_call(moto_ses):
    assert check_connection("ses", moto_ses.provider_config(), moto_ses.site) == []
    v2 = check_connection("ses", moto_ses.provider_config(api="v2"), moto_ses.site)
    assert v2 == []
    nowhere = MailSite(ses_endpoint_url=f"http://127.0.0.1:{free_port()}")
    problems = check_connection("ses", moto_ses.provider_config(), nowhere, timeout_s=2)
    assert list(fields(problems)) == ["region"]


def test_refused_numbers_come_back_as_they_were_typed(app, site, client_as):
    """ "abc" for the chunk size and "-5" for the quota: named errors, and the fields show what
    was typed — not "None" and not "-5.0"."""
    client = client_as("admin")
    company = site.companies["A"]
    data = form(client, company, smtp__host="127.0.0.1", smtp__port="25x", chunk_size="abc",
                rate_per_s="-5")  # fmt: skip
    response = client.post(f"{URL}?company={company}", data=data)
    body = response.get_data(as_text=True)
    assert response.status_code == 422
    for field in ("chunk_size", "rate_per_s", "smtp__port"):
        assert f'id="error-{field}-1"' in body, field
    assert 'name="chunk_size"' in body and 'value="abc"' in body
    assert 'value="-5"' in body and 'value="-5.0"' not in body
    assert 'value="25x"' in body
    assert 'value="None"' not in body
    assert stored(app) is None
