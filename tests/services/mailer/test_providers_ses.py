"""The SES provider with boto3 against moto's SES in its HTTP mode."""

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


def ses_provider(moto_ses, **overrides):
    return get_provider("ses", moto_ses.provider_config(**overrides), moto_ses.site)


def assert_delivered_once(moto_ses, messages):
    delivered = moto_ses.delivered()
    for message in messages:
        [received] = delivered[message.to]
        assert received.subject == message.subject
        assert received.html.strip() == message.html
        assert (received.text or "").strip() == (message.text or "")


def test_bulk_send_delivers_each_recipient_its_own_content_once(moto_ses, make_messages):
    messages = make_messages(120)

    outcomes = send(ses_provider(moto_ses), messages)

    assert [o.status for o in outcomes] == ["sent"] * 120
    assert all(o.provider_message_id for o in outcomes)
    assert moto_ses.bulk_call_sizes() == [50, 50, 20]
    assert_delivered_once(moto_ses, messages)
    assert "Dear Zoë &amp; &lt;Co&gt; 3," in moto_ses.delivered()["learner3@acme.example"][0].html


def test_messages_without_text_use_a_template_without_text_part(moto_ses, make_messages):
    messages = make_messages(3, with_text=False)

    outcomes = send(ses_provider(moto_ses), messages)

    assert [o.status for o in outcomes] == ["sent"] * 3
    assert all(d[0].text is None for d in moto_ses.delivered().values())


def test_headers_and_attachments_go_as_raw_mime(moto_ses, make_messages):
    report = Attachment("report.csv", b"name,score\nada,10\n", "text/csv")
    plain, with_extras = make_messages(2)
    with_extras = replace(
        with_extras, headers={"List-Unsubscribe": "<https://lms.example/u/2>"}, attachments=[report]
    )

    outcomes = send(ses_provider(moto_ses), [plain, with_extras])

    assert [o.status for o in outcomes] == ["sent", "sent"]
    assert moto_ses.bulk_call_sizes() == [1]
    [received] = moto_ses.delivered()[with_extras.to]
    assert received.headers["List-Unsubscribe"] == "<https://lms.example/u/2>"
    assert received.attachments == {"report.csv": "name,score\nada,10\n"}
    assert received.html.strip() == with_extras.html


def test_throttling_raises_provider_throttled_and_sends_nothing(moto_ses, make_messages):
    moto_ses.fail_next(code="Throttling", message="Maximum sending rate exceeded.")

    with pytest.raises(ProviderThrottled, match=failures.RATE_LIMITED) as raised:
        send(ses_provider(moto_ses), make_messages(5))

    assert "Maximum sending rate" in raised.value.detail  # SES's words: for the log only
    assert moto_ses.delivered() == {}


def test_server_error_is_transient(moto_ses, make_messages):
    moto_ses.fail_next(status=503, code="ServiceUnavailable", message="Service is unavailable")

    with pytest.raises(TransientSendError):
        send(ses_provider(moto_ses), make_messages(5))


def test_rejected_recipients_fail_alone_and_the_rest_is_sent_once(moto_ses, make_messages):
    messages = make_messages(50)
    moto_ses.reject_recipient(messages[7].to)
    moto_ses.reject_recipient(messages[31].to)

    outcomes = send(ses_provider(moto_ses), messages)

    failed = [o.recipient_id for o in outcomes if o.status == "failed"]
    assert failed == [messages[7].recipient_id, messages[31].recipient_id]
    assert outcomes[7].error == failures.RECIPIENT_REFUSED
    assert "MessageRejected" in outcomes[7].detail
    sent = [m for m in messages if m not in (messages[7], messages[31])]
    assert_delivered_once(moto_ses, sent)
    assert set(moto_ses.delivered()) == {m.to for m in sent}


@pytest.mark.parametrize(
    ("status", "error"),
    [("AccountThrottled", failures.RATE_LIMITED),
     ("AccountDailyQuotaExceeded", failures.RATE_LIMITED),
     ("TransientFailure", failures.TEMPORARY),
     ("AccountSendingPaused", failures.TEMPORARY)],
)  # fmt: skip
def test_a_per_destination_account_status_retries_each_recipient(
    moto_ses, make_messages, status, error
):  # type: ignore[no-untyped-def]
    """A bulk call SES accepted but answered per destination with an account's state: not the
    recipients' fault, so each is retried (no Retry-After: SES gives none here)."""
    messages = make_messages(3)
    moto_ses.answer_each_destination(status, "Sending paused for this account.")

    outcomes = send(ses_provider(moto_ses), messages)

    assert [(o.recipient_id, o.status, o.error) for o in outcomes] == [
        (m.recipient_id, "retry", error) for m in messages
    ]
    assert all(o.retry_after_s is None for o in outcomes)
    assert outcomes[0].detail == f"SES {status}: Sending paused for this account."
    assert moto_ses.delivered() == {}


def test_malformed_address_fails_without_a_call(moto_ses, make_messages):
    first, second = make_messages(2)
    second = replace(second, to="learner2@")

    outcomes = send(ses_provider(moto_ses), [first, second])

    assert [o.status for o in outcomes] == ["sent", "failed"]
    assert moto_ses.bulk_call_sizes() == [1]


def test_unverified_sender_is_a_permanent_error_for_the_batch(moto_ses, make_messages):
    config = moto_ses.provider_config(from_email="other@elsewhere.example")
    provider = get_provider("ses", config, moto_ses.site)

    with pytest.raises(PermanentSendError, match=failures.SENDER_REFUSED) as raised:
        send(provider, make_messages(3))

    assert "not verified" in raised.value.detail


def test_v2_sends_each_message_and_fails_only_refused_recipients(moto_ses, make_messages):
    messages = make_messages(4)
    moto_ses.reject_recipient(messages[2].to)

    outcomes = send(ses_provider(moto_ses, api="v2"), messages)

    assert [o.status for o in outcomes] == ["sent", "sent", "failed", "sent"]
    assert moto_ses.bulk_call_sizes() == []
    assert_delivered_once(moto_ses, [messages[0], messages[1], messages[3]])


def test_v2_too_many_requests_raises_provider_throttled(moto_ses, make_messages):
    moto_ses.fail_next(status=429, code="TooManyRequestsException", message="Too Many Requests")

    with pytest.raises(ProviderThrottled):
        send(ses_provider(moto_ses, api="v2"), make_messages(2))


@pytest.mark.parametrize(
    ("config", "error"),
    [
        ({"from_email": "a@b.example"}, "region: required"),
        ({"region": "eu-west-1"}, "from_email: required"),
        ({"region": "eu-west-1", "from_email": "a@b.example", "api": "v3"}, "api: must be one of"),
        (
            {"region": "eu-west-1", "from_email": "a@b.example", "access_key_id": "AKIA"},
            "secret_access_key:",
        ),
        (
            {"region": "eu-west-1", "from_email": "a@b.example", "endpoint_url": "http://x"},
            "endpoint_url: unknown setting",  # where requests go is the site's choice
        ),
        ({"region": "attacker.example/", "from_email": "a@b.example"}, "region: an AWS region"),
    ],
)
def test_bad_config_is_reported_by_field(config, error):
    errors = [str(e) for e in PROVIDERS["ses"].validate_config(config)]

    assert any(e.startswith(error) for e in errors), errors


def test_without_a_site_override_requests_go_to_aws_in_the_region():
    config = {"region": "eu-west-1", "from_email": "a@b.example"}

    provider = get_provider("ses", config)

    assert provider._client.meta.endpoint_url == "https://email.eu-west-1.amazonaws.com"
