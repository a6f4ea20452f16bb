"""Analytics pages: the cached overview (trends, engagement) and the at-risk learners.

Figures come from what the aggregator pre-computed (the dashboard cache, risk scores); the
pages only read them, cut to the viewer's tenant scope by `common.tenancy`, and say how fresh
they are.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from flask import Blueprint, abort, flash, redirect, render_template, request, url_for
from flask_wtf import FlaskForm
from wtforms import HiddenField, TextAreaField
from wtforms.validators import DataRequired, Length

from common.access import capabilities as caps
from common.analytics.caches import read_overview
from common.analytics.optional_sources import optional_sources
from common.analytics.risk import AT_RISK_TABLE, MAX_NOTE, acknowledge, flagged_page, last_scored
from common.analytics.tables import PAGE_SIZES, TablePage
from common.ids import parse_id
from common.moodle.names import display_names as moodle_display_names
from common.reports.rows import ListRows
from web.analytics.overview_parts import COURSE_TABLE, overview_charts, overview_kpis
from web.auth.guards import Tenancy, current_viewer, request_scope, signed_in, web_context
from web.navigation import add_nav_item

bp = Blueprint("analytics", __name__, url_prefix="/analytics", template_folder="templates")

VIEWERS = (caps.VIEW_ADMIN_DASHBOARD, caps.VIEW_MANAGER_DASHBOARD, caps.VIEW_TEACHER_DASHBOARD)


class AckForm(FlaskForm):
    learner = HiddenField(validators=[DataRequired()])
    course = HiddenField(validators=[DataRequired()])
    note = TextAreaField("Note", validators=[DataRequired(), Length(max=MAX_NOTE)])


def display_names(
    user_ids: set[int], course_ids: set[int]
) -> tuple[dict[int, str], dict[int, str]]:
    return moodle_display_names(web_context().moodle, user_ids, course_ids)


# Scores computed before "never" was stored as null said 9999 days; they read as "never"
# until the next scoring run rewrites them.
LEGACY_NEVER = 9999


@bp.app_template_filter("factor_value")
def factor_value(factor: dict[str, Any]) -> str:
    value = factor.get("value")
    if value is None or (factor.get("rule", "").startswith("max_days") and value >= LEGACY_NEVER):
        return "never"
    return f"{value:g}" if isinstance(value, float) else str(value)


@bp.get("/")
@signed_in(*VIEWERS, tenancy=Tenancy.VIEW)
def overview():  # type: ignore[no-untyped-def]
    ctx, scope = web_context(), request_scope()
    now = datetime.fromtimestamp(ctx.clock(), UTC)
    request_ = COURSE_TABLE.page_request(request.args)
    with ctx.appdb.transaction() as db:
        shown = read_overview(db, scope, ctx.moodle, now)
    sources = optional_sources(ctx.moodle, ctx.settings)
    table = kpis = None
    if shown is not None:
        rows = shown.course_rows()
        _, names = display_names(set(), {r["course"] for r in rows})
        for row in rows:
            # A course missing from Moodle keeps no name: course_link() then says "course #id".
            row["name"] = names.get(row["course"])
        found, total = ListRows(rows).page(request_, COURSE_TABLE.row_key)
        table = TablePage(COURSE_TABLE, found, total, request_)
        kpis = overview_kpis(rows, shown.flagged_total, sources)
    charts = overview_charts(shown)
    return render_template("analytics/overview.html", shown=shown, now=now, table=table,
                           kpis=kpis, charts=charts, sources=sources, page_sizes=PAGE_SIZES,
                           ttl_s=ctx.settings.cache_ttl_s)  # fmt: skip


@bp.get("/at-risk")
@signed_in(*VIEWERS, tenancy=Tenancy.VIEW)
def at_risk():  # type: ignore[no-untyped-def]
    ctx = web_context()
    request_ = AT_RISK_TABLE.page_request(request.args)
    table = flagged_page(ctx.appdb, request_scope(), ctx.moodle, request_)
    people, course_names = display_names(
        {x.userid for x in table.rows}, {x.courseid for x in table.rows}
    )
    with ctx.appdb.transaction() as db:
        scored_at = last_scored(db)
    return render_template("analytics/at_risk.html", table=table, people=people,
                           courses=course_names, form=AckForm(), scored_at=scored_at,
                           sources=optional_sources(ctx.moodle, ctx.settings),
                           page_sizes=PAGE_SIZES,
                           flag_score=ctx.settings.risk_flag_score)  # fmt: skip


@bp.post("/at-risk/acknowledge")
@signed_in(caps.VIEW_ADMIN_DASHBOARD, caps.VIEW_MANAGER_DASHBOARD, tenancy=Tenancy.VIEW)
def acknowledge_learner():  # type: ignore[no-untyped-def]
    form = AckForm()
    if not form.validate_on_submit():
        abort(400, description="A note is required (and the form must not be stale).")
    learner = parse_id(form.learner.data, "learner")
    course = parse_id(form.course.data, "course")
    ctx = web_context()
    with ctx.appdb.transaction() as db:
        acknowledge(db, request_scope(), ctx.moodle, actor_id=current_viewer().user_id,
                    userid=learner, courseid=course, note=form.note.data,
                    ip=request.remote_addr)  # fmt: skip
    flash("Acknowledged.", "info")
    # Back to the page and order the acknowledgement was made from.
    kept: dict[str, Any] = {
        k: v for k, v in request.args.items() if k in ("page", "page_size", "sort", "dir")
    }
    return redirect(url_for("analytics.at_risk", **kept))


add_nav_item("Analytics", "analytics.overview", *VIEWERS, group="Analytics")
add_nav_item("At-risk learners", "analytics.at_risk", *VIEWERS, group="Analytics")
add_nav_item("Time tracking", "tracking.snippet", caps.VIEW_ADMIN_DASHBOARD, group="Analytics")

# Their routes join this blueprint; imported last because they import `bp` from here.
from web.analytics import risk_rules, scorm_attempts  # noqa: E402, F401
