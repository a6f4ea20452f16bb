"""The HR sync admin page on the two-company site, with a nats-server of its own (so the
COMMANDS stream holds only what these tests publish): the settings form (422 with the input
kept, secrets never in a page, fields the environment sets greyed out), "Run now" and "Dry run"
publishing exactly one command each, "Reset cursor", the run history and a run's diff; site
administrators only, CSRF on every form."""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from common.models.hrsync import SETTINGS_ROW, HrSyncConfig, HrSyncCursor, HrSyncRun
from common.secrets import decrypt
from tests.factories.sites import NOW
from tests.support import TEST_SECRET
from tests.web import bus_commands
from tests.web.app_rows import appdb, audits, stored_row
from tests.web.bus_commands import published
from tests.web.conftest import csrf_token

nats_server = bus_commands.nats_server  # a server of each test's own

PAGE = "/admin/hr-sync/"
AT = datetime.fromtimestamp(NOW, UTC)
KEY = "bamboo-key-0123456789abcdef"
TOKEN = "moodle-token-fedcba9876543210"
FORM: dict[str, str] = {
    "bamboohr_base_url": "https://api.bamboohr.com/api/gateway.php/acme",
    "bamboohr_api_key": KEY,
    "moodle_ws_url": "https://lms.example.com",
    "moodle_ws_token": TOKEN,
    "batch_size": "200",
    "lookback_days": "30",
    "cron": "0 6 * * *",
    "tz": "Europe/London",
    "map_idnumber": "employeeNumber",
    "map_profile": "costcentre = customCostCentre",
    "auth": "oidc",
    "max_suspend_share": "0.1",
    "notify_emails": "hr@example.com",
}
HR_ENV = ("BAMBOOHR_BASE_URL", "BAMBOOHR_API_KEY", "MOODLE_WS_URL", "MOODLE_WS_TOKEN",
          "HR_SYNC_BATCH_SIZE", "HR_SYNC_LOOKBACK_DAYS", "HR_SYNC_MAX_SUSPEND_SHARE",
          "HR_SYNC_AUTH", "HR_SYNC_ALLOW_PRIVATE_HOSTS", "HR_SYNC_NOTIFY")  # fmt: skip


@pytest.fixture(autouse=True)
def no_hr_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in HR_ENV:
        monkeypatch.delenv(name, raising=False)


def stored(app) -> HrSyncConfig | None:  # type: ignore[no-untyped-def]
    return stored_row(app, HrSyncConfig, SETTINGS_ROW)


def set_cursor(app, since: str = "2026-11-01T00:00:00Z", offset: int = 400) -> None:  # type: ignore[no-untyped-def]
    with appdb(app).transaction() as db:
        db.merge(HrSyncCursor(id=SETTINGS_ROW, since=since, offset=offset, updated_at=AT))


def cursor_of(app) -> tuple[str, int] | None:  # type: ignore[no-untyped-def]
    with appdb(app).transaction() as db:
        row = db.get(HrSyncCursor, SETTINGS_ROW)
        return None if row is None else (row.since, row.offset)


def add_run(app, **values: Any) -> int:  # type: ignore[no-untyped-def]
    defaults: dict[str, Any] = {"trigger": "schedule", "dry_run": False, "status": "ok",
                                "started_at": AT - timedelta(hours=1),
                                "finished_at": AT - timedelta(hours=1) + timedelta(seconds=42),
                                "duration_ms": 42_000, "summary_json": "{}"}  # fmt: skip
    with appdb(app).transaction() as db:
        run = HrSyncRun(**{**defaults, **values})
        db.add(run)
        db.flush()
        return int(run.id)


def post(client, path: str, **data: str):  # type: ignore[no-untyped-def]
    return client.post(path, data={"csrf_token": csrf_token(client, PAGE), **data})


# --- access ------------------------------------------------------------------------------------


@pytest.mark.parametrize("username", ["mgr_a", "dept_a", "teacher_a", "ana"])
def test_anyone_but_a_site_admin_is_refused_every_route_and_method(
    app, client_as, nats_server, username
):
    set_cursor(app)
    run_id = add_run(app)
    client = client_as(username)
    token = csrf_token(client, "/dashboards/")
    for path in (PAGE, f"{PAGE}reset-cursor", f"{PAGE}runs/{run_id}"):
        assert client.get(path).status_code == 403, path
    for path in (PAGE, f"{PAGE}run", f"{PAGE}reset-cursor"):
        response = client.post(path, data={**FORM, "csrf_token": token, "dry_run": "1"})
        assert response.status_code == 403, path
    assert stored(app) is None and cursor_of(app) is not None
    assert published(nats_server.url) == []
    assert len(audits(app, "access_denied")) == 6
    assert audits(app, "hr_sync_run_now") == audits(app, "hr_sync_cursor_reset") == []
    assert "HR sync" not in client.get("/dashboards/").get_data(as_text=True)


def test_the_menu_shows_hr_sync_to_a_site_admin(client_as):
    page = client_as("admin").get("/dashboards/").get_data(as_text=True)
    assert f'href="{PAGE}"' in page and "HR sync" in page


def test_every_form_needs_its_csrf_token(app, client_as, nats_server):
    set_cursor(app)
    client = client_as("admin")
    for path in (PAGE, f"{PAGE}run", f"{PAGE}reset-cursor"):
        assert client.post(path, data=FORM).status_code == 400, path
        assert client.post(path, data={**FORM, "csrf_token": "forged"}).status_code == 400, path
    assert stored(app) is None and cursor_of(app) == ("2026-11-01T00:00:00Z", 400)
    assert published(nats_server.url) == []
    assert audits(app, "hr_sync_settings_saved") == audits(app, "hr_sync_run_now") == []


# --- the settings form -------------------------------------------------------------------------


def test_the_first_visit_shows_defaults_no_cursor_and_no_runs(client_as):
    page = client_as("admin").get(PAGE).get_data(as_text=True)
    assert 'id="lookback_days" name="lookback_days" inputmode="numeric" value="30"' in page
    assert 'placeholder="workEmail"' in page and 'placeholder="division|location"' in page
    assert "none yet: the next run starts 30 days back" in page
    assert "not scheduled" in page and "No runs yet." in page


def test_saving_stores_the_settings_and_the_secrets_never_come_back(app, site, client_as):
    client = client_as("admin")
    response = post(client, PAGE, **FORM)
    assert response.status_code == 302 and response.location.endswith(PAGE)
    row = stored(app)
    assert row is not None
    assert (row.cron, row.tz, row.batch_size) == ("0 6 * * *", "Europe/London", 200)
    assert json.loads(decrypt(row.secrets, TEST_SECRET))["bamboohr_api_key"] == KEY
    page = client.get(PAGE).get_data(as_text=True)
    assert "Saved the HR sync settings." in page
    assert KEY not in page and TOKEN not in page
    assert "Stored: ••••cdef. Leave blank to keep it." in page
    assert 'value="https://api.bamboohr.com/api/gateway.php/acme"' in page
    assert "costcentre = customCostCentre" in page
    assert "<code>0 6 * * *</code> in Europe/London; next" in page
    [entry] = audits(app, "hr_sync_settings_saved")
    assert entry.userid == site.users["admin"]
    assert KEY not in entry.details and TOKEN not in entry.details
    # Saved again with the secrets blank: kept.
    post(client, PAGE, **{**FORM, "bamboohr_api_key": "", "moodle_ws_token": "", "batch_size": "5"})
    row = stored(app)
    assert row is not None and row.batch_size == 5
    assert json.loads(decrypt(row.secrets, TEST_SECRET)) == {"bamboohr_api_key": KEY,
                                                            "moodle_ws_token": TOKEN}  # fmt: skip


def test_a_refused_save_is_422_with_every_error_by_its_field_and_the_input_kept(app, client_as):
    client = client_as("admin")
    bad = {**FORM, "bamboohr_base_url": "https://169.254.169.254/api/gateway.php/x",
           "lookback_days": "0", "cron": "0 25 * * *", "map_email": "<b>bad</b> field",
           "notify_emails": "hr@example.com\nnope"}  # fmt: skip
    response = post(client, PAGE, **bad)
    assert response.status_code == 422
    page = response.get_data(as_text=True)
    assert "Please fix these 5 problems" in page
    for name in ("bamboohr_base_url", "lookback_days", "cron", "map_email", "notify_emails"):
        assert f'<p class="field-error" id="error-{name}-1">' in page, name
        assert f'<a href="#{name}">' in page
    assert 'value="https://169.254.169.254/api/gateway.php/x"' in page
    assert 'value="0 25 * * *"' in page and "&lt;b&gt;bad&lt;/b&gt; field" in page
    assert "<b>bad</b>" not in page
    assert "hr@example.com\nnope</textarea>" in page
    # The secrets typed are not written back into the page.
    assert KEY not in page and TOKEN not in page
    assert "BambooHR API key and Moodle web-service token you typed are not shown again" in page
    assert stored(app) is None and audits(app, "hr_sync_settings_saved") == []


def test_fields_the_environment_sets_are_greyed_and_its_secrets_never_shown(
    app, client_as, monkeypatch
):
    monkeypatch.setenv("BAMBOOHR_BASE_URL", "https://env.bamboohr.com/api")
    monkeypatch.setenv("BAMBOOHR_API_KEY", "env-secret-key-abcdef123456")
    monkeypatch.setenv("HR_SYNC_BATCH_SIZE", "77")
    monkeypatch.setenv("HR_SYNC_NOTIFY", "ops@example.com, sec@example.com")
    client = client_as("admin")
    page = client.get(PAGE).get_data(as_text=True)
    assert "env-secret-key-abcdef123456" not in page
    greyed = (("bamboohr_base_url", "BAMBOOHR_BASE_URL"), ("bamboohr_api_key", "BAMBOOHR_API_KEY"),
              ("batch_size", "HR_SYNC_BATCH_SIZE"))  # fmt: skip
    for name, var in greyed:
        tag = re.search(rf'<input id="{name}"[^>]*>', page)
        assert tag and " disabled" in tag.group(0), name
        assert f'<p class="small env-note" id="env-{name}">Set by <code>{var}</code>' in page
    assert 'value="https://env.bamboohr.com/api"' in page
    notify = re.search(r'<textarea id="notify_emails"[^>]*>([^<]*)</textarea>', page)
    assert notify and " disabled" in notify.group(0)
    assert notify.group(1) == "ops@example.com\nsec@example.com"
    assert "Set by <code>HR_SYNC_NOTIFY</code>" in page
    moodle = re.search(r'<input id="moodle_ws_url"[^>]*>', page)
    assert moodle and " disabled" not in moodle.group(0)
    # A save without those fields (the browser does not send disabled ones) works.
    form = {k: v for k, v in FORM.items() if k not in ("bamboohr_base_url", "bamboohr_api_key",
                                                       "batch_size")}  # fmt: skip
    assert post(client, PAGE, **form).status_code == 302
    row = stored(app)
    assert row is not None and (row.bamboohr_base_url, row.batch_size) == ("", 0)


def test_the_site_setting_lets_the_local_fakes_be_saved(app, client_as, monkeypatch):
    local = {**FORM, "bamboohr_base_url": "http://127.0.0.1:8123/api/gateway.php/acme",
             "moodle_ws_url": "http://127.0.0.1:8124"}  # fmt: skip
    client = client_as("admin")
    assert post(client, PAGE, **local).status_code == 422
    monkeypatch.setenv("HR_SYNC_ALLOW_PRIVATE_HOSTS", "1")
    assert post(client, PAGE, **local).status_code == 302


# --- run now, dry run ---------------------------------------------------------------------------


def test_run_now_and_dry_run_each_publish_exactly_one_command(app, site, client_as, nats_server):
    client = client_as("admin")
    response = post(client, f"{PAGE}run")
    assert response.status_code == 302 and response.location.endswith(f"{PAGE}#runs")
    [(subject, msg_id, payload)] = published(nats_server.url)
    assert subject == "mr.cmd.sync.bamboohr"
    # A real run is a run of the hr_sync task (recorded, alerting); a dry run is not.
    assert payload == {"dry_run": False, "trigger": "manual", "startedby": site.users["admin"],
                       "task": "hr_sync"}  # fmt: skip
    assert re.fullmatch(r"hrsync:manual:[0-9a-f]{12}", msg_id)
    assert "Queued: the HR sync run starts shortly" in client.get(PAGE).get_data(as_text=True)
    post(client, f"{PAGE}run", dry_run="1")
    first, second = published(nats_server.url)
    assert first == (subject, msg_id, payload)
    assert second[2] == {"dry_run": True, "trigger": "manual", "startedby": site.users["admin"]}
    assert second[1] != msg_id
    entries = audits(app, "hr_sync_run_now")
    admin = site.users["admin"]
    assert [(e.userid, e.outcome, json.loads(e.details)["dry_run"]) for e in entries] == [
        (admin, "success", False), (admin, "success", True)]  # fmt: skip


def test_run_now_with_no_bus_says_so_and_queues_nothing(app, client_as, nats_server):
    client = client_as("admin")
    token = csrf_token(client, PAGE)
    nats_server.stop()
    response = client.post(f"{PAGE}run", data={"csrf_token": token}, follow_redirects=True)
    assert response.status_code == 200
    page = response.get_data(as_text=True)
    assert "Not queued: the message bus cannot be reached" in page and "Queued:" not in page
    [entry] = audits(app, "hr_sync_run_now")
    assert entry.outcome == "failed"


# --- the cursor ---------------------------------------------------------------------------------


def test_reset_cursor_asks_first_then_deletes_it_audited(app, site, client_as):
    set_cursor(app)
    client = client_as("admin")
    page = client.get(PAGE).get_data(as_text=True)
    assert "since <code>2026-11-01T00:00:00Z</code>, offset 400" in page
    confirm = client.get(f"{PAGE}reset-cursor").get_data(as_text=True)
    assert "Reset the cursor?" in confirm and "starts again from 30 days back" in confirm
    assert cursor_of(app) is not None  # asking changed nothing
    response = post(client, f"{PAGE}reset-cursor")
    assert response.status_code == 302 and cursor_of(app) is None
    [entry] = audits(app, "hr_sync_cursor_reset")
    assert entry.userid == site.users["admin"]
    assert json.loads(entry.details) == {"before": {"since": "2026-11-01T00:00:00Z",
                                                    "offset": 400}}  # fmt: skip
    assert "none yet: the next run starts 30 days back" in client.get(PAGE).get_data(as_text=True)
    # Again, with no cursor: said so, still audited.
    post(client, f"{PAGE}reset-cursor")
    assert len(audits(app, "hr_sync_cursor_reset")) == 2


# --- history and a run's page ------------------------------------------------------------------


def test_the_history_lists_runs_newest_first_with_counts_and_errors(app, site, client_as):
    site.moodle._update("user", site.users["admin"], timezone="Asia/Tokyo")
    ok = add_run(app, started_at=AT - timedelta(hours=3), summary_json=json.dumps(
        {"created": 3, "updated": 1, "suspended": 1, "unsuspended": 0, "unchanged": 9,
         "skipped": 0, "errors": []}))  # fmt: skip
    one_error = json.dumps({"errors": [{"employee_id": "7", "error": "x"}]})
    failed = add_run(app, trigger="manual", status="aborted", started_at=AT - timedelta(hours=1),
                     error="would suspend 40 of 100 active users (max 10%)",
                     summary_json=one_error)  # fmt: skip
    page = client_as("admin").get(PAGE).get_data(as_text=True)
    assert page.index(f'id="run-{failed}"') < page.index(f'id="run-{ok}"')
    ok_row = re.search(rf'<tr id="run-{ok}">(.*?)</tr>', page, re.S)
    assert ok_row and "3 created" in ok_row.group(1) and "timetable" in ok_row.group(1)
    assert "JST" in ok_row.group(1)  # in the viewer's zone
    failed_row = re.search(rf'<tr id="run-{failed}">(.*?)</tr>', page, re.S)
    assert failed_row and "status-aborted" in failed_row.group(1)
    assert "would suspend 40 of 100" in failed_row.group(1) and "1 employee" in failed_row.group(1)
    assert "run now" in failed_row.group(1)


def test_a_dry_runs_page_shows_the_summary_and_the_diff_escaped(app, client_as):
    summary = {"created": 1, "updated": 1, "suspended": 0, "unsuspended": 0, "unchanged": 0,
               "skipped": 1, "dry_run": True, "duration_s": 1.5,
               "cursor_before": {"since": "2026-11-01T00:00:00Z", "offset": 0},
               "cursor_after": {"since": "2026-11-01T00:00:00Z", "offset": 0},
               "errors": [{"employee_id": "9", "error": "<script>alert(1)</script>"}]}  # fmt: skip
    diff = [
        {"employee_id": "41", "action": "update", "userid": 12,
         "changes": {"email": {"old": "ann@old.example", "new": "ann@new.example"},
                     "department": {"old": "", "new": "Sales"}}},
        {"employee_id": "42", "action": "create", "userid": None,
         "changes": {"username": {"old": None, "new": "<b>bo</b>"}}},
        {"employee_id": "43", "action": "skip", "userid": 5, "reason": "hand-made account"},
    ]  # fmt: skip
    run_id = add_run(app, dry_run=True, trigger="manual", summary_json=json.dumps(summary),
                     diff_json=json.dumps(diff))  # fmt: skip
    client = client_as("admin")
    page = client.get(f"{PAGE}runs/{run_id}").get_data(as_text=True)
    assert f"Dry run {run_id}" in page
    assert "<del>ann@old.example</del> → <ins>ann@new.example</ins>" in page
    assert '<span class="muted" title="empty">∅</span> → <ins>Sales</ins>' in page
    assert "&lt;b&gt;bo&lt;/b&gt;" in page and "<b>bo</b>" not in page
    assert "hand-made account" in page
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page and "<script>alert" not in page
    assert "since <code>2026-11-01T00:00:00Z</code>, offset 0" in page
    assert re.search(r"<th scope=\"row\">created</th><td class=\"num\">1</td>", page)
    # A real run has no diff section; an unknown run is 404.
    real = add_run(app)
    assert 'id="diff"' not in client.get(f"{PAGE}runs/{real}").get_data(as_text=True)
    assert client.get(f"{PAGE}runs/999999").status_code == 404
