"""The Google Classroom page, for site administrators: the service account key (uploaded,
stored encrypted, shown only as "key of <client_email> stored"), the Workspace administrator it
acts as, the Moodle → Classroom course mapping (Moodle courses picked by name), "Sync now", and
the last syncs from their `classroom_sync` audit events; people a sync parked are on the
identity mapping page.

"Sync now" publishes the sync service's `mr.cmd.sync.classroom` command (a run of the
`classroom_sync` task, trigger manual) through the web tier's bus client; every change is
audited. Which settings the environment sets is read from this web process's environment:
deploy the sync service with the same CLASSROOM_* variables.
"""

from __future__ import annotations

import json
import os
import uuid
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from flask import Blueprint, Response, abort, flash, redirect, render_template, request, url_for
from flask_wtf import FlaskForm
from sqlalchemy import select

from common.audit import OUTCOME_FAILED, OUTCOME_SUCCESS, record_audit
from common.bus import command_subject
from common.classroom.config import (
    ADMIN_ENV,
    COURSE_MAP_ENV,
    ENDPOINT_ENV,
    KEY_FILE_ENV,
    MAX_KEY_BYTES,
    OBJECT_TYPE,
    add_course,
    classroom_course_id,
    parse_course_map,
    remove_course,
    save_admin_email,
    save_key,
    stored_courses,
)
from common.classroom.courses import MoodleCourse, course_choices, courses_by_id
from common.classroom.run import AUDIT_ACTION
from common.errors import FieldError
from common.models.access import AuditLog
from common.models.classroom import SETTINGS_ROW, ClassroomConfig
from common.schedules.task_runs import one_line
from common.settings import SettingsError
from web.auth.guards import Tenancy, current_viewer, signed_in, web_context
from web.errors import reasons_by_field
from web.humanize import zone_named
from web.navigation import add_nav_item

bp = Blueprint("classroom", __name__, url_prefix="/admin/classroom", template_folder="templates")
# The page's few styles, served by a route of its own so that it declares its tenancy like
# every route (a blueprint static folder would be the one route without).
STYLES = (Path(__file__).with_name("static") / "classroom.css").read_text(encoding="utf-8")
# Site admins only: the menu reads the views' SITE declaration.
add_nav_item("Google Classroom", "classroom.index", section="classroom", group="Administration")

SYNC_SUBJECT = command_subject("sync", "classroom")
SYNC_TASK = "classroom_sync"
HISTORY_SIZE = 20
CHOICES_SHOWN = 200
LABELS = {
    "key": "Service account key",
    "admin_email": "Workspace administrator",
    "moodle_course_id": "Moodle course",
    "classroom_course_id": "Classroom course id",
}


class ClassroomForm(FlaskForm):
    """The CSRF token of every form on the page."""


@dataclass(frozen=True)
class SyncLine:
    at: datetime
    outcome: str
    details: dict[str, Any]

    @property
    def errors(self) -> list[dict[str, Any]]:
        listed = self.details.get("errors")
        return [e for e in listed if isinstance(e, dict)] if isinstance(listed, list) else []


@dataclass(frozen=True)
class MappedCourse:
    moodle_course_id: int
    course: MoodleCourse | None
    classroom_course_id: str
    from_env: bool


def _checked_post() -> None:
    if not ClassroomForm().validate_on_submit():
        abort(400, description="the form expired; reload the page")


def _env() -> os._Environ[str]:
    return os.environ


def _mapping(env_map: dict[int, str]) -> list[MappedCourse]:
    ctx = web_context()
    with ctx.appdb.transaction() as session:
        stored = stored_courses(session)
    merged = {**stored, **env_map}
    named = courses_by_id(ctx.moodle, set(merged))
    return [MappedCourse(moodle_id, named.get(moodle_id), classroom_id,
                         env_map.get(moodle_id) == classroom_id)
            for moodle_id, classroom_id in sorted(merged.items(),
                key=lambda pair: (named[pair[0]].fullname.lower() if pair[0] in named else "~",
                                  pair[0]))]  # fmt: skip


def _history() -> list[SyncLine]:
    with web_context().appdb.transaction() as session:
        rows = session.scalars(select(AuditLog).where(AuditLog.action == AUDIT_ACTION)
                               .order_by(AuditLog.id.desc()).limit(HISTORY_SIZE))  # fmt: skip
        lines = []
        for row in rows:
            try:
                details = json.loads(row.details or "{}")
            except ValueError:
                details = {}
            lines.append(SyncLine(row.timecreated, row.outcome,
                                  details if isinstance(details, dict) else {}))  # fmt: skip
    return lines


def _page(
    errors: list[FieldError] | None = None, *, values: dict[str, str] | None = None,
    status: int = 200,
) -> tuple[str, int]:  # fmt: skip
    ctx = web_context()
    env = _env()
    env_set = {var: (env.get(var) or "").strip() for var in
               (KEY_FILE_ENV, ADMIN_ENV, ENDPOINT_ENV, COURSE_MAP_ENV)}  # fmt: skip
    env_set = {var: value for var, value in env_set.items() if value}
    env_problem = None
    try:
        env_map = parse_course_map(env_set.get(COURSE_MAP_ENV, ""))
    except SettingsError as exc:
        env_map, env_problem = {}, str(exc)
    with ctx.appdb.transaction() as session:
        row = session.get(ClassroomConfig, SETTINGS_ROW)
        session.expunge_all()
    values = values or {}
    search = request.args.get("q", "")[:100] if request.method == "GET" else values.get("q", "")
    choices = course_choices(ctx.moodle, search, CHOICES_SHOWN + 1)
    errors = errors or []
    page = render_template(
        "classroom/index.html", form=ClassroomForm(), row=row, env_set=env_set,
        env_problem=env_problem, mapping=_mapping(env_map), history=_history(),
        choices=choices[:CHOICES_SHOWN], more_choices=len(choices) > CHOICES_SHOWN, search=search,
        values=values, errors=errors, by_field=reasons_by_field(errors), labels=LABELS,
        zone=zone_named(current_viewer().timezone), max_key_kb=MAX_KEY_BYTES // 1024,
        size=HISTORY_SIZE,
    )  # fmt: skip
    return page, status


@bp.get("/")
@signed_in(tenancy=Tenancy.SITE)
def index():  # type: ignore[no-untyped-def]
    return _page()


@bp.get("/classroom.css")
@signed_in(tenancy=Tenancy.SITE)
def styles():  # type: ignore[no-untyped-def]
    response = Response(STYLES, mimetype="text/css")
    response.headers["Cache-Control"] = "private, max-age=3600"
    return response


@bp.post("/key")
@signed_in(tenancy=Tenancy.SITE)
def upload_key():  # type: ignore[no-untyped-def]
    """Store the uploaded key; a refused one leaves the stored key as it was (422)."""
    _checked_post()
    upload = request.files.get("key")
    raw = upload.stream.read(MAX_KEY_BYTES + 1) if upload is not None else b""
    ctx = web_context()
    try:
        with ctx.appdb.transaction() as session:
            client_email = save_key(session, raw, secret_key=ctx.settings.secret_key,
                                    actor_id=current_viewer().user_id,
                                    ip=request.remote_addr)  # fmt: skip
    except FieldError as exc:
        return _page(exc.errors, status=422)
    flash(f"Stored the key of {client_email}.", "info")
    return redirect(url_for("classroom.index"))


@bp.post("/admin-email")
@signed_in(tenancy=Tenancy.SITE)
def save_admin():  # type: ignore[no-untyped-def]
    _checked_post()
    typed = request.form.get("admin_email", "")
    try:
        with web_context().appdb.transaction() as session:
            changed = save_admin_email(session, typed, actor_id=current_viewer().user_id,
                                       ip=request.remote_addr)  # fmt: skip
    except FieldError as exc:
        return _page(exc.errors, values={"admin_email": typed}, status=422)
    flash("Saved the administrator." if changed else "Saved: nothing had changed.", "info")
    return redirect(url_for("classroom.index"))


def _course_named(raw: str) -> MoodleCourse:
    try:
        course_id = int(raw)
    except ValueError:
        raise FieldError("moodle_course_id", "choose a Moodle course") from None
    found = courses_by_id(web_context().moodle, {course_id}).get(course_id)
    if found is None or course_id == 1:
        raise FieldError("moodle_course_id", "no such Moodle course")
    return found


@bp.post("/courses")
@signed_in(tenancy=Tenancy.SITE)
def add_mapping():  # type: ignore[no-untyped-def]
    _checked_post()
    values = {name: request.form.get(name, "") for name in
              ("moodle_course_id", "classroom_course_id", "q")}  # fmt: skip
    errors: list[FieldError] = []
    for check, name in ((_course_named, "moodle_course_id"),
                        (classroom_course_id, "classroom_course_id")):  # fmt: skip
        try:
            check(values[name])
        except FieldError as exc:
            errors.append(exc)
    if errors:  # both fields told at once
        return _page(errors, values=values, status=422)
    course = _course_named(values["moodle_course_id"])
    try:
        with web_context().appdb.transaction() as session:
            add_course(session, course.id, values["classroom_course_id"],
                       moodle_course_name=course.fullname, actor_id=current_viewer().user_id,
                       ip=request.remote_addr)  # fmt: skip
    except FieldError as exc:
        return _page(exc.errors, values=values, status=422)
    flash(f"Mapped {course.fullname} to Classroom course {values['classroom_course_id'].strip()}."
          " Its roster follows Moodle from the next sync.", "info")  # fmt: skip
    return redirect(url_for("classroom.index") + "#courses")


@bp.post("/courses/remove")
@signed_in(tenancy=Tenancy.SITE)
def remove_mapping():  # type: ignore[no-untyped-def]
    _checked_post()
    try:
        course_id = int(request.form.get("moodle_course_id", ""))
    except ValueError:
        abort(400, description="which course?")
    named = courses_by_id(web_context().moodle, {course_id}).get(course_id)
    name = named.fullname if named else f"Moodle course {course_id}"
    with web_context().appdb.transaction() as session:
        was = remove_course(session, course_id, moodle_course_name=name,
                            actor_id=current_viewer().user_id, ip=request.remote_addr)  # fmt: skip
    if was is None:
        flash(f"{name} was not mapped on this page (nothing removed).", "info")
    else:
        flash(f"Removed the mapping of {name} (Classroom course {was}); its Classroom roster is "
              "left as it is.", "info")  # fmt: skip
    return redirect(url_for("classroom.index") + "#courses")


@bp.post("/sync")
@signed_in(tenancy=Tenancy.SITE)
def sync_now():  # type: ignore[no-untyped-def]
    _checked_post()
    msg_id = f"classroom:manual:{uuid.uuid4().hex[:12]}"
    viewer = current_viewer()
    payload = {"task": SYNC_TASK, "trigger": "manual", "startedby": viewer.user_id}

    def audit(outcome: str, details: dict[str, Any]) -> None:
        with web_context().appdb.transaction() as session:
            record_audit(session, actor_id=viewer.user_id, action="classroom_sync_now",
                         object_type=OBJECT_TYPE, object_id=SETTINGS_ROW, outcome=outcome,
                         ip=request.remote_addr, details=details)  # fmt: skip

    try:
        web_context().bus_client.publish(SYNC_SUBJECT, payload, msg_id=msg_id)
    except Exception as exc:  # noqa: BLE001 - any bus failure is told to the admin
        problem = one_line(str(exc), 300) or type(exc).__name__
        audit(OUTCOME_FAILED, {"msg_id": msg_id, "error": problem})
        flash(f"Not queued: the message bus cannot be reached ({problem}). Nothing was run; "
              "try again in a moment.", "error")  # fmt: skip
    else:
        audit(OUTCOME_SUCCESS, {"msg_id": msg_id})
        flash("Queued: the Classroom sync starts shortly; it appears under Last syncs when it "
              "is done (reload the page).", "info")  # fmt: skip
    return redirect(url_for("classroom.index") + "#syncs")
