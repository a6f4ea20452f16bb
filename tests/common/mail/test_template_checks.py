"""Template checks: previews and new jobs refuse templates that break a rendering limit."""

from __future__ import annotations

import time

import pytest

from common.errors import FieldError
from common.mail.jobs import create_job
from common.mail.recipients import RecipientSpec
from common.mail.template_checks import (
    TemplateFields,
    job_template_problems,
    render_parts,
    render_preview,
)

BOMB = "{{#l}}{{#l}}{{#l}}{{#l}}{{#l}}x{{/l}}{{/l}}{{/l}}{{/l}}{{/l}}"
FORTY = {"l": list(range(40))}


def test_a_preview_bomb_is_refused_fast_naming_the_part():
    started = time.monotonic()

    with pytest.raises(FieldError) as raised:
        render_preview(TemplateFields("Hello", f"<p>{BOMB}</p>"), FORTY)

    assert raised.value.field == "html" and "longer than 262,144" in raised.value.reason
    assert time.monotonic() - started < 2


def test_a_preview_refuses_sections_nested_too_deep():
    with pytest.raises(FieldError) as raised:
        render_preview(TemplateFields("{{#a}}" * 6 + "{{/a}}" * 6, "<p>ok</p>"), {})

    assert raised.value.field == "subject" and "nested more than 5" in raised.value.reason


def test_a_message_shares_one_budget_between_its_parts():
    fields = TemplateFields("{{s}}", "{{h}}", "{{t}}")

    parts = render_parts(fields, {"s": "s" * 10, "h": "h" * 10, "t": "t" * 10}, max_chars=30)
    assert (parts.subject, parts.html, parts.text) == ("s" * 10, "h" * 10, "t" * 10)
    with pytest.raises(FieldError) as raised:
        render_parts(fields, {"s": "s" * 10, "h": "h" * 10, "t": "t" * 11}, max_chars=30)
    assert raised.value.field == "text"


def test_a_job_is_tried_with_its_shared_variables_and_first_recipient():
    shared = {"l": list(range(40))}

    problems = job_template_problems("Hi", BOMB, None, shared)

    assert [(p.field, "longer than" in p.reason) for p in problems] == [("html", True)]
    assert job_template_problems("Hi", BOMB, None, {"l": [1]}) == []


def test_creating_a_bomb_job_is_refused_and_writes_nothing(appdb):
    recipients = [RecipientSpec("ana@acme.example", {"l": list(range(40))})]
    with pytest.raises(FieldError) as raised, appdb.transaction() as session:
        create_job(session, company_id=11, job_type="bulk", recipients=recipients,
                   source="api", subject="Hi", html=BOMB)  # fmt: skip

    assert raised.value.field == "html"
