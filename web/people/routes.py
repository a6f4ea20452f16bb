"""A page per person and per course: their progress, time, SCORM, quiz and at-risk figures.

`/users/<id>` and `/courses/<id>` show what the viewer's scope allows of that user or course.
One outside the scope is answered exactly like one that does not exist (404): a 403 would
tell a manager that some id belongs to another company's learner.
"""

from __future__ import annotations

from flask import Blueprint, render_template, url_for
from sqlalchemy import select

from common.reports.learners import SITE_COURSE_ID
from common.tenancy import NotFound, TenantScope, scoped
from web.auth.guards import Tenancy, current_viewer, request_scope, signed_in, web_context
from web.people.figures import narrowed, risks, sections

bp = Blueprint("people", __name__, template_folder="templates")

USER_REPORTS = ("course_progress", "user_engagement", "quiz_attempts", "scorm_summary")
COURSE_REPORTS = ("course_completion", "course_progress", "quiz_attempts", "scorm_summary")


@bp.get("/users/<id:user_id>")
@signed_in(tenancy=Tenancy.VIEW)
def user(user_id: int):  # type: ignore[no-untyped-def]
    ctx = web_context()
    t = ctx.moodle.tables
    viewer = current_viewer()
    # One's own page is one's own data, whatever the company chosen (a teacher is not in the
    # scope of the courses they teach).
    own = TenantScope(company_ids=None, user_ids=frozenset({viewer.user_id}))
    scope = own if user_id == viewer.user_id else request_scope()
    u = t.user
    query = select(u.c.id, u.c.firstname, u.c.lastname, u.c.username).where(
        u.c.id == user_id, u.c.deleted == 0
    )
    with ctx.moodle.engine.connect() as conn:
        person = conn.execute(scoped(query, scope, ctx.moodle)).first()
    if person is None:
        raise NotFound(f"No user {user_id} that you can see.")
    mine = narrowed(scope, user_id=user_id)
    shown = sections(viewer, mine, USER_REPORTS, hide=("learner", "username"))
    return render_template(
        "people/user.html", person=person, name=f"{person.firstname} {person.lastname}".strip(),
        sections=shown, risks=risks(mine, user_id=user_id),
    )  # fmt: skip


@bp.get("/courses/<id:course_id>")
@signed_in(tenancy=Tenancy.VIEW)
def course(course_id: int):  # type: ignore[no-untyped-def]
    ctx = web_context()
    t = ctx.moodle.tables
    scope = request_scope()
    query = select(t.course.c.id, t.course.c.fullname, t.course.c.shortname).where(
        t.course.c.id == course_id, t.course.c.id != SITE_COURSE_ID
    )
    with ctx.moodle.engine.connect() as conn:
        found = conn.execute(scoped(query, scope, ctx.moodle)).first()
    if found is None:
        raise NotFound(f"No course {course_id} that you can see.")
    mine = narrowed(scope, course_id=course_id)
    params = {"course": str(course_id)}
    more = {name: url_for("reports.page", name=name, course=course_id) for name in COURSE_REPORTS}
    shown = sections(current_viewer(), mine, COURSE_REPORTS, params=params, hide=("course",),
                     more=more)  # fmt: skip
    return render_template("people/course.html", course=found, sections=shown,
                           risks=risks(mine, course_id=course_id))  # fmt: skip
