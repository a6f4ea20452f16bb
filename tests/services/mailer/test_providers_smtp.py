"""The SMTP provider against a real SMTP server on loopback."""

from dataclasses import replace

import pytest

from common.errors import FieldError
from common.mail import failures
from common.mail.site import MailSite
from services.mailer.providers import (
    PROVIDERS,
    PermanentSendError,
    ProviderThrottled,
    TransientSendError,
    get_provider,
)
from tests.fakes.smtp_sink import SmtpSink, free_port
from tests.services.mailer.conftest import send

# The sink listens on loopback, which only a site (or a site admin, per company) may allow.
LOOPBACK_ALLOWED = MailSite(allow_private_smtp_hosts=True)


def smtp_provider(sink, **overrides):
    config = {
        "host": sink.host,
        "port": sink.port,
        "security": "none",
        "from_email": "noreply@acme.example",
        "from_name": "Acme Training",
        **overrides,
    }
    return get_provider("smtp", config, LOOPBACK_ALLOWED)


def test_batch_is_delivered_once_per_recipient_over_one_connection(smtp_sink, make_messages):
    messages = make_messages(10)

    outcomes = send(smtp_provider(smtp_sink), messages)

    assert [o.status for o in outcomes] == ["sent"] * 10
    assert smtp_sink.sessions == 1
    for message, outcome in zip(messages, outcomes, strict=True):
        [received] = smtp_sink.received(message.to)
        assert received.subject == message.subject
        assert received.html.strip() == message.html
        assert received.text.strip() == message.text
        assert received.message["Message-ID"] == outcome.provider_message_id
        assert received.message["From"] == "Acme Training <noreply@acme.example>"
    assert "Dear Zoë &amp; &lt;Co&gt; 3," in smtp_sink.received("learner3@acme.example")[0].html


def test_one_connection_carries_at_most_max_batch_size_messages(smtp_sink, make_messages):
    provider = smtp_provider(smtp_sink)
    provider.max_batch_size = 3

    outcomes = send(provider, make_messages(7))

    assert [o.status for o in outcomes] == ["sent"] * 7
    assert smtp_sink.sessions == 3


def test_refused_recipient_fails_alone(smtp_sink, make_messages):
    messages = make_messages(4)
    smtp_sink.reject(messages[1].to)

    outcomes = send(smtp_provider(smtp_sink), messages)

    assert [o.status for o in outcomes] == ["sent", "failed", "sent", "sent"]
    assert outcomes[1].error == failures.RECIPIENT_REFUSED
    assert outcomes[1].detail.startswith("550")  # the relay's reply: for the log only
    assert smtp_sink.recipients == {m.to for m in messages} - {messages[1].to}


def test_deferred_recipient_is_retried_and_the_others_sent(smtp_sink, make_messages):
    messages = make_messages(3)
    smtp_sink.defer(messages[0].to)

    outcomes = send(smtp_provider(smtp_sink), messages)

    assert [o.status for o in outcomes] == ["retry", "sent", "sent"]
    assert outcomes[0].error == failures.RECIPIENT_DEFERRED
    assert outcomes[0].detail.startswith("451")
    assert [o.status for o in send(smtp_provider(smtp_sink), messages[:1])] == ["sent"]
    assert all(len(smtp_sink.received(m.to)) == 1 for m in messages)


def test_busy_server_throttles_the_batch_before_anything_is_sent(smtp_sink, make_messages):
    messages = make_messages(3)
    smtp_sink.answer_busy(times=1)

    with pytest.raises(ProviderThrottled):
        send(smtp_provider(smtp_sink), messages)

    assert smtp_sink.recipients == set()
    assert [o.status for o in send(smtp_provider(smtp_sink), messages)] == ["sent"] * 3


def test_busy_server_mid_batch_hands_back_the_rest_for_retry(smtp_sink, make_messages):
    messages = make_messages(5)
    smtp_sink.answer_busy(times=1, after_messages=2)

    outcomes = send(smtp_provider(smtp_sink), messages)

    assert [o.status for o in outcomes] == ["sent", "sent", "retry", "retry", "retry"]
    assert smtp_sink.recipients == {messages[0].to, messages[1].to}


def test_unreachable_server_is_a_transient_error(make_messages):
    provider = get_provider(
        "smtp",
        {"host": "127.0.0.1", "port": free_port(), "security": "none", "from_email": "a@b.example"},
        LOOPBACK_ALLOWED,
    )

    with pytest.raises(TransientSendError, match=failures.UNREACHABLE):
        send(provider, make_messages(1))


def test_malformed_address_fails_without_reaching_the_server(smtp_sink, make_messages):
    first, second = make_messages(2)
    messages = [first, replace(second, to="learner two@acme.example")]

    outcomes = send(smtp_provider(smtp_sink), messages)

    assert [o.status for o in outcomes] == ["sent", "failed"]
    assert "invalid address" in outcomes[1].error
    assert smtp_sink.recipients == {messages[0].to}


@pytest.mark.parametrize(
    ("config", "error"),
    [
        ({"port": 25, "from_email": "a@b.example"}, "host: required"),
        ({"host": "mail", "port": 70000, "from_email": "a@b.example"}, "port: must be between"),
        ({"host": "mail", "port": "25", "from_email": "a@b.example"}, "port: must be a whole"),
        ({"host": "mail", "security": "ssl", "from_email": "a@b.example"}, "security: must be"),
        ({"host": "mail", "username": "u", "from_email": "a@b.example"}, "password:"),
        ({"host": "mail", "from_email": "not an address"}, "from_email:"),
        ({"host": "mail", "from_email": "a@b.example", "hostname": "x"}, "hostname: unknown"),
    ],
)
def test_bad_config_is_reported_by_field(config, error):
    errors = [str(e) for e in PROVIDERS["smtp"].validate_config(config)]

    assert any(e.startswith(error) for e in errors), errors
    with pytest.raises(FieldError, match=error.split(":")[0]):
        get_provider("smtp", config)


# aiosmtpd only counts STARTTLS as TLS and warns about AUTH on the implicit-TLS port.
@pytest.mark.filterwarnings("ignore:Requiring AUTH while not requiring TLS")
@pytest.mark.parametrize("security", ["starttls", "tls"])
def test_encrypted_session_with_login(security, make_messages):
    messages = make_messages(2)
    with SmtpSink(security=security, credentials=("mailer", "s3cret")) as sink:
        provider = smtp_provider(
            sink, security=security, username="mailer", password="s3cret", validate_certs=False
        )

        outcomes = send(provider, messages)

        assert [o.status for o in outcomes] == ["sent", "sent"]
        assert all(len(sink.received(m.to)) == 1 for m in messages)


def test_refused_login_is_a_permanent_error(make_messages):
    with SmtpSink(security="starttls", credentials=("mailer", "s3cret")) as sink:
        provider = smtp_provider(
            sink, security="starttls", username="mailer", password="wrong", validate_certs=False
        )

        with pytest.raises(PermanentSendError, match=failures.CREDENTIALS_REFUSED) as refused:
            send(provider, make_messages(1))

        assert refused.value.detail.startswith("535")

        assert sink.recipients == set()
