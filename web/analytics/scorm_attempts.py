"""SCORM deep analytics pages: activities in scope, their learners' summaries, and the
drill-down to one attempt's SCO-by-SCO tracking.

Summaries come from `manireports_scorm_summary` (the aggregator's); the drill-down reads the
Moodle tracking through `common.analytics.scorm.attempt_tracking`. Every page is restricted to
the viewer's tenant scope: a learner or activity outside it answers 403 and is audited.
"""

from __future__ import annotations

from flask import abort, render_template

from common.analytics.scorm import attempt_tracking
from common.analytics.scorm_browse import (
    ActivityFigures,
    ScormActivity,
    scorm_activities,
    scorm_summaries,
)
from common.tenancy import TenantScope
from web.analytics.routes import VIEWERS, bp, display_names, scope_ids
from web.auth.guards import current_viewer, deny, require_capability, viewer_scope, web_context
from web.navigation import add_nav_item


def _activity_in_scope(scope: TenantScope, scormid: int) -> ScormActivity:
    """The activity, if its course is in scope; 404 if it does not exist, 403 (audited) if
    it belongs to a course outside the viewer's scope."""
    found = scorm_activities(web_context().moodle, {scormid}, None)
    if not found:
        abort(404, description="No such SCORM activity.")
    _, courses = scope_ids(scope)
    if courses is not None and found[0].courseid not in courses:
        deny(current_viewer(), "This SCORM activity is outside your scope.", scope.company_id)
    return found[0]


@bp.get("/scorm", endpoint="scorm_activities")
@require_capability(*VIEWERS)
def scorm_activities_page():  # type: ignore[no-untyped-def]
    users, courses = scope_ids(viewer_scope())
    activities = scorm_activities(web_context().moodle, None, courses)
    figures = {a.scormid: ActivityFigures() for a in activities}
    for row in scorm_summaries(web_context().appdb, sorted(figures), users):
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


@bp.get("/scorm/<int:scormid>")
@require_capability(*VIEWERS)
def scorm_activity(scormid: int):  # type: ignore[no-untyped-def]
    scope = viewer_scope()
    activity = _activity_in_scope(scope, scormid)
    users, _ = scope_ids(scope)
    summaries = scorm_summaries(web_context().appdb, [scormid], users)
    people, courses = display_names({s.userid for s in summaries}, {activity.courseid})
    return render_template("analytics/scorm_activity.html", activity=activity,
                           summaries=summaries, people=people,
                           course=courses.get(activity.courseid, ""))  # fmt: skip


@bp.get("/scorm/<int:scormid>/learner/<int:userid>/attempt/<int:attempt>")
@require_capability(*VIEWERS)
def scorm_attempt(scormid: int, userid: int, attempt: int):  # type: ignore[no-untyped-def]
    scope = viewer_scope()
    activity = _activity_in_scope(scope, scormid)
    users, _ = scope_ids(scope)
    if users is not None and userid not in users:
        deny(current_viewer(), "This learner is outside your scope.", scope.company_id)
    summary = scorm_summaries(web_context().appdb, [scormid], {userid})
    scos = attempt_tracking(web_context().moodle, userid=userid, scormid=scormid,
                            attempt=attempt)  # fmt: skip
    people, courses = display_names({userid}, {activity.courseid})
    return render_template("analytics/scorm_attempt.html", activity=activity, userid=userid,
                           attempt=attempt, scos=scos, learner=people.get(userid, userid),
                           attempts=summary[0].attempts if summary else 0,
                           course=courses.get(activity.courseid, ""))  # fmt: skip


add_nav_item("SCORM analytics", "analytics.scorm_activities", *VIEWERS)
