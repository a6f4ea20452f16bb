"""The API refuses a job whose templates break a rendering limit: 422 naming the field,
found by trying the templates with the shared variables and the first recipient's data."""

from __future__ import annotations

import time

from tests.web.api.conftest import bearer
from tests.web.api.test_email_jobs_api import JOBS, counts, job_body

BOMB = "{{#l}}{{#l}}{{#l}}{{#l}}{{#l}}x{{/l}}{{/l}}{{/l}}{{/l}}{{/l}}"


def test_a_479_byte_bomb_job_is_refused_fast_and_nothing_is_written(app, token_for):
    body = job_body(html=f"<p>{BOMB}</p>", variables={"l": list(range(40))})
    started = time.monotonic()

    response = app.test_client().post(JOBS, json=body, headers=bearer(token_for("mgr_a")))

    assert time.monotonic() - started < 3
    assert response.status_code == 422, response.get_json()
    answer = response.get_json()
    assert answer["field"] == "html" and "longer than" in answer["error"]
    assert counts(app) == (0, 0)


def test_sections_nested_too_deep_are_refused(app, token_for):
    subject = "{{#a}}" * 6 + "x" + "{{/a}}" * 6
    body = job_body(subject=subject)

    response = app.test_client().post(JOBS, json=body, headers=bearer(token_for("mgr_a")))

    assert response.status_code == 422
    assert response.get_json()["field"] == "subject"
    assert "nested more than 5" in response.get_json()["error"]
