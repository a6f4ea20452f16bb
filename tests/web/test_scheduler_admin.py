"""The scheduler admin pages on the two-company site, with a nats-server of their own (so the
COMMANDS stream holds only what these tests publish): every task with its last run, status,
failures in a row and next run; "Run now" publishing exactly one command; the failed schedule
runs with "Retry" publishing the run command with a manual tag; site administrators only."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from markupsafe import escape
from sqlalchemy import select, update

from common.access.viewer import load_viewer
from common.bus import command_subject
from common.models.access import AuditLog
from common.models.custom import ReportRun
from common.models.hrsync import SETTINGS_ROW, HrSyncConfig
from common.models.schedules import ReportSchedule
from common.schedules.commands import RUN_SUBJECT, due_text
from common.schedules.store import Author, ScheduleInput, save_schedule
from common.schedules.task_runs import record_task_run
from common.schedules.tasks import DEFAULT_TASKS
from common.schedules.timing import next_runs, parse_recurrence
from common.tenancy import VIEW, scope_for
from tests.factories.sites import NOW
from tests.web import bus_commands
from tests.web.bus_commands import published
from tests.web.conftest import csrf_token
from web.humanize import exact_text

nats_server = bus_commands.nats_server  # a server of each test's own

PAGE = "/admin/scheduler/"
AT = datetime.fromtimestamp(NOW, UTC)


def audits(app, action: str) -> list[AuditLog]:  # type: ignore[no-untyped-def]
    with app.extensions["manireports"].appdb.transaction() as db:
        found = list(db.scalars(select(AuditLog).where(AuditLog.action == action)))
        db.expunge_all()
    return found


def appdb(app):  # type: ignore[no-untyped-def]
    return app.extensions["manireports"].appdb


def run(app, task: str, status: str, minutes_ago: int, error: str | None = None) -> None:  # type: ignore[no-untyped-def]
    start = AT - timedelta(minutes=minutes_ago)
    record_task_run(appdb(app), task, "schedule", status, start,
                    start + timedelta(seconds=3), error)  # fmt: skip


def row_of(page: str, task: str) -> str:
    match = re.search(rf'<tr id="task-{task}">(.*?)</tr>', page, re.S)
    assert match, f"no row for {task}"
    return match.group(1)


def failed_schedule(app, site, **changes: Any) -> ReportSchedule:  # type: ignore[no-untyped-def]
    """Bolt's manager's schedule, saved through the store, then marked failed."""
    ctx = app.extensions["manireports"]
    with ctx.appdb.transaction() as db:
        manager = load_viewer(ctx.moodle, db, site.users["mgr_b"])
    assert manager is not None
    data = ScheduleInput(title="Forklift weekly", report="course_completion",
                         frequency="daily", at="07:00", tz="UTC",
                         emails="pallet@bolt.example", format="csv")  # fmt: skip
    author = Author(manager, scope_for(manager, None, VIEW))
    saved = save_schedule(ctx.appdb, ctx.moodle, data, author, now=AT)
    values = {"last_status": "failed", "failed_error": "render failed: timeout after 300 s",
              "attempts": 4, "last_run_at": AT - timedelta(hours=2), **changes}  # fmt: skip
    with ctx.appdb.transaction() as db:
        db.execute(update(ReportSchedule).where(ReportSchedule.id == saved.id).values(**values))
        row = db.get(ReportSchedule, saved.id)
        db.expunge(row)
    return row


def post(client, path: str, **data: str):  # type: ignore[no-untyped-def]
    return client.post(path, data={"csrf_token": csrf_token(client, PAGE), **data})


# --- the task list ---------------------------------------------------------------------------


def test_every_task_is_listed_with_its_last_run_status_failures_and_next_run(app, site, client_as):
    site.moodle._update("user", site.users["admin"], timezone="Asia/Tokyo")
    run(app, "engagement", "ok", 180)
    run(app, "engagement", "error", 120, "Moodle DB unreachable")
    run(app, "engagement", "timeout", 60, "over the time limit")
    run(app, "estimate_time", "ok", 5)
    page = client_as("admin").get(PAGE).get_data(as_text=True)
    tokyo = ZoneInfo("Asia/Tokyo")
    for task in DEFAULT_TASKS:
        line = row_of(page, task.name)
        assert str(escape(task.description)) in line
        next_slot = datetime.fromtimestamp((NOW // task.interval_s + 1) * task.interval_s, UTC)
        assert exact_text(next_slot, tokyo) in line, task.name
        assert f'action="/admin/scheduler/{task.name}/run"' in line
    engagement = row_of(page, "engagement")
    assert exact_text(AT - timedelta(minutes=60), tokyo) in engagement
    assert "status-timeout" in engagement and "over the time limit" in engagement
    assert re.search(r'data-label="Failures in a row" class="num">2<', engagement)
    estimate = row_of(page, "estimate_time")
    assert "status-ok" in estimate and re.search(r'class="num">0<', estimate)
    assert '<span title="0:00:03">3 s</span>' in estimate  # its duration
    assert "not run yet" in row_of(page, "risk_scores")


def test_the_report_schedules_row_reads_the_schedules_and_has_no_run_now(app, site, client_as):
    schedule = failed_schedule(app, site, last_status="ok", failed_error=None, attempts=0)
    with appdb(app).transaction() as db:
        db.add(ReportRun(report="course_completion", report_title="Course completion",
                         origin="schedule", status="error", error="SMTP refused",
                         started_at=AT - timedelta(minutes=30), duration_ms=1400,
                         schedule_id=schedule.id, companyid=site.companies["B"]))  # fmt: skip
        db.add(ReportRun(report="course_completion", report_title="Course completion",
                         origin="web", status="ok",
                         started_at=AT - timedelta(minutes=1)))  # fmt: skip
    line = row_of(client_as("admin").get(PAGE).get_data(as_text=True), "report_schedules")
    assert exact_text(AT - timedelta(minutes=30), ZoneInfo("UTC")) in line  # not the web run
    assert "status-error" in line and "SMTP refused" in line and "1 s" in line
    assert schedule.next_run_at is not None
    assert exact_text(schedule.next_run_at, ZoneInfo("UTC")) in line
    assert "/run" not in line and "Run now" not in line


def test_the_hr_sync_row_follows_its_cron_and_links_to_its_page(app, client_as):
    client = client_as("admin")
    line = row_of(client.get(PAGE).get_data(as_text=True), "hr_sync")
    assert "not scheduled" in line and 'href="/admin/hr-sync/"' in line and "/run" not in line
    with appdb(app).transaction() as db:
        db.add(HrSyncConfig(id=SETTINGS_ROW, cron="30 2 * * *", tz="Europe/London"))
    run(app, "hr_sync", "error", 40, "BambooHR refused the API key")
    line = row_of(client.get(PAGE).get_data(as_text=True), "hr_sync")
    # The next 02:30 in London, worked out in that zone.
    nightly = parse_recurrence(frequency="cron", cron="30 2 * * *", tz="Europe/London")
    following = next_runs(nightly, datetime.fromtimestamp(NOW, UTC), 1)[0]
    assert exact_text(following, ZoneInfo("UTC")) in line
    assert "status-error" in line and "BambooHR refused the API key" in line
    assert client.get(f"{PAGE}hr_sync").status_code == 200


def test_a_tasks_history_lists_its_runs_newest_first(app, client_as):
    run(app, "refresh_caches", "ok", 30)
    run(app, "refresh_caches", "error", 15, "cache table locked")
    client = client_as("admin")
    page = client.get(f"{PAGE}refresh_caches").get_data(as_text=True)
    assert page.index("cache table locked") < page.index("status-ok")
    assert "Failed 1 time in a row" in page
    assert client.get(f"{PAGE}no_such_task").status_code == 404
    assert client.get(f"{PAGE}report_schedules").status_code == 200


# --- run now ---------------------------------------------------------------------------------


def test_run_now_publishes_exactly_one_command_and_is_audited(app, site, client_as, nats_server):
    client = client_as("admin")
    response = post(client, f"{PAGE}engagement/run")
    assert response.status_code == 302 and response.location.endswith(PAGE)
    [(subject, msg_id, payload)] = published(nats_server.url)
    assert subject == command_subject("aggregator", "engagement")
    assert payload == {"task": "engagement", "trigger": "manual"}
    assert re.fullmatch(r"manual:engagement:[0-9a-f]{12}", msg_id)
    assert "Queued" in client.get(PAGE).get_data(as_text=True)
    [entry] = audits(app, "task_run_now")
    assert (entry.userid, entry.object_id, entry.outcome) == (site.users["admin"], "engagement",
                                                              "success")  # fmt: skip
    # A second press is a run of its own, not a duplicate.
    post(client, f"{PAGE}watch_email_queue/run", back="history")
    subjects = [s for s, _, _ in published(nats_server.url)]
    assert subjects == [command_subject("aggregator", "engagement"),
                        command_subject("mailer", "watch_email_queue")]  # fmt: skip


def test_run_now_without_the_csrf_token_is_400_and_publishes_nothing(app, client_as, nats_server):
    client = client_as("admin")
    assert client.post(f"{PAGE}engagement/run").status_code == 400
    assert client.post(f"{PAGE}engagement/run", data={"csrf_token": "forged"}).status_code == 400
    assert post(client, f"{PAGE}no_such_task/run").status_code == 404
    assert published(nats_server.url) == []
    assert audits(app, "task_run_now") == []


def test_run_now_with_no_bus_says_so_and_queues_nothing(app, client_as, nats_server):
    client = client_as("admin")
    token = csrf_token(client, PAGE)
    nats_server.stop()
    response = client.post(f"{PAGE}engagement/run", data={"csrf_token": token},
                           follow_redirects=True)  # fmt: skip
    assert response.status_code == 200
    page = response.get_data(as_text=True)
    assert "Not queued: the message bus cannot be reached" in page and "Queued:" not in page
    [entry] = audits(app, "task_run_now")
    assert entry.outcome == "failed"


@pytest.mark.parametrize("username", ["mgr_a", "teacher_a", "ana"])
def test_anyone_but_a_site_admin_is_refused_every_scheduler_page(
    app, site, client_as, nats_server, username
):
    schedule = failed_schedule(app, site)
    client = client_as(username)
    token = csrf_token(client, "/dashboards/")
    for path in (PAGE, f"{PAGE}failed", f"{PAGE}engagement"):
        assert client.get(path).status_code == 403, path
    for path in (f"{PAGE}engagement/run", f"{PAGE}failed/{schedule.id}/retry"):
        assert client.post(path, data={"csrf_token": token}).status_code == 403, path
    assert published(nats_server.url) == []
    assert audits(app, "task_run_now") == [] and audits(app, "schedule_retry") == []
    assert len(audits(app, "access_denied")) == 5
    assert 'href="/admin/scheduler/"' not in client.get("/dashboards/").get_data(as_text=True)


def test_the_menu_offers_the_scheduler_to_site_admins(client_as):
    menu = client_as("admin").get("/dashboards/").get_data(as_text=True)
    assert 'href="/admin/scheduler/"' in menu


# --- failed schedule runs ----------------------------------------------------------------------


def test_failed_runs_are_listed_and_retry_publishes_the_run_command_with_a_manual_tag(
    app, site, client_as, nats_server
):
    schedule = failed_schedule(app, site)
    fine = failed_schedule(app, site, title="Fine one", last_status="ok")
    client = client_as("admin")
    page = client.get(f"{PAGE}failed").get_data(as_text=True)
    line = re.search(rf'<tr id="failed-{schedule.id}">(.*?)</tr>', page, re.S)
    assert line, page
    assert f'href="/schedules/{schedule.id}"' in line.group(1)
    assert "Forklift weekly" in line.group(1) and "Course completion" in line.group(1)
    assert "render failed: timeout after 300 s" in line.group(1)
    assert re.search(r'data-label="Attempts" class="num">4<', line.group(1))
    assert f"failed-{fine.id}" not in page
    response = post(client, f"{PAGE}failed/{schedule.id}/retry")
    assert response.status_code == 302
    [(subject, msg_id, payload)] = published(nats_server.url)
    due = due_text(AT - timedelta(hours=2))
    assert subject == RUN_SUBJECT
    assert payload == {"schedule": schedule.id, "due": due, "manual": payload["manual"]}
    assert re.fullmatch(r"[0-9a-f]{12}", payload["manual"])
    assert msg_id == f"schedule:{schedule.id}:{due}:manual:{payload['manual']}"
    [entry] = audits(app, "schedule_retry")
    assert (entry.object_id, entry.companyid) == (str(schedule.id), site.companies["B"])
    # One that is not failed, or not there, is not retried.
    post(client, f"{PAGE}failed/{fine.id}/retry")
    assert post(client, f"{PAGE}failed/999999/retry").status_code == 404
    assert len(published(nats_server.url)) == 1


def test_a_failed_schedule_never_run_is_retried_for_now(app, site, client_as, nats_server):
    schedule = failed_schedule(app, site, last_run_at=None)
    post(client_as("admin"), f"{PAGE}failed/{schedule.id}/retry")
    [(_, _, payload)] = published(nats_server.url)
    assert payload["due"] == due_text(AT)


def test_no_failed_runs_says_so(client_as):
    page = client_as("admin").get(f"{PAGE}failed").get_data(as_text=True)
    assert "No failed schedule runs." in page
