"""Sign-in with Moodle credentials: hashes, refused accounts, throttling, audit, cookies."""

import pytest
from sqlalchemy import select

from common.models.access import AuditLog
from tests.factories.moodle import DEFAULT_PASSWORD
from tests.web.conftest import csrf_token, sign_in


def audit_rows(app, action="login"):
    with app.extensions["manireports"].appdb.transaction() as db:
        return list(db.scalars(select(AuditLog).where(AuditLog.action == action)))


def test_sha512_crypt_password_signs_in_with_a_safe_cookie(app):
    client = app.test_client()
    response = sign_in(client, "ana")
    assert response.status_code == 302
    cookie = response.headers["Set-Cookie"]
    assert "HttpOnly" in cookie and "SameSite=Lax" in cookie
    assert client.get("/dashboards/").status_code == 200
    [entry] = audit_rows(app)
    assert entry.outcome == "success" and entry.object_id == "ana"


def test_legacy_bcrypt_password_signs_in(app):
    assert sign_in(app.test_client(), "legacy").status_code == 302


def test_username_is_case_insensitive_like_moodle(app):
    assert sign_in(app.test_client(), "  ANA ").status_code == 302


@pytest.mark.parametrize(
    ("username", "password", "reason"),
    [
        ("ana", "wrong-password", "wrong password"),
        ("nobody", DEFAULT_PASSWORD, "unknown user"),
        ("suspended", DEFAULT_PASSWORD, "suspended user"),
        ("gone", DEFAULT_PASSWORD, "unknown user"),  # deletion rewrote the username
        ("nologin", DEFAULT_PASSWORD, "nologin account"),
        ("ldap", "not cached", "external authentication"),
        ("' OR '1'='1", "' OR '1'='1", "unknown user"),
        ("admin'--", DEFAULT_PASSWORD, "unknown user"),
        ("<script>alert(1)</script>", "x", "unknown user"),
    ],
)
def test_refused_sign_ins_look_alike_and_are_audited(app, username, password, reason):
    client = app.test_client()
    response = sign_in(client, username, password)
    assert response.status_code == 401
    page = response.get_data(as_text=True)
    assert "Invalid username or password." in page
    assert "<script>alert(1)</script>" not in page
    assert client.get("/dashboards/").status_code == 302  # still signed out
    [entry] = audit_rows(app)
    assert entry.outcome == "failed"
    assert reason in entry.details


def test_deleted_flag_alone_refuses_sign_in(app, site):
    site.moodle._update("user", site.users["dan"], deleted=1)
    assert sign_in(app.test_client(), "dan").status_code == 401
    assert "deleted user" in audit_rows(app)[-1].details


def test_login_form_without_csrf_token_is_rejected(app):
    client = app.test_client()
    response = client.post("/login", data={"username": "ana", "password": DEFAULT_PASSWORD})
    assert response.status_code == 400
    assert client.get("/dashboards/").status_code == 302


def test_repeated_failures_lock_the_account_even_for_the_right_password(app):
    for _ in range(5):
        assert sign_in(app.test_client(), "ben", "wrong").status_code == 401
    response = sign_in(app.test_client(), "ben")
    assert response.status_code == 401
    assert "Too many failed sign-in attempts" in response.get_data(as_text=True)
    assert audit_rows(app)[-1].outcome == "denied"
    # Other accounts from other places are unaffected.
    assert sign_in(app.test_client(), "ana").status_code == 302


def test_failures_from_one_address_are_throttled_across_accounts(app):
    for n in range(20):
        sign_in(app.test_client(), f"guess{n}", "wrong")
    assert sign_in(app.test_client(), "ana").status_code == 401


def test_logout_needs_a_post_with_csrf(client_as):
    client = client_as("ana")
    assert client.get("/logout").status_code == 405
    assert client.post("/logout").status_code == 400
    token = csrf_token(client, "/dashboards/")
    assert client.post("/logout", data={"csrf_token": token}).status_code == 302
    assert client.get("/dashboards/").status_code == 302


def test_sign_in_never_redirects_off_site(app):
    client = app.test_client()
    token = csrf_token(client)
    response = client.post("/login?next=//evil.example/x",
                           data={"username": "ana", "password": DEFAULT_PASSWORD,
                                 "csrf_token": token})  # fmt: skip
    assert response.headers["Location"] == "/"


def test_a_user_suspended_after_signing_in_loses_access(site, client_as):
    client = client_as("ana")
    site.moodle._update("user", site.users["ana"], suspended=1)
    assert client.get("/dashboards/").status_code == 302
