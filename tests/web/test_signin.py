"""Sign-in with Moodle credentials: hashes, refused accounts, throttling without a lock-out
lever, proxies, audit, cookies."""

import pytest
from sqlalchemy import select

from common.migrate import upgrade
from common.models.access import AuditLog
from tests.factories.moodle import DEFAULT_PASSWORD
from tests.factories.sites import NOW
from tests.support import make_settings
from tests.web.conftest import csrf_token, sign_in
from web.app import create_app

REFUSED = "Invalid username or password."


def audit_rows(app, action="login"):
    with app.extensions["manireports"].appdb.transaction() as db:
        return list(db.scalars(select(AuditLog).where(AuditLog.action == action)))


def client_at(app, ip, **headers):
    """A browser at address `ip` (as the web server sees it)."""
    client = app.test_client()
    client.environ_base["REMOTE_ADDR"] = ip
    client.environ_base.update({f"HTTP_{k.upper().replace('-', '_')}": v
                                for k, v in headers.items()})  # fmt: skip
    return client


def refused(response) -> bool:
    if response.status_code == 401:
        assert REFUSED in response.get_data(as_text=True)
        return True
    assert response.status_code == 302
    return False


def test_sha512_crypt_password_signs_in_with_safe_cookies(app):
    client = app.test_client()
    response = sign_in(client, "ana")
    assert response.status_code == 302
    cookies = response.headers.getlist("Set-Cookie")
    session = next(c for c in cookies if c.startswith("session="))
    device = next(c for c in cookies if c.startswith("mr_device="))
    assert "HttpOnly" in session and "SameSite=Lax" in session
    assert "HttpOnly" in device and "Path=/login" in device
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
        ("ldap", "not cached", "auth plugin ldap is not allowed"),
        ("guest", DEFAULT_PASSWORD, "guest account"),
        ("' OR '1'='1", "' OR '1'='1", "unknown user"),
        ("admin'--", DEFAULT_PASSWORD, "unknown user"),
        ("<script>alert(1)</script>", "x", "unknown user"),
    ],
)
def test_refused_sign_ins_look_alike_and_are_audited(app, username, password, reason):
    client = app.test_client()
    response = sign_in(client, username, password)
    assert refused(response)
    assert "<script>alert(1)</script>" not in response.get_data(as_text=True)
    assert client.get("/dashboards/").status_code == 302  # still signed out
    [entry] = audit_rows(app)
    assert entry.outcome == "failed"
    assert reason in entry.details


def test_the_guest_account_is_refused_whatever_its_id(app, site):
    # `config.siteguest` names the guest, not id 1 or the name "guest".
    site.moodle.config("siteguest", str(site.users["cara"]))
    assert refused(sign_in(app.test_client(), "cara"))
    assert "guest account" in audit_rows(app)[-1].details
    assert not refused(sign_in(app.test_client(), "guest"))  # an ordinary account now


def test_only_allowed_auth_plugins_sign_in(app, site):
    site.moodle._update("user", site.users["ben"], auth="oauth2")  # a password hash, even
    assert refused(sign_in(app.test_client(), "ben"))
    assert "auth plugin oauth2 is not allowed" in audit_rows(app)[-1].details
    ctx = app.extensions["manireports"]
    ctx.settings = ctx.settings.with_overrides(login_auth_plugins=("manual", "oauth2"))
    assert not refused(sign_in(app.test_client(), "ben"))
    ctx.settings = ctx.settings.with_overrides(login_auth_plugins=("email",))
    assert refused(sign_in(app.test_client(), "ana"))  # manual is not in the list now


def test_deleted_flag_alone_refuses_sign_in(app, site):
    site.moodle._update("user", site.users["dan"], deleted=1)
    assert refused(sign_in(app.test_client(), "dan"))
    assert "deleted user" in audit_rows(app)[-1].details


def test_login_form_without_csrf_token_is_rejected(app):
    client = app.test_client()
    response = client.post("/login", data={"username": "ana", "password": DEFAULT_PASSWORD})
    assert response.status_code == 400
    assert client.get("/dashboards/").status_code == 302


def test_five_failures_lock_that_address_out_of_that_account_only(app):
    for _ in range(5):
        assert refused(sign_in(client_at(app, "10.0.0.1"), "ben", "wrong"))
    # That address is refused even the right password, with the same message ...
    assert refused(sign_in(client_at(app, "10.0.0.1"), "ben"))
    assert audit_rows(app)[-1].outcome == "denied"
    assert "throttled" in audit_rows(app)[-1].details
    # ... while the account from elsewhere, and other accounts from there, are unaffected.
    assert not refused(sign_in(client_at(app, "10.0.0.2"), "ben"))
    assert not refused(sign_in(client_at(app, "10.0.0.1"), "ana"))


def test_a_stranger_cannot_lock_the_owner_out_of_their_own_browser(app):
    owner = client_at(app, "192.0.2.7")
    assert not refused(sign_in(owner, "ben"))  # an earlier visit: the browser is now trusted
    owner.get("/dashboards/")
    # A stranger at the owner's own address, then from 25 more, guesses the password.
    for n in range(5):
        assert refused(sign_in(client_at(app, "192.0.2.7"), "ben", f"guess-{n}"))
    for n in range(25):
        sign_in(client_at(app, f"203.0.113.{n}"), "ben", f"guess-{n}")
    assert refused(sign_in(client_at(app, "192.0.2.7"), "ben"))  # untrusted there: locked
    assert not refused(sign_in(owner, "ben"))  # the owner's browser: never locked, never slowed


def test_a_device_cookie_counts_for_its_own_account_only_and_cannot_be_forged(app):
    browser = client_at(app, "192.0.2.8")
    assert not refused(sign_in(browser, "ana"))
    for _ in range(5):
        sign_in(client_at(app, "192.0.2.8"), "ben", "wrong")
    assert refused(sign_in(browser, "ben"))  # ana's device cookie does not vouch for ben
    forged = client_at(app, "192.0.2.8")
    forged.set_cookie("mr_device", browser.get_cookie("mr_device", path="/login").value + "x",
                      path="/login")  # fmt: skip
    for _ in range(5):
        sign_in(client_at(app, "192.0.2.8"), "ana", "wrong")
    assert refused(sign_in(forged, "ana"))
    assert not refused(sign_in(browser, "ana"))


def test_many_failures_on_one_account_slow_untrusted_clients_without_locking_them(app):
    for n in range(20):
        assert refused(sign_in(client_at(app, f"198.51.100.{n}"), "ana", "wrong"))
    # Past the account's ceiling, untrusted clients get one attempt a minute between them.
    assert refused(sign_in(client_at(app, "198.51.100.200"), "ana", "wrong"))
    assert refused(sign_in(client_at(app, "198.51.100.201"), "ana"))
    assert "account slowed" in audit_rows(app)[-1].details
    app.extensions["manireports"].clock = lambda: NOW + 61
    assert not refused(sign_in(client_at(app, "198.51.100.201"), "ana"))


def test_failures_from_one_address_are_throttled_across_accounts(app):
    for n in range(20):
        sign_in(client_at(app, "10.9.9.9"), f"guess{n}", "wrong")
    assert refused(sign_in(client_at(app, "10.9.9.9"), "ana"))
    assert not refused(sign_in(client_at(app, "10.9.9.10"), "ana"))


def test_every_refusal_says_the_same_and_every_attempt_is_audited(app):
    pages = set()
    for password in ["wrong"] * 6 + [DEFAULT_PASSWORD]:
        response = sign_in(client_at(app, "10.1.1.1"), "cara", password)
        assert refused(response)
        pages.add(response.get_data(as_text=True).split('name="csrf_token"')[0])
    pages.add(sign_in(client_at(app, "10.1.1.2"), "nobody", "x").get_data(as_text=True)
              .split('name="csrf_token"')[0])  # fmt: skip
    assert len(pages) == 1
    outcomes = [row.outcome for row in audit_rows(app)]
    assert outcomes == ["failed"] * 5 + ["denied"] * 2 + ["failed"]


def proxied_app(tmp_path, site, nats_server, proxies):
    settings = make_settings(tmp_path, MOODLE_DATABASE_URL=site.url, NATS_URL=nats_server.url,
                             TRUSTED_PROXIES=str(proxies))  # fmt: skip
    upgrade(settings.database_url)
    application = create_app(settings)
    application.extensions["manireports"].clock = lambda: NOW
    return application


def test_behind_a_trusted_proxy_each_client_is_throttled_by_its_own_address(
    tmp_path, site, nats_server
):
    app = proxied_app(tmp_path, site, nats_server, proxies=1)
    try:
        for n in range(20):
            sign_in(client_at(app, "10.0.0.254", X_Forwarded_For="203.0.113.5"), f"x{n}", "no")
        stuffer = client_at(app, "10.0.0.254", X_Forwarded_For="203.0.113.5")
        assert refused(sign_in(stuffer, "ana"))
        colleague = client_at(app, "10.0.0.254", X_Forwarded_For="203.0.113.6")
        assert not refused(sign_in(colleague, "ana"))  # same proxy, another client
        assert audit_rows(app)[-1].ip == "203.0.113.6"
    finally:
        app.extensions["manireports"].close()


def test_without_trusted_proxies_a_forged_forwarded_for_changes_nothing(
    tmp_path, site, nats_server
):
    app = proxied_app(tmp_path, site, nats_server, proxies=0)
    try:
        for n in range(20):
            sign_in(client_at(app, "10.0.0.9", X_Forwarded_For=f"198.18.0.{n}"), f"x{n}", "no")
        forged = client_at(app, "10.0.0.9", X_Forwarded_For="198.18.1.1")
        assert refused(sign_in(forged, "ana"))
        assert {row.ip for row in audit_rows(app)} == {"10.0.0.9"}
    finally:
        app.extensions["manireports"].close()


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
