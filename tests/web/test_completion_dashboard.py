"""Course completion figures against values computed here from the facts the site was built from."""

import csv
import io

import pytest

from tests.factories.sites import DAY, NOW, Site


def expected_rows(site: Site, days: int, company: str | None) -> list[dict]:
    """Active enrolments of non-deleted users; for a company, its members in its courses."""
    since = NOW - days * DAY
    per_course: dict[str, dict] = {
        name: {"course": name, "enrolled": 0, "completed": 0, "completed_in_range": 0}
        for name, owner in site.course_company.items()
        if company is None or owner in (company, None)
    }  # every course in scope, with or without learners
    for e in site.enrolments:
        if not e.active or e.user in site.deleted:
            continue
        if company and (
            site.user_company[e.user] != company
            or site.course_company[e.course] not in (company, None)
        ):
            continue
        row = per_course[e.course]
        row["enrolled"] += 1
        if e.completed_days_ago is not None:
            row["completed"] += 1
            if NOW - e.completed_days_ago * DAY >= since:
                row["completed_in_range"] += 1
    for row in per_course.values():
        enrolled = row["enrolled"]
        row["completion_pct"] = round(100 * row["completed"] / enrolled, 1) if enrolled else 0.0
    return [per_course[name] for name in sorted(per_course)]


def shown(rows):
    keys = ("course", "enrolled", "completed", "completion_pct", "completed_in_range")
    return [{k: r[k] for k in keys} for r in rows]


@pytest.mark.parametrize("days", [30, 90])
def test_admin_sees_every_course_with_exact_figures(site, client_as, days):
    data = client_as("admin").get(f"/reports/course_completion/data?days={days}").get_json()
    assert shown(data["rows"]) == expected_rows(site, days, company=None)
    trend = data["chart"]["series"][0]["data"]
    assert len(trend) == days + 1
    assert sum(trend) == sum(r["completed_in_range"] for r in expected_rows(site, days, None))


@pytest.mark.parametrize(("manager", "company"), [("mgr_a", "A"), ("mgr_b", "B")])
def test_company_manager_sees_only_their_company(site, client_as, manager, company):
    data = client_as(manager).get("/reports/course_completion/data?days=90").get_json()
    assert shown(data["rows"]) == expected_rows(site, 90, company)
    other = {"A": "Forklift", "B": "Fire Safety"}[company]
    assert other not in {r["course"] for r in data["rows"]}


def test_teacher_sees_only_the_courses_they_teach(site, client_as):
    data = client_as("teacher_a").get("/reports/course_completion/data?days=30").get_json()
    assert [r["course"] for r in data["rows"]] == ["First Aid"]


def test_range_outside_the_choices_is_a_clear_400(client_as):
    response = client_as("admin").get("/reports/course_completion/data?days=7")
    assert response.status_code == 400
    assert response.get_json() == {"error": "must be one of 30, 90", "field": "days"}


def test_csv_export_has_exactly_the_rows_and_columns_on_screen(client_as):
    client = client_as("mgr_a")
    data = client.get("/reports/course_completion/data?days=90").get_json()
    response = client.get("/reports/course_completion/export.csv?days=90")
    assert response.headers["Content-Type"].startswith("text/csv")
    assert "attachment" in response.headers["Content-Disposition"]
    table = list(csv.reader(io.StringIO(response.get_data(as_text=True))))
    assert table[0] == [c["label"] for c in data["columns"]]
    assert table[1:] == [[str(r[c["key"]]) for c in data["columns"]] for r in data["rows"]]


def test_a_course_without_learners_is_listed_with_zeros(site, client_as):
    rows = client_as("mgr_a").get("/reports/course_completion/data").get_json()["rows"]
    empty = next(r for r in rows if r["course"] == "Induction (no learners yet)")
    assert shown([empty]) == [
        {
            "course": "Induction (no learners yet)",
            "enrolled": 0,
            "completed": 0,
            "completion_pct": 0.0,
            "completed_in_range": 0,
        }
    ]


def test_dashboard_page_renders_filters_and_export(client_as):
    page = client_as("mgr_a").get("/dashboards/completion").get_data(as_text=True)
    assert 'id="filter-days"' in page and "Last 90 days" in page
    assert 'id="export-csv"' in page
    assert 'id="loading"' in page
