"""The report builder's page and JSON endpoints: who may use them, CSRF, errors as JSON that
keep nothing from the author, and a saved report that runs and exports as `custom_<id>`."""

from __future__ import annotations

import json
from typing import Any

import pytest
from sqlalchemy import func, select

from common.models.access import AuditLog
from common.models.custom import CustomReport
from tests.web.conftest import csrf_token
from web.runs.execution import EXTENSION

BUILT = {
    "base": "user",
    "joins": [{"relation": "course_completions.userid=user.id"},
              {"relation": "course_completions.course=course.id"}],
    "columns": [{"table": "user", "column": "firstname"},
                {"table": "course", "column": "fullname"},
                {"table": "course_completions", "column": "timecompleted"}],
    "filters": [{"table": "course", "column": "fullname", "op": "eq", "value": "Fire Safety"}],
    "sort": [{"column": 0, "direction": "asc"}],
}  # fmt: skip


def post_json(client, path: str, body: Any, token: str | None):  # type: ignore[no-untyped-def]
    headers = {"Accept": "application/json"}
    if token is not None:
        headers["X-CSRFToken"] = token
    return client.post(path, data=json.dumps(body), content_type="application/json",
                       headers=headers)  # fmt: skip


@pytest.fixture
def admin(client_as):  # type: ignore[no-untyped-def]
    client = client_as("admin")
    return client, csrf_token(client, "/reportbuilder/")


def test_the_builder_page_offers_the_sites_tables_by_label(admin):  # type: ignore[no-untyped-def]
    client, _ = admin
    page = client.get("/reportbuilder/").get_data(as_text=True)
    schema = json.loads(page.split('id="rb-schema">', 1)[1].split("</script>", 1)[0])
    labels = {t["label"] for t in schema["tables"]}
    assert {"Learners", "Courses", "Course completions", "Companies"} <= labels
    names = {t["name"] for t in schema["tables"]}
    assert "config" not in names and "sessions" not in names
    user = next(t for t in schema["tables"] if t["name"] == "user")
    assert not {"password", "secret"} & {c["name"] for c in user["columns"]}
    assert "Report builder" in page


def test_preview_shows_the_first_rows_the_sql_and_its_bound_values(admin):  # type: ignore[no-untyped-def]
    client, token = admin
    response = post_json(client, "/reportbuilder/preview", {"document": BUILT}, token)
    assert response.status_code == 200, response.get_data(as_text=True)
    body = response.get_json()
    assert [c["label"] for c in body["columns"]] == ["First name", "Course name", "Completed"]
    assert [r[0] for r in body["rows"]] == ["Ana", "Ben", "Dan"]
    assert all(r[1] == "Fire Safety" for r in body["rows"])
    assert body["rows"][0][2].count("-") == 2  # a date in the viewer's zone, not a Unix time
    assert ":p1" in body["sql"] and "Fire Safety" not in body["sql"]
    assert body["values"] == [{"name": "p1", "type": "text", "label": "Course name =",
                               "value": "Fire Safety"}]  # fmt: skip


@pytest.mark.parametrize(
    ("document", "field", "said"),
    [
        ({**BUILT, "base": "config"}, "base", "config"),
        ({**BUILT, "columns": [{"table": "user", "column": "password"}]}, "columns[0]", "password"),
        ({**BUILT, "filters": [{"table": "user", "column": "id", "op": "eq",
                                "value": "1; DROP TABLE mdl_user"}]}, "filters[0].value", "whole"),
        ({**BUILT, "limit": 10**9}, "limit", "10000"),
        ("SELECT * FROM mdl_user", "builder", "not JSON"),
        (["user"], "builder", "JSON object"),
    ],
)  # fmt: skip
def test_a_bad_document_is_a_json_error_naming_it(admin, document, field, said):  # type: ignore[no-untyped-def]
    client, token = admin
    response = post_json(client, "/reportbuilder/preview", {"document": document}, token)
    assert response.status_code == 422
    body = response.get_json()
    assert body["ok"] is False
    assert body["errors"][0]["field"] == field and said in body["errors"][0]["error"]


def test_a_body_that_is_not_json_is_a_400(admin):  # type: ignore[no-untyped-def]
    client, token = admin
    response = client.post("/reportbuilder/preview", data={"document": "x", "csrf_token": token})
    assert response.status_code == 400


def test_every_post_needs_the_csrf_token(admin):  # type: ignore[no-untyped-def]
    client, _ = admin
    posts = (("/reportbuilder/preview", {"document": BUILT}),
             ("/reportbuilder/save", {"document": BUILT, "title": "No token"}))  # fmt: skip
    for path, body in posts:
        assert post_json(client, path, body, None).status_code == 400
        assert post_json(client, path, body, "forged").status_code == 400
    assert _reports(client) == 0


def _reports(client) -> int:  # type: ignore[no-untyped-def]
    with client.application.extensions["manireports"].appdb.transaction() as db:
        return int(db.scalar(select(func.count()).select_from(CustomReport)) or 0)


def test_values_lists_a_columns_distinct_values_never_a_credential(admin):  # type: ignore[no-untyped-def]
    client, _ = admin
    found = client.get(
        "/reportbuilder/values", query_string={"table": "course", "column": "fullname"}
    )
    assert found.status_code == 200
    values = found.get_json()["values"]
    assert "Fire Safety" in values and values == sorted(values) and len(values) <= 100
    for table, column in (("user", "password"), ("user", "secret"), ("enrol", "password"),
                          ("config", "value"), ("user", "timecreated")):  # fmt: skip
        refused = client.get(
            "/reportbuilder/values", query_string={"table": table, "column": column}
        )
        assert refused.status_code == 422, (table, column)
        assert refused.get_json()["ok"] is False


@pytest.mark.parametrize("username", ["mgr_a", "mgr_b", "dept_a", "teacher_a", "ana"])
def test_only_holders_of_customreports_may_use_the_builder(client_as, username):  # type: ignore[no-untyped-def]
    client = client_as(username)
    token = csrf_token(client, "/dashboards/")
    assert client.get("/reportbuilder/").status_code == 403
    assert client.get("/reportbuilder/values?table=user&column=firstname").status_code == 403
    for path in ("/reportbuilder/preview", "/reportbuilder/save"):
        response = post_json(client, path, {"document": BUILT, "title": "Mine"}, token)
        assert response.status_code == 403
        assert "Ana" not in response.get_data(as_text=True)
    assert _reports(client) == 0
    with client.application.extensions["manireports"].appdb.transaction() as db:
        denied = db.scalar(select(func.count()).where(AuditLog.action == "access_denied"))
    assert denied and denied >= 4
    assert "Report builder" not in client.get("/dashboards/").get_data(as_text=True)


def test_save_then_run_export_and_edit(admin, client_as):  # type: ignore[no-untyped-def]
    client, token = admin
    missing_title = post_json(
        client, "/reportbuilder/save", {"document": BUILT, "title": " "}, token
    )
    assert missing_title.status_code == 422
    assert missing_title.get_json()["errors"][0]["field"] == "title"
    saved = post_json(client, "/reportbuilder/save",
                      {"document": BUILT, "title": "Fire Safety completions"}, token)  # fmt: skip
    assert saved.status_code == 200, saved.get_data(as_text=True)
    body = saved.get_json()
    name = body["name"]
    assert name == f"custom_{body['id']}" and body["run_url"] == f"/reports/{name}"
    with client.application.extensions["manireports"].appdb.transaction() as db:
        row = db.get(CustomReport, body["id"])
        assert row is not None and row.kind == "builder"
        assert json.loads(row.builder_json)["base"] == "user"
        assert ":p1" in row.sql_text
        kinds = [c["kind"] for c in json.loads(row.columns_json)]
        assert kinds == ["text", "text", "datetime"]
    assert client.get(body["run_url"]).status_code == 200
    data = client.get(f"/reports/{name}/data").get_json()
    assert data["pagination"]["total"] == 3
    assert [c["kind"] for c in data["columns"]] == ["text", "text", "datetime"]
    csv = client.get(f"/reports/{name}/export.csv")
    assert csv.status_code == 200
    text = csv.get_data(as_text=True)
    assert "Ana" in text and "Dan" in text and "Yuri" not in text
    edit = client.get(body["edit_url"]).get_data(as_text=True)
    loaded = json.loads(edit.split('id="rb-document">', 1)[1].split("</script>", 1)[0])
    assert loaded["filters"][0]["value"] == "Fire Safety"
    assert 'value="Fire Safety completions"' in edit
    # Changed in place: the same name, a new filter value.
    changed = {**BUILT, "filters": [{**BUILT["filters"][0], "value": "Forklift"}]}
    again = post_json(client, "/reportbuilder/save", {"document": changed, "title": "Forklift",
                                                      "report_id": body["id"]}, token)  # fmt: skip
    assert again.get_json()["name"] == name
    assert "Yuri" in client.get(f"/reports/{name}/export.csv").get_data(as_text=True)
    # Another company's manager can neither open it nor its builder page.
    manager = client_as("mgr_b")
    assert manager.get(f"/reports/{name}").status_code in (403, 404)
    assert manager.get(f"/reports/{name}/export.csv").status_code in (403, 404)
    assert manager.get(body["edit_url"]).status_code == 403


def test_saving_over_a_report_that_is_not_built_is_refused(admin):  # type: ignore[no-untyped-def]
    client, token = admin
    response = post_json(client, "/reportbuilder/save",
                         {"document": BUILT, "title": "x", "report_id": 999}, token)  # fmt: skip
    assert response.status_code == 404
    assert client.get("/reportbuilder/999").status_code == 404


def test_a_company_safe_built_report_runs_for_each_managers_own_company(admin, client_as, site):  # type: ignore[no-untyped-def]
    client, token = admin
    document = {
        "base": "user",
        "joins": [{"relation": "company_users.userid=user.id"}],
        "columns": [{"table": "user", "column": "firstname"}],
        "filters": [{"table": "company_users", "column": "companyid", "op": "viewer_company"},
                    {"table": "user", "column": "lastname", "op": "eq", "value": "Learner"}],
    }  # fmt: skip
    preview = post_json(client, "/reportbuilder/preview", {"document": document}, token)
    assert preview.status_code == 200, preview.get_data(as_text=True)
    assert ":companyid" in preview.get_json()["sql"]
    saved = post_json(client, "/reportbuilder/save", {"document": document, "title": "Ours"}, token)
    assert saved.status_code == 200, saved.get_data(as_text=True)
    name = saved.get_json()["name"]
    with client.application.extensions["manireports"].appdb.transaction() as db:
        assert db.get(CustomReport, saved.get_json()["id"]).company_safe  # type: ignore[union-attr]
    bolt = client_as("mgr_b").get(f"/reports/{name}/export.csv")
    assert bolt.status_code == 200
    assert {"Yuri", "Zoe", "Xena"} <= set(bolt.get_data(as_text=True).split())
    assert "Ana" not in bolt.get_data(as_text=True)
    acme = client_as("mgr_a").get(f"/reports/{name}/export.csv").get_data(as_text=True)
    assert "Ana" in acme and "Yuri" not in acme
    # A manager cannot point it at the other company, nor open the builder.
    other = client_as("mgr_a").get(f"/reports/{name}/export.csv",
                                    query_string={"companyid": site.companies["B"]})  # fmt: skip
    assert other.status_code == 403 and "Yuri" not in other.get_data(as_text=True)
    teacher = client_as("teacher_a")
    assert teacher.get(f"/reports/{name}").status_code in (403, 404)
    assert client_as("mgr_a").get(saved.get_json()["edit_url"]).status_code == 403


def test_preview_values_and_save_wait_for_a_report_slot_like_any_run(admin):  # type: ignore[no-untyped-def]
    client, token = admin
    limiter = client.application.extensions[EXTENSION]
    holds = [limiter.acquire(wait_s=5) for _ in range(limiter.limit)]
    try:
        saves = _reports(client)
        posts = (("/reportbuilder/preview", {"document": BUILT}),
                 ("/reportbuilder/save", {"document": BUILT, "title": "Busy"}))  # fmt: skip
        for path, body in posts:
            response = post_json(client, path, body, token)
            assert response.status_code == 429, response.get_data(as_text=True)
            assert "every report slot is busy" in response.get_json()["errors"][0]["error"]
        values = client.get("/reportbuilder/values?table=course&column=fullname",
                            headers={"Accept": "application/json"})  # fmt: skip
        assert values.status_code == 429
        assert _reports(client) == saves
    finally:
        for hold in holds:
            hold.release()
    assert (
        post_json(client, "/reportbuilder/preview", {"document": BUILT}, token).status_code == 200
    )
