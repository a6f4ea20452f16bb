"""The live job monitor: progress JSON, an honest rate, final states, which actions show, and
one database read per job per second however many viewers poll."""

from __future__ import annotations

import threading
from datetime import timedelta

from sqlalchemy import event, update

from common.access.api_tokens import SCOPES, issue
from common.mail.job_status import finish_if_done
from common.models.base import utcnow
from common.models.mail import CloudConf, CloudDeadChunk, CloudJob, CloudRecipient
from tests.services.mailer.conftest import make_job, recipients
from tests.web.conftest import csrf_token
from web.jobs.monitor_cache import SnapshotCache

REFUSED = "recipient refused by the provider"


def new_job(app, site, count: int, company: str = "A") -> int:
    return make_job(app.extensions["manireports"].appdb, count, site.companies[company])


def simulate_sending(
    app,
    job_id: int,
    *,
    sent: int,
    burst: int = 4,
    every_s: float = 0.2,
    failed: int = 0,
    ago_s: float = 2.0,
) -> None:
    """Outcomes as mailers under a 20/s quota record them: ``burst`` recipients share one
    timestamp, one group every ``every_s`` seconds, the last group just now."""
    appdb = app.extensions["manireports"].appdb
    ids = sorted(r.id for r in recipients(appdb, job_id))
    now = utcnow()
    start = now - timedelta(seconds=ago_s)
    with appdb.transaction() as session:
        for index, rid in enumerate(ids[: sent + failed]):
            at = start + timedelta(seconds=(index // burst) * every_s)
            status = "sent" if index < sent else "failed"
            session.execute(
                update(CloudRecipient)
                .where(CloudRecipient.id == rid)
                .values(
                    status=status, timesent=at, last_error=None if status == "sent" else REFUSED
                )
            )
        session.execute(
            update(CloudJob)
            .where(CloudJob.id == job_id)
            .values(status="processing", emails_sent=sent, emails_failed=failed, timestarted=start)
        )


def progress(client, *job_ids: int):  # type: ignore[no-untyped-def]
    query = "&".join(f"job={j}" for j in job_ids)
    response = client.get(f"/jobs/progress?{query}")
    assert response.status_code == 200, response.get_data(as_text=True)
    assert response.headers["Cache-Control"] == "no-store"
    return response.get_json()["jobs"]


def set_rate_limit(app, site, rate: float) -> None:
    with app.extensions["manireports"].appdb.transaction() as session:
        session.add(
            CloudConf(
                companyid=site.companies["A"],
                provider="smtp",
                enabled=True,
                sender_email="noreply@acme.example",
                rate_per_s=rate,
            )
        )


def test_running_job_reports_progress_an_honest_rate_and_an_eta(app, site, client_as):
    set_rate_limit(app, site, 20)
    job_id = new_job(app, site, 100)
    # 40 messages in 10 groups of 4, 0.2 s apart: 20/s with a burst of 4 at the start.
    simulate_sending(app, job_id, sent=40, ago_s=1.8)
    [job] = progress(client_as("mgr_a"), job_id)
    assert job["status"] == "processing" and job["label"] == "Sending" and not job["final"]
    assert (job["sent"], job["open"], job["total"]) == (40, 60, 100)
    assert job["progress_pct"] == 40.0
    # The naive figure, 40 messages over the 1.8 s span, would read 22.2/s: above the limit
    # that was kept. The first timestamp's burst marks the start and is not counted.
    assert 19.0 <= job["rate_per_s"] <= 20.0
    assert job["limit_per_s"] == 20
    assert 2.9 <= job["eta_s"] <= 3.2  # 60 left at ~20/s
    assert job["actions"] == {"cancel": True, "retry_failed": False, "retry_dead": False}


def test_a_stalled_job_reads_zero_not_its_old_rate(app, site, client_as):
    job_id = new_job(app, site, 20)
    simulate_sending(app, job_id, sent=8, ago_s=60)  # last outcome about 58 s ago
    [job] = progress(client_as("mgr_a"), job_id)
    assert job["rate_per_s"] == 0.0 and job["eta_s"] is None


def test_final_states_say_what_happened_with_their_counts(app, site, client_as):
    client = client_as("mgr_a")
    appdb = app.extensions["manireports"].appdb
    done = new_job(app, site, 10)
    simulate_sending(app, done, sent=10)
    partly = new_job(app, site, 10)
    simulate_sending(app, partly, sent=7, failed=3)
    with appdb.transaction() as session:
        assert finish_if_done(session, done) == "completed"
        assert finish_if_done(session, partly) == "partially_failed"
    stopped = new_job(app, site, 90)
    simulate_sending(app, stopped, sent=12)
    form = {"csrf_token": csrf_token(client, "/jobs/"), "job": str(stopped)}
    assert client.post("/jobs/cancel", data=form).status_code == 302
    by_id = {j["job"]: j for j in progress(client, done, partly, stopped)}

    assert by_id[done]["label"] == "Completed" and by_id[done]["progress_pct"] == 100.0
    assert by_id[done]["summary"] == "Completed: 10 sent of 10"
    assert by_id[done]["eta_s"] is None and by_id[done]["rate_window_s"] is None
    assert by_id[done]["actions"] == {"cancel": False, "retry_failed": False, "retry_dead": False}

    assert by_id[partly]["label"] == "Completed with failures"
    assert by_id[partly]["summary"] == "Completed with failures: 7 sent, 3 failed of 10"
    assert by_id[partly]["actions"] == {"cancel": False, "retry_failed": True, "retry_dead": False}

    cancelled = by_id[stopped]
    assert cancelled["status"] == "cancelled" and cancelled["final"]
    assert cancelled["progress_pct"] is None  # not "13.3 %" or "98.9 %"
    assert (cancelled["sent"], cancelled["cancelled"]) == (12, 78)
    assert cancelled["summary"] == "Cancelled: 12 sent, 78 cancelled of 90"
    assert cancelled["actions"] == {"cancel": False, "retry_failed": False, "retry_dead": False}


def test_buttons_show_only_where_they_apply_and_the_posts_agree(app, site, client_as):
    client = client_as("mgr_a")
    appdb = app.extensions["manireports"].appdb
    job_id = new_job(app, site, 5)
    simulate_sending(app, job_id, sent=5)
    with appdb.transaction() as session:
        finish_if_done(session, job_id)
    page = client.get(f"/jobs/view?job={job_id}").get_data(as_text=True)
    for action in ("cancel", "retry_failed", "retry_dead"):
        assert f'data-action="{action}" hidden' in page
    assert "Completed: 5 sent of 5" in page
    # The POST checks the state too: cancelling a finished job changes nothing.
    form = {"csrf_token": csrf_token(client, "/jobs/"), "job": str(job_id)}
    response = client.post("/jobs/cancel", data=form, follow_redirects=True)
    assert "that action does not apply" in response.get_data(as_text=True)
    with appdb.transaction() as session:
        assert session.get(CloudJob, job_id).status == "completed"

    running = new_job(app, site, 5)
    page = client.get(f"/jobs/view?job={running}").get_data(as_text=True)
    assert 'data-action="cancel">' in page and 'data-action="retry_failed" hidden' in page
    assert "updates live" in page and 'data-job-monitor="/jobs/progress?job=' in page


def test_the_dead_letter_banner_goes_once_the_dead_letters_were_retried(app, site, client_as):
    client = client_as("mgr_a")
    appdb = app.extensions["manireports"].appdb
    job_id = new_job(app, site, 4)
    with appdb.transaction() as session:
        session.add(
            CloudDeadChunk(jobid=job_id, chunk=0, reason="provider unreachable", deliveries=8)
        )
        session.execute(
            update(CloudRecipient)
            .where(CloudRecipient.jobid == job_id)
            .values(status="failed", last_error="dead-lettered after 8 attempts")
        )
        session.execute(
            update(CloudJob)
            .where(CloudJob.id == job_id)
            .values(
                status="failed",
                emails_failed=4,
                chunks_dead=1,
                last_error="chunk 0 dead-lettered: provider unreachable",
            )
        )
    page = client.get(f"/jobs/view?job={job_id}").get_data(as_text=True)
    assert 'role="alert" data-part="dead">' in page  # shown
    [job] = progress(client, job_id)
    assert job["dead_open"] == 1 and job["actions"]["retry_dead"]

    form = {"csrf_token": csrf_token(client, "/jobs/"), "job": str(job_id)}
    assert client.post("/jobs/retry-dead", data=form).status_code == 302
    simulate_sending(app, job_id, sent=4)  # the mailers deliver them this time
    with appdb.transaction() as session:
        assert finish_if_done(session, job_id) == "completed"
    [job] = progress(client, job_id)
    assert job["dead_open"] == 0 and job["last_error"] is None
    page = client.get(f"/jobs/view?job={job_id}").get_data(as_text=True)
    assert 'role="alert" data-part="dead" hidden>' in page
    assert '<h2 id="dead">' not in page and "Last error" not in page


def test_another_companys_job_is_refused_and_odd_ids_are_400(app, site, client_as):
    theirs = new_job(app, site, 3, company="B")
    client = client_as("mgr_a")
    assert client.get(f"/jobs/progress?job={theirs}").status_code == 403
    assert client.get("/jobs/progress?job=abc").status_code == 400
    assert client.get("/jobs/progress").status_code == 400
    many = "&".join(f"job={i}" for i in range(1, 102))
    assert client.get(f"/jobs/progress?{many}").status_code == 400
    assert client.get("/jobs/progress?job=987654").status_code == 404
    assert client_as("mgr_b").get(f"/jobs/progress?job={theirs}").status_code == 200


def test_many_viewers_cost_one_snapshot_statement_per_job_per_second(app, site):
    """The speed contract, measured: 50 threads polling one job share one read a second."""
    appdb = app.extensions["manireports"].appdb
    job_id = new_job(app, site, 50)
    simulate_sending(app, job_id, sent=20)
    statements: list[str] = []

    def count(conn, cursor, statement, *args):  # type: ignore[no-untyped-def]
        statements.append(statement)

    clock = [0.0]
    cache = SnapshotCache(appdb, clock=lambda: clock[0])
    event.listen(appdb.engine, "before_cursor_execute", count)
    try:
        for second in range(3):
            clock[0] = float(second)
            threads = [threading.Thread(target=cache.get, args=(job_id,)) for _ in range(50)]
            for thread in threads:
                thread.start()
            for thread in threads:
                thread.join()
            clock[0] = second + 0.5  # half a second later: still the same snapshot
            assert cache.get(job_id).sent == 20
    finally:
        event.remove(appdb.engine, "before_cursor_execute", count)
    reads = [s for s in statements if "manireports_cloud_jobs" in s]
    assert len(reads) == 3, f"{len(reads)} reads for 3 seconds of 50 viewers"


def test_the_action_state_machine():
    from common.mail.job_status import job_actions

    for status in ("pending", "queued", "processing"):
        assert job_actions(status, failed=0, dead_open=0).cancel
    for status in ("completed", "partially_failed", "failed", "cancelled"):
        assert not job_actions(status, failed=3, dead_open=1).cancel
    assert job_actions("partially_failed", failed=3, dead_open=0).retry_failed
    assert job_actions("failed", failed=3, dead_open=0).retry_failed
    assert not job_actions("failed", failed=0, dead_open=0).retry_failed
    assert not job_actions("processing", failed=3, dead_open=0).retry_failed
    assert not job_actions("cancelled", failed=3, dead_open=0).retry_failed
    assert job_actions("failed", failed=3, dead_open=1).retry_dead
    assert job_actions("processing", failed=3, dead_open=1).retry_dead
    assert not job_actions("cancelled", failed=3, dead_open=1).retry_dead


def test_the_api_reports_the_rate_and_eta_the_monitor_page_shows(app, site, client_as):
    """GET /api/v1/email/jobs/<id> takes its figures from the same snapshot as /jobs/progress:
    the rate excludes the first burst (not 40 over the whole span, 22.2/s, nor sent over the
    time since start), the ETA is there, and a cancelled job is not at 13 %."""
    set_rate_limit(app, site, 20)
    job_id = new_job(app, site, 100)
    simulate_sending(app, job_id, sent=40, ago_s=1.8)
    with app.extensions["manireports"].appdb.transaction() as session:
        session.execute(  # started long before the first send: the old formula said 0.7/s
            update(CloudJob)
            .where(CloudJob.id == job_id)
            .values(timestarted=utcnow() - timedelta(seconds=60))
        )
        token, _ = issue(session, site.users["mgr_a"], "monitor test", tuple(SCOPES), None, None)
    headers = {"Authorization": f"Bearer {token}"}
    api = app.test_client().get(f"/api/v1/email/jobs/{job_id}", headers=headers)
    assert api.status_code == 200, api.get_data(as_text=True)
    shown = api.get_json()["job"]
    [page] = progress(client_as("mgr_a"), job_id)
    assert 19.0 <= shown["rate_per_s"] <= 20.0
    assert shown["rate_per_s"] == page["rate_per_s"]
    assert shown["eta_s"] is not None and abs(shown["eta_s"] - page["eta_s"]) <= 0.2
    assert shown["progress_pct"] == page["progress_pct"] == 40.0

    client = client_as("mgr_a")
    form = {"csrf_token": csrf_token(client, "/jobs/"), "job": str(job_id)}
    assert client.post("/jobs/cancel", data=form).status_code == 302
    shown = app.test_client().get(f"/api/v1/email/jobs/{job_id}", headers=headers).get_json()
    assert shown["job"]["status"] == "cancelled"
    assert shown["job"]["progress_pct"] == 100.0 and shown["job"]["eta_s"] is None
