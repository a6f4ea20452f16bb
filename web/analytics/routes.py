"""Analytics pages: the cached overview (trends, engagement) and the at-risk learners.

Figures come from what the aggregator pre-computed (the dashboard cache, risk scores); the
pages only read them, cut to the viewer's tenant scope by `common.tenancy`, and say how fresh
they are.
"""

from __future__ import annotations

from datetime import UTC, datetime

from flask import Blueprint, abort, flash, redirect, render_template, request, url_for
from flask_wtf import FlaskForm
from wtforms import HiddenField, TextAreaField
from wtforms.validators import DataRequired, Length

from common.access import capabilities as caps
from common.analytics.caches import read_overview
from common.analytics.risk import MAX_NOTE, acknowledge, flagged_learners
from common.ids import parse_id
from common.moodle.names import display_names as moodle_display_names
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


@bp.get("/")
@signed_in(*VIEWERS, tenancy=Tenancy.VIEW)
def overview():  # type: ignore[no-untyped-def]
    ctx = web_context()
    now = datetime.fromtimestamp(ctx.clock(), UTC)
    with ctx.appdb.transaction() as db:
        shown = read_overview(db, request_scope(), ctx.moodle, now)
    courses: dict[int, str] = {}
    if shown is not None:
        _, courses = display_names(set(), {r["course"] for r in shown.engagement["courses"]})
    return render_template("analytics/overview.html", shown=shown, now=now, courses=courses,
                           ttl_s=ctx.settings.cache_ttl_s)  # fmt: skip


@bp.get("/at-risk")
@signed_in(*VIEWERS, tenancy=Tenancy.VIEW)
def at_risk():  # type: ignore[no-untyped-def]
    ctx = web_context()
    with ctx.appdb.transaction() as db:
        learners = flagged_learners(db, request_scope(), ctx.moodle)
    people, course_names = display_names(
        {x.userid for x in learners}, {x.courseid for x in learners}
    )
    return render_template("analytics/at_risk.html", learners=learners, people=people,
                           courses=course_names, form=AckForm(),
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
    return redirect(url_for("analytics.at_risk"))


add_nav_item("Analytics", "analytics.overview", *VIEWERS, group="Analytics")
add_nav_item("At-risk learners", "analytics.at_risk", *VIEWERS, group="Analytics")
add_nav_item("Time tracking", "tracking.snippet", caps.VIEW_ADMIN_DASHBOARD, group="Analytics")

# Their routes join this blueprint; imported last because they import `bp` from here.
from web.analytics import risk_rules, scorm_attempts  # noqa: E402, F401
