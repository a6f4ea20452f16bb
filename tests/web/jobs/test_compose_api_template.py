"""The JSON API refuses the template the compose page and the editor refuse, with the same
words (one check, `template_checks.template_problem`), and writes nothing."""

from __future__ import annotations

from common.access.api_tokens import issue
from tests.web.jobs.conftest import job_counts

BROKEN = "<p>Hi {{firstname}</p> {{#license}}"


def test_the_api_refuses_the_broken_template_with_line_and_column(composed_site, compose_app):
    site = composed_site.site
    with compose_app.extensions["manireports"].appdb.transaction() as session:
        plaintext, _ = issue(session, site.users["mgr_a"], "compose test", ("email:write",),
                             site.companies["A"], None)  # fmt: skip
    client = compose_app.test_client()
    before = job_counts(compose_app)
    body = {"type": "bulk", "subject": "Hi", "html": BROKEN,
            "recipients": [{"email": "ana@acme.example"}]}  # fmt: skip

    response = client.post("/api/v1/email/jobs", json=body,
                           headers={"Authorization": f"Bearer {plaintext}"})  # fmt: skip

    assert response.status_code == 422, response.get_json()
    assert response.get_json()["field"] == "html"
    assert response.get_json()["error"] == (
        "line 1, column 7: the tag '{{firstname}</p>' is not closed with '}}' before the next "
        "tag; line 1, column 24: the section 'license' was never closed (add '{{/license}}')"
    )
    assert job_counts(compose_app) == before
