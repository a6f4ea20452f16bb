"""The reporting API attacked from outside: the rate limit cannot be dodged by spelling the
header differently or by asking for another company, and a Moodle token's address check is
not fooled by a forged X-Forwarded-For."""

from __future__ import annotations

import pytest

from tests.web.api.conftest import bearer
from tests.web.api.test_rate_limit import Clock
from web.api.rate_limit import EXTENSION

REPORT = "/api/v1/reports/course_completion"
MOODLE_TOKEN = "0123456789abcdef0123456789abcdef"


@pytest.fixture
def limited(app) -> Clock:  # type: ignore[no-untyped-def]
    ctx = app.extensions["manireports"]
    ctx.settings = ctx.settings.with_overrides(api_rate_limit_per_minute=3)
    pinned = Clock()
    app.extensions[EXTENSION].clock = pinned
    return pinned


def spellings(token: str) -> list[dict[str, str]]:
    return [
        {"Authorization": f"Bearer {token}"},
        {"Authorization": f"bearer {token}"},
        {"Authorization": f"BEARER {token}"},
        {"Authorization": f"Bearer   {token}  "},
        {"Authorization": f"BeArEr {token}\t"},
    ]


@pytest.mark.parametrize("kind", ["manireports", "moodle"])
def test_the_rate_limit_holds_however_the_token_is_presented(app, site, token_for, limited, kind):
    if kind == "moodle":
        site.moodle.enable_web_services()
        site.moodle.external_token(site.users["mgr_a"], token=MOODLE_TOKEN)
        token = MOODLE_TOKEN
    else:
        token = token_for("mgr_a")
    client = app.test_client()
    a, b = str(site.companies["A"]), str(site.companies["B"])
    answers = []
    for i, headers in enumerate(spellings(token) * 2):
        company = (a, b, "")[i % 3]
        answers.append(client.get(REPORT, headers=headers, query_string={"company": company})
                       .status_code)  # fmt: skip
    # The first three are counted (a refused company too); every later one is a 429.
    assert all(code in (200, 403) for code in answers[:3]), answers
    assert answers[3:] == [429] * (len(answers) - 3), answers


def test_a_forged_forwarded_for_does_not_pass_an_ip_restriction(app, site):
    """TRUSTED_PROXIES is 0 here: no forwarding header stands for the caller's address."""
    site.moodle.enable_web_services()
    site.moodle.external_token(site.users["mgr_a"], token=MOODLE_TOKEN, iprestriction="10.9.9.9")
    client = app.test_client()
    forged = {**bearer(MOODLE_TOKEN), "X-Forwarded-For": "10.9.9.9", "X-Real-IP": "10.9.9.9",
              "Forwarded": "for=10.9.9.9"}  # fmt: skip
    response = client.get(REPORT, headers=forged, environ_base={"REMOTE_ADDR": "203.0.113.7"})
    assert response.status_code == 401
    allowed = client.get(REPORT, headers=bearer(MOODLE_TOKEN),
                         environ_base={"REMOTE_ADDR": "10.9.9.9"})  # fmt: skip
    assert allowed.status_code == 200


def test_api_odd_input_is_a_400_naming_the_field(app, token_for):
    client, headers = app.test_client(), bearer(token_for("mgr_a"))
    for query, field in (("page_size=0", "page_size"), ("sort=1;--", "sort"),
                         ("from=2026-02-30", "from"), ("company=x", "company"),
                         ("q=" + "x" * 10_000, "q"), ("course=%00", "course")):  # fmt: skip
        name = "quiz_attempts" if field == "from" else "course_progress"
        response = client.get(f"/api/v1/reports/{name}?{query}", headers=headers)
        assert response.status_code == 400, (query, response.status_code)
        assert response.get_json().get("field") == field, (query, response.get_json())
    for path in ("/api/v1/reports/course_progress/export.XLSX",
                 "/api/v1/reports/course_progress/export.csv%00", "/api/v1/reports/nope",
                 "/api/v1/reports/..%2fdashboard"):  # fmt: skip
        assert client.get(path, headers=headers).status_code == 404, path
