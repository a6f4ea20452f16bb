"""The SendGrid provider against a local server speaking the v3 Mail Send API."""

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


def sendgrid_provider(server, **overrides):
    config = {
        "api_key": server.api_key,
        "from_email": "noreply@acme.example",
        "from_name": "Acme Training",
        **overrides,
    }
    return get_provider("sendgrid", config, server.site)


def assert_delivered_once(server, messages):
    for message in messages:
        [received] = server.delivered(message.to)
        assert received.subject == message.subject
        assert received.html == message.html
        assert received.text == message.text
        assert received.custom_args == {"manireports_recipient_id": str(message.recipient_id)}


def test_batch_goes_in_one_request_and_each_recipient_gets_its_content(
    sendgrid_server, make_messages
):
    messages = make_messages(5)

    outcomes = send(sendgrid_provider(sendgrid_server), messages)

    assert [o.status for o in outcomes] == ["sent"] * 5
    assert len(sendgrid_server.accepted_requests) == 1
    assert_delivered_once(sendgrid_server, messages)
    message_id = sendgrid_server.delivered(messages[0].to)[0].message_id
    assert {o.provider_message_id for o in outcomes} == {message_id}
    assert "Dear Zoë &amp; &lt;Co&gt; 3," in sendgrid_server.delivered(messages[2].to)[0].html


def test_a_request_carries_at_most_1000_personalizations(sendgrid_server, make_messages):
    messages = make_messages(1001)

    outcomes = send(sendgrid_provider(sendgrid_server), messages)

    assert all(o.status == "sent" for o in outcomes)
    sizes = [len(r["personalizations"]) for r in sendgrid_server.accepted_requests]
    assert sizes == [1000, 1]
    assert len(sendgrid_server.recipients) == 1001


def test_too_many_requests_raises_provider_throttled_with_the_reset_time(
    sendgrid_server, make_messages
):
    sendgrid_server.throttle(reset_in_s=30)

    with pytest.raises(ProviderThrottled) as raised:
        send(sendgrid_provider(sendgrid_server), make_messages(3))

    assert 25 <= raised.value.retry_after_s <= 31
    assert sendgrid_server.recipients == set()


def test_throttled_after_a_request_was_accepted_returns_retries(sendgrid_server, make_messages):
    messages = make_messages(1001)
    sendgrid_server.throttle(reset_in_s=10, after_requests=1)

    outcomes = send(sendgrid_provider(sendgrid_server), messages)

    assert [o.status for o in outcomes].count("sent") == 1000
    assert outcomes[-1].status == "retry"
    assert 5 <= outcomes[-1].retry_after_s <= 11


def test_server_error_is_transient(sendgrid_server, make_messages):
    sendgrid_server.fail(status=503)

    with pytest.raises(TransientSendError):
        send(sendgrid_provider(sendgrid_server), make_messages(3))


def test_invalid_recipients_fail_alone_and_the_rest_is_sent_once(sendgrid_server, make_messages):
    messages = make_messages(6)
    sendgrid_server.reject(messages[1].to)
    sendgrid_server.reject(messages[4].to)

    outcomes = send(sendgrid_provider(sendgrid_server), messages)

    assert [o.status for o in outcomes] == ["sent", "failed", "sent", "sent", "failed", "sent"]
    assert outcomes[1].error == failures.RECIPIENT_REFUSED
    assert "Does not contain a valid address" in outcomes[1].detail
    assert_delivered_once(sendgrid_server, [messages[i] for i in (0, 2, 3, 5)])
    assert len(sendgrid_server.recipients) == 4


def test_each_company_sends_with_its_own_key(sendgrid_server, make_messages):
    acme = sendgrid_provider(sendgrid_server)
    globex = sendgrid_provider(
        sendgrid_server, api_key="SG.revoked", from_email="hr@globex.example"
    )

    with pytest.raises(PermanentSendError, match=failures.CREDENTIALS_REFUSED) as raised:
        send(globex, make_messages(2, company="Globex"))
    assert "401" in raised.value.detail
    assert [o.status for o in send(acme, make_messages(2))] == ["sent", "sent"]

    assert sendgrid_server.recipients == {"learner1@acme.example", "learner2@acme.example"}


def test_duplicate_addresses_go_in_separate_requests(sendgrid_server, make_messages):
    first, second = make_messages(2)
    second = replace(second, to=first.to.upper())

    outcomes = send(sendgrid_provider(sendgrid_server), [first, second])

    assert [o.status for o in outcomes] == ["sent", "sent"]
    assert len(sendgrid_server.accepted_requests) == 2


def test_large_message_is_sent_alone_with_inline_content(sendgrid_server, make_messages):
    small, large = make_messages(2)
    large = replace(large, html=large.html + "<p>" + "x" * 60_000 + "</p>")

    outcomes = send(sendgrid_provider(sendgrid_server), [small, large])

    assert [o.status for o in outcomes] == ["sent", "sent"]
    assert_delivered_once(sendgrid_server, [small, large])
    inline = [r for r in sendgrid_server.accepted_requests if "substitutions" not in str(r)]
    assert len(inline) == 2  # each request holds one message, so content is inline


def test_headers_and_attachments_reach_the_recipient(sendgrid_server, make_messages):
    timetable = Attachment("timetable.pdf", b"%PDF-1.4 timetable", "application/pdf")
    messages = [
        replace(m, headers={"List-Unsubscribe": f"<https://lms.example/u/{m.recipient_id}>"})
        for m in make_messages(2, attachments=[timetable])
    ]

    send(sendgrid_provider(sendgrid_server), messages)

    received = sendgrid_server.delivered(messages[1].to)[0]
    assert received.headers == {"List-Unsubscribe": "<https://lms.example/u/2>"}
    assert received.attachments == {"timetable.pdf": b"%PDF-1.4 timetable"}
    assert len(sendgrid_server.accepted_requests) == 1


@pytest.mark.parametrize(
    ("config", "error"),
    [
        ({"from_email": "a@b.example"}, "api_key: required"),
        ({"api_key": "SG.x"}, "from_email: required"),
        (
            {"api_key": "SG.x", "from_email": "a@b.example", "base_url": "http://10.0.0.1"},
            "base_url: unknown setting",  # where requests go is the site's choice
        ),
        ({"api_key": "SG.x", "from_email": "a@b.example", "timeout_s": "10"}, "timeout_s:"),
    ],
)
def test_bad_config_is_reported_by_field(config, error):
    errors = [str(e) for e in PROVIDERS["sendgrid"].validate_config(config)]

    assert any(e.startswith(error) for e in errors), errors


def test_api_key_is_marked_secret():
    secret = {f.name for f in PROVIDERS["sendgrid"].config_schema if f.secret}

    assert secret == {"api_key"}
