"""The job form's pasted recipient list: every bad line named, nothing half-read."""

from __future__ import annotations

import pytest

from common.errors import FieldError
from common.mail.recipients import MAX_LINE_ERRORS, RecipientSpec, parse_recipient_lines


def test_addresses_with_optional_names_blank_lines_skipped():
    raw = "ana@acme.example, Ana, Learner\n\n  bo@acme.example  \ncy@acme.example,Cy\n"

    assert parse_recipient_lines(raw) == [
        RecipientSpec("ana@acme.example", {"firstname": "Ana", "lastname": "Learner"}),
        RecipientSpec("bo@acme.example", {}),
        RecipientSpec("cy@acme.example", {"firstname": "Cy"}),
    ]


def test_every_bad_line_is_reported_with_its_number():
    raw = "ana@acme.example\nnot an address,Bo\nok@acme.example\nx@y\n,Dee\nzoë@acme.example"

    with pytest.raises(FieldError) as raised:
        parse_recipient_lines(raw)

    reasons = [(e.field, e.reason.split(" ")[:2]) for e in raised.value.errors]
    assert reasons == [("recipients", ["line", "2"]), ("recipients", ["line", "4"]),
                       ("recipients", ["line", "5"]), ("recipients", ["line", "6"])]  # fmt: skip
    assert "invalid domain" in raised.value.errors[1].reason
    assert "non-ASCII" in raised.value.errors[3].reason


def test_a_very_long_bad_list_is_summed_up():
    with pytest.raises(FieldError) as raised:
        parse_recipient_lines("\n".join(f"bad{i}" for i in range(500)))

    assert len(raised.value.errors) == MAX_LINE_ERRORS + 1
    assert raised.value.errors[-1].reason == "400 more lines like these"


def test_an_empty_list_and_too_many_are_refused():
    with pytest.raises(FieldError, match="required"):
        parse_recipient_lines(" \n\n")
    with pytest.raises(FieldError, match="at most 2"):
        parse_recipient_lines("a@acme.example\nb@acme.example\nc@acme.example", limit=2)
