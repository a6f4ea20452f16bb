"""Custom SQL reports on the web: writing, checking, previewing, saving and deleting them
(site admins with `customreports`), running them as `/reports/custom_<id>` with the page, data,
exports, API and CLI, and the company binding of a company-safe report for managers."""

from __future__ import annotations

import csv
import html
import io
import json
import re
import subprocess
import sys

import pytest
from openpyxl import load_workbook
from sqlalchemy import func, select

from common.access.api_tokens import SCOPES, issue
from common.access.viewer import load_viewer
from common.customreports.store import save_report
from common.models.access import AuditLog
from common.models.custom import CustomReport
from tests.support import REPO, TEST_SECRET
from tests.web.conftest import csrf_token
from web.runs.execution import EXTENSION

# Acme's or Bolt's learners (by `:companyid`), each with when their account was made; the
# "quoted" alias is read alike by the MySQL and PostgreSQL dialects a site's SQL is checked in.
LEARNERS_SQL = """SELECT u.username, u.firstname AS "First name", u.timecreated
FROM {user} u
JOIN {company_users} cu ON cu.userid = u.id
WHERE cu.companyid = :companyid AND u.deleted = 0"""
ACME = {"ana", "ben", "cara", "dan", "mgr_a", "multi", "dept_a", "mgr_a_in_b", "teacher_a"}
BOLT = {"yuri", "zoe", "xena", "mgr_b", "rep_b", "multi", "mgr_a_in_b"}
EDITOR_ROUTES = [("GET", "/custom-reports/"), ("GET", "/custom-reports/new"),
                 ("POST", "/custom-reports/new"), ("GET", "/custom-reports/{id}"),
                 ("POST", "/custom-reports/{id}"), ("GET", "/custom-reports/{id}/delete"),
                 ("POST", "/custom-reports/{id}/delete")]  # fmt: skip


def submit(client, path: str, **fields):  # type: ignore[no-untyped-def]
    token = csrf_token(client, "/dashboards/")
    data = {"csrf_token": token, "action": "save", **fields}
    return client.post(path, data=data)


def create(client, title: str = "Company learners", sql: str = LEARNERS_SQL,
           company_safe: bool = True, **fields) -> int:  # type: ignore[no-untyped-def]  # fmt: skip
    extra = {"company_safe": "1"} if company_safe else {}
    response = submit(client, "/custom-reports/new", title=title, sql=sql, **extra, **fields)
    assert response.status_code == 302, response.get_data(as_text=True)[:2000]
    return int(response.headers["Location"].rstrip("/").rsplit("/", 1)[1])


def stored_count(app) -> int:  # type: ignore[no-untyped-def]
    with app.extensions["manireports"].appdb.transaction() as session:
        return int(session.scalar(select(func.count()).select_from(CustomReport)) or 0)


def audits(app, action: str) -> list[AuditLog]:  # type: ignore[no-untyped-def]
    with app.extensions["manireports"].appdb.transaction() as session:
        return list(session.scalars(select(AuditLog).where(AuditLog.action == action)))


def usernames(response) -> set[str]:  # type: ignore[no-untyped-def]
    assert response.status_code == 200, response.get_data(as_text=True)[:500]
    return {row["username"] for row in response.get_json()["rows"]}


def test_a_saved_report_runs_as_a_report_like_any_other(app, site, client_as):
    admin = client_as("admin")
    report_id = create(admin)
    name = f"custom_{report_id}"
    listing = admin.get("/custom-reports/").get_data(as_text=True)
    assert "Company learners" in listing and f"/reports/{name}" in listing
    assert "Admin User" in listing or "by " in listing
    acme = site.companies["A"]
    page = admin.get(f"/reports/{name}?company={acme}")
    assert page.status_code == 200 and "Company learners" in page.get_data(as_text=True)
    assert usernames(admin.get(f"/reports/{name}/data?company={acme}")) == ACME
    data = admin.get(f"/reports/{name}/data?company={acme}&sort=username&dir=desc&page_size=3")
    body = data.get_json()
    assert [r["username"] for r in body["rows"]] == sorted(ACME, reverse=True)[:3]
    assert body["pagination"]["total"] == len(ACME)
    assert [c["type"] for c in body["columns"]] == ["text", "text", "datetime"]
    exported = admin.get(f"/reports/{name}/export.csv?company={acme}&sort=username")
    table = list(csv.reader(io.StringIO(exported.get_data(as_text=True))))
    assert table[0][:2] == ["username", "First name"]
    assert [row[0] for row in table[1:]] == sorted(ACME)
    xlsx = admin.get(f"/reports/{name}/export.xlsx?company={acme}")
    book = load_workbook(io.BytesIO(xlsx.get_data()), read_only=True)
    cells = {str(c) for sheet in book for row in sheet.iter_rows(values_only=True) for c in row}
    assert ACME <= cells and not (BOLT - ACME) & cells
    assert admin.get(f"/reports/{name}/export.pdf?company={acme}").status_code == 200
    index = admin.get("/reports/").get_data(as_text=True)
    assert f"/reports/{name}" in index


def test_a_site_admin_on_every_company_is_asked_to_choose_one(app, client_as):
    admin = client_as("admin")
    name = f"custom_{create(admin)}"
    answer = admin.get(f"/reports/{name}/data")
    assert answer.status_code == 400
    assert "choose" in answer.get_json()["error"]


def test_a_rejected_query_is_never_saved_and_the_form_keeps_every_input(app, client_as):
    admin = client_as("admin")
    sql = "SELECT u.username\nFROM {user} u\nJOIN {config} c ON c.id = u.id"
    before = stored_count(app)
    response = submit(admin, "/custom-reports/new", title="Sneaky <title>",
                      description="kept too", sql=sql, company_safe="1")  # fmt: skip
    page = response.get_data(as_text=True)
    assert response.status_code == 422
    assert "line 3, column" in page and "config" in page
    assert 'value="Sneaky &lt;title&gt;"' in page and "kept too" in page
    assert html.escape(sql, quote=False) in page
    assert 'id="company_safe" name="company_safe" value="1" checked' in page
    assert 'class="rejected-line"' in page
    assert stored_count(app) == before
    assert audits(app, "custom_report_created") == []


def test_check_shows_what_the_query_reads_and_saves_nothing(app, client_as):
    admin = client_as("admin")
    response = submit(admin, "/custom-reports/new", title="t", sql=LEARNERS_SQL, action="check")
    page = response.get_data(as_text=True)
    assert response.status_code == 200
    assert "company_users, user" in page and "<code>:companyid</code>" in page
    assert 'name="param_name" value="companyid"' in page
    assert stored_count(app) == 0


def test_preview_shows_the_first_rows_of_the_chosen_company(app, site, client_as):
    admin = client_as("admin")
    response = submit(admin, "/custom-reports/new", title="t", sql=LEARNERS_SQL,
                      action="preview", preview_company=str(site.companies["B"]),
                      param_name="companyid", param_type_companyid="company")  # fmt: skip
    page = response.get_data(as_text=True)
    assert response.status_code == 200, page[:1000]
    preview = page.split('id="preview"', 1)[1]
    assert "<td>yuri</td>" in preview and "<td>ana</td>" not in preview
    assert stored_count(app) == 0


def test_company_safe_needs_the_companyid_parameter(app, client_as):
    admin = client_as("admin")
    response = submit(admin, "/custom-reports/new", title="All users", company_safe="1",
                      sql="SELECT u.username FROM {user} u")  # fmt: skip
    assert response.status_code == 422
    assert "company-safe report must use :companyid" in response.get_data(as_text=True)
    assert stored_count(app) == 0


def test_bad_parameter_values_and_types_are_named(app, client_as):
    admin = client_as("admin")
    sql = "SELECT u.username FROM {user} u WHERE u.id > :minid"
    response = submit(admin, "/custom-reports/new", title="Ids", sql=sql, param_name="minid",
                      param_type_minid="int", param_default_minid="lots")  # fmt: skip
    assert response.status_code == 422
    page = html.unescape(response.get_data(as_text=True))
    assert "'lots' is not a whole number" in page
    assert 'name="param_default_minid" value="lots"' in page  # kept, to be corrected
    report_id = create(admin, title="Ids", sql=sql, company_safe=False, param_name="minid",
                       param_type_minid="int", param_required_minid="1")  # fmt: skip
    data = admin.get(f"/reports/custom_{report_id}/data?minid=abc")
    assert data.status_code == 422 and data.get_json()["field"] == "minid"
    assert admin.get(f"/reports/custom_{report_id}/data").status_code == 422  # required
    page = admin.get(f"/reports/custom_{report_id}")  # its filter bar asks for the value
    assert page.status_code == 200 and 'id="filter-minid"' in page.get_data(as_text=True)
    assert usernames(admin.get(f"/reports/custom_{report_id}/data?minid=0"))


def test_create_change_and_delete_are_audited_with_the_title(app, client_as):
    admin = client_as("admin")
    report_id = create(admin)
    created = audits(app, "custom_report_created")
    assert len(created) == 1 and json.loads(created[0].details)["title"] == "Company learners"
    response = submit(admin, f"/custom-reports/{report_id}", title="Learners by company",
                      sql=LEARNERS_SQL + " ORDER BY u.username", company_safe="1")  # fmt: skip
    assert response.status_code == 302
    changed = json.loads(audits(app, "custom_report_changed")[0].details)
    assert changed["title"] == "Learners by company"
    assert changed["previous_title"] == "Company learners"
    assert changed["changed"] == ["sql", "title"]
    assert admin.get(f"/custom-reports/{report_id}/delete").status_code == 200
    # Without the CSRF token nothing is deleted.
    assert admin.post(f"/custom-reports/{report_id}/delete").status_code == 400
    assert stored_count(app) == 1
    assert submit(admin, f"/custom-reports/{report_id}/delete").status_code == 302
    assert stored_count(app) == 0
    deleted = audits(app, "custom_report_deleted")
    assert json.loads(deleted[0].details)["title"] == "Learners by company"
    assert admin.get(f"/reports/custom_{report_id}").status_code == 404


def test_a_manager_runs_a_company_safe_report_for_their_company_only(app, site, client_as):
    name = f"custom_{create(client_as('admin'))}"
    manager = client_as("mgr_a")
    assert usernames(manager.get(f"/reports/{name}/data")) == ACME
    assert f"/reports/{name}" in manager.get("/reports/").get_data(as_text=True)
    bolt = site.companies["B"]
    denied_before = len(audits(app, "access_denied"))
    for path in (f"/reports/{name}/data?companyid={bolt}", f"/reports/{name}?companyid={bolt}",
                 f"/reports/{name}/export.csv?companyid={bolt}",
                 f"/reports/{name}/data?company={bolt}"):  # fmt: skip
        answer = manager.get(path)
        assert answer.status_code == 403, path
        assert "yuri" not in answer.get_data(as_text=True)
    assert len(audits(app, "access_denied")) == denied_before + 4
    # Bolt's manager gets Bolt's rows from the same report.
    assert usernames(client_as("mgr_b").get(f"/reports/{name}/data")) == BOLT
    # Acme's manager who is a plain member of Bolt sees only their own data there: not enough.
    both = client_as("mgr_a_in_b")
    assert usernames(both.get(f"/reports/{name}/data")) == ACME
    assert both.get(f"/reports/{name}/data?company={bolt}").status_code == 403


def test_a_report_that_is_not_company_safe_is_for_site_admins_only(app, site, client_as):
    admin = client_as("admin")
    report_id = create(admin, title="Secret admin list", company_safe=False,
                       sql="SELECT u.username FROM {user} u")  # fmt: skip
    name = f"custom_{report_id}"
    for username in ("mgr_a", "mgr_b", "dept_a", "rep_b", "teacher_a", "ana"):
        client = client_as(username)
        assert name not in client.get("/reports/").get_data(as_text=True)
        for path in (f"/reports/{name}", f"/reports/{name}/data",
                     f"/reports/{name}/export.csv", f"/reports/{name}/export.xlsx"):  # fmt: skip
            answer = client.get(path)
            assert answer.status_code == 403, (username, path)
            assert "Secret admin list" not in answer.get_data(as_text=True)
    # A department manager may not run a company-safe one either (it reads a whole company).
    safe = f"custom_{create(admin)}"
    assert client_as("dept_a").get(f"/reports/{safe}/data").status_code == 403


@pytest.mark.parametrize("username", ["mgr_a", "mgr_b", "dept_a", "rep_b", "teacher_a", "ana"])
def test_no_one_but_site_admins_reaches_the_editor(app, site, client_as, username):
    admin = client_as("admin")
    report_id = create(admin)
    client = client_as(username)
    token = csrf_token(client, "/dashboards/")
    for method, path in EDITOR_ROUTES:
        path = path.format(id=report_id)
        denied_before = len(audits(app, "access_denied"))
        form = {"csrf_token": token, "title": "Hijacked", "sql": "SELECT 1 AS x",
                "action": "save", "company": str(site.companies["B"])}  # fmt: skip
        answer = client.open(path, method=method, data=form if method == "POST" else None)
        assert answer.status_code == 403, (method, path, answer.status_code)
        assert "Company learners" not in answer.get_data(as_text=True)
        assert len(audits(app, "access_denied")) == denied_before + 1
    with app.extensions["manireports"].appdb.transaction() as session:
        titles = list(session.scalars(select(CustomReport.title)))
    assert titles == ["Company learners"]


def test_the_menu_offers_custom_reports_to_site_admins_only(client_as):
    entry = 'href="/custom-reports/"'
    assert entry in client_as("admin").get("/dashboards/").get_data(as_text=True)
    assert entry not in client_as("mgr_a").get("/dashboards/").get_data(as_text=True)


def _token(app, site, username: str) -> str:  # type: ignore[no-untyped-def]
    with app.extensions["manireports"].appdb.transaction() as session:
        plaintext, _ = issue(session, site.users[username], "t", tuple(SCOPES), None, None)
    return plaintext


def test_the_api_lists_and_runs_custom_reports_with_the_same_binding(app, site, client_as):
    admin = client_as("admin")
    safe = f"custom_{create(admin)}"
    secret = f"custom_{create(admin, title='Admin only', company_safe=False)}"
    api = app.test_client()
    manager = {"Authorization": f"Bearer {_token(app, site, 'mgr_a')}"}
    listed = {r["name"] for r in api.get("/api/v1/reports", headers=manager).get_json()["reports"]}
    assert safe in listed and secret not in listed
    assert usernames(api.get(f"/api/v1/reports/{safe}", headers=manager)) == ACME
    meta = api.get(f"/api/v1/reports/{safe}/metadata", headers=manager).get_json()
    assert [c["key"] for c in meta["columns"]] == ["username", "first_name", "timecreated"]
    bolt = site.companies["B"]
    assert api.get(f"/api/v1/reports/{safe}?companyid={bolt}", headers=manager).status_code == 403
    assert api.get(f"/api/v1/reports/{secret}", headers=manager).status_code == 403
    exported = api.get(f"/api/v1/reports/{safe}/export.csv", headers=manager)
    assert exported.status_code == 200 and "yuri" not in exported.get_data(as_text=True)
    admin_token = {"Authorization": f"Bearer {_token(app, site, 'admin')}"}
    everything = api.get("/api/v1/reports", headers=admin_token).get_json()["reports"]
    assert secret in {r["name"] for r in everything}


def test_the_cli_lists_and_runs_a_custom_report(app, site, client_as, tmp_path):
    report_id = create(client_as("admin"))
    settings = app.extensions["manireports"].settings
    env = {"PATH": "/usr/bin:/bin", "MANIREPORTS_INSTANCE": str(tmp_path / "cli"),
           "MOODLE_DATABASE_URL": site.url, "DATABASE_URL": settings.database_url,
           "SECRET_KEY": TEST_SECRET}  # fmt: skip

    def cli(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "-m", "cli.main", "report", *args], env=env,
                              cwd=REPO, capture_output=True, text=True, timeout=120)  # fmt: skip

    listed = cli("list")
    assert listed.returncode == 0 and f"custom_{report_id}" in listed.stdout
    ran = cli("run", f"custom_{report_id}", "--format", "json", "--company",
              str(site.companies["B"]))  # fmt: skip
    assert ran.returncode == 0, ran.stderr
    assert {r["username"] for r in json.loads(ran.stdout)["rows"]} == BOLT
    unbound = cli("run", f"custom_{report_id}")
    assert unbound.returncode == 2 and "choose" in unbound.stderr
    missing = cli("run", "custom_999999")
    assert missing.returncode == 2 and "no report named 'custom_999999'" in missing.stderr


def test_the_edit_page_names_the_last_editor_and_links_the_run(app, client_as):
    admin = client_as("admin")
    report_id = create(admin)
    page = admin.get(f"/custom-reports/{report_id}").get_data(as_text=True)
    assert f'href="/reports/custom_{report_id}"' in page
    assert re.search(r'name="param_type_companyid" value="company"', page)
    assert 'value="Company learners"' in page


def test_a_built_report_is_not_edited_as_sql(app, site, client_as):
    ctx = app.extensions["manireports"]
    with ctx.appdb.transaction() as session:
        admin_viewer = load_viewer(ctx.moodle, session, site.users["admin"])
    assert admin_viewer is not None
    built = save_report(ctx.appdb, report_id=None, kind="builder", title="Built",
                        description="", sql_text="SELECT u.username FROM {user} u",
                        builder_json='{"tables": ["user"]}', params=[], company_safe=False,
                        actor=admin_viewer, source=ctx.moodle)  # fmt: skip
    admin = client_as("admin")
    assert admin.get(f"/custom-reports/{built.id}").status_code in (302, 404)
    answer = submit(admin, f"/custom-reports/{built.id}", title="Now SQL", sql="SELECT 1 AS x")
    assert answer.status_code in (302, 404)
    with ctx.appdb.transaction() as session:
        row = session.get(CustomReport, built.id)
        assert (row.kind, row.title, row.builder_json) == ("builder", "Built",
                                                           '{"tables": ["user"]}')  # fmt: skip


def test_a_preview_or_save_while_every_slot_is_busy_keeps_the_form(app, client_as):
    """The editor's own queries count against REPORT_MAX_CONCURRENT like any report run: when
    no slot comes free the form comes back with the input and the reason, nothing saved."""
    admin = client_as("admin")
    limiter = app.extensions[EXTENSION]
    holds = [limiter.acquire(wait_s=5) for _ in range(limiter.limit)]
    try:
        for action in ("preview", "save"):
            response = submit(admin, "/custom-reports/new", title="Busy one", sql=LEARNERS_SQL,
                              action=action, company_safe="1")  # fmt: skip
            page = html.unescape(response.get_data(as_text=True))
            assert response.status_code == 422, page[:1000]
            assert "every report slot is busy" in page and 'value="Busy one"' in page
    finally:
        for hold in holds:
            hold.release()
    assert stored_count(app) == 0
    assert create(admin, title="Free again") > 0
