"""The dead-letter and failures view: who sees whose, filters, paging, and a bulk retry that
refuses another company's recipients."""

from __future__ import annotations

from sqlalchemy import select, update

from common.models.access import AuditLog
from common.models.mail import CloudDeadChunk, CloudJob, CloudRecipient
from tests.services.mailer.conftest import make_job, recipient_statuses, recipients
from tests.web.conftest import csrf_token

URL = "/jobs/dead-letters"


def failed_job(app, site, company: str, count: int, *, error: str, dead: bool = False) -> int:
    appdb = app.extensions["manireports"].appdb
    job_id = make_job(appdb, count, site.companies[company], domain=f"{company.lower()}.example")
    with appdb.transaction() as session:
        session.execute(
            update(CloudRecipient)
            .where(CloudRecipient.jobid == job_id)
            .values(status="failed", last_error=error)
        )
        session.execute(
            update(CloudJob)
            .where(CloudJob.id == job_id)
            .values(status="failed", emails_failed=count, chunks_dead=1 if dead else 0)
        )
        if dead:
            session.add(CloudDeadChunk(jobid=job_id, chunk=0, reason=error, deliveries=8))
    return job_id


def ids_of(app, job_id: int) -> list[int]:
    return sorted(r.id for r in recipients(app.extensions["manireports"].appdb, job_id))


def test_admin_sees_every_company_with_names_managers_only_their_own(app, site, client_as):
    acme = failed_job(app, site, "A", 3, error="recipient refused by the provider")
    bolt = failed_job(app, site, "B", 2, error="provider unreachable", dead=True)
    admin = client_as("admin").get(URL).get_data(as_text=True)
    assert "Acme" in admin and "Bolt" in admin
    assert "learner0@a.example" in admin and "learner0@b.example" in admin
    assert 'Failed recipients <span class="muted">(5)' in admin
    assert "Dead-lettered chunks not yet retried" in admin

    manager = client_as("mgr_a").get(URL)
    assert manager.status_code == 200
    page = manager.get_data(as_text=True)
    assert "learner0@a.example" in page and "b.example" not in page
    assert "Bolt" not in page and f"/jobs/view?job={bolt}" not in page
    assert f"/jobs/view?job={acme}" in page
    # Asking for Bolt's company, or filtering by Bolt's job, shows nothing of Bolt.
    assert client_as("mgr_a").get(f"{URL}?company={site.companies['B']}").status_code == 403
    assert "b.example" not in client_as("mgr_a").get(f"{URL}?job={bolt}").get_data(as_text=True)


def test_filters_by_job_and_error_and_pages(app, site, client_as):
    first = failed_job(app, site, "A", 60, error="recipient refused by the provider")
    second = failed_job(app, site, "A", 2, error="provider unreachable")
    client = client_as("mgr_a")
    page = client.get(f"{URL}?error=provider+unreachable").get_data(as_text=True)
    assert "(2)" in page and f"/jobs/view?job={second}" in page
    assert f'/jobs/view?job={first}"' not in page
    by_job = client.get(f"{URL}?job={first}").get_data(as_text=True)
    assert "(60)" in by_job and "Page 1 of 2" in by_job
    page_two = client.get(f"{URL}?job={first}&page=2").get_data(as_text=True)
    assert page_two.count('name="recipient"') == 10
    assert client.get(f"{URL}?job=abc").status_code == 400
    assert client.get(f"{URL}?page=0").status_code == 400


def test_bulk_retry_reopens_the_chosen_recipients_and_closes_their_dead_letter(
    app, site, client_as
):
    job_id = failed_job(app, site, "A", 4, error="provider unreachable", dead=True)
    client = client_as("mgr_a")
    chosen = ids_of(app, job_id)[:4]
    form = {"csrf_token": csrf_token(client, URL), "recipient": [str(i) for i in chosen]}
    response = client.post(f"{URL}/retry", data=form, follow_redirects=True)
    assert "4 recipient(s) of 1 job(s) will be sent again" in response.get_data(as_text=True)
    appdb = app.extensions["manireports"].appdb
    assert recipient_statuses(appdb, job_id) == {"pending": 4}
    with appdb.transaction() as session:
        job = session.get(CloudJob, job_id)
        assert (job.status, job.emails_failed, job.chunks_dead) == ("queued", 0, 0)
        dead = session.scalars(select(CloudDeadChunk).where(CloudDeadChunk.jobid == job_id))
        assert all(d.timeretried is not None for d in dead)


def test_bulk_retry_with_another_companys_id_is_refused_and_changes_nothing(app, site, client_as):
    ours = failed_job(app, site, "A", 2, error="provider unreachable")
    theirs = failed_job(app, site, "B", 2, error="provider unreachable")
    client = client_as("mgr_a")
    mixed = [*ids_of(app, ours), ids_of(app, theirs)[0]]
    form = {"csrf_token": csrf_token(client, URL), "recipient": [str(i) for i in mixed]}
    assert client.post(f"{URL}/retry", data=form).status_code == 403
    appdb = app.extensions["manireports"].appdb
    assert recipient_statuses(appdb, ours) == {"failed": 2}
    assert recipient_statuses(appdb, theirs) == {"failed": 2}
    with appdb.transaction() as session:
        denied = session.scalars(select(AuditLog).where(AuditLog.action == "access_denied"))
        assert any(entry.companyid == site.companies["B"] for entry in denied)


def test_bulk_retry_needs_the_csrf_token_and_sane_ids(app, site, client_as):
    job_id = failed_job(app, site, "A", 1, error="provider unreachable")
    client = client_as("mgr_a")
    rid = str(ids_of(app, job_id)[0])
    assert client.post(f"{URL}/retry", data={"recipient": rid}).status_code == 400
    token = csrf_token(client, URL)
    assert client.post(f"{URL}/retry", data={"csrf_token": token}).status_code == 422
    odd = client.post(f"{URL}/retry", data={"csrf_token": token, "recipient": "1; DROP"})
    assert odd.status_code == 400
    missing = client.post(f"{URL}/retry", data={"csrf_token": token, "recipient": "99999999"})
    assert missing.status_code == 422
    too_many = {"csrf_token": token, "recipient": [str(i) for i in range(1, 1003)]}
    assert client.post(f"{URL}/retry", data=too_many).status_code == 422
    assert recipient_statuses(app.extensions["manireports"].appdb, job_id) == {"failed": 1}
