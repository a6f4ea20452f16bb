"""Quiz attempt figures against values computed here from the attempts the test writes on the
two-company site (SQLite, and MariaDB when configured), with Moodle's traps: previews,
in-progress, overdue and abandoned attempts, attempts not graded yet, a quiz worth no marks, a
quiz being deleted, deleted users, suspended enrolments and teachers who attempt."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from common.moodle import MoodleSource
from common.reports import PageRequest, RunContext, get_report
from common.tenancy import SITE, TenantScope
from tests.factories.sites import NOW, Site
from tests.web.conftest import app, client_as  # noqa: F401  the web fixtures, for one test

REPORT = get_report("quiz_attempts")
KEYS = ("course", "quiz", "enrolled", "learners", "attempts", "average_grade", "best_grade",
        "max_grade", "completion_pct")  # fmt: skip
HOUR = 3600
SYDNEY = "Australia/Sydney"  # UTC+11 all November 2026 (NOW is 2026-11-18)


def at(local: str, zone: str = SYDNEY) -> int:
    """A Unix time from a local 'YYYY-MM-DD HH:MM' in `zone`."""
    return int(datetime.fromisoformat(local).replace(tzinfo=ZoneInfo(zone)).timestamp())


@dataclass(frozen=True)
class Quiz:
    name: str
    course: str
    grade: float
    sumgrades: float
    deleting: bool = False


QUIZZES = [
    Quiz("Fire Quiz", "Fire Safety", 100.0, 20.0),
    Quiz("Unmarked", "Fire Safety", 10.0, 0.0),  # no marks: no grades
    Quiz("Old Quiz", "Fire Safety", 10.0, 10.0, deleting=True),  # never listed
    Quiz("Aid Quiz", "First Aid", 10.0, 10.0),
    Quiz("Fork Quiz", "Forklift", 50.0, 25.0),
    Quiz("Ethics Quiz", "Shared Ethics", 10.0, 5.0),  # nobody attempts it
    Quiz("Intro Quiz", "Induction (no learners yet)", 10.0, 10.0),
]


@dataclass(frozen=True)
class Attempt:
    quiz: str
    user: str
    state: str = "finished"
    sumgrades: float | None = None
    finished: int = NOW - 24 * HOUR
    preview: int = 0


ATTEMPTS = [
    Attempt("Fire Quiz", "ana", sumgrades=10.0, finished=at("2026-11-10 00:30")),
    Attempt("Fire Quiz", "ana", sumgrades=18.0, finished=at("2026-11-12 23:59")),
    Attempt("Fire Quiz", "ana", sumgrades=None, finished=at("2026-11-14 10:00")),  # to grade
    Attempt("Fire Quiz", "ben", sumgrades=5.0, finished=at("2026-11-09 23:30")),
    Attempt("Fire Quiz", "cara", state="inprogress"),
    Attempt("Fire Quiz", "cara", state="abandoned", sumgrades=12.0),
    Attempt("Fire Quiz", "dan", state="overdue", sumgrades=12.0),
    Attempt("Fire Quiz", "dan", sumgrades=20.0, preview=1),  # a preview never counts
    Attempt("Fire Quiz", "gone", sumgrades=20.0),  # deleted user
    Attempt("Unmarked", "ana", sumgrades=0.0),
    Attempt("Old Quiz", "ana", sumgrades=9.0),  # quiz being deleted
    Attempt("Aid Quiz", "ana", sumgrades=7.0, finished=at("2026-11-13 00:00")),
    Attempt("Aid Quiz", "ben", sumgrades=3.0, finished=at("2026-11-11 12:00")),
    Attempt("Aid Quiz", "teacher_a", sumgrades=10.0),  # teaches First Aid: not a learner
    Attempt("Aid Quiz", "teacher_a", sumgrades=10.0, preview=1),
    Attempt("Aid Quiz", "cara", sumgrades=9.0),  # suspended in First Aid
    Attempt("Fork Quiz", "yuri", sumgrades=20.0, finished=at("2026-11-10 08:00")),
    Attempt("Fork Quiz", "zoe", sumgrades=25.0, finished=at("2026-11-12 22:00")),
    Attempt("Fork Quiz", "zoe", sumgrades=11.0, finished=at("2026-11-16 09:00")),
    Attempt("Fork Quiz", "xena", state="inprogress"),
]


@dataclass
class World:
    site: Site
    quiz_ids: dict[str, int]
    cohort: int


def build_world(site: Site) -> World:
    moodle = site.moodle
    refs = {}
    for quiz in QUIZZES:
        course = site.courses[quiz.course]
        values = {"name": quiz.name, "grade": quiz.grade, "sumgrades": quiz.sumgrades}
        if quiz.deleting:
            quiz_id = moodle.insert("quiz", course=course, intro="", timecreated=NOW, **values)
            ref = moodle.module(course, "quiz", instance=quiz_id, deletioninprogress=1)
        else:
            ref = moodle.quiz(course, **values)
        refs[quiz.name] = ref
    numbers: dict[tuple[str, str], int] = {}
    for a in ATTEMPTS:
        number = numbers[a.quiz, a.user] = numbers.get((a.quiz, a.user), 0) + 1
        finished = a.state == "finished"
        moodle.quiz_attempt(
            site.users[a.user], refs[a.quiz], attempt=number, state=a.state,
            sumgrades=a.sumgrades, preview=a.preview, timestart=a.finished - HOUR,
            timefinish=a.finished if finished else 0,
        )  # fmt: skip
    cohort = moodle.insert("cohort", contextid=1, name="Pilots", idnumber="", descriptionformat=1,
                           component="", timecreated=NOW, timemodified=NOW)  # fmt: skip
    for user in ("ana", "yuri", "cara"):
        moodle.insert("cohort_members", cohortid=cohort, userid=site.users[user], timeadded=NOW)
    return World(site, {name: ref.instance for name, ref in refs.items()}, cohort)


@pytest.fixture
def world(site: Site) -> World:
    return build_world(site)


@pytest.fixture
def source(world: World) -> Iterator[MoodleSource]:
    src = MoodleSource(world.site.url)
    yield src
    src.dispose()


# --- the figures, computed from the facts above --------------------------------------------


def learners_of(site: Site, course: str, people) -> set[str]:  # type: ignore[no-untyped-def]
    """Learners actively enrolled in `course` (teachers, deleted users, suspended not)."""
    return {e.user for e in site.enrolments if e.course == course and e.active
            and e.user not in site.deleted and people(e.user)}  # fmt: skip


def expected(  # type: ignore[no-untyped-def]
    world: World,
    people=lambda u: True,
    courses=lambda c: True,
    start: date | None = None,
    end: date | None = None,
    zone: str = "UTC",
):
    """Rows, and the attempt fractions behind the average grade % (for the KPI)."""
    site = world.site
    rows, fractions = [], []
    for quiz in QUIZZES:
        if quiz.deleting or not courses(quiz.course):
            continue
        enrolled = learners_of(site, quiz.course, people)
        counted = [
            a for a in ATTEMPTS
            if a.quiz == quiz.name and a.user in enrolled and a.state == "finished"
            and not a.preview and (start is None or local_day(a.finished, zone) >= start)
            and (end is None or local_day(a.finished, zone) <= end)
        ]  # fmt: skip
        graded = [a.sumgrades for a in counted if a.sumgrades is not None] if quiz.sumgrades else []
        grades = [s / quiz.sumgrades * quiz.grade for s in graded]
        fractions += [s / quiz.sumgrades for s in graded]
        learners = len({a.user for a in counted})
        rows.append({
            "course": quiz.course, "quiz": quiz.name, "enrolled": len(enrolled),
            "learners": learners, "attempts": len(counted),
            "average_grade": round(sum(grades) / len(grades), 2) if grades else None,
            "best_grade": round(max(grades), 2) if grades else None,
            "max_grade": quiz.grade,
            "completion_pct": round(100 * learners / len(enrolled), 1) if enrolled else 0.0,
            "course_id": site.courses[quiz.course], "quiz_id": world.quiz_ids[quiz.name],
        })  # fmt: skip
    rows.sort(key=lambda r: (r["course"], r["quiz"]))
    return rows, fractions


def local_day(unix: int, zone: str) -> date:
    return datetime.fromtimestamp(unix, UTC).astimezone(ZoneInfo(zone)).date()


def shown(rows):  # type: ignore[no-untyped-def]
    return [{k: r[k] for k in (*KEYS, "course_id", "quiz_id")} for r in rows]


def run(source, scope, timezone=None, request=None, **raw):  # type: ignore[no-untyped-def]
    ctx = RunContext(source=source, scope=scope, now=NOW, timezone=timezone)
    request = request or PageRequest(page_size=500, sort="course")
    return REPORT.page(ctx, REPORT.parse_params(raw), request)


def company_of(site: Site, user: str) -> str | None:
    return {**site.user_company, "teacher_a": "A"}.get(user)


# --- tests ---------------------------------------------------------------------------------


def test_site_admin_sees_every_quiz_with_exact_figures(world, source):
    page = run(source, SITE)
    rows, fractions = expected(world)
    assert shown(page.rows) == rows
    quizzes = {r["quiz"]: r for r in page.rows}
    assert "Old Quiz" not in quizzes  # being deleted
    fire = quizzes["Fire Quiz"]
    # ana (3 finished, one not graded yet) and ben; cara, dan, gone and the preview not.
    assert (fire["learners"], fire["attempts"]) == (2, 4)
    assert (fire["average_grade"], fire["best_grade"]) == (55.0, 90.0)  # (50 + 90 + 25) / 3
    assert fire["completion_pct"] == round(100 * 2 / 4, 1)  # ana, ben, cara, dan enrolled
    assert quizzes["Unmarked"]["attempts"] == 1
    assert quizzes["Unmarked"]["average_grade"] is None  # a quiz worth no marks
    assert quizzes["Aid Quiz"]["learners"] == 2  # not the teacher, not suspended cara
    assert quizzes["Ethics Quiz"]["attempts"] == 0
    assert quizzes["Intro Quiz"]["completion_pct"] == 0.0  # nobody enrolled
    kpis = {k["key"]: k["value"] for k in page.kpis}
    assert kpis["quizzes"] == len(rows)
    assert kpis["attempts"] == sum(r["attempts"] for r in rows)
    assert kpis["average_grade_pct"] == pytest.approx(100 * sum(fractions) / len(fractions),
                                                      abs=0.051)  # fmt: skip


def test_chart_shows_the_average_grade_percent_of_the_most_attempted_quizzes(world, source):
    chart = run(source, SITE).chart
    rows, _ = expected(world)
    graded = [r for r in rows if r["average_grade"] is not None]
    top = sorted(graded, key=lambda r: (-r["attempts"], r["course"], r["quiz"]))
    assert chart["type"] == "bar"
    assert chart["labels"] == [f"{r['quiz']} ({r['course']})" for r in top]
    fire = chart["labels"].index("Fire Quiz (Fire Safety)")
    assert chart["series"][0]["data"][fire] == 55.0  # (10 + 18 + 5) / 3 of 20 marks
    fork = chart["labels"].index("Fork Quiz (Forklift)")
    assert chart["series"][0]["data"][fork] == round(100 * (20 + 25 + 11) / 3 / 25, 1)
    assert chart["drill"] == {"param": "course", "values": [r["course_id"] for r in top]}


@pytest.mark.parametrize(("zone", "start", "end"), [
    ("UTC", date(2026, 11, 10), None),
    (SYDNEY, date(2026, 11, 10), None),  # ana's 00:30 counts, ben's 23:30 the day before not
    (SYDNEY, None, date(2026, 11, 12)),  # 23:59 on the 12th counts, 00:00 on the 13th not
    (SYDNEY, date(2026, 11, 12), date(2026, 11, 12)),
    ("America/New_York", date(2026, 11, 12), date(2026, 11, 13)),
])  # fmt: skip
def test_date_range_in_the_viewers_timezone(world, source, zone, start, end):
    raw = {"from": start.isoformat() if start else "", "to": end.isoformat() if end else ""}
    page = run(source, SITE, timezone=zone, **raw)
    rows, _ = expected(world, start=start, end=end, zone=zone)
    assert shown(page.rows) == rows


def test_course_and_cohort_filters(world, source):
    site = world.site
    page = run(source, SITE, course=str(site.courses["Fire Safety"]))
    assert shown(page.rows) == expected(world, courses=lambda c: c == "Fire Safety")[0]
    members = {"ana", "yuri", "cara"}
    page = run(source, SITE, cohort=str(world.cohort))
    assert shown(page.rows) == expected(world, people=lambda u: u in members)[0]


@pytest.mark.parametrize("company", ["A", "B"])
def test_company_manager_sees_only_their_company(world, source, company):
    site = world.site
    scope = TenantScope(company_ids=(site.companies[company],))
    page = run(source, scope)
    rows, _ = expected(world, lambda u: company_of(site, u) == company,
                       lambda c: site.course_company[c] in (company, None))  # fmt: skip
    assert shown(page.rows) == rows
    assert ("Fork Quiz" in {r["quiz"] for r in page.rows}) == (company == "B")
    assert ("Fire Quiz" in {r["quiz"] for r in page.rows}) == (company == "A")


def test_a_teacher_sees_their_course_only(world, source):
    site = world.site
    scope = TenantScope(company_ids=(site.companies["A"],),
                        course_ids=frozenset({site.courses["First Aid"]}))  # fmt: skip
    page = run(source, scope)
    rows, _ = expected(world, lambda u: company_of(site, u) == "A", lambda c: c == "First Aid")
    assert shown(page.rows) == rows


def test_every_sortable_column_sorts_both_ways(world, source):
    ctx = RunContext(source=source, scope=SITE, now=NOW)
    data = REPORT.run(ctx, REPORT.parse_params({}))
    count = len(expected(world)[0])
    for column in REPORT.columns:
        for direction in ("asc", "desc"):
            first, total = data.rows.page(PageRequest(1, 2, column.key, direction), REPORT.row_key)
            second, _ = data.rows.page(PageRequest(2, 2, column.key, direction), REPORT.row_key)
            everything, _ = data.rows.page(PageRequest(1, 500, column.key, direction),
                                           REPORT.row_key)  # fmt: skip
            assert total == count
            assert first + second == everything[:4]
            values = [r[column.key] for r in everything if r[column.key] is not None]
            key: Any = (lambda v: v.casefold()) if column.kind == "text" else (lambda v: v)
            assert values == sorted(values, key=key, reverse=direction == "desc"), column.key


def test_students_may_not_run_it_and_a_manager_gets_the_data(app, world, client_as):  # noqa: F811
    assert client_as("ana").get("/reports/quiz_attempts/data").status_code == 403
    body = client_as("mgr_b").get("/reports/quiz_attempts/data?sort=attempts&dir=desc").get_json()
    site = world.site
    rows, _ = expected(world, lambda u: company_of(site, u) == "B",
                       lambda c: site.course_company[c] in ("B", None))  # fmt: skip
    assert [(r["quiz"], r["attempts"]) for r in body["rows"]] == [
        (r["quiz"], r["attempts"]) for r in sorted(rows, key=lambda r: -r["attempts"])
    ]
    bad = client_as("mgr_b").get("/reports/quiz_attempts/data?from=2026-11-12&to=2026-11-01")
    assert bad.status_code == 400 and bad.get_json()["field"] == "to"
