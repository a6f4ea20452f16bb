"""The report run history: every run the viewer may see, newest first, paged, filtered by
report, user (by name), status and a date range in the viewer's timezone.

Who sees which runs is `common.reports.runs.history_scope` (site admins all, a company's
manager that company's, anyone else their own), applied through the tenancy layer.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field

from flask import Blueprint, render_template, request
from sqlalchemy import func, select

from common.analytics.tables import PAGE_SIZES, TablePage
from common.errors import FieldError
from common.ids import parse_id
from common.models.custom import RUN_STATUSES, ReportRun
from common.moodle.names import display_names
from common.moodle.people_search import MAX_QUERY_CHARS, Person, find_people, person_in_scope
from common.reports.rows import SqlRows
from common.reports.runs import RUNS_TABLE, RunFilters, history_scope, runs_query
from common.tenancy import TenantScope, scoped, sees_every_company
from web.auth.guards import Tenancy, current_viewer, requested_company_id, signed_in, web_context
from web.home.header import company_name
from web.humanize import zone_named
from web.navigation import add_nav_item
from web.period import requested_period
from web.runs.execution import run_limiter

bp = Blueprint("runs", __name__, url_prefix="/runs", template_folder="templates")
MAX_REPORT_CHARS = 100
_ALL_DIGITS = re.compile(r"[0-9]+")


@dataclass
class UserFilter:
    """The `user` box: None ids = no filter, [] = nobody matched."""

    text: str = ""
    user_ids: list[int] | None = None
    matches: list[Person] = field(default_factory=list)
    by_id: int | None = None


def _people_scope(scope: TenantScope) -> TenantScope:
    """Whom the user box may find: the people whose runs the scope shows."""
    return TenantScope(company_ids=scope.company_ids, user_ids=scope.user_ids)


def _user_filter(scope: TenantScope) -> UserFilter:
    text = " ".join(request.args.get("user", "").split())
    if not text:
        return UserFilter()
    if _ALL_DIGITS.fullmatch(text):
        user_id = parse_id(text, "user")
        return UserFilter(text, [user_id], by_id=user_id)
    if len(text) > MAX_QUERY_CHARS:
        raise FieldError("user", f"at most {MAX_QUERY_CHARS} characters", status=400)
    matches = find_people(web_context().moodle, _people_scope(scope), text)
    return UserFilter(text, [p.user_id for p in matches], matches)


def _params(raw: str | None) -> dict[str, object]:
    try:
        params = json.loads(raw or "{}")
    except ValueError:
        return {}
    return params if isinstance(params, dict) else {}


def _params_text(params: dict[str, object], courses: dict[int, str]) -> str:
    """`days 30 · course Fire Safety`: courses and companies by name, empty values left out."""
    shown = []
    for key, value in params.items():
        if value in (None, "", []):
            continue
        if key == "course" and isinstance(value, int):
            value = courses.get(value, f"#{value}")
        elif key in ("company", "companyid") and isinstance(value, int):
            value = company_name(value)
        shown.append(f"{key} {value}")
    return " · ".join(shown)


def _course_names(scope: TenantScope, course_ids: set[int]) -> dict[int, str]:
    """Names of the courses in runs' parameters that `scope` may see (a parameter is what
    someone typed: a course outside the scope stays a number)."""
    if not course_ids:
        return {}
    source = web_context().moodle
    course = source.tables.course
    query = select(course.c.id, course.c.fullname).where(course.c.id.in_(sorted(course_ids)))
    with source.engine.connect() as conn:
        return {int(r.id): str(r.fullname) for r in conn.execute(scoped(query, scope, source))}


@bp.get("/")
@signed_in(tenancy=Tenancy.VIEW)
def index():  # type: ignore[no-untyped-def]
    viewer = current_viewer()
    scope = history_scope(viewer, requested_company_id())
    zone = zone_named(viewer.timezone)
    since, until = requested_period(zone)
    status = request.args.get("status", "")
    if status and status not in RUN_STATUSES:
        raise FieldError("status", f"one of {', '.join(RUN_STATUSES)}", status=400)
    report = request.args.get("report", "")[:MAX_REPORT_CHARS]
    own_only = scope.user_ids is not None
    chosen = UserFilter() if own_only else _user_filter(scope)
    filters = RunFilters(report=report or None, user_ids=chosen.user_ids, status=status or None,
                         since=since, until=until)  # fmt: skip
    ctx = web_context()
    page_request = RUNS_TABLE.page_request(request.args)
    query = scoped(runs_query(filters), scope, ctx.moodle)
    found, total = SqlRows(ctx.appdb.engine, query).page(page_request, RUNS_TABLE.row_key)
    reports_query = scoped(select(ReportRun.report, ReportRun.report_title), scope, ctx.moodle)
    running_query = scoped(select(func.count()).where(ReportRun.status == "running"), scope,
                           ctx.moodle)  # fmt: skip
    with ctx.appdb.engine.connect() as conn:
        reports = sorted({str(r.report): str(r.report_title)
                          for r in conn.execute(reports_query.distinct())}.items(),
                         key=lambda item: (item[1].lower(), item[0]))  # fmt: skip
        running = int(conn.scalar(running_query.select_from(ReportRun)) or 0)
    params = {r["id"]: _params(r["params_json"]) for r in found}
    course_ids = {p["course"] for p in params.values() if isinstance(p.get("course"), int)}
    users = {r["userid"] for r in found if r["userid"]}
    people, _ = display_names(ctx.moodle, users, set())
    courses = _course_names(scope, course_ids)  # type: ignore[arg-type]
    shown = {run_id: _params_text(p, courses) for run_id, p in params.items()}
    chosen_name = None
    if chosen.by_id is not None:
        person = person_in_scope(ctx.moodle, _people_scope(scope), chosen.by_id)
        chosen_name = person.name if person else None
    return render_template(
        "runs/index.html", table=TablePage(RUNS_TABLE, found, total, page_request),
        people=people, chosen=chosen, chosen_name=chosen_name, own_only=own_only,
        reports=reports, statuses=RUN_STATUSES, running=running, params_shown=shown,
        every_company=sees_every_company(viewer), manager=scope.company_id is not None
        and not own_only, limit=run_limiter().describe(), page_sizes=PAGE_SIZES,
    )  # fmt: skip


add_nav_item("Report runs", "runs.index", section="runs")
