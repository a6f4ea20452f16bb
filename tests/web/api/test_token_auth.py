"""Bearer-token authentication: every refusal is a JSON 401 with a challenge, or a 403."""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import select

from common.access.api_tokens import SCOPE_EMAIL_WRITE, SCOPE_REPORTS_READ, hash_token
from common.models.api import ApiToken
from common.models.base import utcnow
from common.models.mail import CloudJob
from tests.web.api.conftest import audit_rows, bearer

REPORT = "/api/v1/reports/course_completion"


def set_token(app, token: str, **values) -> None:  # type: ignore[no-untyped-def]
    with app.extensions["manireports"].appdb.transaction() as session:
        row = session.scalar(select(ApiToken).where(ApiToken.token_hash == hash_token(token)))
        for key, value in values.items():
            setattr(row, key, value)


def test_missing_token_is_401_with_a_bare_bearer_challenge(app):
    response = app.test_client().get(REPORT)
    assert response.status_code == 401
    assert response.headers["WWW-Authenticate"] == 'Bearer realm="ManiReports"'
    assert "Authorization: Bearer" in response.get_json()["error"]
    assert audit_rows(app, "api_auth_failed") == []  # no attempt, nothing to audit


BAD_HEADERS = {
    "basic": "Basic YWRtaW46cGFzcw==",
    "empty": "Bearer",
    "malformed": "Bearer not-a-token",
    "wrong": "Bearer mrt_" + "A" * 43,  # well formed, never issued
}


def test_bad_tokens_are_401_invalid_token_and_audited(app):
    client = app.test_client()
    for case, header in BAD_HEADERS.items():
        response = client.get(REPORT, headers={"Authorization": header})
        assert response.status_code == 401, case
        assert response.is_json and response.get_json()["error"], case
        assert 'error="invalid_token"' in response.headers["WWW-Authenticate"], case
    assert len(audit_rows(app, "api_auth_failed")) == len(BAD_HEADERS)


def test_revoked_and_expired_tokens_are_401(app, token_for):
    revoked, expired = token_for("admin"), token_for("admin")
    set_token(app, revoked, revoked_at=utcnow())
    set_token(app, expired, expires_at=utcnow() - timedelta(seconds=1))
    client = app.test_client()
    for token in (revoked, expired):
        assert client.get(REPORT, headers=bearer(token)).status_code == 401
    reasons = " ".join(row.details for row in audit_rows(app, "api_auth_failed"))
    assert "revoked token mrt_" in reasons and "expired token mrt_" in reasons
    assert revoked not in reasons and expired not in reasons


def test_a_token_changed_in_case_is_refused(app, token_for):
    token = token_for("admin")
    assert app.test_client().get(REPORT, headers=bearer(token.swapcase())).status_code == 401


def test_a_suspended_users_token_stops_working(app, site, token_for):
    token = token_for("mgr_a")
    client = app.test_client()
    assert client.get(REPORT, headers=bearer(token)).status_code == 200
    user = site.moodle.tables.user
    with site.moodle.engine.begin() as conn:  # suspended in Moodle after the token was issued
        conn.execute(user.update().where(user.c.id == site.users["mgr_a"]).values(suspended=1))
    assert client.get(REPORT, headers=bearer(token)).status_code == 401


def test_valid_token_records_its_last_use(app, token_for):
    token = token_for("admin")
    assert app.test_client().get(REPORT, headers=bearer(token)).status_code == 200
    with app.extensions["manireports"].appdb.transaction() as session:
        row = session.scalar(select(ApiToken).where(ApiToken.token_hash == hash_token(token)))
    assert row.last_used_at is not None


def test_missing_scope_is_403_insufficient_scope_and_audited(app, site, token_for):
    token = token_for("mgr_a", scopes=(SCOPE_EMAIL_WRITE,))
    response = app.test_client().get(REPORT, headers=bearer(token))
    assert response.status_code == 403
    assert 'error="insufficient_scope"' in response.headers["WWW-Authenticate"]
    assert "reports:read" in response.get_json()["error"]
    denied = audit_rows(app, "access_denied")
    assert denied and denied[-1].userid == site.users["mgr_a"]


def test_missing_capability_is_403(app, token_for):
    client = app.test_client()
    student = token_for("ana")  # a learner: no report, no email capability
    assert client.get(REPORT, headers=bearer(student)).status_code == 403
    job = {"type": "bulk", "recipients": [{"email": "x@school.example"}]}
    reporter = token_for("rep_b", scopes=(SCOPE_REPORTS_READ, SCOPE_EMAIL_WRITE))
    response = client.post("/api/v1/email/jobs", json=job, headers=bearer(reporter))
    assert response.status_code == 403 and "manageemailoffload" in response.get_json()["error"]


def test_a_signed_in_browser_session_is_no_credential(app, client_as):
    """The API is exempt from CSRF because cookies never authenticate it."""
    browser = client_as("admin")
    job = {"type": "bulk", "company": 1, "recipients": [{"email": "x@school.example"}]}
    assert browser.post("/api/v1/email/jobs", json=job).status_code == 401
    assert browser.get(REPORT).status_code == 401
    with app.extensions["manireports"].appdb.transaction() as session:
        assert session.scalars(select(CloudJob)).first() is None
