"""The Mailgun provider against a local server speaking Mailgun's messages API."""

from dataclasses import replace

import pytest

from common.mail import failures
from services.mailer.providers import (
    PROVIDERS,
    Attachment,
    PermanentSendError,
    ProviderThrottled,
    TransientSendError,
    get_provider,
)
from tests.services.mailer.conftest import send


def mailgun_provider(server, **overrides):
    config = {
        "api_key": server.api_key,
        "domain": server.domain,
        "from_email": "noreply@acme.example",
        "from_name": "Acme Training",
        **overrides,
    }
    return get_provider("mailgun", config, server.site)


def assert_delivered_once(server, messages):
    for message in messages:
        [received] = server.delivered(message.to)
        assert received.subject == message.subject
        assert received.html == message.html
        assert received.text == message.text
        assert received.sender == "Acme Training <noreply@acme.example>"


def test_batch_goes_in_one_request_and_each_recipient_gets_its_content(
    mailgun_server, make_messages
):
    messages = make_messages(5)

    outcomes = send(mailgun_provider(mailgun_server), messages)

    assert [o.status for o in outcomes] == ["sent"] * 5
    assert mailgun_server.recipients_per_request == [5]
    assert_delivered_once(mailgun_server, messages)
    message_id = mailgun_server.delivered(messages[0].to)[0].message_id
    assert {o.provider_message_id for o in outcomes} == {message_id}
    assert "Dear Zoë &amp; &lt;Co&gt; 3," in mailgun_server.delivered(messages[2].to)[0].html


def test_a_request_carries_at_most_1000_recipients(mailgun_server, make_messages):
    messages = make_messages(1001)

    outcomes = send(mailgun_provider(mailgun_server), messages)

    assert all(o.status == "sent" for o in outcomes)
    assert mailgun_server.recipients_per_request == [1000, 1]
    assert len(mailgun_server.recipients) == 1001


def test_too_many_requests_raises_provider_throttled(mailgun_server, make_messages):
    mailgun_server.throttle(retry_after_s=20)

    with pytest.raises(ProviderThrottled) as raised:
        send(mailgun_provider(mailgun_server), make_messages(3))

    assert raised.value.retry_after_s == 20
    assert mailgun_server.recipients == set()


def test_server_error_is_transient(mailgun_server, make_messages):
    mailgun_server.fail(status=500)

    with pytest.raises(TransientSendError):
        send(mailgun_provider(mailgun_server), make_messages(3))


def test_invalid_recipients_fail_alone_and_the_rest_is_sent_once(mailgun_server, make_messages):
    messages = make_messages(20)
    mailgun_server.reject(messages[3].to)
    mailgun_server.reject(messages[17].to)

    outcomes = send(mailgun_provider(mailgun_server), messages)

    failed = [o.recipient_id for o in outcomes if o.status == "failed"]
    assert failed == [messages[3].recipient_id, messages[17].recipient_id]
    assert outcomes[3].error == failures.RECIPIENT_REFUSED
    assert "not a valid address" in outcomes[3].detail
    sent = [m for i, m in enumerate(messages) if i not in (3, 17)]
    assert_delivered_once(mailgun_server, sent)
    assert len(mailgun_server.recipients) == 18


def test_wrong_key_and_unknown_domain_are_permanent(mailgun_server, make_messages):
    with pytest.raises(PermanentSendError, match=failures.CREDENTIALS_REFUSED) as raised:
        send(mailgun_provider(mailgun_server, api_key="key-revoked"), make_messages(1))
    assert "401" in raised.value.detail
    with pytest.raises(PermanentSendError, match=failures.REQUEST_REFUSED) as raised:
        send(mailgun_provider(mailgun_server, domain="mg.globex.example"), make_messages(1))
    assert "Domain not found" in raised.value.detail


def test_per_recipient_header_values_batch_together_as_recipient_variables(
    mailgun_server, make_messages
):
    """Each recipient's own List-Unsubscribe link travels in recipient-variables: messages
    with the same header names share one request, each recipient gets their own value."""
    messages = [
        replace(m, headers={"List-Unsubscribe": f"<https://lms.example/u/{m.recipient_id}>",
                            "List-Unsubscribe-Post": "List-Unsubscribe=One-Click"})
        for m in make_messages(3)
    ]  # fmt: skip

    send(mailgun_provider(mailgun_server), messages)

    assert mailgun_server.recipients_per_request == [3]
    for message in messages:
        received = mailgun_server.delivered(message.to)[0]
        assert received.headers == {
            "List-Unsubscribe": f"<https://lms.example/u/{message.recipient_id}>",
            "List-Unsubscribe-Post": "List-Unsubscribe=One-Click",
        }


def test_messages_with_different_header_names_go_in_separate_requests(
    mailgun_server, make_messages
):
    first, second = make_messages(2)
    messages = [replace(first, headers={"X-Campaign": "spring"}),
                replace(second, headers={"X-Other": "1"})]  # fmt: skip

    send(mailgun_provider(mailgun_server), messages)

    assert mailgun_server.recipients_per_request == [1, 1]
    assert mailgun_server.delivered(second.to)[0].headers == {"X-Other": "1"}


def test_shared_attachments_are_sent_once_per_request(mailgun_server, make_messages):
    timetable = Attachment("timetable.pdf", b"%PDF-1.4 timetable", "application/pdf")
    messages = make_messages(3, attachments=[timetable])

    send(mailgun_provider(mailgun_server), messages)

    assert mailgun_server.recipients_per_request == [3]
    assert mailgun_server.delivered(messages[2].to)[0].attachments == {
        "timetable.pdf": b"%PDF-1.4 timetable"
    }
    assert_delivered_once(mailgun_server, messages)


@pytest.mark.parametrize(
    ("config", "error"),
    [
        ({"domain": "mg.x.example", "from_email": "a@b.example"}, "api_key: required"),
        ({"api_key": "k", "from_email": "a@b.example"}, "domain: required"),
        (
            {"api_key": "k", "domain": "mg.x.example", "from_email": "a@b.example", "region": "ap"},
            "region: must be one of us, eu",
        ),
        (
            {"api_key": "k", "domain": "https://mg.x.example", "from_email": "a@b.example"},
            "domain:",
        ),
        (
            {
                "api_key": "k",
                "domain": "mg.x.example",
                "from_email": "a@b.example",
                "base_url": "http://169.254.169.254",
            },
            "base_url: unknown setting",  # where requests go is the site's choice
        ),
    ],
)
def test_bad_config_is_reported_by_field(config, error):
    errors = [str(e) for e in PROVIDERS["mailgun"].validate_config(config)]

    assert any(e.startswith(error) for e in errors), errors
