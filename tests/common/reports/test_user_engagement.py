"""Learner engagement figures against values computed here from the daily rows and last accesses
the test writes, within each viewer's scope."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import insert

from common.access.viewer import load_viewer
from common.appdb import AppDB
from common.models.analytics import UsertimeDaily
from common.moodle import MoodleSource
from common.reports import PageRequest, RunContext, get_report
from common.tenancy import SITE, TenantScope, scope_for
from tests.conftest import backend_of, migrated_database
from tests.factories.sites import DAY, NOW, Site
from tests.web.conftest import app, client_as  # noqa: F401  the web fixtures, for two tests

REPORT = get_report("user_engagement")
TODAY = datetime.fromtimestamp(NOW, UTC).date()
KEYS = ("learner", "active_days_7", "seconds_7", "active_days_30", "seconds_30", "last_access")

# (user, course, days before today, seconds, estimated): the aggregator's daily rows.
DAILY = [
    ("ana", "Fire Safety", 0, 600, True),
    ("ana", "Fire Safety", 0, 60, False),  # a heartbeat figure beats the estimate: 60
    ("ana", "First Aid", 0, 100, True),  # same date, another course: still one active day
    ("ana", "Fire Safety", 6, 200, True),  # the 7th day back: inside both windows
    ("ana", "Fire Safety", 7, 300, True),  # the 8th: 30 days only
    ("ana", "Shared Ethics", 29, 50, False),  # the 30th day back: inside
    ("ana", "Fire Safety", 30, 999, True),  # the 31st: outside
    ("ana", "Fire Safety", -1, 70, False),  # tomorrow: not counted
    ("ben", "First Aid", 3, 500, True),
    ("ben", "First Aid", 3, 0, False),  # heartbeat says 0 s: an active day of no time
    ("cara", "Fire Safety", 10, 120, True),
    ("gone", "Fire Safety", 1, 1000, True),  # deleted: not listed
    ("teacher_a", "First Aid", 1, 700, False),  # a teacher: not a learner
    ("yuri", "Forklift", 5, 300, True),
    ("yuri", "Shared Ethics", 5, 200, False),  # two courses, one day
    ("xena", "Forklift", 15, 100, True),
    ("xena", "Forklift", 40, 100, True),
]
# (user, course, seconds before NOW): Moodle's user_lastaccess.
LAST_ACCESS = [
    ("ana", "Fire Safety", 3600),
    ("ana", "First Aid", 7200),
    ("ana", "Shared Ethics", 60),
    ("yuri", "Forklift", DAY),
    ("teacher_a", "First Aid", 10),
]


def learners(site: Site, courses: set[str], user=lambda u: True) -> set[str]:  # type: ignore[no-untyped-def]
    """Users with an active learner enrolment in one of these courses (the site's facts)."""
    return {
        e.user for e in site.enrolments
        if e.active and e.user not in site.deleted and e.course in courses and user(e.user)
    }  # fmt: skip


def expected(site: Site, names: set[str], courses: set[str]) -> list[dict]:
    """Per learner: the chosen figure of each (course, date) — heartbeat over estimate — in
    these courses, over the 7 and 30 UTC dates ending today."""
    chosen: dict[tuple[str, str, int], int] = {}
    for user, course, ago, seconds, estimated in DAILY:
        if course not in courses or not 0 <= ago <= 29:
            continue
        key = (user, course, ago)
        if key not in chosen or not estimated:
            chosen[key] = seconds
    rows = []
    for name in names:
        days = {ago for (u, _, ago) in chosen if u == name}
        times = [(ago, s) for (u, _, ago), s in chosen.items() if u == name]
        access = [NOW - before for u, c, before in LAST_ACCESS if u == name and c in courses]
        rows.append({
            "learner": f"{name.title()} Learner",
            "active_days_7": sum(1 for d in days if d <= 6),
            "seconds_7": sum(s for ago, s in times if ago <= 6),
            "active_days_30": len(days),
            "seconds_30": sum(s for _, s in times),
            "last_access": datetime.fromtimestamp(max(access), UTC) if access else None,
        })  # fmt: skip
    return sorted(rows, key=lambda r: r["learner"])


def shown(rows):  # type: ignore[no-untyped-def]
    return [{k: r[k] for k in KEYS} for r in rows]


def fill(site: Site, appdb: AppDB) -> None:
    with appdb.transaction() as session:
        session.execute(insert(UsertimeDaily), [
            {"userid": site.users[u], "courseid": site.courses[c],
             "date": TODAY - timedelta(days=ago), "seconds": s, "estimated": est}
            for u, c, ago, s, est in DAILY
        ])  # fmt: skip
    for user, course, before in LAST_ACCESS:
        site.moodle.insert("user_lastaccess", userid=site.users[user],
                           courseid=site.courses[course], timeaccess=NOW - before)  # fmt: skip


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
    fill(site, appdb)
    src = MoodleSource(site.url)
    yield src
    src.dispose()


def run(source, appdb, scope, **raw):  # type: ignore[no-untyped-def]
    ctx = RunContext(source=source, scope=scope, now=NOW, appdb=appdb)
    return REPORT.page(ctx, REPORT.parse_params(raw), PageRequest(page_size=500, sort="learner"))


def viewer_scope(source, appdb, site, username):  # type: ignore[no-untyped-def]
    with appdb.transaction() as session:
        viewer = load_viewer(source, session, site.users[username])
    return scope_for(viewer)


ALL_COURSES = {"Fire Safety", "First Aid", "Shared Ethics", "Forklift"}


def test_site_admin_sees_every_learner_with_exact_figures(site, source, appdb):
    page = run(source, appdb, SITE)
    names = learners(site, ALL_COURSES)
    assert names == {"ana", "ben", "cara", "dan", "yuri", "zoe", "xena"}
    assert shown(page.rows) == expected(site, names, ALL_COURSES)
    ana = next(r for r in page.rows if r["learner"] == "Ana Learner")
    # today (60 + 100, one day), 6 days ago (200), 7 (300), 29 (50)
    assert (ana["active_days_7"], ana["seconds_7"]) == (2, 360)
    assert (ana["active_days_30"], ana["seconds_30"]) == (4, 710)
    zoe = next(r for r in page.rows if r["learner"] == "Zoe Learner")
    nothing = {"active_days_7": 0, "seconds_7": 0, "active_days_30": 0, "seconds_30": 0}
    assert shown([zoe])[0] == {"learner": "Zoe Learner", **nothing, "last_access": None}
    kpis = {k["key"]: k["value"] for k in page.kpis}
    want = expected(site, names, ALL_COURSES)
    assert kpis == {
        "learners": 7,
        "active_7": sum(1 for r in want if r["active_days_7"]),
        "active_30": sum(1 for r in want if r["active_days_30"]),
        "seconds_30": sum(r["seconds_30"] for r in want),
    }


def test_chart_counts_active_learners_per_utc_date(site, source, appdb):
    chart = run(source, appdb, SITE).chart
    assert chart["type"] == "line"
    assert chart["labels"][0] == (TODAY - timedelta(days=29)).isoformat()
    assert chart["labels"][-1] == TODAY.isoformat()
    names = learners(site, ALL_COURSES)
    want = [
        len({u for u, _, ago, _, _ in DAILY if ago == back and u in names})
        for back in range(29, -1, -1)
    ]
    assert chart["series"][0]["data"] == want
    assert want[-1] == 1 and want[-2] == 0  # ana today; gone and teacher_a yesterday do not count


def test_course_cohort_and_search_filters(site, source, appdb):
    fire = run(source, appdb, SITE, course=str(site.courses["Fire Safety"]))
    assert shown(fire.rows) == expected(site, learners(site, {"Fire Safety"}), {"Fire Safety"})
    cohort = site.moodle.insert("cohort", contextid=1, name="Pilots", descriptionformat=1,
                                component="", timecreated=NOW, timemodified=NOW)  # fmt: skip
    for name in ("ana", "yuri", "teacher_a"):
        site.moodle.insert("cohort_members", cohortid=cohort, userid=site.users[name])
    pilots = run(source, appdb, SITE, cohort=str(cohort))
    assert shown(pilots.rows) == expected(site, {"ana", "yuri"}, ALL_COURSES)
    assert [r["learner"] for r in run(source, appdb, SITE, q="ana learner").rows] == ["Ana Learner"]
    assert [r["learner"] for r in run(source, appdb, SITE, q="YURI@example").rows] == [
        "Yuri Learner"
    ]
    # LIKE wildcards typed in the search are characters: "a_" would match "ana" unescaped.
    assert run(source, appdb, SITE, q="a_").rows == []
    assert run(source, appdb, SITE, q="%").rows == []


@pytest.mark.parametrize("company", ["A", "B"])
def test_company_manager_sees_only_their_company(site, source, appdb, company):
    scope = viewer_scope(source, appdb, site, {"A": "mgr_a", "B": "mgr_b"}[company])
    assert scope == TenantScope(company_ids=(site.companies[company],))
    courses = {c for c in ALL_COURSES if site.course_company[c] in (company, None)}
    names = learners(site, courses, lambda u: site.user_company[u] == company)
    assert shown(run(source, appdb, scope).rows) == expected(site, names, courses)
    other = {"A": "Yuri Learner", "B": "Ana Learner"}[company]
    assert other not in {r["learner"] for r in run(source, appdb, scope).rows}


def test_a_learner_sees_only_their_own_row(site, source, appdb):
    scope = viewer_scope(source, appdb, site, "ana")
    assert scope.user_ids == frozenset({site.users["ana"]})
    page = run(source, appdb, scope)
    ana_courses = {e.course for e in site.enrolments if e.user == "ana"}
    assert shown(page.rows) == expected(site, {"ana"}, ana_courses)
    assert len(page.rows) == 1


def test_teacher_sees_their_course_only(site, source, appdb):
    scope = viewer_scope(source, appdb, site, "teacher_a")  # teaches First Aid
    page = run(source, appdb, scope)
    assert shown(page.rows) == expected(site, learners(site, {"First Aid"}), {"First Aid"})
    ana = next(r for r in page.rows if r["learner"] == "Ana Learner")
    assert ana["seconds_30"] == 100  # her Fire Safety time is not the teacher's to see
    assert ana["last_access"] == datetime.fromtimestamp(NOW - 7200, UTC)


def test_every_sortable_column_sorts_both_ways(site, source, appdb):
    ctx = RunContext(source=source, scope=SITE, now=NOW, appdb=appdb)
    data = REPORT.run(ctx, REPORT.parse_params({}))
    for column in REPORT.columns:
        for direction in ("asc", "desc"):
            everything, total = data.rows.page(PageRequest(1, 500, column.key, direction),
                                               REPORT.row_key)  # fmt: skip
            first, _ = data.rows.page(PageRequest(1, 3, column.key, direction), REPORT.row_key)
            second, _ = data.rows.page(PageRequest(2, 3, column.key, direction), REPORT.row_key)
            assert total == 7 and first + second == everything[:6]
            values = [r[column.key] for r in everything if r[column.key] is not None]
            key = (lambda v: v.casefold()) if column.kind == "text" else (lambda v: v)
            assert values == sorted(values, key=key, reverse=direction == "desc")
            assert all(r[column.key] is None for r in everything[len(values) :])


def test_windows_are_utc_dates_whatever_the_viewers_timezone(site, source, appdb):
    """A viewer in Auckland (UTC+13 in November) gets the same UTC-date figures, and the last
    access in their own time."""
    ctx = RunContext(source=source, scope=SITE, now=NOW, appdb=appdb, timezone="Pacific/Auckland")
    page = REPORT.page(ctx, REPORT.parse_params({}), PageRequest(page_size=500, sort="learner"))
    utc = run(source, appdb, SITE)
    figures = [k for k in KEYS if k != "last_access"]
    assert [{k: r[k] for k in figures} for r in page.rows] == [
        {k: r[k] for k in figures} for r in utc.rows
    ]
    ana = next(r for r in page.rows if r["learner"] == "Ana Learner")
    assert ana["last_access"].utcoffset() == timedelta(hours=13)
    assert ana["last_access"] == datetime.fromtimestamp(NOW - 60, UTC)
    # 11:06 UTC is already the next day in Auckland; the windows still end on the UTC date.
    assert page.chart["labels"][-1] == TODAY.isoformat() == "2026-11-18"


def test_data_endpoint_learner_and_manager(app, site, client_as):  # noqa: F811
    fill(site, app.extensions["manireports"].appdb)
    mine = client_as("ana").get("/reports/user_engagement/data").get_json()
    ana_courses = {e.course for e in site.enrolments if e.user == "ana"}
    want = expected(site, {"ana"}, ana_courses)
    assert [{k: r[k] for k in KEYS if k != "last_access"} for r in mine["rows"]] == [
        {k: v for k, v in r.items() if k != "last_access"} for r in want
    ]
    acme = client_as("mgr_a").get("/reports/user_engagement/data?sort=seconds_30&dir=desc")
    rows = acme.get_json()["rows"]
    assert {r["learner"] for r in rows} == {"Ana Learner", "Ben Learner", "Cara Learner",
                                            "Dan Learner"}  # fmt: skip
    assert [r["seconds_30"] for r in rows] == sorted((r["seconds_30"] for r in rows),
                                                     reverse=True)  # fmt: skip
