"""The dashboard builder's pages on the two-company site: create and save with CSRF, the
layout kept exactly, bad input answered by widget and field with nothing saved, and every
route and method answering 404 for a dashboard the viewer may not see."""

from __future__ import annotations

import html
import json
import re

import pytest
from sqlalchemy import func, select

from common.models.access import AuditLog
from common.models.custom import CustomDashboard
from tests.web.conftest import csrf_token

JSON = {"Accept": "application/json"}
LAYOUT = [
    {"id": "kpi1", "type": "kpi", "report": "course_completion", "filters": {"days": "90"},
     "options": {"title": "Completions", "kpi": "completed"}, "x": 0, "y": 0, "w": 3, "h": 2},
    {"id": "tab1", "type": "table", "report": "course_progress", "filters": {},
     "options": {"columns": ["learner", "course"], "rows": 5, "sort": "learner", "dir": "desc"},
     "x": 3, "y": 0, "w": 9, "h": 4},
    {"id": "bar1", "type": "bar", "report": "course_completion", "filters": {}, "options": {},
     "x": 0, "y": 4, "w": 6, "h": 4},
]  # fmt: skip


def form(client, layout, *, title="Acme overview", visibility="company", company=None,
         token=True):  # type: ignore[no-untyped-def]  # fmt: skip
    data = {"title": title, "visibility": visibility, "company": "" if company is None else
            str(company), "layout": json.dumps(layout)}  # fmt: skip
    if token:
        data["csrf_token"] = csrf_token(client, "/dashboards/")
    return data


def count(app, model=CustomDashboard, **where) -> int:  # type: ignore[no-untyped-def]
    with app.extensions["manireports"].appdb.transaction() as session:
        query = select(func.count()).select_from(model)
        for key, value in where.items():
            query = query.where(getattr(model, key) == value)
        return int(session.scalar(query) or 0)


def stored(app, dashboard_id: int) -> CustomDashboard:  # type: ignore[no-untyped-def]
    with app.extensions["manireports"].appdb.transaction() as session:
        return session.get(CustomDashboard, dashboard_id)


def create(client, site, layout=LAYOUT, **fields) -> int:  # type: ignore[no-untyped-def]
    fields.setdefault("company", site.companies["A"])
    response = client.post("/custom-dashboards/new", data=form(client, layout, **fields),
                           headers=JSON)  # fmt: skip
    assert response.status_code == 200, response.get_data(as_text=True)
    return int(response.get_json()["id"])


def page_meta(page: str, element: str) -> dict:  # type: ignore[type-arg]
    found = re.search(rf'id="{element}"[^>]*data-meta=\'([^\']*)\'', page)
    assert found, element
    return json.loads(html.unescape(found.group(1)))


def test_a_manager_builds_a_company_dashboard_and_it_reloads_exactly(app, client_as, site):
    client = client_as("mgr_a")
    builder = client.get("/custom-dashboards/new")
    assert builder.status_code == 200
    palette = {
        r["name"]: r for r in page_meta(builder.get_data(as_text=True), "builder")["palette"]
    }
    assert "course_completion" in palette and "company_summary" not in palette  # admin's only
    days = next(p for p in palette["course_completion"]["params"] if p["name"] == "days")
    assert days["kind"] == "select" and ["90", "Last 90 days"] in days["options"]
    course = next(p for p in palette["course_completion"]["params"] if p["name"] == "course")
    names = {label for _, label in course["options"]}
    assert "Fire Safety" in names and "Forklift" not in names  # Bolt's course: not offered

    dashboard_id = create(client, site)
    row = stored(app, dashboard_id)
    assert (row.visibility, row.companyid, row.ownerid) == (
        "company",
        site.companies["A"],
        site.users["mgr_a"],
    )
    edit = client.get(f"/custom-dashboards/{dashboard_id}/edit").get_data(as_text=True)
    assert page_meta(edit, "builder")["widgets"] == LAYOUT
    view = client.get(f"/custom-dashboards/{dashboard_id}")
    assert view.status_code == 200
    shown = page_meta(view.get_data(as_text=True), "built-dashboard")
    assert shown["company"] == site.companies["A"]
    assert [(w["id"], w["x"], w["y"], w["w"], w["h"], w["available"]) for w in shown["widgets"]] \
        == [(w["id"], w["x"], w["y"], w["w"], w["h"], True) for w in LAYOUT]  # fmt: skip
    listing = client.get("/custom-dashboards/").get_data(as_text=True)
    assert "Acme overview" in listing and "mgr_a Manager" in listing and "Acme" in listing


def test_saving_again_changes_the_same_dashboard_and_audits_it(app, client_as, site):
    client = client_as("mgr_a")
    dashboard_id = create(client, site)
    moved = [{**LAYOUT[0], "x": 9}, LAYOUT[2]]
    data = form(client, moved, company=site.companies["A"])
    response = client.post(f"/custom-dashboards/{dashboard_id}/edit", data=data, headers=JSON)
    assert response.status_code == 200
    assert json.loads(stored(app, dashboard_id).layout_json) == moved
    assert count(app) == 1
    assert count(app, AuditLog, action="dashboard_created", object_id=str(dashboard_id)) == 1
    assert count(app, AuditLog, action="dashboard_changed", object_id=str(dashboard_id)) == 1


def test_a_post_without_the_csrf_token_is_refused_and_saves_nothing(app, client_as, site):
    client = client_as("mgr_a")
    data = form(client, LAYOUT, company=site.companies["A"], token=False)
    assert client.post("/custom-dashboards/new", data=data, headers=JSON).status_code == 400
    dashboard_id = create(client, site)
    before = stored(app, dashboard_id).layout_json
    for path in (
        f"/custom-dashboards/{dashboard_id}/edit",
        f"/custom-dashboards/{dashboard_id}/delete",
    ):
        assert client.post(path, data={**data, "layout": "[]"}).status_code == 400
    assert stored(app, dashboard_id).layout_json == before


def test_a_bad_filter_names_the_widget_and_filter_and_saves_nothing(app, client_as, site):
    client = client_as("mgr_a")
    bad = [LAYOUT[0], {**LAYOUT[2], "filters": {"days": "45"}, "options": {"title": "Trend"}}]
    response = client.post("/custom-dashboards/new", headers=JSON,
                           data=form(client, bad, company=site.companies["A"]))  # fmt: skip
    assert response.status_code == 422
    body = response.get_json()
    assert body["field"] == "widgets[2].filters.days"
    assert body["widget"] == "bar1"
    assert "widget 2 “Trend”: filter Date range: must be one of 30, 90" in body["error"]
    assert count(app) == 0
    # Without script: the page again, 422, with the title and the unsaved layout kept.
    page = client.post("/custom-dashboards/new", data=form(client, bad, title="Kept title",
                       company=site.companies["A"]))  # fmt: skip
    text = page.get_data(as_text=True)
    assert page.status_code == 422
    assert 'value="Kept title"' in text
    assert "filter Date range: must be one of 30, 90" in text
    assert page_meta(text, "builder")["widgets"] == bad
    assert count(app) == 0


@pytest.mark.parametrize(
    ("changes", "field"),
    [
        ({"title": ""}, "title"),
        ({"visibility": "global"}, "visibility"),  # a manager does not publish to everyone
        ({"visibility": "public"}, "visibility"),
        ({"layout": [{**LAYOUT[0], "report": "company_summary"}]}, "widgets[1].report"),
        ({"layout": [{**LAYOUT[0], "w": 40}]}, "widgets[1].w"),
    ],
)
def test_bad_fields_are_422_and_save_nothing(app, client_as, site, changes, field):
    client = client_as("mgr_a")
    changes = dict(changes)  # the parameters are shared by the sqlite and mariadb runs
    layout = changes.pop("layout", LAYOUT)
    data = form(client, layout, company=site.companies["A"], **changes)
    response = client.post("/custom-dashboards/new", headers=JSON, data=data)
    assert response.status_code == 422
    assert field in {e["field"] for e in response.get_json().get("errors", [response.get_json()])}
    assert count(app) == 0


def test_a_manager_naming_another_company_gets_an_audited_403(app, client_as, site):
    client = client_as("mgr_a")
    denied = count(app, AuditLog, action="access_denied")
    response = client.post("/custom-dashboards/new", headers=JSON,
                           data=form(client, LAYOUT, company=site.companies["B"]))  # fmt: skip
    assert response.status_code == 403
    assert count(app, AuditLog, action="access_denied") == denied + 1
    assert count(app) == 0


def routes(dashboard_id: int) -> list[tuple[str, str]]:
    base = f"/custom-dashboards/{dashboard_id}"
    return [("GET", base), ("GET", base + "/edit"), ("POST", base + "/edit"),
            ("GET", base + "/delete"), ("POST", base + "/delete")]  # fmt: skip


@pytest.mark.parametrize("who", ["mgr_b", "yuri", "teacher_solo"])
def test_another_companys_viewers_get_404_on_every_route_and_method(app, client_as, site, who):
    dashboard_id = create(client_as("mgr_a"), site)
    before = stored(app, dashboard_id).layout_json
    client = client_as(who)
    for method, path in routes(dashboard_id):
        data = form(client, [], title="Taken over", company=site.companies["B"])
        for headers in ({}, JSON):
            response = client.open(path, method=method, data=data, headers=headers)
            expected = 404 if who == "mgr_b" else (404, 403)
            assert response.status_code in (expected if isinstance(expected, tuple)
                                             else (expected,)), (who, method, path)  # fmt: skip
            assert "Acme overview" not in response.get_data(as_text=True)
    assert stored(app, dashboard_id).layout_json == before
    assert "Acme overview" not in client.get("/custom-dashboards/").get_data(as_text=True)


def test_a_private_dashboard_is_its_owners_alone(app, client_as, site):
    dashboard_id = create(client_as("mgr_a"), site, title="Mine", visibility="private")
    assert stored(app, dashboard_id).companyid is None
    for who in ("admin", "mgr_b", "teacher_a", "multi"):
        client = client_as(who)
        for method, path in routes(dashboard_id):
            data = form(client, [], title="Taken over", visibility="private")
            # A teacher may not build at all: the builder's routes refuse before any lookup.
            expected = 403 if who == "teacher_a" and path.endswith(("edit", "delete")) else 404
            assert client.open(path, method=method, data=data).status_code == expected, (who, path)
    assert client_as("mgr_a").get(f"/custom-dashboards/{dashboard_id}").status_code == 200


def test_a_teacher_views_what_is_visible_and_builds_nothing(app, client_as, site):
    admin = client_as("admin")
    everyone = [LAYOUT[0], {**LAYOUT[2], "id": "cmp", "report": "company_summary"}]
    dashboard_id = create(admin, site, everyone, title="For all", visibility="global", company=None)
    teacher = client_as("teacher_a")
    assert "For all" in teacher.get("/custom-dashboards/").get_data(as_text=True)
    view = teacher.get(f"/custom-dashboards/{dashboard_id}")
    assert view.status_code == 200
    meta = page_meta(view.get_data(as_text=True), "built-dashboard")
    shown = {w["id"]: w["available"] for w in meta["widgets"]}
    assert shown == {"kpi1": True, "cmp": False}  # company_summary: site admins' report
    assert "/custom-dashboards/new" not in teacher.get("/custom-dashboards/").get_data(as_text=True)
    assert teacher.get("/custom-dashboards/new").status_code == 403
    for method, path in routes(dashboard_id)[1:]:
        data = form(teacher, [], visibility="private")
        assert teacher.open(path, method=method, data=data).status_code == 403, path
    assert count(app, CustomDashboard, title="For all") == 1


def test_delete_asks_first_then_deletes_and_audits(app, client_as, site):
    client = client_as("mgr_a")
    dashboard_id = create(client, site)
    confirm = client.get(f"/custom-dashboards/{dashboard_id}/delete")
    assert confirm.status_code == 200
    assert "Delete the dashboard “Acme overview”?" in confirm.get_data(as_text=True)
    assert count(app) == 1
    token = csrf_token(client, f"/custom-dashboards/{dashboard_id}/delete")
    response = client.post(f"/custom-dashboards/{dashboard_id}/delete", data={"csrf_token": token})
    assert response.status_code == 302
    assert count(app) == 0
    assert count(app, AuditLog, action="dashboard_deleted", object_id=str(dashboard_id)) == 1
    assert client.get(f"/custom-dashboards/{dashboard_id}").status_code == 404


def test_an_admin_publishes_to_any_company_and_its_viewers_see_it(app, client_as, site):
    dashboard_id = create(client_as("admin"), site, title="Bolt board", company=site.companies["B"])
    assert client_as("mgr_b").get(f"/custom-dashboards/{dashboard_id}").status_code == 200
    assert client_as("yuri").get(f"/custom-dashboards/{dashboard_id}").status_code == 200
    assert client_as("mgr_a").get(f"/custom-dashboards/{dashboard_id}").status_code == 404
    # mgr_b manages Bolt: may change it; multi only reports on Bolt: may not.
    assert client_as("mgr_b").get(f"/custom-dashboards/{dashboard_id}/edit").status_code == 200
    assert client_as("multi").get(f"/custom-dashboards/{dashboard_id}/edit").status_code == 403


def test_the_menu_offers_my_dashboards(client_as):
    page = client_as("ana").get("/dashboards/").get_data(as_text=True)
    assert 'href="/custom-dashboards/"' in page


def test_custom_reports_are_widgets_too_under_their_own_rules(app, client_as, site):
    """A stored report (`custom_<id>`) is in the palette of whoever may run it; a manager may
    bind a company-safe one (its rows are their company's), never an admin-only one."""
    from tests.web.test_custom_reports import ACME
    from tests.web.test_custom_reports import create as create_report

    admin = client_as("admin")
    safe = f"custom_{create_report(admin)}"
    admin_only = create_report(admin, title="Admin list", company_safe=False,
                               sql="SELECT u.username FROM {user} u")  # fmt: skip
    secret = f"custom_{admin_only}"
    manager = client_as("mgr_a")
    meta = page_meta(manager.get("/custom-dashboards/new").get_data(as_text=True), "builder")
    names = {r["name"] for r in meta["palette"]}
    assert safe in names and secret not in names
    table = {"id": "c1", "type": "table", "report": safe, "filters": {},
             "options": {"rows": 20}, "x": 0, "y": 0, "w": 12, "h": 4}  # fmt: skip
    dashboard_id = create(manager, site, [table], title="Custom")
    view = page_meta(manager.get(f"/custom-dashboards/{dashboard_id}").get_data(as_text=True),
                     "built-dashboard")  # fmt: skip
    assert view["widgets"][0]["available"] is True
    rows = manager.get(f"/reports/{safe}/data?company={site.companies['A']}&page_size=20")
    assert {r["username"] for r in rows.get_json()["rows"]} == ACME
    data = form(manager, [{**table, "report": secret}], company=site.companies["A"])
    refused = manager.post("/custom-dashboards/new", data=data, headers=JSON)
    assert refused.status_code == 422
    assert f"you may not run the report '{secret}'" in refused.get_json()["error"]
