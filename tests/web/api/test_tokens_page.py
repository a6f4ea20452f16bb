"""The API tokens page: a token is shown once and only its hash is kept; who may issue and
revoke which tokens; every change audited."""

from __future__ import annotations

import re

from sqlalchemy import select

from common.access.api_tokens import hash_token
from common.models.access import AuditLog
from common.models.api import ApiToken
from tests.web.api.conftest import audit_rows, bearer
from tests.web.conftest import csrf_token

PAGE = "/admin/api-tokens/"
REPORT = "/api/v1/reports/course_completion"


def create(client, **fields):  # type: ignore[no-untyped-def]
    form = {"csrf_token": csrf_token(client, PAGE), "name": "Power BI refresh",
            "scopes": ["reports:read"], **fields}  # fmt: skip
    return client.post(PAGE, data=form)


def shown_token(response) -> str:  # type: ignore[no-untyped-def]
    match = re.search(r'data-testid="api-token">(mrt_[\w-]+)<', response.get_data(as_text=True))
    assert match, "the new token is not on the page"
    return match.group(1)


def tokens(app) -> list[ApiToken]:  # type: ignore[no-untyped-def]
    with app.extensions["manireports"].appdb.transaction() as session:
        return list(session.scalars(select(ApiToken)))


def test_token_is_shown_once_and_only_its_hash_is_stored(app, site, client_as):
    client = client_as("mgr_a")
    response = create(client)
    assert response.status_code == 201 and response.headers["Cache-Control"] == "no-store"
    token = shown_token(response)
    [row] = tokens(app)
    assert row.token_hash == hash_token(token) and row.prefix == token[:8]
    assert token not in " ".join(str(v) for v in vars(row).values())
    with app.extensions["manireports"].appdb.transaction() as session:
        details = " ".join(e.details or "" for e in session.scalars(select(AuditLog)))
    assert token not in details
    listing = client.get(PAGE).get_data(as_text=True)
    assert token not in listing and f"{token[:8]}…" in listing
    assert app.test_client().get(REPORT, headers=bearer(token)).status_code == 200
    [audit] = audit_rows(app, "api_token_created")
    assert audit.userid == site.users["mgr_a"]
    assert f'"for_user": {site.users["mgr_a"]}' in audit.details


def test_form_errors_are_422_a_missing_csrf_token_400_and_nothing_is_issued(app, client_as):
    client = client_as("mgr_a")
    response = create(client, scopes=[], name="")
    assert response.status_code == 422 and "Name: required" in response.get_data(as_text=True)
    response = create(client, name="Power BI", expires_days="0")
    body = response.get_data(as_text=True)
    # Named as the form labels it, beside its field, and every typed value kept.
    assert response.status_code == 422 and "Expires after: a number of days" in body
    assert "expires_days:" not in body
    assert 'aria-describedby="error-expires_days-1 "' in body
    assert 'id="error-expires_days-1">a number of days' in body
    assert 'value="Power BI"' in body
    assert 'name="expires_days" inputmode="numeric" value="0"' in body
    no_csrf = client.post(PAGE, data={"name": "x", "scopes": ["reports:read"]})
    assert no_csrf.status_code == 400
    assert tokens(app) == []


def test_only_site_admins_issue_tokens_for_other_users(app, site, client_as):
    manager = client_as("mgr_a")
    assert create(manager, username="mgr_b").status_code == 403
    assert tokens(app) == []
    assert audit_rows(app, "access_denied")[-1].userid == site.users["mgr_a"]
    admin = client_as("admin")
    token = shown_token(create(admin, username="mgr_b", company=str(site.companies["B"])))
    [row] = tokens(app)
    assert (row.userid, row.createdby, row.companyid) == (
        site.users["mgr_b"], site.users["admin"], site.companies["B"])  # fmt: skip
    assert app.test_client().get(REPORT, headers=bearer(token)).status_code == 200
    # The admin cannot restrict someone's token to a company they are not in.
    response = create(admin, username="mgr_b", company=str(site.companies["A"]))
    assert response.status_code == 422 and "company:" in response.get_data(as_text=True)


def test_a_manager_cannot_restrict_a_token_to_another_company(app, site, client_as):
    response = create(client_as("mgr_a"), company=str(site.companies["B"]))
    assert response.status_code == 403 and tokens(app) == []
    assert audit_rows(app, "access_denied")[-1].companyid == site.companies["B"]


def test_revoking_stops_the_token_and_only_its_owner_or_an_admin_may(app, site, client_as):
    owner = client_as("mgr_a")
    token = shown_token(create(owner))
    [row] = tokens(app)
    other = client_as("mgr_b")
    denied = other.post(f"{PAGE}revoke", data={"token": row.id,
                                               "csrf_token": csrf_token(other, PAGE)})  # fmt: skip
    assert denied.status_code == 403
    assert f"{row.prefix}…" not in other.get(PAGE).get_data(as_text=True)
    revoked = owner.post(f"{PAGE}revoke", data={"token": row.id,
                                                "csrf_token": csrf_token(owner, PAGE)})  # fmt: skip
    assert revoked.status_code == 302
    assert app.test_client().get(REPORT, headers=bearer(token)).status_code == 401
    [audit] = audit_rows(app, "api_token_revoked")
    assert audit.userid == site.users["mgr_a"]


def test_only_users_the_api_serves_have_a_token_page(client_as):
    # No capability any API endpoint checks: nothing a token could read.
    assert client_as("legacy").get(PAGE).status_code == 403
    # A learner's token reads their own progress and their dashboard, nothing more.
    assert client_as("ana").get(PAGE).status_code == 200
