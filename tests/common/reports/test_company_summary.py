"""Company summary figures against values computed here from the facts the site was built from,
and against the completion report each company's managers see."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import insert

from common.appdb import AppDB
from common.models.analytics import UsertimeDaily
from common.moodle import MoodleSource, SiteFeatures
from common.reports import PageRequest, RunContext, get_report
from common.tenancy import SITE, TenantScope
from tests.conftest import backend_of, migrated_database
from tests.factories.sites import NOW, Site
from tests.web.conftest import app, client_as  # noqa: F401  the web fixtures, for one test

REPORT = get_report("company_summary")
TODAY = datetime.fromtimestamp(NOW, UTC).date()
KEYS = ("company", "learners", "courses", "enrolments", "completions", "completion_pct",
        "active_30")  # fmt: skip

# (user, course, days before today): daily time, estimated or measured alike.
DAILY = [
    ("ana", "Fire Safety", 2),
    ("ana", "Shared Ethics", 3),
    ("ben", "First Aid", 40),  # outside the 30 days
    ("cara", "First Aid", 3),  # her First Aid enrolment is suspended: not an active learner
    ("xena", "Fire Safety", 1),  # not enrolled there
    ("gone", "Fire Safety", 1),  # deleted
    ("teacher_a", "First Aid", 0),  # a teacher
    ("yuri", "Forklift", 1),
    ("zoe", "Shared Ethics", 29),  # the 30th day back: inside
    ("zoe", "Forklift", -1),  # tomorrow
]


def company_courses(site: Site, company: str) -> set[str]:
    return {c for c, owner in site.course_company.items() if owner in (company, None)}


def expected(site: Site, companies: dict[str, str]) -> list[dict]:
    """Per company: its members' active learner enrolments in its own and shared courses."""
    rows = []
    for name, company in companies.items():
        courses = company_courses(site, company)
        counted = [
            e for e in site.enrolments
            if e.active and e.user not in site.deleted and e.course in courses
            and site.user_company.get(e.user) == company
        ]  # fmt: skip
        done = sum(1 for e in counted if e.completed_days_ago is not None)
        active = {e.user for e in counted
                  if any(u == e.user and c == e.course and 0 <= ago <= 29
                         for u, c, ago in DAILY)}  # fmt: skip
        rows.append({
            "company": name, "learners": len({e.user for e in counted}), "courses": len(courses),
            "enrolments": len(counted), "completions": done,
            "completion_pct": round(100 * done / len(counted), 1) if counted else 0.0,
            "active_30": len(active),
        })  # fmt: skip
    return sorted(rows, key=lambda r: r["company"])


def shown(rows):  # type: ignore[no-untyped-def]
    return [{k: r[k] for k in KEYS} for r in rows]


def fill(site: Site, appdb: AppDB) -> None:
    with appdb.transaction() as session:
        session.execute(insert(UsertimeDaily), [
            {"userid": site.users[u], "courseid": site.courses[c],
             "date": TODAY - timedelta(days=ago), "seconds": 60, "estimated": True}
            for u, c, ago in DAILY
        ])  # fmt: skip


@pytest.fixture
def appdb(moodle_url: str, tmp_path) -> Iterator[AppDB]:  # type: ignore[no-untyped-def]
    """An app DB on the same kind of server as the Moodle DB, but a database of its own."""
    made = migrated_database(backend_of(moodle_url), tmp_path)
    db = AppDB(next(made))
    yield db
    db.dispose()
    made.close()


@pytest.fixture
def source(site: Site, appdb: AppDB) -> Iterator[MoodleSource]:
    site.companies["E"] = site.moodle.company(name="Empty Co")  # no members: zeros
    fill(site, appdb)
    src = MoodleSource(site.url)
    yield src
    src.dispose()


def run(source, appdb, scope=SITE):  # type: ignore[no-untyped-def]
    ctx = RunContext(source=source, scope=scope, now=NOW, appdb=appdb)
    return REPORT.page(ctx, REPORT.parse_params({}), PageRequest(page_size=500, sort="company"))


def test_every_company_with_exact_figures(site, source, appdb):
    page = run(source, appdb)
    assert shown(page.rows) == expected(site, {"Acme": "A", "Bolt": "B", "Empty Co": "E"})
    acme = next(r for r in page.rows if r["company"] == "Acme")
    # ana, ben, cara, dan: 4 in Fire Safety, ana and ben in First Aid, ana in Shared Ethics
    assert (acme["learners"], acme["enrolments"], acme["completions"]) == (4, 7, 5)
    assert acme["active_30"] == 1  # ana only
    chart = page.chart
    assert chart["type"] == "bar"
    assert chart["labels"] == ["Acme", "Bolt", "Empty Co"]
    assert chart["series"][0]["data"] == [r["completion_pct"] for r in page.rows]
    assert chart["drill"] == {"param": "company", "values": [
        site.companies["A"], site.companies["B"], site.companies["E"]]}  # fmt: skip
    kpis = {k["key"]: k["value"] for k in page.kpis}
    assert kpis["companies"] == 3 and kpis["learners"] == 7
    assert kpis["enrolments"] == sum(r["enrolments"] for r in page.rows)
    assert kpis["active_30"] == 3  # ana, yuri, zoe


@pytest.mark.parametrize("company", ["A", "B"])
def test_matches_the_completion_report_of_the_company(site, source, appdb, company):
    """The figures a company's managers see in course_completion, summed."""
    scope = TenantScope(company_ids=(site.companies[company],))
    ctx = RunContext(source=source, scope=scope, now=NOW, appdb=appdb)
    completion = get_report("course_completion")
    courses, _ = completion.run(ctx, completion.parse_params({})).rows.page(
        PageRequest(page_size=500, sort="course"), completion.row_key
    )
    row = run(source, appdb, scope).rows
    assert [r["company"] for r in row] == [{"A": "Acme", "B": "Bolt"}[company]]
    assert row[0]["courses"] == len(courses)
    assert row[0]["enrolments"] == sum(c["enrolled"] for c in courses)
    assert row[0]["completions"] == sum(c["completed"] for c in courses)


def test_every_sortable_column_sorts_both_ways(site, source, appdb):
    ctx = RunContext(source=source, scope=SITE, now=NOW, appdb=appdb)
    data = REPORT.run(ctx, REPORT.parse_params({}))
    for column in REPORT.columns:
        for direction in ("asc", "desc"):
            rows, total = data.rows.page(PageRequest(1, 500, column.key, direction),
                                         REPORT.row_key)  # fmt: skip
            assert total == 3
            values = [r[column.key] for r in rows]
            key = (lambda v: v.casefold()) if column.kind == "text" else (lambda v: v)
            assert values == sorted(values, key=key, reverse=direction == "desc")


def test_only_on_iomad_sites_and_only_for_site_admins():
    assert REPORT.enabled(SiteFeatures(has_iomad=True, scorm_layout=None, has_logstore=True))
    assert not REPORT.enabled(SiteFeatures(has_iomad=False, scorm_layout=None, has_logstore=True))
    assert REPORT.capabilities == ("local/manireports:viewadmindashboard",)


def test_data_endpoint_for_admins_only(app, site, client_as):  # noqa: F811
    fill(site, app.extensions["manireports"].appdb)
    admin = client_as("admin")
    everything = admin.get("/reports/company_summary/data?sort=completion_pct&dir=desc")
    rows = everything.get_json()["rows"]
    want = expected(site, {"Acme": "A", "Bolt": "B"})
    assert sorted(shown(rows), key=lambda r: r["company"]) == want
    assert [r["completion_pct"] for r in rows] == sorted(
        (r["completion_pct"] for r in want), reverse=True
    )
    picked = admin.get(f"/reports/company_summary/data?company={site.companies['B']}").get_json()
    assert shown(picked["rows"]) == [r for r in want if r["company"] == "Bolt"]
    assert client_as("mgr_a").get("/reports/company_summary/data").status_code == 403
