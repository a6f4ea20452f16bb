"""A company-restricted token reads and writes its own company only: every API route is
walked with the other company's id, and each refusal is audited."""

from __future__ import annotations

from sqlalchemy import func, select

from common.models.mail import CloudJob
from tests.services.mailer.conftest import make_job
from tests.web.api.conftest import audit_rows, bearer
from web.auth.guards import Tenancy

EXAMPLE_JOB = {"type": "bulk", "subject": "Hi", "html": "<p>Hi</p>",
               "recipients": [{"email": "someone@school.example"}]}  # fmt: skip


def api_requests(app, other_company: int, other_job: int):  # type: ignore[no-untyped-def]
    """(method, path, JSON body) for every /api/v1 route that reads or acts on a company (not
    the public OpenAPI document and reference page), asking for ``other_company``."""
    for rule in app.url_map.iter_rules():
        if not rule.rule.startswith("/api/v1"):
            continue
        if app.view_functions[rule.endpoint].tenancy == Tenancy.PUBLIC:
            continue
        path = rule.rule.replace("<name>", "course_completion").replace("<fmt>", "csv")
        path = path.replace("<id:job_id>", str(other_job))
        assert "<" not in path, f"add an example value for {rule.rule}"
        for method in sorted(rule.methods - {"HEAD", "OPTIONS"}):
            body = {**EXAMPLE_JOB, "company": other_company} if method == "POST" else None
            yield method, f"{path}?company={other_company}", body


def test_company_restricted_token_cannot_reach_the_other_company(app, site, token_for):
    appdb = app.extensions["manireports"].appdb
    other = site.companies["B"]
    other_job = make_job(appdb, 2, other)
    restricted = bearer(token_for("admin", company="A"))  # an admin, so only the token limits
    client = app.test_client()
    walked = list(api_requests(app, other, other_job))
    assert {m for m, _, _ in walked} == {"GET", "POST"} and len(walked) >= 5
    for method, path, body in walked:
        response = client.open(path, method=method, json=body, headers=restricted)
        assert response.status_code == 403, f"{method} {path}: {response.status_code}"
        assert "restricted to company" in response.get_json()["error"]
    refused = [row for row in audit_rows(app, "access_denied") if row.companyid == other]
    assert len(refused) == len(walked)
    # Without ?company=, the job's own company is the one asked for: refused all the same.
    path = f"/api/v1/email/jobs/{other_job}"
    assert client.get(path, headers=restricted).status_code == 403
    with appdb.transaction() as session:
        assert session.scalar(select(func.count()).select_from(CloudJob)) == 1


def test_the_same_admin_unrestricted_reads_both_companies(app, site, token_for):
    other_job = make_job(app.extensions["manireports"].appdb, 2, site.companies["B"])
    headers = bearer(token_for("admin"))
    client = app.test_client()
    forklift = client.get(f"/api/v1/reports/course_completion?company={site.companies['B']}",
                          headers=headers).get_json()  # fmt: skip
    assert "Forklift" in {row["course"] for row in forklift["rows"]}
    assert client.get(f"/api/v1/email/jobs/{other_job}", headers=headers).status_code == 200


def test_a_managers_token_cannot_ask_for_another_company(app, site, token_for):
    other = site.companies["B"]
    other_job = make_job(app.extensions["manireports"].appdb, 1, other)
    headers = bearer(token_for("mgr_a"))
    client = app.test_client()
    for method, path, body in api_requests(app, other, other_job):
        response = client.open(path, method=method, json=body, headers=headers)
        assert response.status_code == 403, f"{method} {path}"
    own = client.get("/api/v1/reports/course_completion", headers=headers).get_json()
    assert "Forklift" not in {row["course"] for row in own["rows"]}
