"""Course progress: per learner and course, activities tracked and completed, progress %, when
the course was completed and when the learner last opened it.

The progress rule is Moodle's own (`core_completion\\progress::get_course_progress_percentage`,
what the Dashboard and "My courses" show), computed in SQL for every learner at once:

- The course must have completion enabled (`course.enablecompletion`); otherwise progress is
  None (shown "—") and no activity is counted as tracked, as Moodle tracks nothing there.
- A course completed (`course_completions.timecompleted` set) is 100 %, whatever the activities.
- Tracked activities are `course_modules` with `completion > 0` that are not being deleted
  (`deletioninprogress = 0`): `completion_info::get_activities()`. Hidden modules count too:
  core Moodle does not filter them (MDL-60912 is the open request to exclude them; sites that
  patched it locally differ) and per-learner availability rules cannot be evaluated in SQL.
- An activity is done when its `course_modules_completion.completionstate` is 1 (complete) or
  2 (complete-pass); 0 (incomplete) and 3 (complete-fail) are not, as in Moodle 4.x.
- No tracked activity in the course: progress is None ("—"), not 0 — Moodle returns null and
  shows no progress, and 0 would put such learners among those who have not started.
- The site-wide `enablecompletion` setting is not read: it lives in `config`, which reports
  may not read.

Learners are counted as in the completion report (`common.reports.learners`): an active enrolment
and a student-archetype role in the course, so deleted users, suspended enrolments and
teachers are not rows. A learner sees only their own rows (their scope). The learner's email
is searched (`q`) but not shown.
"""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import Mapping
from typing import Any, Literal

from sqlalchemy import (
    BigInteger,
    ColumnElement,
    Float,
    Select,
    String,
    and_,
    bindparam,
    case,
    func,
    literal,
    null,
    or_,
    select,
    type_coerce,
)

from common.access import capabilities as caps
from common.moodle import MoodleTables
from common.portable_sql import like_folded, rounded
from common.reports.base import Column, Report, ReportData, RunContext, register
from common.reports.learners import LIKE_ESCAPE, filtered_enrolments, like_escaped
from common.reports.params import Param, choice, cohort_filter, course_filter, user_search
from common.reports.rows import KeyedPaging, SqlRows
from common.tenancy import scoped

# course_modules_completion.completionstate values that count as done (1 complete, 2 pass).
DONE_STATES = (1, 2)
# Progress bands of the chart, by their lower bound; a band's bar drills to `?band=<bound>`.
BANDS = (0, 25, 50, 75, 100)
# Which rows `_parts` works out figures for: every row, one page's rows, or none.
Figures = Literal["all", "page", "none"]
BAND_LABELS = ("0–24 %", "25–49 %", "50–74 %", "75–99 %", "100 %")


def like_pattern(text: str) -> str:
    """`%text%` for LIKE ... ESCAPE LIKE_ESCAPE, with wildcards in `text` matching themselves."""
    return f"%{like_escaped(text)}%"


def _band_param() -> Param:
    """`band`: no default (every learner); 0, 25, 50, 75 or 100 picks one bar of the chart."""
    help = "only learners whose progress is in the band from this % (100: all done)"
    band = choice("band", "Progress band", BANDS, 0, help, labels=BAND_LABELS)
    return dataclasses.replace(band, default=None)


@register
class CourseProgressReport(Report):
    type_name = "course_progress"
    title = "Course progress"
    description = (
        "Per learner and course: activities tracked and completed, progress (Moodle's rule), "
        "course completion and last access."
    )
    capabilities = (
        caps.VIEW_ADMIN_DASHBOARD,
        caps.VIEW_MANAGER_DASHBOARD,
        caps.VIEW_TEACHER_DASHBOARD,
        caps.VIEW_STUDENT_DASHBOARD,
    )
    columns = (
        Column("learner", "Learner", links_to="user"),
        Column("username", "Username"),
        Column("course", "Course", drill="course"),
        Column("activities", "Activities tracked", "int"),
        Column("activities_completed", "Activities completed", "int"),
        Column("progress", "Progress %", "percent"),
        Column("course_completed", "Course completed", "datetime"),
        Column("last_access", "Last access", "datetime"),
    )
    params = (course_filter(), cohort_filter(), user_search(), _band_param())
    default_sort = "learner"
    row_key = ("learner", "user_id", "course", "course_id")

    def run(self, ctx: RunContext, params: Mapping[str, Any]) -> ReportData:
        source = ctx.source
        filters = _Filters(
            by_course=params.get("course") is not None,
            by_cohort=params.get("cohort") is not None,
            by_search=bool(params.get("q")),
        )
        values = {"now": ctx.now, "course": params.get("course"), "cohort": params.get("cohort"),
                  "q": like_pattern(params["q"]) if params.get("q") else None,
                  "band": params.get("band")}  # fmt: skip
        by_band = params.get("band") is not None
        rows_query = scoped(_rows_query(source.prefix, filters, by_band), ctx.scope, source)
        # A band is a figure: picking one orders on the full query.
        keys = None if by_band else scoped(_keys_query(source.prefix, filters), ctx.scope, source)
        page_rows = scoped(_rows_query(source.prefix, filters, by_band, True), ctx.scope, source)
        keyed = KeyedPaging(
            keys, ("user_id", "course_id"), lambda ids: (page_rows, _page_values(ids)),
            identity=tuple(sorted((k, v) for k, v in values.items() if k != "now")),
        )  # fmt: skip

        def chart() -> dict[str, Any]:
            query = scoped(_bands_query(source.prefix, filters), ctx.scope, source)
            with source.engine.connect() as conn:
                counts = {int(band): int(n) for band, n in conn.execute(query, values)}
            return {
                "type": "bar",
                "labels": list(BAND_LABELS),
                "series": [{"label": "Learners", "data": [counts.get(b, 0) for b in BANDS]}],
                "drill": {"param": "band", "values": list(BANDS)},
            }

        def kpis() -> list[dict[str, Any]]:
            query = scoped(_totals_query(source.prefix, filters, by_band), ctx.scope, source)
            with source.engine.connect() as conn:
                enrolments, learners, average, completed = conn.execute(query, values).one()
            return [
                {"key": "learners", "label": "Learners", "value": int(learners or 0),
                 "kind": "int"},
                {"key": "enrolments", "label": "Course enrolments", "value": int(enrolments or 0),
                 "kind": "int"},
                {"key": "average_progress", "label": "Average progress", "kind": "percent",
                 "value": round(float(average), 1) if average is not None else None},
                {"key": "completed", "label": "Courses completed", "value": int(completed or 0),
                 "kind": "int"},
            ]  # fmt: skip

        rows = SqlRows(source.engine, rows_query, values, keyed)
        return ReportData(rows=rows, chart=chart, kpis=kpis)


@dataclasses.dataclass(frozen=True)
class _Filters:
    by_course: bool
    by_cohort: bool
    by_search: bool


@dataclasses.dataclass(frozen=True)
class _Parts:
    """The FROM and WHERE every query of the report shares, and its computed columns."""

    query: Select  # type: ignore[type-arg]
    columns: dict[str, ColumnElement[Any]]


@functools.cache
def _parts(prefix: str, filters: _Filters, figures: Figures = "all") -> _Parts:
    """Learners per course joined to their figures. Completions are counted per (user, course)
    in a derived table first: one grouped pass over course_modules_completion, joined once per
    row, instead of a count per row.

    `figures`: "all" for every row's; "page" for the learners and courses of one page only
    (bind parameters `page_users`, `page_courses`), which costs a few index lookups; "none"
    for the rows without them (what a page sorted by name is ordered and counted on).
    """
    t = MoodleTables(prefix)
    enrolments = filtered_enrolments(t, by_course=filters.by_course, by_cohort=filters.by_cohort)
    course_id = bindparam("course", type_=BigInteger)
    cm, cmc = t.course_modules, t.course_modules_completion
    tracked = and_(cm.c.completion > 0, cm.c.deletioninprogress == 0)
    activities = select(cm.c.course, func.count().label("n")).where(tracked)
    done = (
        select(cmc.c.userid, cm.c.course, func.count().label("n"))
        .select_from(cmc)
        .join(cm, cm.c.id == cmc.c.coursemoduleid)
        .where(tracked, cmc.c.completionstate.in_(DONE_STATES))
    )
    if filters.by_course:
        activities = activities.where(cm.c.course == course_id)
        done = done.where(cm.c.course == course_id)
    if figures == "page":
        users = bindparam("page_users", expanding=True, type_=BigInteger)
        courses = bindparam("page_courses", expanding=True, type_=BigInteger)
        pair = enrolments.selected_columns
        enrolments = enrolments.where(pair["userid"].in_(users), pair["courseid"].in_(courses))
        activities = activities.where(cm.c.course.in_(courses))
        done = done.where(cmc.c.userid.in_(users), cm.c.course.in_(courses))
    enrolled = enrolments.subquery("enrolled")
    per_course = activities.group_by(cm.c.course).subquery("activities")
    per_learner = done.group_by(cmc.c.userid, cm.c.course).subquery("done")

    u, course, cc, last = t.user, t.course, t.course_completions, t.user_lastaccess
    query = (
        select()
        .select_from(enrolled)
        .join(u, u.c.id == enrolled.c.userid)
        .join(course, course.c.id == enrolled.c.courseid)
        .outerjoin(cc, and_(cc.c.userid == enrolled.c.userid, cc.c.course == enrolled.c.courseid))
        .outerjoin(
            last, and_(last.c.userid == enrolled.c.userid, last.c.courseid == enrolled.c.courseid)
        )
    )
    if figures != "none":
        query = query.outerjoin(
            per_course, per_course.c.course == enrolled.c.courseid
        ).outerjoin(
            per_learner,
            and_(
                per_learner.c.userid == enrolled.c.userid,
                per_learner.c.course == enrolled.c.courseid,
            ),
        )  # fmt: skip
    full_name = u.c.firstname + literal(" ", String) + u.c.lastname
    if filters.by_search:
        pattern = bindparam("q", type_=String)
        query = query.where(
            or_(*(like_folded(column, pattern, LIKE_ESCAPE)
                  for column in (u.c.firstname, u.c.lastname, full_name, u.c.username,
                                 u.c.email)))
        )  # fmt: skip
    enabled = course.c.enablecompletion != 0
    total = case((enabled, func.coalesce(per_course.c.n, 0)), else_=0)
    completed = case((enabled, func.coalesce(per_learner.c.n, 0)), else_=0)
    finished = func.coalesce(cc.c.timecompleted, 0) > 0
    share = rounded(100.0 * func.coalesce(per_learner.c.n, 0) / per_course.c.n, 1)
    # Float: MariaDB computes the share as DECIMAL; rows should carry plain numbers.
    progress = type_coerce(
        case(
            (~enabled, null()),
            (finished, 100.0),
            (func.coalesce(per_course.c.n, 0) == 0, null()),
            else_=share,
        ),
        Float,
    )
    columns: dict[str, ColumnElement[Any]] = {
        "learner": full_name,
        "username": u.c.username,
        "course": course.c.fullname,
        "activities": total,
        "activities_completed": completed,
        "progress": progress,
        "course_completed": cc.c.timecompleted,
        "last_access": last.c.timeaccess,
        "user_id": enrolled.c.userid,
        "course_id": enrolled.c.courseid,
        "finished": finished,
    }
    return _Parts(query, columns)


def _band(progress: ColumnElement[Any]) -> ColumnElement[Any]:
    """The chart band of a progress value (its lower bound); None for no progress."""
    return case(
        (progress.is_(None), null()),
        *((progress >= bound, bound) for bound in reversed(BANDS[1:])),
        else_=0,
    )


# The columns that need no figures: what a page is ordered and counted on when it can be.
_PLAIN = ("learner", "username", "course", "course_completed", "last_access", "user_id",
          "course_id")  # fmt: skip
_FIGURES = ("activities", "activities_completed", "progress")


@functools.cache
def _rows_query(prefix: str, filters: _Filters, by_band: bool, page: bool = False) -> Select:  # type: ignore[type-arg]
    """Every row with its figures; with `page`, only the rows of the page's learners and
    courses (`_page_values`)."""
    parts = _parts(prefix, filters, "page" if page else "all")
    c = parts.columns
    query = parts.query.add_columns(*(c[key].label(key) for key in (*_PLAIN, *_FIGURES)))
    if by_band:
        query = query.where(_band(c["progress"]) == bindparam("band", type_=BigInteger))
    return query


@functools.cache
def _keys_query(prefix: str, filters: _Filters) -> Select:  # type: ignore[type-arg]
    """The rows without figures, to order them by a plain column."""
    parts = _parts(prefix, filters, "none")
    return parts.query.add_columns(*(parts.columns[key].label(key) for key in _PLAIN))


def _page_values(ids: list[tuple[int, ...]]) -> dict[str, Any]:
    return {"page_users": sorted({user for user, _ in ids}),
            "page_courses": sorted({course for _, course in ids})}  # fmt: skip


@functools.cache
def _bands_query(prefix: str, filters: _Filters) -> Select:  # type: ignore[type-arg]
    """Learners per progress band, over every band (the chart stays whole when one is picked)."""
    parts = _parts(prefix, filters)
    band = _band(parts.columns["progress"]).label("band")
    return (
        parts.query.add_columns(band, func.count().label("n"))
        .where(parts.columns["progress"].is_not(None))
        .group_by(band)
    )


@functools.cache
def _totals_query(prefix: str, filters: _Filters, by_band: bool) -> Select:  # type: ignore[type-arg]
    """Rows, distinct learners, average progress (of rows that have one) and completions."""
    parts = _parts(prefix, filters)
    c = parts.columns
    query = parts.query.add_columns(
        func.count().label("enrolments"),
        func.count(func.distinct(c["user_id"])).label("learners"),
        func.avg(c["progress"]).label("average"),
        func.coalesce(func.sum(case((c["finished"], 1), else_=0)), 0).label("completed"),
    )
    if by_band:
        query = query.where(_band(c["progress"]) == bindparam("band", type_=BigInteger))
    return query
