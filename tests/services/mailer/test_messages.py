"""Rendering each recipient's message within the limits: one bad recipient fails alone."""

from __future__ import annotations

import json

from common.mail import failures
from services.mailer.messages import JobTemplates, render_messages

BOMB = "{{#l}}{{#l}}{{#l}}{{#l}}{{#l}}x{{/l}}{{/l}}{{/l}}{{/l}}{{/l}}"


def templates(**fields):  # type: ignore[no-untyped-def]
    base = {"job_id": 1, "company_id": 11, "job_type": "bulk", "subject": "Hi {{firstname}}",
            "html": f"<p>Hi {{{{firstname}}}}</p>{BOMB}", "text": None,
            "variables": {"course": "Fire Safety"}}  # fmt: skip
    return JobTemplates(**{**base, **fields})


def test_a_recipient_whose_message_breaks_a_limit_fails_with_a_fixed_reason():
    claimed = [
        (1, "ana@acme.example", json.dumps({"firstname": "Ana", "l": [1]})),
        (2, "bo@acme.example", json.dumps({"firstname": "Bo", "l": list(range(40))})),
        (3, "cy@acme.example", json.dumps({"firstname": "Cy"})),
    ]

    messages, failed = render_messages(templates(), claimed)

    assert [m.to for m in messages] == ["ana@acme.example", "cy@acme.example"]
    assert messages[0].html == "<p>Hi Ana</p>" + "x" and messages[0].subject == "Hi Ana"
    [refused] = failed
    assert refused.recipient_id == 2 and refused.status == "failed"
    assert refused.error.startswith(failures.TEMPLATE_PREFIX + "html: the rendered text is longer")


def test_recipient_data_that_is_not_json_fails_alone():
    claimed = [(1, "ana@acme.example", "{not json"), (2, "bo@acme.example", "{}")]

    messages, failed = render_messages(templates(html="<p>Hi</p>"), claimed)

    assert [m.recipient_id for m in messages] == [2]
    assert [(f.recipient_id, f.error) for f in failed] == [(1, failures.MESSAGE_NOT_BUILT)]
