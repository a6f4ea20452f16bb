"""Creating a job from the monitor's form: every bad pasted line named, or one queued job."""

from __future__ import annotations

import html

from sqlalchemy import func, select

from common.models.mail import CloudJob, CloudRecipient
from tests.web.conftest import csrf_token


def post_job(client, recipients: str, **fields):  # type: ignore[no-untyped-def]
    form = {"csrf_token": csrf_token(client, "/jobs/"), "recipients": recipients,
            "subject": "Hello {{firstname}}", "html": "<p>Hi {{firstname}}</p>"}  # fmt: skip
    form.update(fields)
    return client.post("/jobs/create", data=form)


def counts(app) -> tuple[int, int]:  # type: ignore[no-untyped-def]
    with app.extensions["manireports"].appdb.transaction() as session:
        return (session.scalar(select(func.count()).select_from(CloudJob)),
                session.scalar(select(func.count()).select_from(CloudRecipient)))  # fmt: skip


def test_every_bad_line_is_named_and_nothing_is_written(app, client_as):
    client = client_as("mgr_a")
    pasted = "ana@acme.example,Ana\nnot-an-address\nbo@acme\n\ncy@acme.example"

    response = post_job(client, pasted)

    page = response.get_data(as_text=True)
    assert response.status_code == 422
    assert "line 2" in page and "line 3" in page and "line 1" not in page
    assert counts(app) == (0, 0)


def test_a_template_bomb_is_refused_naming_the_field(app, client_as):
    client = client_as("mgr_a")
    bomb = "{{#l}}" * 6 + "x" + "{{/l}}" * 6

    response = post_job(client, "ana@acme.example", html=bomb)

    assert response.status_code == 422 and "nested more than 5" in response.get_data(as_text=True)
    assert counts(app) == (0, 0)


def test_a_good_list_becomes_one_queued_job(app, site, client_as):
    client = client_as("mgr_a")

    response = post_job(client, "ana@acme.example,Ana,Learner\nbo@acme.example")

    assert response.status_code == 302
    with app.extensions["manireports"].appdb.transaction() as session:
        [job] = session.scalars(select(CloudJob)).all()
        assert (job.companyid, job.recipients_total, job.source) == (site.companies["A"], 2, "ui")


def test_the_broken_template_is_refused_with_its_position_and_nothing_is_written(app, client_as):
    client = client_as("mgr_a")

    response = post_job(client, "ana@acme.example", html="<p>Hi {{firstname}</p> {{#license}}")

    page = html.unescape(response.get_data(as_text=True))
    assert response.status_code == 422
    assert "line 1, column 7: the tag '{{firstname}</p>' is not closed" in page
    assert "line 1, column 24: the section 'license' was never closed" in page
    assert counts(app) == (0, 0)
