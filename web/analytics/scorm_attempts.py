"""SCORM deep analytics pages: activities in scope, their learners' summaries, and the
drill-down to one attempt's SCO-by-SCO tracking.

Summaries come from `manireports_scorm_summary` (the aggregator's); the drill-down reads the
Moodle tracking through `common.analytics.scorm.attempt_tracking`. Every read goes through the
viewer's tenant scope: an activity or learner outside it answers 403 and is audited.
"""

from __future__ import annotations

from typing import Any

from flask import render_template, request

from common.analytics.scorm import attempt_tracking
from common.analytics.scorm_browse import (
    ACTIVITY_TABLE,
    LEARNER_TABLE,
    activity_rows,
    learner_rows,
    load_scorm,
    scorm_summaries,
)
from common.analytics.scorm_values import element_value
from common.analytics.tables import PAGE_SIZES, TablePage, TableSpec
from common.reports.base import Column
from common.reports.rows import ListRows
from common.tenancy import load_learner
from web.analytics.routes import VIEWERS, bp, display_names
from web.auth.guards import Tenancy, request_scope, signed_in, web_context
from web.navigation import add_nav_item

# An attempt's elements, one row each, in package order (SCO by SCO, then by element name). A
# SCORM 2004 package with a hundred interactions stores a thousand elements or more, so the
# page shows them a page at a time; sorting by anything else would scatter the SCOs.
ELEMENT_TABLE = TableSpec(
    columns=(
        Column("position", "Package order", "int"),
        Column("element", "Element", sortable=False),
        Column("value", "Value", sortable=False),
    ),
    default_sort="position",
    row_key=("position",),
)


def element_rows(scos: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Every SCO's elements as rows that remember their SCO (its title and place)."""
    rows: list[dict[str, Any]] = []
    for number, sco in enumerate(scos, start=1):
        title = sco["title"] or f"SCO {number} (untitled)"
        for element, value in sco["elements"].items():
            rows.append({"position": len(rows), "sco": number, "sco_title": title,
                         "element": element, "value": value})  # fmt: skip
    return rows


def by_sco(page: list[dict[str, Any]], every: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """One page's rows grouped under their SCO: [{sco, title, continued, rows}], in order;
    `continued` when the SCO began on an earlier page."""
    groups: list[dict[str, Any]] = []
    for row in page:
        if not groups or groups[-1]["sco"] != row["sco"]:
            before = every[row["position"] - 1] if row["position"] > 0 else None
            continued = before is not None and before["sco"] == row["sco"]
            groups.append({"sco": row["sco"], "title": row["sco_title"], "continued": continued,
                           "rows": []})  # fmt: skip
        groups[-1]["rows"].append(row)
    return groups


@bp.get("/scorm", endpoint="scorm_activities")
@signed_in(*VIEWERS, tenancy=Tenancy.VIEW)
def scorm_activities_page():  # type: ignore[no-untyped-def]
    ctx, scope = web_context(), request_scope()
    request_ = ACTIVITY_TABLE.page_request(request.args)
    rows = activity_rows(ctx.appdb, ctx.moodle, scope, lambda ids: display_names(set(), ids)[1])
    found, total = rows.page(request_, ACTIVITY_TABLE.row_key)
    return render_template("analytics/scorm_activities.html", page_sizes=PAGE_SIZES,
                           table=TablePage(ACTIVITY_TABLE, found, total, request_))  # fmt: skip


@bp.get("/scorm/<id:scormid>")
@signed_in(*VIEWERS, tenancy=Tenancy.VIEW)
def scorm_activity(scormid: int):  # type: ignore[no-untyped-def]
    ctx, scope = web_context(), request_scope()
    activity = load_scorm(ctx.moodle, scormid, scope)
    request_ = LEARNER_TABLE.page_request(request.args)
    found, total = learner_rows(ctx.appdb, ctx.moodle, scope, scormid).page(
        request_, LEARNER_TABLE.row_key
    )
    people, courses = display_names({r["userid"] for r in found}, {activity.courseid})
    return render_template("analytics/scorm_activity.html", activity=activity,
                           table=TablePage(LEARNER_TABLE, found, total, request_),
                           people=people, page_sizes=PAGE_SIZES,
                           course=courses.get(activity.courseid, ""))  # fmt: skip


@bp.get("/scorm/<id:scormid>/learner/<id:userid>/attempt/<id:attempt>")
@signed_in(*VIEWERS, tenancy=Tenancy.VIEW)
def scorm_attempt(scormid: int, userid: int, attempt: int):  # type: ignore[no-untyped-def]
    ctx, scope = web_context(), request_scope()
    activity = load_scorm(ctx.moodle, scormid, scope)
    load_learner(ctx.moodle, userid, scope)
    summary = scorm_summaries(ctx.appdb, ctx.moodle, scope, [scormid], userid)
    request_ = ELEMENT_TABLE.page_request(request.args)
    scos = attempt_tracking(ctx.moodle, scope, userid=userid, scormid=scormid, attempt=attempt)
    every = element_rows(scos)
    found, total = ListRows(every).page(request_, ELEMENT_TABLE.row_key)
    people, courses = display_names({userid}, {activity.courseid})
    return render_template("analytics/scorm_attempt.html", activity=activity, userid=userid,
                           attempt=attempt, groups=by_sco(found, every), sco_count=len(scos),
                           table=TablePage(ELEMENT_TABLE, found, total, request_),
                           page_sizes=PAGE_SIZES, learner=people.get(userid),
                           element_value=element_value, summary=summary[0] if summary else None,
                           attempts=summary[0].attempts if summary else 0,
                           course=courses.get(activity.courseid))  # fmt: skip


add_nav_item("SCORM analytics", "analytics.scorm_activities", *VIEWERS, group="Analytics")
