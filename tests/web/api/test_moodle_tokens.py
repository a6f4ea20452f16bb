"""Moodle web-service tokens on the API: accepted as Moodle accepts them, read only, as their
user."""

from __future__ import annotations

import pytest
from sqlalchemy import select

from common.access.moodle_tokens import address_in_subnet
from tests.factories.sites import NOW
from tests.web.api.conftest import audit_rows, bearer

REPORT = "/api/v1/reports/course_completion"
TOKEN = "0123456789abcdef0123456789abcdef"  # 32 hex, as Moodle makes them


@pytest.fixture
def moodle_token(site):  # type: ignore[no-untyped-def]
    """moodle_token("mgr_a", **external_tokens columns) -> the token's row id; web services on."""
    site.moodle.enable_web_services()

    def make(username: str, **overrides) -> int:  # type: ignore[no-untyped-def]
        return site.moodle.external_token(site.users[username], **{"token": TOKEN, **overrides})

    return make


def refusals(app) -> str:  # type: ignore[no-untyped-def]
    return " | ".join(row.details or "" for row in audit_rows(app, "api_auth_failed"))


def assert_refused(app, response, reason: str) -> None:  # type: ignore[no-untyped-def]
    assert response.status_code == 401, response.get_json()
    assert response.is_json and response.get_json()["error"]
    assert 'error="invalid_token"' in response.headers["WWW-Authenticate"]
    assert reason in refusals(app)
    assert TOKEN not in refusals(app)


def test_a_moodle_token_reads_what_its_user_reads(app, moodle_token, token_for):
    moodle_token("mgr_a")
    client = app.test_client()
    via_moodle = client.get(f"{REPORT}?days=90", headers=bearer(TOKEN))
    via_own = client.get(f"{REPORT}?days=90", headers=bearer(token_for("mgr_a")))
    assert via_moodle.status_code == via_own.status_code == 200
    assert via_moodle.get_json() == via_own.get_json()
    assert via_moodle.get_json()["rows"]
    listed = client.get("/api/v1/reports", headers=bearer(TOKEN)).get_json()["reports"]
    assert "course_completion" in {r["name"] for r in listed}


def test_a_moodle_token_never_writes(app, site, moodle_token):
    moodle_token("mgr_a")  # a company manager: may create jobs in the UI
    client = app.test_client()
    job = {"type": "bulk", "subject": "Hi", "html": "<p>Hi</p>",
           "recipients": [{"email": "someone@acme.example"}]}  # fmt: skip
    for response in (client.post("/api/v1/email/jobs", json=job, headers=bearer(TOKEN)),
                     client.get("/api/v1/email/jobs/1", headers=bearer(TOKEN))):  # fmt: skip
        assert response.status_code == 403
        assert 'error="insufficient_scope"' in response.headers["WWW-Authenticate"]


def test_a_moodle_token_keeps_to_its_users_companies(app, site, moodle_token):
    row_id = moodle_token("mgr_a")
    response = app.test_client().get(
        f"{REPORT}?company={site.companies['B']}", headers=bearer(TOKEN)
    )
    assert response.status_code == 403
    denied = audit_rows(app, "access_denied")
    assert denied[-1].userid == site.users["mgr_a"] and f"moodle#{row_id}" in denied[-1].details
    assert TOKEN not in denied[-1].details


def test_moodle_is_only_read(app, site, moodle_token):
    row_id = moodle_token("mgr_a")
    assert app.test_client().get(REPORT, headers=bearer(TOKEN)).status_code == 200
    tokens = site.moodle.tables.external_tokens
    with site.moodle.engine.connect() as conn:
        lastaccess = conn.scalar(select(tokens.c.lastaccess).where(tokens.c.id == row_id))
    assert lastaccess is None


def test_expiry_follows_validuntil(app, moodle_token):
    moodle_token("mgr_a", validuntil=NOW + 86_400 * 10_000)  # far ahead of the wall clock
    assert app.test_client().get(REPORT, headers=bearer(TOKEN)).status_code == 200


def test_an_expired_token_is_refused(app, moodle_token):
    moodle_token("mgr_a", validuntil=1_000_000_000)  # 2001
    assert_refused(app, app.test_client().get(REPORT, headers=bearer(TOKEN)), "expired")


@pytest.mark.parametrize(
    ("restriction", "address", "allowed"),
    [
        ("127.0.0.1", "127.0.0.1", True),
        ("10.0.0.0/8, 127.0.0.0/8", "127.0.0.1", True),
        ("10.1.2.3", "127.0.0.1", False),
        ("10.0.0.0/8", "10.200.3.4", True),
        ("192.168.1.10-20", "192.168.1.15", True),
        ("192.168.1.10-20", "192.168.1.21", False),
        ("localhost", "127.0.0.1", False),  # not a form Moodle reads: refused
    ],
)
def test_ip_restrictions(app, moodle_token, restriction, address, allowed):
    moodle_token("mgr_a", iprestriction=restriction)
    client = app.test_client()
    response = client.get(REPORT, headers=bearer(TOKEN), environ_base={"REMOTE_ADDR": address})
    if allowed:
        assert response.status_code == 200
    else:
        assert_refused(app, response, f"address {address} not in its iprestriction")


def test_a_disabled_service_refuses_its_tokens(app, site, moodle_token):
    moodle_token("mgr_a", externalserviceid=site.moodle.external_service(enabled=0))
    assert_refused(app, app.test_client().get(REPORT, headers=bearer(TOKEN)), "disabled")


def test_web_services_off_on_the_site_refuse_every_token(app, site, moodle_token):
    moodle_token("mgr_a")
    site.moodle.enable_web_services(False)
    response = app.test_client().get(REPORT, headers=bearer(TOKEN))
    assert_refused(app, response, "web services are disabled on the Moodle site")


def test_a_restricted_service_needs_the_user_listed(app, site, moodle_token):
    service = site.moodle.external_service(restrictedusers=1)
    moodle_token("mgr_a", externalserviceid=service)
    client = app.test_client()
    assert_refused(app, client.get(REPORT, headers=bearer(TOKEN)), "restricted service")
    site.moodle.external_service_user(service, site.users["mgr_a"])
    assert client.get(REPORT, headers=bearer(TOKEN)).status_code == 200


@pytest.mark.parametrize("listing", [{"validuntil": 1_000_000_000}, {"iprestriction": "10.9.9.9"}])
def test_a_restricted_services_own_expiry_and_addresses_apply(app, site, moodle_token, listing):
    service = site.moodle.external_service(restrictedusers=1)
    site.moodle.external_service_user(service, site.users["mgr_a"], **listing)
    moodle_token("mgr_a", externalserviceid=service)
    response = app.test_client().get(REPORT, headers=bearer(TOKEN))
    assert_refused(app, response, "restricted service")


@pytest.mark.parametrize(
    ("username", "reason"),
    [("suspended", "the user is suspended"), ("nologin", "the user may not sign in")],
)
def test_users_who_may_not_sign_in_are_refused(app, moodle_token, username, reason):
    moodle_token(username)
    assert_refused(app, app.test_client().get(REPORT, headers=bearer(TOKEN)), reason)


def test_a_token_whose_user_is_suspended_later_stops_working(app, site, moodle_token):
    moodle_token("mgr_a")
    client = app.test_client()
    assert client.get(REPORT, headers=bearer(TOKEN)).status_code == 200
    user = site.moodle.tables.user
    with site.moodle.engine.begin() as conn:
        conn.execute(user.update().where(user.c.id == site.users["mgr_a"]).values(suspended=1))
    assert_refused(app, client.get(REPORT, headers=bearer(TOKEN)), "the user is suspended")


def test_a_deleted_users_token_is_refused(app, site, moodle_token):
    moodle_token("mgr_a")
    site.moodle.delete_user(site.users["mgr_a"])
    assert_refused(app, app.test_client().get(REPORT, headers=bearer(TOKEN)), "deleted")


@pytest.mark.parametrize(
    ("case", "overrides", "presented"),
    [
        ("session token", {"tokentype": 1}, TOKEN),  # EXTERNAL_TOKEN_EMBEDDED
        ("changed case", {}, TOKEN.upper()),
        ("longer", {}, TOKEN + "0"),
        ("unknown", {}, "f" * 32),
    ],
)
def test_only_the_exact_permanent_token_is_accepted(app, moodle_token, case, overrides, presented):
    moodle_token("mgr_a", **overrides)
    response = app.test_client().get(REPORT, headers=bearer(presented))
    assert_refused(app, response, "unknown Moodle token")


def test_a_browser_session_bound_token_is_refused(app, moodle_token):
    moodle_token("mgr_a", sid="abc123")
    response = app.test_client().get(REPORT, headers=bearer(TOKEN))
    assert_refused(app, response, "bound to a Moodle browser session")


@pytest.mark.parametrize("header", ["Bearer abc-def", "Bearer " + "a" * 129, "Token " + TOKEN])
def test_malformed_headers_are_401_and_audited(app, moodle_token, header):
    moodle_token("mgr_a")
    response = app.test_client().get(REPORT, headers={"Authorization": header})
    assert response.status_code == 401
    assert response.headers["WWW-Authenticate"].startswith('Bearer realm="ManiReports"')
    assert 'error="invalid_token"' in response.headers["WWW-Authenticate"]
    assert len(audit_rows(app, "api_auth_failed")) == 1


@pytest.mark.parametrize("name", ["wstoken", "access_token"])
def test_a_token_in_the_url_is_refused_and_not_logged(app, moodle_token, name):
    moodle_token("mgr_a")
    client = app.test_client()
    for headers in ({}, bearer(TOKEN)):  # even beside a valid header: the URL has leaked it
        response = client.get(f"{REPORT}?{name}={TOKEN}", headers=headers)
        assert response.status_code == 400
        assert response.get_json()["field"] == name
        assert 'error="invalid_request"' in response.headers["WWW-Authenticate"]
    rows = audit_rows(app, "api_auth_failed")
    assert len(rows) == 2
    assert all(TOKEN not in (r.details or "") + (r.object_id or "") for r in rows)


@pytest.mark.parametrize(
    ("address", "restriction", "expected"),
    [
        ("10.1.2.3", "10.1.2.3", True),
        ("10.1.2.3", " 10.9.9.9 , 10.1.2.3 ", True),
        ("10.1.2.3", "10.1.0.0/16", True),
        ("10.2.2.3", "10.1.0.0/16", False),
        ("10.1.2.3", "10.1", True),
        ("10.1.2.3", "10.1.", True),
        ("10.11.2.3", "10.1", False),
        ("10.1.2.3", "10.1.2.1-3", True),
        ("10.1.2.4", "10.1.2.1-3", False),
        ("10.1.3.2", "10.1.2.1-3", False),
        ("2001:db8::5", "2001:db8::/32", True),
        ("2001:db9::5", "2001:db8::/32", False),
        ("2001:db8::5", "2001:db8::5", True),
        ("::ffff:10.1.2.3", "10.1.0.0/16", True),
        ("10.1.2.3", "10.1.0.0/99, example.com, 10.1.2.x, ", False),
        ("10.1.2.3", "", False),
        (None, "10.1.2.3", False),
        ("not an ip", "10.1.2.3", False),
    ],
)
def test_address_in_subnet_reads_moodles_forms(address, restriction, expected):
    assert address_in_subnet(address, restriction) is expected
