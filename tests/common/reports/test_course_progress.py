"""Course progress figures against values computed here from the facts the test writes on the
two-company site (SQLite, and MariaDB when configured), with Moodle's traps: deleted users,
suspended enrolments, teachers, modules being deleted or without completion, hidden modules,
complete-fail states, a course without completion tracking and one without tracked activities."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import ROUND_HALF_UP, Decimal
from typing import Any

import pytest
from sqlalchemy import text

from common.access.viewer import load_viewer
from common.appdb import AppDB
from common.db import make_engine
from common.migrate import upgrade
from common.moodle import MoodleSource
from common.reports import PageRequest, RunContext, SqlRows, get_report
from common.tenancy import SITE, TenantScope, scope_for
from tests.factories.sites import DAY, NOW, Enrolment, Site
from tests.web.conftest import app, client_as  # noqa: F401  the web fixtures, for one test

REPORT = get_report("course_progress")
KEYS = ("learner", "username", "course", "activities", "activities_completed", "progress",
        "course_completed", "last_access")  # fmt: skip

# A course of Acme's without completion tracking: its modules' settings are ignored.
EXTRA_COURSES = {"No Tracking": ("A", 0)}
# (course, module, course_modules.completion, other course_modules columns)
MODULES = [
    ("Fire Safety", "fs_auto", 2, {}),
    ("Fire Safety", "fs_manual", 1, {}),
    ("Fire Safety", "fs_hidden", 2, {"visible": 0}),  # hidden: Moodle still counts it
    ("Fire Safety", "fs_off", 0, {}),  # completion disabled: not tracked
    ("Fire Safety", "fs_deleting", 2, {"deletioninprogress": 1}),  # being deleted
    ("First Aid", "fa_1", 2, {}),
    ("First Aid", "fa_2", 2, {}),
    ("First Aid", "fa_3", 1, {}),
    ("First Aid", "fa_4", 1, {}),
    ("Forklift", "fk_1", 2, {}),
    ("Forklift", "fk_2", 2, {}),
    ("Shared Ethics", "se_off", 0, {}),  # nothing tracked: progress None
    ("No Tracking", "nt_1", 2, {}),
]
# Learners added to the site: (username, first name, company).
EXTRA_USERS = [
    ("emma", "Emma", "A"),
    ("finn", "Finn", "B"),
    ("per_cent", "Per%cent", "A"),
    ("perxcent", "Perxcent", "A"),
    ("under_score", "Under_score", "A"),
    ("underxscore", "Underxscore", "A"),
]
EXTRA_ENROLMENTS = [
    Enrolment("emma", "Fire Safety"),
    Enrolment("emma", "First Aid"),
    Enrolment("emma", "No Tracking"),
    Enrolment("finn", "Forklift"),
    Enrolment("per_cent", "Fire Safety"),
    Enrolment("perxcent", "Fire Safety"),
    Enrolment("under_score", "Fire Safety"),
    Enrolment("underxscore", "Fire Safety", 1),
]
# (user, module, completionstate): 0 incomplete, 1 complete, 2 pass, 3 fail.
STATES = [
    ("cara", "fs_auto", 1), ("cara", "fs_manual", 3), ("cara", "fs_hidden", 2),
    ("cara", "fs_off", 1), ("cara", "fs_deleting", 1),
    ("emma", "fs_auto", 0), ("emma", "fs_manual", 1),
    ("emma", "fa_1", 2), ("emma", "fa_2", 2), ("emma", "fa_3", 1), ("emma", "fa_4", 3),
    ("emma", "nt_1", 1),
    ("ben", "fa_1", 1),
    ("xena", "fk_1", 3), ("xena", "fk_2", 0),
    ("finn", "fk_1", 1), ("finn", "fk_2", 2),
    ("zoe", "se_off", 1),
    ("ana", "fs_auto", 1),
    ("under_score", "fs_auto", 1), ("underxscore", "fs_auto", 2),
    ("gone", "fa_1", 1),  # deleted user
    ("teacher_a", "fa_1", 1), ("teacher_a", "fa_2", 1),  # teaches First Aid
    ("cara", "fa_1", 1), ("cara", "fa_2", 1),  # suspended in First Aid
]  # fmt: skip
# (user, course, days ago) of user_lastaccess.
ACCESS = [("cara", "Fire Safety", 2), ("emma", "First Aid", 1), ("ana", "Fire Safety", 5),
          ("yuri", "Forklift", 3), ("gone", "First Aid", 1)]  # fmt: skip


@dataclass
class World:
    site: Site
    enrolments: list[Enrolment]
    enabled: dict[str, bool]
    cohort: int


def build_world(site: Site) -> World:
    moodle = site.moodle
    for name, (company, completion) in EXTRA_COURSES.items():
        site.courses[name] = moodle.course(fullname=name, enablecompletion=completion)
        site.course_company[name] = company
        moodle.company_course(site.companies[company], site.courses[name])
    for username, first, company in EXTRA_USERS:
        site.users[username] = moodle.user(username=username, firstname=first,
                                           lastname="Learner")  # fmt: skip
        moodle.company_user(site.companies[company], site.users[username])
        site.user_company[username] = company
    for e in EXTRA_ENROLMENTS:
        moodle.enrol(site.users[e.user], site.courses[e.course], timestart=NOW - 300 * DAY)
        if e.completed_days_ago is not None:
            moodle.complete(site.users[e.user], site.courses[e.course],
                            when=NOW - e.completed_days_ago * DAY)  # fmt: skip
    modules = {}
    for course, name, completion, overrides in MODULES:
        ref = moodle.module(site.courses[course], completion=completion, **overrides)
        modules[name] = ref.cm_id
    for user, module, state in STATES:
        moodle.module_completion(site.users[user], modules[module], state=state)
    for user, course, days in ACCESS:
        moodle.insert("user_lastaccess", userid=site.users[user], courseid=site.courses[course],
                      timeaccess=NOW - days * DAY)  # fmt: skip
    cohort = moodle.insert("cohort", contextid=1, name="Sales", idnumber="", descriptionformat=1,
                           component="", timecreated=NOW, timemodified=NOW)  # fmt: skip
    for user in ("ana", "cara", "emma", "yuri"):
        moodle.insert("cohort_members", cohortid=cohort, userid=site.users[user], timeadded=NOW)
    enabled = {c: True for c in site.courses} | {n: bool(e) for n, (_, e) in EXTRA_COURSES.items()}
    return World(site, site.enrolments + EXTRA_ENROLMENTS, enabled, cohort)


@pytest.fixture
def world(site: Site) -> World:
    return build_world(site)


@pytest.fixture
def source(world: World) -> Iterator[MoodleSource]:
    src = MoodleSource(world.site.url)
    yield src
    src.dispose()


# --- the figures, computed from the facts above --------------------------------------------


def half_up(value: float) -> float:
    return float(Decimal(repr(value)).quantize(Decimal("0.1"), rounding=ROUND_HALF_UP))


def expected_rows(world: World, visible_user=lambda u: True, visible_course=lambda c: True):  # type: ignore[no-untyped-def]
    site = world.site
    tracked: dict[str, list[str]] = {}
    for course, name, completion, overrides in MODULES:
        if completion > 0 and not overrides.get("deletioninprogress"):
            tracked.setdefault(course, []).append(name)
    rows = []
    for e in world.enrolments:
        if not e.active or e.user in site.deleted:
            continue
        if not visible_user(e.user) or not visible_course(e.course):
            continue
        enabled = world.enabled[e.course]
        modules = tracked.get(e.course, []) if enabled else []
        done = sum(1 for u, m, s in STATES if u == e.user and m in modules and s in (1, 2))
        completed_at = None if e.completed_days_ago is None else NOW - e.completed_days_ago * DAY
        if not enabled:
            progress = None
        elif completed_at is not None:
            progress = 100.0
        elif not modules:
            progress = None
        else:
            progress = half_up(100 * done / len(modules))
        access = next((NOW - d * DAY for u, c, d in ACCESS if (u, c) == (e.user, e.course)), None)
        first = next((f for u, f, _ in EXTRA_USERS if u == e.user), e.user.title())
        rows.append({
            "learner": f"{first} Learner", "username": e.user, "course": e.course,
            "activities": len(modules), "activities_completed": done, "progress": progress,
            "course_completed": stamp(completed_at), "last_access": stamp(access),
            "user_id": site.users[e.user], "course_id": site.courses[e.course],
        })  # fmt: skip
    return rows


def stamp(unix: int | None) -> datetime | None:
    return None if unix is None else datetime.fromtimestamp(unix, UTC)


def by_key(rows):  # type: ignore[no-untyped-def]
    """The report's default order: learner, then user id, course, course id."""
    return sorted(rows, key=lambda r: (r["learner"].casefold(), r["user_id"],
                                       r["course"].casefold(), r["course_id"]))  # fmt: skip


def by_progress_desc(rows):  # type: ignore[no-untyped-def]
    """Progress high to low (no progress last, as SQL sorts NULL), ties by the row key."""
    ordered = by_key(rows)
    ordered.sort(key=lambda r: -1 if r["progress"] is None else r["progress"], reverse=True)
    return ordered


def shown(rows):  # type: ignore[no-untyped-def]
    return [{k: r[k] for k in (*KEYS, "user_id", "course_id")} for r in rows]


def company_of(site: Site, user: str) -> str | None:
    return {**site.user_company, "teacher_a": "A"}.get(user)


def in_company(world: World, company: str):  # type: ignore[no-untyped-def]
    site = world.site
    return (lambda u: company_of(site, u) == company,
            lambda c: site.course_company[c] in (company, None))  # fmt: skip


def run(source, scope, request=None, **raw):  # type: ignore[no-untyped-def]
    ctx = RunContext(source=source, scope=scope, now=NOW)
    request = request or PageRequest(page_size=500, sort="learner")
    return REPORT.page(ctx, REPORT.parse_params(raw), request)


@pytest.fixture
def viewer_scope(source, tmp_path):  # type: ignore[no-untyped-def]
    """The scope the tenancy policy gives a site user (capability grants from an empty app DB)."""
    url = f"sqlite:///{tmp_path / 'app.db'}"
    upgrade(url)
    appdb = AppDB(url)

    def scope(site: Site, username: str) -> TenantScope:
        with appdb.transaction() as session:
            viewer = load_viewer(source, session, site.users[username])
        assert viewer is not None
        return scope_for(viewer)

    yield scope
    appdb.dispose()


# --- tests ---------------------------------------------------------------------------------


def test_site_admin_sees_every_learner_with_exact_figures(world, source):
    page = run(source, SITE)
    assert shown(page.rows) == by_key(expected_rows(world))
    assert page.total == len(page.rows)
    rows = {(r["username"], r["course"]): r for r in page.rows}
    # The traps, spelled out: 2 of Fire Safety's 3 tracked modules (fail, off, deleting don't
    # count; hidden does), completion switched off, nothing tracked, a course completed.
    assert (rows["cara", "Fire Safety"]["activities"], rows["cara", "Fire Safety"]["progress"]) == (
        3, 66.7)  # fmt: skip
    assert rows["emma", "No Tracking"]["progress"] is None
    assert rows["emma", "No Tracking"]["activities"] == 0
    assert rows["zoe", "Shared Ethics"]["progress"] is None
    assert rows["xena", "Forklift"]["progress"] == 0.0
    assert rows["ana", "Fire Safety"]["progress"] == 100.0  # completed course: 100, as Moodle
    assert rows["finn", "Forklift"]["progress"] == 100.0
    assert rows["finn", "Forklift"]["course_completed"] is None
    names = {r["username"] for r in page.rows}
    assert not names & {"gone", "teacher_a", "teacher_solo"}
    assert ("cara", "First Aid") not in rows  # suspended enrolment


def test_rows_page_in_sql(world, source):
    ctx = RunContext(source=source, scope=SITE, now=NOW)
    assert isinstance(REPORT.run(ctx, REPORT.parse_params({})).rows, SqlRows)


def test_kpis_and_chart_over_the_same_filters(world, source):
    page = run(source, SITE)
    want = expected_rows(world)
    kpis = {k["key"]: k["value"] for k in page.kpis}
    assert kpis["enrolments"] == len(want)
    assert kpis["learners"] == len({r["user_id"] for r in want})
    assert kpis["completed"] == sum(1 for r in want if r["course_completed"] is not None)
    progress = [r["progress"] for r in want if r["progress"] is not None]
    assert kpis["average_progress"] == pytest.approx(sum(progress) / len(progress), abs=0.051)
    bands = [0, 0, 0, 0, 0]
    for value in progress:
        bands[4 if value >= 100 else 3 if value >= 75 else 2 if value >= 50 else
              1 if value >= 25 else 0] += 1  # fmt: skip
    assert page.chart["type"] == "bar"
    assert page.chart["series"][0]["data"] == bands
    assert page.chart["drill"] == {"param": "band", "values": [0, 25, 50, 75, 100]}


BANDS = [(0, 0, 25), (25, 25, 50), (50, 50, 75), (75, 75, 100), (100, 100, 101)]


@pytest.mark.parametrize(("band", "low", "high"), BANDS)
def test_a_band_drills_to_its_learners(world, source, band, low, high):
    page = run(source, SITE, band=str(band))
    want = [r for r in expected_rows(world) if r["progress"] is not None
            and low <= r["progress"] < high]  # fmt: skip
    assert shown(page.rows) == by_key(want)
    assert {k["key"]: k["value"] for k in page.kpis}["enrolments"] == len(want)
    # The chart keeps every band, so another bar can be picked.
    assert page.chart["series"][0]["data"] == run(source, SITE).chart["series"][0]["data"]


def test_course_and_cohort_filters(world, source):
    site = world.site
    page = run(source, SITE, course=str(site.courses["First Aid"]))
    first_aid = expected_rows(world, visible_course=lambda c: c == "First Aid")
    assert shown(page.rows) == by_key(first_aid)
    members = {"ana", "cara", "emma", "yuri"}
    page = run(source, SITE, cohort=str(world.cohort))
    assert shown(page.rows) == by_key(expected_rows(world, visible_user=lambda u: u in members))
    page = run(source, SITE, cohort=str(world.cohort), course=str(site.courses["Fire Safety"]))
    assert {r["username"] for r in page.rows} == {"ana", "cara", "emma"}


@pytest.mark.parametrize(("q", "users"), [
    ("r%c", {"per_cent"}),  # % is a percent sign, not "anything"
    ("r_s", {"under_score"}),  # _ is an underscore, not "any character"
    ("per", {"per_cent", "perxcent"}),
    ("EMMA LEARNER", {"emma"}),  # the full name, without regard to case
    ("zoe@example", {"zoe"}),  # the email is searched (not shown)
    ("!", set()),
])  # fmt: skip
def test_search_matches_literally(world, source, q, users):
    page = run(source, SITE, q=q)
    assert {r["username"] for r in page.rows} == users
    assert all("email" not in r for r in page.rows)


@pytest.mark.parametrize("company", ["A", "B"])
def test_company_manager_sees_only_their_company(world, source, viewer_scope, company):
    site = world.site
    scope = viewer_scope(site, {"A": "mgr_a", "B": "mgr_b"}[company])
    assert scope == TenantScope(company_ids=(site.companies[company],))
    page = run(source, scope)
    assert shown(page.rows) == by_key(expected_rows(world, *in_company(world, company)))
    other_users = {u for u, c in site.user_company.items() if c != company}
    assert not {r["username"] for r in page.rows} & other_users
    assert ("Forklift" in {r["course"] for r in page.rows}) == (company == "B")
    chart = run(source, scope).chart["series"][0]["data"]
    assert sum(chart) == sum(1 for r in page.rows if r["progress"] is not None)


def test_a_learner_sees_only_their_own_rows(world, source, viewer_scope):
    site = world.site
    scope = viewer_scope(site, "ana")
    assert scope.user_ids == frozenset({site.users["ana"]})
    page = run(source, scope)
    assert shown(page.rows) == by_key(
        expected_rows(world, lambda u: u == "ana", lambda c: site.course_company[c] in ("A", None))
    )
    assert {r["course"] for r in page.rows} == {"Fire Safety", "First Aid", "Shared Ethics"}
    kpis = {k["key"]: k["value"] for k in page.kpis}
    assert (kpis["learners"], kpis["enrolments"]) == (1, 3)


def test_a_teacher_sees_the_learners_of_their_course(world, source, viewer_scope):
    scope = viewer_scope(world.site, "teacher_a")
    page = run(source, scope)
    want = expected_rows(world, lambda u: company_of(world.site, u) == "A",
                         lambda c: c == "First Aid")  # fmt: skip
    assert shown(page.rows) == by_key(want)
    assert "teacher_a" not in {r["username"] for r in page.rows}


def test_page_two_by_progress_with_ties_broken_by_the_row_key(world, source):
    want = by_progress_desc(expected_rows(world))
    size = 4
    assert len(want) > 2 * size
    page = run(source, SITE, PageRequest(page=2, page_size=size, sort="progress",
                                         direction="desc"))  # fmt: skip
    assert page.total == len(want)
    assert shown(page.rows) == want[size : 2 * size]
    last = run(source, SITE, PageRequest(page=-(-len(want) // size), page_size=size,
                                         sort="progress", direction="desc"))  # fmt: skip
    assert shown(last.rows) == want[(last.request.page - 1) * size :]
    assert last.rows[-1]["progress"] is None  # no progress sorts last when descending
    past = run(source, SITE, PageRequest(page=99, page_size=size, sort="progress"))
    assert (past.rows, past.total) == ([], len(want))


def test_every_sortable_column_sorts_both_ways(world, source):
    ctx = RunContext(source=source, scope=SITE, now=NOW)
    data = REPORT.run(ctx, REPORT.parse_params({}))
    total_rows = len(expected_rows(world))
    for column in REPORT.columns:
        assert column.sortable
        for direction in ("asc", "desc"):
            size = 3
            first, total = data.rows.page(PageRequest(1, size, column.key, direction),
                                          REPORT.row_key)  # fmt: skip
            second, _ = data.rows.page(PageRequest(2, size, column.key, direction),
                                       REPORT.row_key)  # fmt: skip
            everything, _ = data.rows.page(PageRequest(1, 500, column.key, direction),
                                           REPORT.row_key)  # fmt: skip
            assert total == total_rows
            assert first + second == everything[: 2 * size]
            values = [r[column.key] for r in everything if r[column.key] is not None]
            key: Any = (lambda v: v.casefold()) if column.kind == "text" else (lambda v: v)
            assert values == sorted(values, key=key, reverse=direction == "desc"), column.key


def test_data_endpoint_for_a_manager_and_a_learner(app, world, client_as):  # noqa: F811
    client = client_as("mgr_a")
    data = client.get("/reports/course_progress/data?sort=progress&dir=desc&page=2&page_size=3")
    assert data.status_code == 200
    body = data.get_json()
    assert [c["key"] for c in body["columns"]] == list(KEYS)
    want = by_progress_desc(expected_rows(world, *in_company(world, "A")))
    assert body["pagination"]["total"] == len(want)
    got = [(r["username"], r["course"], r["progress"]) for r in body["rows"]]
    assert got == [(r["username"], r["course"], r["progress"]) for r in want[3:6]]
    assert body["chart"]["drill"]["param"] == "band"
    mine = client_as("ana").get("/reports/course_progress/data").get_json()
    assert {r["username"] for r in mine["rows"]} == {"ana"}
    bad = client.get("/reports/course_progress/data?band=30")
    assert bad.status_code == 400 and bad.get_json()["field"] == "band"


@pytest.mark.parametrize("sort", ["learner", "course", "last_access"])
def test_keyed_pages_carry_the_figures_of_the_full_query(world, source, sort):
    """Sorted by a plain column, a page is cut without figures and only its rows get them:
    page by page, the rows must equal what the full query gives (the export's stream)."""
    ctx = RunContext(source=source, scope=SITE, now=NOW)
    data = REPORT.run(ctx, REPORT.parse_params({}))
    assert isinstance(data.rows, SqlRows) and data.rows.keyed is not None
    assert data.rows.keyed.sorts_by(sort) and not data.rows.keyed.sorts_by("progress")
    for direction in ("asc", "desc"):
        whole = [row for part in data.rows.batches(PageRequest(1, 3, sort, direction),
                                                   REPORT.row_key) for row in part]  # fmt: skip
        paged: list[dict[str, Any]] = []
        for number in range(1, len(whole) // 3 + 2):
            rows, total = data.rows.page(PageRequest(number, 3, sort, direction), REPORT.row_key)
            assert total == len(whole)
            paged += rows
        assert paged == whole
        assert any(r["progress"] not in (None, 0.0) for r in paged)


def test_a_band_is_ordered_on_the_full_query(world, source):
    ctx = RunContext(source=source, scope=SITE, now=NOW)
    data = REPORT.run(ctx, REPORT.parse_params({"band": "25"}))
    assert isinstance(data.rows, SqlRows) and data.rows.keyed is not None
    assert data.rows.keyed.keys is None and not data.rows.keyed.sorts_by("learner")
    rows, total = data.rows.page(PageRequest(2, 1, "learner", "asc"), REPORT.row_key)
    assert total == len([r for r in expected_rows(world) if r["progress"] is not None
                         and 25 <= r["progress"] < 50])  # fmt: skip
    assert rows and 25 <= rows[0]["progress"] < 50


def test_later_pages_keep_the_first_pages_order_and_the_first_page_refreshes_it(world, source):
    """Pages after the first are cut from the order taken at the first (no row shown twice or
    skipped while someone pages), with live figures and names; the first page orders anew."""
    ctx = RunContext(source=source, scope=SITE, now=NOW)

    def page(number: int) -> list[dict[str, Any]]:
        data = REPORT.run(ctx, REPORT.parse_params({}))  # a new request each time
        return data.rows.page(PageRequest(number, 3, "learner", "asc"), REPORT.row_key)[0]

    def ids(rows: list[dict[str, Any]]) -> list[tuple[int, int]]:
        return [(r["user_id"], r["course_id"]) for r in rows]

    page(1)
    before = page(2)
    moved = before[0]["user_id"]
    writer = make_engine(world.site.url)
    with writer.begin() as conn:
        conn.execute(text("UPDATE mdl_user SET firstname = 'Zzzz' WHERE id = :id"), {"id": moved})
    writer.dispose()
    kept = page(2)
    assert ids(kept) == ids(before)
    assert kept[0]["learner"].startswith("Zzzz")  # the row itself is read live
    page(1)
    assert moved not in {r["user_id"] for r in page(2)}  # ordered anew: now among the last
