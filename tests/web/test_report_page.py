"""The generic report page: its filter bar is built from the report's declared parameters,
names come through the tenant scope (never another company's, never ids as labels), and the
menu reads the report registry instead of naming a report."""

from __future__ import annotations

import html
import json
import re

from common.reports import get_report, registered_reports
from common.reports.export import FORMATS
from common.reports.params import choice, cohort_filter, course_filter, date_from, user_search
from common.tenancy import TenantScope
from tests.factories.sites import NOW
from web.reports.filter_bar import controls_for

ACME_COURSES = ["Fire Safety", "First Aid", "Induction (no learners yet)", "Shared Ethics"]


def select_options(page: str, select_id: str) -> list[tuple[str, str, bool]]:
    """(value, label, selected) of each option of the select with this id."""
    found = re.search(rf'<select id="{select_id}".*?</select>', page, re.S)
    assert found, f"no select #{select_id}"
    return [
        (value, html.unescape(label), bool(selected))
        for value, selected, label in re.findall(
            r'<option value="([^"]*)"( selected)?>([^<]*)</option>', found.group(0)
        )
    ]


def page_meta(page: str) -> dict:
    found = re.search(r"data-meta='([^']*)'", page)
    assert found
    return json.loads(html.unescape(found.group(1)))


def add_cohort(site, name: str, members: list[str]) -> int:  # type: ignore[no-untyped-def]
    cohort = site.moodle.insert("cohort", contextid=1, name=name, descriptionformat=1,
                                component="", timecreated=NOW, timemodified=NOW)  # fmt: skip
    for member in members:
        site.moodle.insert("cohort_members", cohortid=cohort, userid=site.users[member])
    return cohort


def test_filter_bar_is_built_from_the_declared_params(site, client_as):
    page = client_as("mgr_a").get("/reports/course_completion").get_data(as_text=True)
    assert select_options(page, "filter-days") == [
        ("30", "Last 30 days", True), ("90", "Last 90 days", False)
    ]  # fmt: skip
    courses = select_options(page, "filter-course")
    assert courses[0] == ("", "All courses", True)
    assert [label for _, label, _ in courses[1:]] == ACME_COURSES
    assert {value for value, _, _ in courses[1:]} == {str(site.courses[c]) for c in ACME_COURSES}
    assert select_options(page, "filter-cohort")[0] == ("", "All cohorts", True)
    for fmt in FORMATS:
        assert f'id="export-{fmt}"' in page
    assert 'id="loading"' in page and 'id="chips"' in page and 'id="page-size"' in page


def test_a_manager_of_acme_never_sees_bolts_course_names(site, client_as):
    client = client_as("mgr_a")
    forklift = site.courses["Forklift"]
    for report in registered_reports():
        for query in ("", f"?course={forklift}"):
            response = client.get(f"/reports/{report.type_name}{query}")
            body = response.get_data(as_text=True)
            assert response.status_code in (200, 403, 404), (report.type_name, query)
            assert "Forklift" not in body, f"{report.type_name}{query} names Bolt's course"
    # Asked for by id, Bolt's course is an option by number only, never by name.
    page = client.get(f"/reports/course_completion?course={forklift}").get_data(as_text=True)
    assert (str(forklift), f"Course #{forklift}", True) in select_options(page, "filter-course")


def test_cohort_options_are_those_with_members_in_scope(site, client_as):
    add_cohort(site, "Acme Night Shift", ["ana", "ben"])
    add_cohort(site, "Bolt Drivers", ["yuri", "zoe"])
    mine = select_options(client_as("mgr_a").get("/reports/course_completion").get_data(
        as_text=True), "filter-cohort")  # fmt: skip
    assert [label for _, label, _ in mine] == ["All cohorts", "Acme Night Shift"]
    every = select_options(client_as("admin").get("/reports/course_completion").get_data(
        as_text=True), "filter-cohort")  # fmt: skip
    assert [label for _, label, _ in every] == ["All cohorts", "Acme Night Shift", "Bolt Drivers"]


def test_a_teacher_is_offered_only_the_courses_they_teach(client_as):
    page = client_as("teacher_a").get("/reports/course_completion").get_data(as_text=True)
    assert [label for _, label, _ in select_options(page, "filter-course")] == [
        "All courses", "First Aid"
    ]  # fmt: skip


def test_the_url_sets_the_controls_and_a_bad_value_is_a_400_naming_it(site, client_as):
    client = client_as("mgr_a")
    first_aid = site.courses["First Aid"]
    page = client.get(f"/reports/course_completion?days=90&course={first_aid}").get_data(
        as_text=True
    )
    assert ("90", "Last 90 days", True) in select_options(page, "filter-days")
    assert (str(first_aid), "First Aid", True) in select_options(page, "filter-course")
    refused = client.get("/reports/course_completion?days=7")
    assert refused.status_code == 400
    assert "days" in refused.get_data(as_text=True)


def test_controls_for_each_kind_of_param(app, site):
    source = app.extensions["manireports"].moodle
    params = (choice("days", "Date range", (30, 90), 30), course_filter(), cohort_filter(),
              user_search(), date_from())  # fmt: skip
    scope = TenantScope(company_ids=(site.companies["B"],))
    with app.test_request_context():
        controls = controls_for(params, {"days": 90, "q": "yu"}, scope, source)
    assert [(c.name, c.kind, c.value, c.default) for c in controls] == [
        ("days", "select", "90", "30"), ("course", "select", "", ""),
        ("cohort", "select", "", ""), ("q", "search", "yu", ""), ("from", "date", "", ""),
    ]  # fmt: skip
    assert [label for _, label in controls[1].options] == ["All courses", "Forklift",
                                                           "Shared Ethics"]  # fmt: skip


def test_company_selector_for_a_site_admin_lists_every_company(client_as):
    page = client_as("admin").get("/reports/course_completion").get_data(as_text=True)
    assert [label for _, label, _ in select_options(page, "company")] == [
        "All companies", "Acme", "Bolt"
    ]  # fmt: skip


def test_column_drills_land_on_a_report_the_viewer_may_open(client_as):
    page = client_as("mgr_a").get("/reports/course_completion").get_data(as_text=True)
    meta = page_meta(page)
    assert meta["report"] == "course_completion"
    drill = meta["drills"]["course_completion"]["course"]
    assert drill["param"] == "course"
    wanted = "course_progress" if get_report("course_progress") else "course_completion"
    assert drill["report"] == wanted
    assert meta["reports"][wanted]["url"] == f"/reports/{wanted}"
    assert "course" in meta["reports"][wanted]["params"]


def test_learner_names_link_to_their_user_page_and_it_opens_in_scope(site, client_as):
    client = client_as("mgr_a")
    meta = page_meta(client.get("/reports/course_progress").get_data(as_text=True))
    assert meta["links"]["course_progress"] == {"learner": "user"}
    rows = client.get("/reports/course_progress/data").get_json()["rows"]
    assert rows
    for row in rows[:3]:  # where the page's script sends a click on the name
        page = client.get(meta["pages"]["user"] + str(row["user_id"]))
        assert page.status_code == 200
        assert row["learner"] in page.get_data(as_text=True)


def test_menu_lists_reports_and_dashboards_from_the_registries(client_as):
    page = client_as("mgr_a").get("/reports/").get_data(as_text=True)
    menu = re.search(r'<nav aria-label="Main"[^>]*>.*?</nav>', page, re.S).group(0)
    assert ">Reports</a>" in menu and ">Dashboards</a>" in menu
    assert "Course completion" not in menu
    assert 'href="/reports/course_completion"' in page  # the list covers it
    current = r'<a (?:class="nav-link" )?href="/reports/" aria-current="page">Reports</a>'
    assert re.search(current, menu)
    report_page = client_as("mgr_a").get("/reports/course_completion").get_data(as_text=True)
    assert re.search(current, report_page)
