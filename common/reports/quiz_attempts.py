"""Quiz attempts: per quiz, how many learners finished it, their attempts, the average and best
grade, and the share of the course's learners who finished at least one attempt.

Rules (Moodle's quiz tables, NOTES.md §6):
- An attempt counts when it is finished (`quiz_attempts.state = 'finished'`) and not a teacher's
  preview (`preview = 0`); in-progress, overdue and abandoned attempts never count. The date
  range filters on `timefinish`, from the first day's midnight to the end of the last day in
  the viewer's timezone.
- Only learners' attempts count: people with an active enrolment and a student-archetype role
  in the quiz's course (`active_enrolments`, as in the completion report), like the default
  "enrolled users who have attempted" of Moodle's quiz results. Attempts of deleted users,
  suspended or ended enrolments and teachers are left out, so the completion rate
  (learners with a finished attempt / learners enrolled) never passes 100 %.
- A grade is scaled to the quiz's grade: `attempt.sumgrades / quiz.sumgrades * quiz.grade`
  (two decimals). A quiz whose `sumgrades` is 0 (no marks to score) has no grades (None), and an
  attempt not graded yet (`sumgrades` NULL, e.g. essays awaiting marking) counts as an attempt
  but not in the grades.
- Every quiz in scope is listed, also those nobody attempted (zeros); quizzes being deleted
  (their course module has `deletioninprogress = 1`) are not. A course without learners has a
  completion rate of 0, as in the completion report.

The rows are computed in Python (`ListRows`): a site has a few thousand quizzes at most.
"""

from __future__ import annotations

import functools
from collections.abc import Mapping
from datetime import date
from typing import Any

from sqlalchemy import BigInteger, Float, Select, and_, bindparam, case, func, select, type_coerce

from common.access import capabilities as caps
from common.moodle import MoodleTables
from common.reports.base import Column, Report, ReportData, RunContext, register
from common.reports.learners import filtered_enrolments
from common.reports.params import cohort_filter, course_filter, date_from, date_to
from common.reports.rows import ListRows
from common.tenancy import scoped

DAY_S = 86400
EPOCH = date(1970, 1, 1)
FINISHED = "finished"
CHART_QUIZZES = 20


@register
class QuizAttemptsReport(Report):
    type_name = "quiz_attempts"
    title = "Quiz attempts"
    description = (
        "Per quiz: learners who finished it, finished attempts, average and best grade, "
        "and the share of the course's learners who finished an attempt."
    )
    capabilities = (
        caps.VIEW_ADMIN_DASHBOARD,
        caps.VIEW_MANAGER_DASHBOARD,
        caps.VIEW_TEACHER_DASHBOARD,
    )
    columns = (
        Column("course", "Course", drill="course"),
        Column("quiz", "Quiz"),
        Column("enrolled", "Learners enrolled", "int"),
        Column("learners", "Learners attempted", "int"),
        Column("attempts", "Finished attempts", "int"),
        Column("average_grade", "Average grade", "float"),
        Column("best_grade", "Best grade", "float"),
        Column("max_grade", "Out of", "float"),
        Column("completion_pct", "Completion %", "percent"),
    )
    params = (course_filter(), cohort_filter(), date_from(), date_to())
    default_sort = "course"
    row_key = ("course", "quiz", "quiz_id")

    def run(self, ctx: RunContext, params: Mapping[str, Any]) -> ReportData:
        source = ctx.source
        start, end = params.get("from"), params.get("to")
        values = {
            "now": ctx.now, "course": params.get("course"), "cohort": params.get("cohort"),
            "start": None if start is None else _local_midnight(start, ctx.tz_offset_s),
            "end": None if end is None else _local_midnight(end, ctx.tz_offset_s) + DAY_S,
        }  # fmt: skip
        by_course, by_cohort = params.get("course") is not None, params.get("cohort") is not None
        quizzes_query = _quizzes_query(source.prefix, by_course)
        enrolled_query = _enrolled_query(source.prefix, by_course, by_cohort)
        attempts_query = _attempts_query(
            source.prefix, by_course, by_cohort, start is not None, end is not None
        )
        with source.engine.connect() as conn:
            quizzes = conn.execute(scoped(quizzes_query, ctx.scope, source), values).all()
            enrolled = conn.execute(scoped(enrolled_query, ctx.scope, source), values).all()
            attempts = conn.execute(scoped(attempts_query, ctx.scope, source), values).all()
        rows, average_pct = _tally(quizzes, enrolled, attempts)
        totals = _graded_totals(attempts, {r["quiz_id"] for r in rows})
        return ReportData(
            rows=ListRows(rows),
            chart=lambda: _chart(rows, average_pct),
            kpis=lambda: _kpis(rows, totals),
        )


def _local_midnight(day: date, tz_offset_s: int) -> int:
    """The Unix time of `day`'s midnight in the viewer's timezone."""
    return (day - EPOCH).days * DAY_S - tz_offset_s


@functools.cache
def _quizzes_query(prefix: str, by_course: bool) -> Select:  # type: ignore[type-arg]
    """Every quiz in scope with its course, but those whose module is being deleted."""
    t = MoodleTables(prefix)
    quiz, course, cm, modules = t.quiz, t.course, t.course_modules, t.modules
    deleting = (
        select(cm.c.instance)
        .select_from(cm)
        .join(modules, modules.c.id == cm.c.module)
        .where(modules.c.name == "quiz", cm.c.deletioninprogress != 0)
    )
    query = (
        select(quiz.c.id, quiz.c.name, quiz.c.grade, quiz.c.sumgrades,
               course.c.id.label("course_id"), course.c.fullname)
        .select_from(quiz)
        .join(course, course.c.id == quiz.c.course)
        .where(quiz.c.id.not_in(deleting))
    )  # fmt: skip
    if by_course:
        query = query.where(quiz.c.course == bindparam("course", type_=BigInteger))
    return query


def _learners(t: MoodleTables, by_course: bool, by_cohort: bool) -> Select:  # type: ignore[type-arg]
    return filtered_enrolments(t, by_course=by_course, by_cohort=by_cohort)


@functools.cache
def _enrolled_query(prefix: str, by_course: bool, by_cohort: bool) -> Select:  # type: ignore[type-arg]
    """Learners per course."""
    enrolled = _learners(MoodleTables(prefix), by_course, by_cohort).subquery("enrolled")
    return select(enrolled.c.courseid, func.count().label("n")).group_by(enrolled.c.courseid)


@functools.cache
def _attempts_query(
    prefix: str, by_course: bool, by_cohort: bool, by_start: bool, by_end: bool
) -> Select:  # type: ignore[type-arg]
    """Per quiz, learners' finished attempts: how many, by how many learners, and the grades.
    `fraction` is the attempt's share of the quiz's marks (for the average grade %)."""
    t = MoodleTables(prefix)
    enrolled = _learners(t, by_course, by_cohort).subquery("enrolled")
    qa, quiz = t.quiz_attempts, t.quiz
    fraction = case((quiz.c.sumgrades > 0, qa.c.sumgrades / quiz.c.sumgrades), else_=None)
    grade = fraction * quiz.c.grade
    query = (
        select(
            quiz.c.id,
            func.count().label("attempts"),
            func.count(func.distinct(qa.c.userid)).label("learners"),
            type_coerce(func.avg(grade), Float).label("average"),
            type_coerce(func.max(grade), Float).label("best"),
            type_coerce(func.sum(fraction), Float).label("fraction_sum"),
            func.count(fraction).label("graded"),
        )
        .select_from(qa)
        .join(quiz, quiz.c.id == qa.c.quiz)
        .join(
            enrolled, and_(enrolled.c.userid == qa.c.userid, enrolled.c.courseid == quiz.c.course)
        )  # fmt: skip
        .where(qa.c.state == FINISHED, qa.c.preview == 0)
        .group_by(quiz.c.id)
    )
    if by_start:
        query = query.where(qa.c.timefinish >= bindparam("start", type_=BigInteger))
    if by_end:
        query = query.where(qa.c.timefinish < bindparam("end", type_=BigInteger))
    return query


def _tally(
    quizzes: Any, enrolled: Any, attempts: Any
) -> tuple[list[dict[str, Any]], dict[int, float]]:
    """The rows, and each graded quiz's average grade as a % of its grade (for the chart)."""
    per_course = {int(course_id): int(n) for course_id, n in enrolled}
    per_quiz = {int(row.id): row for row in attempts}
    rows: list[dict[str, Any]] = []
    average_pct: dict[int, float] = {}
    for quiz in quizzes:
        found = per_quiz.get(int(quiz.id))
        learners = int(found.learners) if found else 0
        course_learners = per_course.get(int(quiz.course_id), 0)
        has_marks = quiz.sumgrades is not None and float(quiz.sumgrades) > 0
        rows.append({
            "course": quiz.fullname, "quiz": quiz.name, "enrolled": course_learners,
            "learners": learners, "attempts": int(found.attempts) if found else 0,
            "average_grade": _grade(found.average) if found and has_marks else None,
            "best_grade": _grade(found.best) if found and has_marks else None,
            "max_grade": float(quiz.grade),
            "completion_pct": (round(100.0 * learners / course_learners, 1)
                               if course_learners else 0.0),
            "course_id": int(quiz.course_id), "quiz_id": int(quiz.id),
        })  # fmt: skip
        if found and has_marks and found.graded:
            average_pct[int(quiz.id)] = 100.0 * float(found.fraction_sum) / int(found.graded)
    rows.sort(key=lambda r: (r["course"], r["quiz"], r["quiz_id"]))
    return rows, average_pct


def _graded_totals(attempts: Any, listed: set[int]) -> tuple[float, int]:
    """(sum of attempt fractions, graded attempts) over the listed quizzes."""
    found = [row for row in attempts if int(row.id) in listed and row.graded]
    return sum(float(r.fraction_sum) for r in found), sum(int(r.graded) for r in found)


def _grade(value: Any) -> float | None:
    return None if value is None else round(float(value), 2)


def _kpis(rows: list[dict[str, Any]], graded: tuple[float, int]) -> list[dict[str, Any]]:
    fraction_sum, count = graded
    return [
        {"key": "quizzes", "label": "Quizzes", "value": len(rows), "kind": "int"},
        {"key": "attempts", "label": "Finished attempts",
         "value": sum(r["attempts"] for r in rows), "kind": "int"},
        {"key": "average_grade_pct", "label": "Average grade", "kind": "percent",
         "value": round(100.0 * fraction_sum / count, 1) if count else None},
    ]  # fmt: skip


def _chart(rows: list[dict[str, Any]], average_pct: dict[int, float]) -> dict[str, Any]:
    """Average grade (% of the quiz's grade) of the CHART_QUIZZES most attempted quizzes that
    have grades; a bar drills to its course."""
    graded = [r for r in rows if r["quiz_id"] in average_pct]
    top = sorted(graded, key=lambda r: (-r["attempts"], r["course"], r["quiz"], r["quiz_id"]))
    top = top[:CHART_QUIZZES]
    return {
        "type": "bar",
        "labels": [f"{r['quiz']} ({r['course']})" for r in top],
        "series": [{"label": "Average grade %",
                    "data": [round(average_pct[r["quiz_id"]], 1) for r in top]}],
        "drill": {"param": "course", "values": [r["course_id"] for r in top]},
    }  # fmt: skip
