"""Analytics pages: the cached overview (trends, engagement) and the at-risk learners.

Figures come from what the aggregator pre-computed (the dashboard cache, risk scores); the
pages only read them, restricted to the viewer's tenant scope, and say how fresh they are.
"""

from __future__ import annotations

from datetime import UTC, datetime

from flask import Blueprint, abort, flash, redirect, render_template, request, url_for
from flask_wtf import FlaskForm
from wtforms import HiddenField, TextAreaField
from wtforms.validators import DataRequired, Length

from common.access import capabilities as caps
from common.analytics.caches import read_cache
from common.analytics.risk import MAX_NOTE, RiskInputError, acknowledge, flagged_learners
from common.moodle.names import display_names as moodle_display_names
from common.tenancy import TenantScope, visible_ids
from web.auth.guards import current_viewer, require_capability, viewer_scope, web_context
from web.navigation import add_nav_item

bp = Blueprint("analytics", __name__, url_prefix="/analytics", template_folder="templates")

VIEWERS = (caps.VIEW_ADMIN_DASHBOARD, caps.VIEW_MANAGER_DASHBOARD, caps.VIEW_TEACHER_DASHBOARD)


class AckForm(FlaskForm):
    learner = HiddenField(validators=[DataRequired()])
    course = HiddenField(validators=[DataRequired()])
    note = TextAreaField("Note", validators=[DataRequired(), Length(max=MAX_NOTE)])


def scope_ids(scope: TenantScope) -> tuple[set[int] | None, set[int] | None]:
    return visible_ids(scope, web_context().moodle)


def display_names(
    user_ids: set[int], course_ids: set[int]
) -> tuple[dict[int, str], dict[int, str]]:
    return moodle_display_names(web_context().moodle, user_ids, course_ids)


@bp.get("/")
@require_capability(*VIEWERS)
def overview():  # type: ignore[no-untyped-def]
    scope = viewer_scope()
    ctx = web_context()
    now = datetime.fromtimestamp(ctx.clock(), UTC)
    with ctx.appdb.transaction() as db:
        cached = read_cache(db, scope.company_id, now)
    courses: dict[int, str] = {}
    if cached is not None:
        _, allowed = scope_ids(scope)
        rows = cached.payload["engagement"]["courses"]
        if allowed is not None:
            rows = [r for r in rows if r["course"] in allowed]
        cached.payload["engagement"]["courses"] = rows
        _, courses = display_names(set(), {r["course"] for r in rows})
    return render_template("analytics/overview.html", cached=cached, now=now, courses=courses,
                           ttl_s=ctx.settings.cache_ttl_s)  # fmt: skip


@bp.get("/at-risk")
@require_capability(*VIEWERS)
def at_risk():  # type: ignore[no-untyped-def]
    scope = viewer_scope()
    ctx = web_context()
    users, courses = scope_ids(scope)
    with ctx.appdb.transaction() as db:
        learners = flagged_learners(db, user_ids=users, course_ids=courses)
    people, course_names = display_names(
        {x.userid for x in learners}, {x.courseid for x in learners}
    )
    return render_template("analytics/at_risk.html", learners=learners, people=people,
                           courses=course_names, form=AckForm(),
                           flag_score=ctx.settings.risk_flag_score)  # fmt: skip


@bp.post("/at-risk/acknowledge")
@require_capability(caps.VIEW_ADMIN_DASHBOARD, caps.VIEW_MANAGER_DASHBOARD)
def acknowledge_learner():  # type: ignore[no-untyped-def]
    form = AckForm()
    if not form.validate_on_submit():
        abort(400, description="A note is required (and the form must not be stale).")
    viewer = current_viewer()
    assert viewer is not None
    scope = viewer_scope()
    try:
        learner, course = int(form.learner.data), int(form.course.data)
    except ValueError:
        abort(400, description="learner and course must be ids")
    users, courses = scope_ids(scope)
    if (users is not None and learner not in users) or (
        courses is not None and course not in courses
    ):
        abort(404, description="No such flagged learner in your scope.")  # fmt: skip
    ctx = web_context()
    try:
        with ctx.appdb.transaction() as db:
            acknowledge(db, actor_id=viewer.user_id, userid=learner, courseid=course,
                        note=form.note.data, company_id=scope.company_id,
                        ip=request.remote_addr)  # fmt: skip
    except RiskInputError as exc:
        abort(400, description=f"{exc.field}: {exc.reason}")
    flash("Acknowledged.", "info")
    return redirect(url_for("analytics.at_risk"))


add_nav_item("Analytics", "analytics.overview", *VIEWERS)
add_nav_item("At-risk learners", "analytics.at_risk", *VIEWERS)
add_nav_item("Time tracking", "tracking.snippet", caps.VIEW_ADMIN_DASHBOARD)

# Their routes join this blueprint; imported last because they import `bp` from here.
from web.analytics import risk_rules, scorm_attempts  # noqa: E402, F401
