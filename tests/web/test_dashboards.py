"""Role dashboards: each role's page and data in exactly its scope, every widget whose report
this site has, bad filters refused naming the field, another role's dashboard refused."""

from __future__ import annotations

import json

import pytest

from common.dashboards import get_dashboard
from common.reports import get_report
from tests.web.other_company import LEARNER_NAMES
from tests.web.test_access import denials

ACME_COURSES = {"Fire Safety", "First Aid", "Induction (no learners yet)", "Shared Ethics"}
EVERY_COURSE = ACME_COURSES | {"Forklift"}
OTHER_LEARNERS = {name: LEARNER_NAMES[name] for name in ("ben", "cara", "dan", "yuri", "zoe")}


def widgets(data: dict) -> dict[str, dict]:
    return {w["key"]: w for w in data["widgets"]}


def courses_in(data: dict) -> set[str]:
    """Every course named in any table widget."""
    return {row["course"] for w in data["widgets"] for row in w.get("rows", []) if "course" in row}


def kpi(widget: dict, key: str):  # type: ignore[no-untyped-def]
    return next(k["value"] for k in widget["kpis"] if k["key"] == key)


def expected_keys(role: str) -> list[str]:
    dashboard = get_dashboard(role)
    assert dashboard is not None
    return [w.key for w in dashboard.widgets if get_report(w.report) is not None]


@pytest.mark.parametrize(
    ("username", "role"),
    [("admin", "admin"), ("mgr_a", "manager"), ("teacher_a", "teacher"), ("ana", "student")],
)
def test_each_role_gets_its_widgets_in_their_shapes(client_as, username, role):
    response = client_as(username).get(f"/dashboards/{role}/data")
    assert response.status_code == 200
    data = response.get_json()
    assert data["dashboard"] == role and data["title"] == get_dashboard(role).title
    assert [w["key"] for w in data["widgets"]] == expected_keys(role)
    for widget in data["widgets"]:
        if widget["show"] == "kpis":
            assert widget["kpis"] and all({"key", "label", "value", "kind"} <= set(k)
                                          for k in widget["kpis"])  # fmt: skip
        elif widget["show"] == "chart":
            assert {"type", "labels", "series"} <= set(widget["chart"])
        else:
            assert widget["columns"] and widget["total"] >= len(widget["rows"])
            assert len(widget["rows"]) <= 10


def test_admin_sees_every_course_or_the_company_chosen(site, client_as):
    admin = client_as("admin")
    data = admin.get("/dashboards/admin/data?days=90").get_json()
    assert kpi(widgets(data)["completion_kpis"], "courses") == len(EVERY_COURSE)
    assert courses_in(data) == EVERY_COURSE
    bolt = admin.get(f"/dashboards/admin/data?company={site.companies['B']}").get_json()
    assert courses_in(bolt) == {"Forklift", "Shared Ethics"}
    assert {"label": "Company", "value": "Bolt"} in bolt["filters"]


def test_manager_sees_exactly_their_company(client_as):
    data = client_as("mgr_a").get("/dashboards/manager/data?days=90").get_json()
    assert kpi(widgets(data)["completion_kpis"], "courses") == len(ACME_COURSES)
    assert courses_in(data) == ACME_COURSES
    text = json.dumps(data)
    for marker in ("Forklift", "Bolt", "Yuri Learner", "Zoe Learner", "Xena Learner"):
        assert marker not in text


def test_teacher_sees_only_the_course_they_teach(client_as):
    data = client_as("teacher_a").get("/dashboards/teacher/data").get_json()
    assert kpi(widgets(data)["completion_kpis"], "courses") == 1
    assert courses_in(data) <= {"First Aid"}
    text = json.dumps(data)
    for marker in ("Yuri Learner", "Zoe Learner", "Fire Safety", "Forklift"):
        assert marker not in text


def test_student_dashboard_names_no_other_learner(client_as):
    client = client_as("ana")
    data = client.get("/dashboards/student/data").get_json()
    page = client.get("/dashboards/student").get_data(as_text=True)
    for text in (json.dumps(data), page):
        leaked = [name for name in OTHER_LEARNERS.values() if name in text]
        assert leaked == []
    learners = {row["learner"] for w in data["widgets"] for row in w.get("rows", [])
                if "learner" in row}  # fmt: skip
    assert learners <= {LEARNER_NAMES["ana"]}
    assert courses_in(data) <= {"Fire Safety", "First Aid", "Shared Ethics"}


def test_filters_apply_to_every_widget_and_show_by_name(site, client_as):
    first_aid = site.courses["First Aid"]
    data = client_as("mgr_a").get(f"/dashboards/manager/data?course={first_aid}").get_json()
    assert courses_in(data) == {"First Aid"}
    assert {"label": "Course", "value": "First Aid"} in data["filters"]


@pytest.mark.parametrize(
    ("query", "field"), [("days=7", "days"), ("course=abc", "course"), ("course=-1", "course")]
)
def test_a_bad_filter_is_a_400_naming_the_field(client_as, query, field):
    for path in (f"/dashboards/manager/data?{query}", f"/dashboards/manager?{query}"):
        response = client_as("mgr_a").get(path)
        assert response.status_code == 400, path
        assert field in response.get_data(as_text=True)
    assert client_as("mgr_a").get(f"/dashboards/manager/data?{query}").get_json()["field"] == field


def test_another_roles_dashboard_is_403_and_audited(app, client_as):
    manager = client_as("mgr_a")
    for path in ("/dashboards/admin", "/dashboards/admin/data", "/dashboards/teacher/data"):
        response = manager.get(path)
        assert response.status_code == 403, path
        assert denials(app)[-1].object_id == f"GET {path}"
    student = client_as("ana")
    assert student.get("/dashboards/manager/data").status_code == 403
    assert student.get("/dashboards/nope").status_code == 404
    assert student.get("/dashboards/nope/data").status_code == 404


def test_another_company_is_refused(site, client_as):
    other = site.companies["B"]
    response = client_as("mgr_a").get(f"/dashboards/manager/data?company={other}")
    assert response.status_code == 403
    page = client_as("mgr_a").get(f"/dashboards/manager?company={other}")
    assert page.status_code == 403 and "Forklift" not in page.get_data(as_text=True)


def test_index_lists_the_viewers_dashboards_and_the_page_has_its_filters(client_as):
    index = client_as("admin").get("/dashboards/").get_data(as_text=True)
    for title in ("Site overview", "Company overview", "My courses", "My learning"):
        assert title in index
    student_index = client_as("ana").get("/dashboards/").get_data(as_text=True)
    assert "My learning" in student_index and "Site overview" not in student_index
    page = client_as("mgr_a").get("/dashboards/manager").get_data(as_text=True)
    assert 'id="filter-days"' in page and 'id="filter-course"' in page
    assert 'data-data-url="/dashboards/manager/data"' in page
    assert "Forklift" not in page
