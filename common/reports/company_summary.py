"""Company summary (IOMAD, site admins): the companies side by side — learners, courses,
enrolments, completions, completion % and learners active in the last 30 days.

A company's figures are the ones its own managers see in the completion report: its courses are
its own (`company_course`), those shared with every company (`iomad_courses.shared` = 1) and
those shared with it (`company_shared_courses`); its enrolments are the active learner
enrolments (as in `course_completion`: an active enrolment, a student-archetype role, a user not
deleted) of its members in those courses; its learners the members with at least one of them.
"Active in 30 days" counts those learners with daily time (`manireports_usertime_daily`, either
heartbeats or the log estimate) in one of the courses they are enrolled in there, over the 30
UTC dates ending today. Every company is listed, one without learners with zeros.
"""

from __future__ import annotations

import functools
from collections.abc import Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import BigInteger, Date, Select, and_, bindparam, case, func, select, union

from common.access import capabilities as caps
from common.models.analytics import UsertimeDaily
from common.moodle import MoodleTables, SiteFeatures
from common.portable_sql import comma_joined
from common.reports.base import Column, Report, ReportData, RunContext, register
from common.reports.learners import SITE_COURSE_ID, active_enrolments
from common.reports.rows import ListRows
from common.tenancy import scoped
from common.tenancy.scope import SHARED_OPEN

ACTIVE_DAYS = 30


@register
class CompanySummaryReport(Report):
    type_name = "company_summary"
    title = "Company summary"
    description = "Learners, courses, enrolments, completions and activity per company."
    capabilities = (caps.VIEW_ADMIN_DASHBOARD,)
    columns = (
        Column("company", "Company", drill="company"),
        Column("learners", "Learners", "int"),
        Column("courses", "Courses", "int"),
        Column("enrolments", "Enrolments", "int"),
        Column("completions", "Completions", "int"),
        Column("completion_pct", "Completion %", "percent"),
        Column("active_30", "Active in 30 days", "int"),
    )
    default_sort = "company"
    row_key = ("company", "company_id")

    def enabled(self, features: SiteFeatures) -> bool:
        return features.has_iomad

    def run(self, ctx: RunContext, params: Mapping[str, Any]) -> ReportData:
        source, appdb = ctx.source, ctx.require_appdb()
        today = datetime.fromtimestamp(ctx.now, UTC).date()
        values = {"now": ctx.now, "today": today,
                  "since": today - timedelta(days=ACTIVE_DAYS - 1)}  # fmt: skip

        def read_active() -> set[tuple[int, int]]:
            with appdb.engine.connect() as conn:
                found = conn.execute(scoped(_active_query(), ctx.scope, source), values)
                return {(int(r.userid), int(r.courseid)) for r in found}

        # The app DB's part runs while Moodle's does: they may be separate servers.
        with ThreadPoolExecutor(max_workers=1) as pool:
            reading = pool.submit(read_active)
            with source.engine.connect() as conn:
                companies = conn.execute(
                    scoped(_companies_query(source.prefix), ctx.scope, source)
                ).all()
                courses = conn.execute(
                    scoped(_course_counts_query(source.prefix), ctx.scope, source)
                ).all()
                enrolments = conn.execute(
                    scoped(_enrolments_query(source.prefix), ctx.scope, source), values
                ).all()
            active_pairs = reading.result()
        rows, learners, active = _rows(companies, courses, enrolments, active_pairs)
        return ReportData(
            rows=ListRows(rows),
            chart=lambda: _chart(rows),
            kpis=lambda: _kpis(rows, len(learners), len(active)),
        )


@functools.cache
def _companies_query(prefix: str) -> Select:  # type: ignore[type-arg]
    company = MoodleTables(prefix).company
    return select(company.c.id, company.c.name)


def _company_courses(t: MoodleTables) -> Any:
    """(companyid, courseid) of every course a company sees: its own, the ones open to all
    and the ones shared with it (as `TenantScope.restrict_courses` has it)."""
    company, cc, ic, shared = t.company, t.company_course, t.iomad_courses, t.company_shared_courses
    return union(
        select(cc.c.companyid, cc.c.courseid),
        select(company.c.id.label("companyid"), ic.c.courseid)
        .select_from(company)
        .join(ic, ic.c.shared == SHARED_OPEN),
        select(shared.c.companyid, shared.c.courseid),
    ).subquery("company_courses")


@functools.cache
def _course_counts_query(prefix: str) -> Select:  # type: ignore[type-arg]
    t = MoodleTables(prefix)
    courses = _company_courses(t)
    course = t.course
    return (
        select(courses.c.companyid, func.count().label("courses"))
        .select_from(courses)
        .join(course, course.c.id == courses.c.courseid)
        .where(course.c.id != SITE_COURSE_ID)
        .group_by(courses.c.companyid)
    )


@functools.cache
def _enrolments_query(prefix: str) -> Select:  # type: ignore[type-arg]
    """Per company and member with active learner enrolments in courses the company sees:
    how many, how many completed, and the courses (comma-separated: one row per learner and
    company is a quarter of the rows of one per enrolment, and reading rows is most of the
    cost on 40,000 enrolments)."""
    t = MoodleTables(prefix)
    enrolled = active_enrolments(t, bindparam("now", type_=BigInteger)).subquery("enrolled")
    cu, cc = t.company_users, t.course_completions
    members = select(cu.c.companyid, cu.c.userid).distinct().subquery("members")
    courses = _company_courses(t)
    completed = case((cc.c.timecompleted.is_not(None), 1), else_=0)
    return (
        select(members.c.companyid, enrolled.c.userid, func.count().label("enrolments"),
               func.sum(completed).label("completions"),
               comma_joined(enrolled.c.courseid).label("courses"))
        .select_from(enrolled)
        .join(members, members.c.userid == enrolled.c.userid)
        .join(courses, and_(courses.c.companyid == members.c.companyid,
                            courses.c.courseid == enrolled.c.courseid))
        .outerjoin(cc, and_(cc.c.course == enrolled.c.courseid, cc.c.userid == enrolled.c.userid))
        .group_by(members.c.companyid, enrolled.c.userid)
    )  # fmt: skip


@functools.cache
def _active_query() -> Select:  # type: ignore[type-arg]
    """(userid, courseid) with daily time in the window."""
    d = UsertimeDaily
    return (
        select(d.userid, d.courseid)
        .where(d.date >= bindparam("since", type_=Date), d.date <= bindparam("today", type_=Date))
        .distinct()
    )


def _rows(
    companies: Sequence[Any],
    courses: Sequence[Any],
    enrolments: Sequence[Any],
    active_pairs: set[tuple[int, int]],
) -> tuple[list[dict[str, Any]], set[int], set[int]]:
    """The rows, and the learners and active learners over all companies."""
    course_counts = {int(company_id): int(n) for company_id, n in courses}
    rows: dict[int, dict[str, Any]] = {}
    for company_id, name in companies:
        rows[int(company_id)] = {
            "company_id": int(company_id), "company": name, "learners": 0,
            "courses": course_counts.get(int(company_id), 0), "enrolments": 0,
            "completions": 0, "active_30": 0,
        }  # fmt: skip
    learners: set[int] = set()
    active: set[int] = set()
    for company_id, user_id, enrolments_n, completions_n, course_ids in enrolments:
        row = rows.get(int(company_id))
        if row is None:
            continue
        row["learners"] += 1
        row["enrolments"] += int(enrolments_n)
        row["completions"] += int(completions_n or 0)
        learners.add(int(user_id))
        if any((int(user_id), int(c)) in active_pairs for c in str(course_ids).split(",")):
            row["active_30"] += 1
            active.add(int(user_id))
    for row in rows.values():
        enrolled = row["enrolments"]
        row["completion_pct"] = round(100.0 * row["completions"] / enrolled, 1) if enrolled else 0.0
    ordered = sorted(rows.values(), key=lambda r: (r["company"], r["company_id"]))
    return ordered, learners, active


def _chart(rows: list[dict[str, Any]]) -> dict[str, Any] | None:
    """Completion % per company; clicking one opens the reports for that company."""
    if not rows:
        return None
    return {
        "type": "bar",
        "labels": [r["company"] for r in rows],
        "series": [{"label": "Completion %", "data": [r["completion_pct"] for r in rows]}],
        "drill": {"param": "company", "values": [r["company_id"] for r in rows]},
    }


def _kpis(rows: list[dict[str, Any]], learners: int, active: int) -> list[dict[str, Any]]:
    enrolments = sum(r["enrolments"] for r in rows)
    completions = sum(r["completions"] for r in rows)
    return [
        {"key": "companies", "label": "Companies", "value": len(rows), "kind": "int"},
        {"key": "learners", "label": "Learners", "value": learners, "kind": "int"},
        {"key": "enrolments", "label": "Enrolments", "value": enrolments, "kind": "int"},
        {"key": "completion_pct", "label": "Completion rate", "kind": "percent",
         "value": round(100.0 * completions / enrolments, 1) if enrolments else 0.0},
        {"key": "active_30", "label": "Active in the last 30 days", "value": active,
         "kind": "int"},
    ]  # fmt: skip
