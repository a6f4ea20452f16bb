"""SCORM summary figures against values computed here from the attempts the test writes, on
both SCORM tracking layouts, within each viewer's scope."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import pytest

from common.access.viewer import load_viewer
from common.analytics.scorm import update_scorm_summary
from common.appdb import AppDB
from common.db import make_engine
from common.migrate import upgrade
from common.moodle import MoodleSource
from common.reports import PageRequest, RunContext, get_report
from common.tenancy import SITE, TenantScope, scope_for
from tests.conftest import backend_of, migrated_database
from tests.factories.moodle import MoodleFactory
from tests.factories.sites import NOW, Site
from tests.web.conftest import app, client_as  # noqa: F401  the web fixtures, for one test

REPORT = get_report("scorm_summary")
KEYS = ("course", "activity", "learners", "attempts", "completed", "passed", "avg_score",
        "avg_time")  # fmt: skip


@dataclass(frozen=True)
class Attempt:
    completion: str  # completed | incomplete
    success: str  # passed | failed | unknown
    score: float | None
    seconds: int


# (course, activity, version): "Unopened" has no attempt at all.
ACTIVITIES = [
    ("Fire Safety", "Evacuation", "SCORM_1.2"),
    ("Fire Safety", "Unopened", "SCORM_1.2"),
    ("First Aid", "Bandaging", "SCORM_13"),
    ("Forklift", "Pallets", "SCORM_13"),
    ("Shared Ethics", "Ethics", "SCORM_1.2"),
]
# (activity, user): their attempts in order. "gone" is a deleted user; "teacher_a" teaches
# First Aid (counted: Moodle's SCORM report lists anyone who saves tracks).
ATTEMPTS = {
    ("Evacuation", "ana"): [Attempt("completed", "failed", 40, 600),
                            Attempt("completed", "passed", 85, 300)],
    ("Evacuation", "ben"): [Attempt("incomplete", "unknown", None, 120)],
    ("Evacuation", "gone"): [Attempt("completed", "passed", 100, 50)],
    ("Evacuation", "cara"): [Attempt("completed", "passed", 70, 400),
                             Attempt("incomplete", "unknown", None, 30)],
    ("Bandaging", "cara"): [Attempt("completed", "failed", 50, 1800)],
    ("Bandaging", "teacher_a"): [Attempt("completed", "passed", 90, 600)],
    ("Bandaging", "gone"): [Attempt("incomplete", "unknown", 10, 60)],
    ("Pallets", "yuri"): [Attempt("completed", "passed", 70, 900)],
    ("Pallets", "xena"): [Attempt("incomplete", "unknown", 20, 100)],
    ("Ethics", "ana"): [Attempt("completed", "passed", 60, 1000)],
    ("Ethics", "zoe"): [Attempt("incomplete", "unknown", None, 200)],
}  # fmt: skip


def hms(seconds: int) -> str:
    return f"{seconds // 3600:02d}:{seconds % 3600 // 60:02d}:{seconds % 60:02d}"


def write_attempts(moodle: MoodleFactory, users: dict[str, int], courses: dict[str, int]) -> None:
    """The activities and attempts above in the site's layout, as SCORM 1.2 or 2004 elements."""
    refs = {}
    for course, name, version in ACTIVITIES:
        refs[name] = (moodle.scorm(courses[course], name=name, version=version), version)
    for (name, user), attempts in ATTEMPTS.items():
        ref, version = refs[name]
        for number, a in enumerate(attempts, start=1):
            if version == "SCORM_1.2":
                status = a.success if a.success in ("passed", "failed") else a.completion
                elements = {"cmi.core.lesson_status": status,
                            "cmi.core.total_time": hms(a.seconds)}  # fmt: skip
                if a.score is not None:
                    elements["cmi.core.score.raw"] = str(a.score)
            else:
                elements = {"cmi.completion_status": a.completion, "cmi.success_status": a.success,
                            "cmi.total_time": f"PT{a.seconds}S"}  # fmt: skip
                if a.score is not None:
                    elements["cmi.score.raw"] = str(a.score)
            for element, value in elements.items():
                moodle.scorm_track(users[user], ref, element, value, attempt=number)


def expected(site: Site, visible_user, visible_course) -> list[dict]:  # type: ignore[no-untyped-def]
    """Per activity in the visible courses: the non-deleted visible users' attempts."""
    rows = []
    for course, name, _ in ACTIVITIES:
        if not visible_course(course):
            continue
        people = [
            attempts for (activity, user), attempts in ATTEMPTS.items()
            if activity == name and user not in site.deleted and visible_user(user)
        ]  # fmt: skip
        scores = [max(a.score for a in p if a.score is not None) for p in people
                  if any(a.score is not None for a in p)]  # fmt: skip
        totals = [sum(a.seconds for a in p) for p in people]
        rows.append({
            "course": course, "activity": name, "learners": len(people),
            "attempts": sum(len(p) for p in people),
            "completed": sum(1 for p in people if p[-1].completion == "completed"),
            "passed": sum(1 for p in people if p[-1].success == "passed"),
            "avg_score": round(sum(scores) / len(scores), 1) if scores else None,
            "avg_time": round(sum(totals) / len(totals)) if totals else 0,
        })  # fmt: skip
    return sorted(rows, key=lambda r: (r["course"], r["activity"]))


def company_of(site: Site, user: str) -> str | None:
    """The company a learner belongs to (teacher_a is an Acme member the site does not list)."""
    return {**site.user_company, "teacher_a": "A"}.get(user)


def shown(rows):  # type: ignore[no-untyped-def]
    return [{k: r[k] for k in KEYS} for r in rows]


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
    write_attempts(site.moodle, site.users, site.courses)
    src = MoodleSource(site.url)
    update_scorm_summary(appdb, src, full=True)
    yield src
    src.dispose()


def run(source, appdb, scope, **raw):  # type: ignore[no-untyped-def]
    ctx = RunContext(source=source, scope=scope, now=NOW, appdb=appdb)
    page = REPORT.page(ctx, REPORT.parse_params(raw), PageRequest(page_size=500, sort="course"))
    return page


def viewer_scope(source, appdb, site, username):  # type: ignore[no-untyped-def]
    with appdb.transaction() as session:
        viewer = load_viewer(source, session, site.users[username])
    return scope_for(viewer)


def test_site_admin_sees_every_activity_with_exact_figures(site, source, appdb):
    page = run(source, appdb, SITE)
    assert shown(page.rows) == expected(site, lambda u: True, lambda c: True)
    unopened = next(r for r in page.rows if r["activity"] == "Unopened")
    assert (unopened["learners"], unopened["attempts"], unopened["avg_score"]) == (0, 0, None)
    kpis = {k["key"]: k["value"] for k in page.kpis}
    # ana attempted two activities: counted once among the learners
    assert kpis["learners"] == len({u for (_, u) in ATTEMPTS if u not in site.deleted})
    assert kpis["activities"] == len(ACTIVITIES)
    chart = page.chart
    assert chart["type"] == "bar" and chart["drill"]["param"] == "course"
    completed = dict(zip(chart["labels"], chart["series"][1]["data"], strict=True))
    assert completed["Evacuation (Fire Safety)"] == 1  # ana; cara's last attempt is incomplete
    assert (
        chart["drill"]["values"][chart["labels"].index("Pallets (Forklift)")]
        == (site.courses["Forklift"])
    )


def test_deleted_users_never_count(site, source, appdb):
    rows = {r["activity"]: r for r in run(source, appdb, SITE).rows}
    assert rows["Evacuation"]["learners"] == 3  # ana, ben, cara — not gone
    assert rows["Bandaging"]["avg_score"] == 70.0  # cara 50, teacher 90 — not gone's 10


def test_course_filter(site, source, appdb):
    page = run(source, appdb, SITE, course=str(site.courses["First Aid"]))
    assert shown(page.rows) == expected(site, lambda u: True, lambda c: c == "First Aid")


@pytest.mark.parametrize("company", ["A", "B"])
def test_company_manager_sees_only_their_company(site, source, appdb, company):
    manager = {"A": "mgr_a", "B": "mgr_b"}[company]
    scope = viewer_scope(source, appdb, site, manager)
    assert scope == TenantScope(company_ids=(site.companies[company],))
    page = run(source, appdb, scope)
    assert shown(page.rows) == expected(
        site,
        lambda u: company_of(site, u) == company,
        lambda c: site.course_company[c] in (company, None),
    )
    courses = {r["course"] for r in page.rows}
    assert ("Forklift" in courses) == (company == "B")
    assert ("Fire Safety" in courses) == (company == "A")


def test_teacher_sees_their_course_only(site, source, appdb):
    scope = viewer_scope(source, appdb, site, "teacher_a")
    page = run(source, appdb, scope)
    first_aid = {"ana", "ben", "cara", "gone", "teacher_a"}  # enrolled there, any status
    assert shown(page.rows) == expected(site, lambda u: u in first_aid,
                                        lambda c: c == "First Aid")  # fmt: skip


def test_every_sortable_column_sorts_both_ways(site, source, appdb):
    ctx = RunContext(source=source, scope=SITE, now=NOW, appdb=appdb)
    data = REPORT.run(ctx, REPORT.parse_params({}))
    for column in REPORT.columns:
        for direction in ("asc", "desc"):
            request = PageRequest(page=1, page_size=2, sort=column.key, direction=direction)
            first, total = data.rows.page(request, REPORT.row_key)
            second, _ = data.rows.page(PageRequest(2, 2, column.key, direction), REPORT.row_key)
            everything, _ = data.rows.page(PageRequest(1, 500, column.key, direction),
                                           REPORT.row_key)  # fmt: skip
            assert total == len(ACTIVITIES)
            assert first + second == everything[:4]
            values = [r[column.key] for r in everything if r[column.key] is not None]
            key = (lambda v: v.casefold()) if column.kind == "text" else (lambda v: v)
            assert values == sorted(values, key=key, reverse=direction == "desc")


def test_same_figures_from_both_tracking_layouts(moodle_url, tmp_path):
    """A site on the ≤ 4.2 `scorm_scoes_track` layout and one on 4.3+ tables: same rows."""
    results = []
    for prefix, layout in (("trk_", "track"), ("att_", "attempt")):
        engine = make_engine(moodle_url)
        moodle = MoodleFactory(engine, prefix=prefix, scorm_layout=layout, now=NOW)
        courses = {c: moodle.course(fullname=c) for c in {a[0] for a in ACTIVITIES}}
        users = {u: moodle.user(username=u) for u in {u for (_, u) in ATTEMPTS}}
        moodle.delete_user(users["gone"])
        write_attempts(moodle, users, courses)
        engine.dispose()
        url = f"sqlite:///{tmp_path / f'{layout}_app.db'}"
        upgrade(url)
        appdb = AppDB(url)
        source = MoodleSource(moodle_url, prefix)
        update_scorm_summary(appdb, source, full=True)
        results.append(shown(run(source, appdb, SITE).rows))
        source.dispose()
        appdb.dispose()
    site = Site(url=moodle_url, moodle=None, deleted={"gone"})  # type: ignore[arg-type]
    assert results[0] == results[1] == expected(site, lambda u: True, lambda c: True)


def test_data_endpoint_for_a_company_manager(app, site, client_as):  # noqa: F811
    write_attempts(site.moodle, site.users, site.courses)
    ctx = app.extensions["manireports"]
    update_scorm_summary(ctx.appdb, ctx.moodle, full=True)
    data = client_as("mgr_a").get("/reports/scorm_summary/data?sort=learners&dir=desc").get_json()
    assert [c["key"] for c in data["columns"]] == list(KEYS)
    rows = shown(data["rows"])
    want = expected(site, lambda u: company_of(site, u) == "A",
                    lambda c: site.course_company[c] in ("A", None))  # fmt: skip
    assert sorted(rows, key=lambda r: (r["course"], r["activity"])) == want
    assert [r["learners"] for r in rows] == sorted((r["learners"] for r in want), reverse=True)
    assert client_as("ana").get("/reports/scorm_summary/data").status_code == 403
