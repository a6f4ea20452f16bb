"""common.access.api_tokens on the app DB itself: SQLite, and MariaDB when configured (whose
default collation compares the stored hash case-insensitively)."""

from __future__ import annotations

from datetime import timedelta

import pytest

from common.access.api_tokens import (
    authenticate,
    check,
    hash_token,
    issue,
    revoke,
)
from common.appdb import AppDB
from common.errors import FieldError
from common.models.base import utcnow


@pytest.fixture
def appdb(app_db_url):  # type: ignore[no-untyped-def]
    db = AppDB(app_db_url)
    yield db
    db.dispose()


def test_issue_authenticate_revoke_round_trip(appdb):
    with appdb.transaction() as session:
        token, row = issue(session, 7, "BI", ["reports:read"], 3, None, created_by=2)
        token_id = row.id
    assert token.startswith("mrt_") and len(token) == 47
    with appdb.transaction() as session:
        found = authenticate(session, token)
        assert found is not None and (found.id, found.userid, found.companyid) == (token_id, 7, 3)
        assert found.token_hash == hash_token(token) and found.last_used_at is not None
        assert authenticate(session, token.swapcase()) is None
        assert authenticate(session, token[:-1] + ("A" if token[-1] != "A" else "B")) is None
        assert revoke(session, found, actor_id=2) is True
        assert revoke(session, found, actor_id=2) is False
    with appdb.transaction() as session:
        assert check(session, token).refusal == f"revoked token {token[:8]}"


def test_expired_tokens_are_refused_and_last_use_is_written_coarsely(appdb):
    with appdb.transaction() as session:
        token, row = issue(session, 7, "BI", ["email:write"], None,
                           utcnow() + timedelta(hours=1))  # fmt: skip
    now = utcnow()
    with appdb.transaction() as session:
        first = authenticate(session, token, now).last_used_at
    with appdb.transaction() as session:
        again = authenticate(session, token, now + timedelta(seconds=5)).last_used_at
        assert again == first  # within a minute: no write
        assert check(session, token, now + timedelta(hours=2)).refusal.startswith("expired")


@pytest.mark.parametrize(
    ("args", "field"),
    [
        (("", ["reports:read"]), "name"),
        (("BI", []), "scopes"),
        (("BI", ["reports:write"]), "scopes"),
    ],
)
def test_issue_refuses_bad_requests(appdb, args, field):
    with appdb.transaction() as session, pytest.raises(FieldError) as error:
        issue(session, 7, *args, None, None)
    assert error.value.field == field
