"""Client details that need no server: Retry-After as seconds or an HTTP date, PHP bracket
notation for Moodle, and passwords nobody is sent."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from email.utils import format_datetime

from common.hrsync.bamboohr import _retry_after
from common.hrsync.moodlews import encode, random_password


def test_retry_after_in_seconds_or_as_an_http_date():
    assert _retry_after("7") == 7.0
    assert _retry_after(None) is None and _retry_after(" ") is None
    assert _retry_after("soon") is None
    later = format_datetime(datetime.now(UTC) + timedelta(seconds=30), usegmt=True)
    assert 25 <= _retry_after(later) <= 30
    past = format_datetime(datetime.now(UTC) - timedelta(minutes=5), usegmt=True)
    assert _retry_after(past) == 0.0


def test_bracket_notation():
    params = {"users": [{"id": 12, "suspended": True, "customfields": [{"type": "team",
                                                                       "value": "R&D"}]}],
              "field": "email", "values": ["a@x.org", "b@x.org"]}  # fmt: skip
    assert encode(params) == [
        ("users[0][id]", "12"),
        ("users[0][suspended]", "1"),
        ("users[0][customfields][0][type]", "team"),
        ("users[0][customfields][0][value]", "R&D"),
        ("field", "email"),
        ("values[0]", "a@x.org"),
        ("values[1]", "b@x.org"),
    ]


def test_random_passwords_meet_a_strict_policy_and_differ():
    passwords = {random_password() for _ in range(50)}
    assert len(passwords) == 50
    for password in passwords:
        assert len(password) == 32
        assert any(c.islower() for c in password) and any(c.isupper() for c in password)
        assert any(c.isdigit() for c in password) and any(not c.isalnum() for c in password)
