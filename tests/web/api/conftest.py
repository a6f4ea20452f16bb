"""API tests: tokens issued straight into the app DB, and bearer-authenticated requests."""

from __future__ import annotations

from datetime import datetime

import pytest
from sqlalchemy import select

from common.access.api_tokens import SCOPES, issue
from common.models.access import AuditLog

ALL_SCOPES = tuple(SCOPES)


@pytest.fixture
def token_for(app, site):  # type: ignore[no-untyped-def]
    """token_for("mgr_a", scopes=..., company="A") -> the token, as its user would copy it."""

    def make(username: str, scopes=ALL_SCOPES, company: str | None = None,
             expires_at: datetime | None = None) -> str:  # fmt: skip
        with app.extensions["manireports"].appdb.transaction() as session:
            plaintext, _ = issue(
                session, site.users[username], f"{username} test token", scopes,
                site.companies[company] if company else None, expires_at,
            )  # fmt: skip
        return plaintext

    return make


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def audit_rows(app, action: str) -> list[AuditLog]:  # type: ignore[no-untyped-def]
    with app.extensions["manireports"].appdb.transaction() as session:
        return list(session.scalars(select(AuditLog).where(AuditLog.action == action)))
