"""A person's or a course's figures, read through the report registry in the viewer's scope.

The detail pages run the same prebuilt reports as the report pages (`common/reports`), with
the viewer's tenant scope narrowed to one user or one course — so a figure here is the one
that person's row shows in the report, and nothing outside the viewer's scope can appear.
At-risk scores come from what the aggregator computed (`manireports_risk_scores`), scoped
the same way.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any

from sqlalchemy import select

from common.access.viewer import Viewer
from common.analytics.risk_rules import stored_factors
from common.models.analytics import RiskScore
from common.moodle.names import display_names
from common.reports import Column, PageRequest, RunContext, get_report
from common.tenancy import TenantScope, scoped
from web.auth.guards import web_context
from web.reports.running import run_context, runnable

ROWS_SHOWN = 50


@dataclass(frozen=True)
class Section:
    """One report's rows for this user or course."""

    name: str
    title: str
    columns: tuple[Column, ...]
    rows: list[dict[str, Any]]
    total: int
    # The full report page with the same filter, when there is one (a course).
    more_url: str | None = None


@dataclass(frozen=True)
class Risk:
    userid: int
    courseid: int
    learner: str
    course: str
    score: int
    flagged: bool
    factors: list[dict[str, Any]]


def narrowed(scope: TenantScope, *, user_id: int | None = None,
             course_id: int | None = None) -> TenantScope:  # fmt: skip
    """``scope`` cut to one user or one course (an intersection: never wider)."""
    if user_id is not None:
        users = frozenset({user_id})
        scope = replace(scope, user_ids=users if scope.user_ids is None else scope.user_ids & users)
    if course_id is not None:
        courses = frozenset({course_id})
        scope = replace(scope, course_ids=courses if scope.course_ids is None
                        else scope.course_ids & courses)  # fmt: skip
    return scope


def sections(
    viewer: Viewer,
    scope: TenantScope,
    names: tuple[str, ...],
    *,
    params: dict[str, str] | None = None,
    hide: tuple[str, ...] = (),
    more: dict[str, str] | None = None,
) -> list[Section]:
    """The reports ``names`` the viewer may run, each on ``scope`` with ``params``; columns in
    ``hide`` left out (a user's page does not repeat their name on every row)."""
    found = []
    for name in names:
        report = get_report(name)
        if report is None or not runnable(report, viewer):
            continue
        raw = {k: v for k, v in (params or {}).items() if any(p.name == k for p in report.params)}
        ctx: RunContext = run_context(scope, viewer)
        page = report.page(ctx, report.parse_params(raw),
                           PageRequest(page_size=ROWS_SHOWN, sort=report.default_sort),
                           summary=False)  # fmt: skip
        columns = tuple(c for c in report.columns if c.key not in hide)
        found.append(Section(name, report.title, columns, page.rows, page.total,
                             (more or {}).get(name)))  # fmt: skip
    return found


def risks(scope: TenantScope, *, user_id: int | None = None,
          course_id: int | None = None) -> list[Risk]:  # fmt: skip
    """The aggregator's latest at-risk scores in ``scope`` for one user or one course, highest
    first (every score, flagged or not: the page says which are flagged)."""
    ctx = web_context()
    query = select(
        RiskScore.userid, RiskScore.courseid, RiskScore.score, RiskScore.flagged, RiskScore.factors
    ).order_by(RiskScore.score.desc(), RiskScore.userid)
    if user_id is not None:
        query = query.where(RiskScore.userid == user_id)
    if course_id is not None:
        query = query.where(RiskScore.courseid == course_id)
    with ctx.appdb.transaction() as db:
        rows = db.execute(scoped(query.limit(ROWS_SHOWN), scope, ctx.moodle)).all()
    people, courses = display_names(ctx.moodle, {r.userid for r in rows},
                                    {r.courseid for r in rows})  # fmt: skip
    return [
        Risk(int(r.userid), int(r.courseid), people.get(r.userid, ""), courses.get(r.courseid, ""),
             int(r.score), bool(r.flagged), stored_factors(r.factors))
        for r in rows
    ]  # fmt: skip
