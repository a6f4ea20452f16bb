"""SCORM deep analytics pages: activities in scope, their learners' summaries, and the
drill-down to one attempt's SCO-by-SCO tracking.

Summaries come from `manireports_scorm_summary` (the aggregator's); the drill-down reads the
Moodle tracking through `common.analytics.scorm.attempt_tracking`. Every read goes through the
viewer's tenant scope: an activity or learner outside it answers 403 and is audited.
"""

from __future__ import annotations

from flask import render_template

from common.analytics.scorm import attempt_tracking
from common.analytics.scorm_browse import (
    ActivityFigures,
    load_scorm,
    scorm_activities,
    scorm_summaries,
)
from common.tenancy import load_learner
from web.analytics.routes import VIEWERS, bp, display_names
from web.auth.guards import Tenancy, request_scope, signed_in, web_context
from web.navigation import add_nav_item


@bp.get("/scorm", endpoint="scorm_activities")
@signed_in(*VIEWERS, tenancy=Tenancy.VIEW)
def scorm_activities_page():  # type: ignore[no-untyped-def]
    ctx, scope = web_context(), request_scope()
    activities = scorm_activities(ctx.moodle, scope)
    figures = {a.scormid: ActivityFigures() for a in activities}
    for row in scorm_summaries(ctx.appdb, ctx.moodle, scope, sorted(figures)):
        f = figures[row.scormid]
        f.learners += 1
        f.completed += row.completion_status == "completed"
        f.passed += row.success_status == "passed"
        if row.best_score is not None:
            f.best_scores += row.best_score
            f.scored += 1
    _, course_names = display_names(set(), {a.courseid for a in activities})
    return render_template("analytics/scorm_activities.html", activities=activities,
                           figures=figures, courses=course_names)  # fmt: skip


@bp.get("/scorm/<id:scormid>")
@signed_in(*VIEWERS, tenancy=Tenancy.VIEW)
def scorm_activity(scormid: int):  # type: ignore[no-untyped-def]
    ctx, scope = web_context(), request_scope()
    activity = load_scorm(ctx.moodle, scormid, scope)
    summaries = scorm_summaries(ctx.appdb, ctx.moodle, scope, [scormid])
    people, courses = display_names({s.userid for s in summaries}, {activity.courseid})
    return render_template("analytics/scorm_activity.html", activity=activity,
                           summaries=summaries, people=people,
                           course=courses.get(activity.courseid, ""))  # fmt: skip


@bp.get("/scorm/<id:scormid>/learner/<id:userid>/attempt/<id:attempt>")
@signed_in(*VIEWERS, tenancy=Tenancy.VIEW)
def scorm_attempt(scormid: int, userid: int, attempt: int):  # type: ignore[no-untyped-def]
    ctx, scope = web_context(), request_scope()
    activity = load_scorm(ctx.moodle, scormid, scope)
    load_learner(ctx.moodle, userid, scope)
    summary = scorm_summaries(ctx.appdb, ctx.moodle, scope, [scormid], userid)
    scos = attempt_tracking(ctx.moodle, scope, userid=userid, scormid=scormid, attempt=attempt)
    people, courses = display_names({userid}, {activity.courseid})
    return render_template("analytics/scorm_attempt.html", activity=activity, userid=userid,
                           attempt=attempt, scos=scos, learner=people.get(userid, userid),
                           attempts=summary[0].attempts if summary else 0,
                           course=courses.get(activity.courseid, ""))  # fmt: skip


add_nav_item("SCORM analytics", "analytics.scorm_activities", *VIEWERS, group="Analytics")
