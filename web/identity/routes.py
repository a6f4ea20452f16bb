"""Identity mapping admin page (issue 14), `/admin/identity-mapping`: upload a mapping CSV or a
OneRoster users.csv → the pending batch with each row's result (errors by line and field, paged)
→ apply; the people the roster sync parked for want of a mapping (paged); the mappings per
source; search a mapping by source and id or by email, and delete one (after a confirmation,
audited as `identity_mapping_deleted`). Applying a batch that maps parked people asks the sync
service for a classroom sync of their courses. Site admins only; every form carries the CSRF
token."""

from __future__ import annotations

import math
import re

from flask import Blueprint, abort, flash, redirect, render_template, request, url_for
from flask_wtf import FlaskForm

from common.audit import record_audit
from common.errors import FieldError
from common.identity.applying import apply_batch
from common.identity.parked import ParkedPage, pending, ready, retry_command
from common.identity.rules import Rules
from common.identity.staging import stage_file
from common.identity.summary import (
    BatchInfo,
    batch_info,
    batch_rows,
    find_mappings,
    pending_batches,
    source_summaries,
)
from common.models.identity import IdentityMapping
from common.moodle.names import display_names
from common.schedules.task_runs import one_line
from web.auth.guards import Tenancy, current_viewer, signed_in, web_context
from web.navigation import add_nav_item

bp = Blueprint("identity", __name__, template_folder="templates")
add_nav_item("Identity mapping", "identity.index", group="Administration")

PAGE = 100  # rows of a batch shown per page
PARKED_PAGE = 50  # parked people shown per page
DELETED_ACTION = "identity_mapping_deleted"
MAX_UPLOAD_MB = 16  # the app's MAX_CONTENT_LENGTH: a larger request is refused with 413
_BATCH_ID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")


class IdentityForm(FlaskForm):
    """The CSRF token of the upload and apply forms (the file is read from request.files)."""


def _names(user_ids: set[int | None]) -> dict[int, str]:
    ids = {int(i) for i in user_ids if i}
    if not ids:
        return {}
    people, _ = display_names(web_context().moodle, ids, set())
    return people


def _page_arg(name: str, pages: int) -> int:
    """The page asked for in ``name``; page 1 when it is not one of the ``pages``."""
    raw = request.args.get(name, "1")
    return int(raw) if raw.isdigit() and 1 <= int(raw) <= pages else 1


def _parked(search: str) -> tuple[ParkedPage, int, int]:
    """The page of parked people asked for (`parked_page`), its number and the page count."""
    with web_context().appdb.sessions() as session:
        total = pending(session, search=search, limit=0).total
        pages = max(1, math.ceil(total / PARKED_PAGE))
        page = _page_arg("parked_page", pages)
        shown = pending(session, search=search, limit=PARKED_PAGE,
                        offset=(page - 1) * PARKED_PAGE)  # fmt: skip
    return shown, page, pages


def _parked_names(parked: ParkedPage) -> tuple[dict[str, str], dict[int, str]]:
    """Names of the parked people (Moodle's, for source moodle: the ids the sync parks) and of
    their courses. A person is keyed by "source:id"."""
    user_ids = {int(p.lms_user_id) for p in parked.people
                if p.source == "moodle" and p.lms_user_id.isdigit()}  # fmt: skip
    course_ids = {p.course_id for p in parked.people}
    if not (user_ids or course_ids):
        return {}, {}
    people, courses = display_names(web_context().moodle, user_ids, course_ids)
    return {f"moodle:{uid}": name for uid, name in people.items()}, courses


def _index_page(errors: list[FieldError] | None = None, status: int = 200):  # type: ignore[no-untyped-def]
    ctx = web_context()
    search = {name: " ".join(request.args.get(name, "").split())[:254]
              for name in ("source", "user_id", "email")}  # fmt: skip
    searched = any(search.values())
    found = (find_mappings(ctx.appdb, source=search["source"], user_id=search["user_id"],
                           email=search["email"]) if searched else [])  # fmt: skip
    batches = pending_batches(ctx.appdb)
    rules = Rules.from_settings(ctx.settings)
    parked_q = request.args.get("parked_q", "").strip()[:100]
    parked, parked_page, parked_pages = _parked(parked_q)
    parked_people, parked_courses = _parked_names(parked)
    page = render_template(
        "identity/index.html", summaries=source_summaries(ctx.appdb), pending=batches,
        uploaders=_names({b.importedby for b in batches}), search=search, searched=searched,
        found=found, rules=rules, errors=errors or [], form=IdentityForm(),
        max_upload_mb=MAX_UPLOAD_MB, parked=parked, parked_page=parked_page,
        parked_pages=parked_pages, parked_first=(parked_page - 1) * PARKED_PAGE + 1,
        parked_people=parked_people, parked_courses=parked_courses, parked_q=parked_q,
    )  # fmt: skip
    return page, status


@bp.get("/admin/identity-mapping")
@signed_in(tenancy=Tenancy.SITE)
def index():  # type: ignore[no-untyped-def]
    return _index_page()


@bp.post("/admin/identity-mapping/upload")
@signed_in(tenancy=Tenancy.SITE)
def upload():  # type: ignore[no-untyped-def]
    if not IdentityForm().validate_on_submit():
        return _index_page([FieldError("file", "the form expired; upload the file again")], 400)
    upload = request.files.get("file")
    if upload is None or not upload.filename:
        return _index_page([FieldError("file", "choose a CSV file to upload")], 422)
    ctx = web_context()
    source = request.form.get("source", "").strip()[:50] or None
    try:
        staged = stage_file(ctx.appdb, upload.stream, Rules.from_settings(ctx.settings),
                            source=source, actor_id=current_viewer().user_id)  # fmt: skip
    except FieldError as exc:
        return _index_page([exc], 422)
    if staged.errors:
        flash(f"{staged.rows} rows read; {staged.rows - staged.valid} with problems. Fix the file "
              "and upload it again.", "error")  # fmt: skip
    else:
        flash(f"{staged.rows} rows read, all valid. Check them, then apply.", "success")
    return redirect(url_for("identity.batch", batch_id=staged.batch_id))


def _known_batch(batch_id: str) -> BatchInfo:
    info = batch_info(web_context().appdb, batch_id) if _BATCH_ID.fullmatch(batch_id) else None
    if info is None:
        abort(404, description="No such import batch.")
    return info


@bp.get("/admin/identity-mapping/batches/<batch_id>")
@signed_in(tenancy=Tenancy.SITE)
def batch(batch_id: str):  # type: ignore[no-untyped-def]
    info = _known_batch(batch_id)
    only_errors = request.args.get("show") != "all" and bool(info.rows_in_error)
    shown = info.rows_in_error if only_errors else info.rows
    pages = max(1, math.ceil(shown / PAGE))
    page = _page_arg("page", pages)
    rows = batch_rows(web_context().appdb, batch_id, only_errors=only_errors,
                      limit=PAGE, offset=(page - 1) * PAGE)  # fmt: skip
    return render_template(
        "identity/batch.html", batch_id=batch_id, info=info, rows=rows, page=page, pages=pages,
        only_errors=only_errors, shown=shown, form=IdentityForm(),
        uploader=_names({info.importedby}).get(info.importedby or 0),
    )  # fmt: skip


@bp.post("/admin/identity-mapping/batches/<batch_id>/apply")
@signed_in(tenancy=Tenancy.SITE)
def apply(batch_id: str):  # type: ignore[no-untyped-def]
    _known_batch(batch_id)
    if not IdentityForm().validate_on_submit():
        flash("The form expired; apply again.", "error")
        return redirect(url_for("identity.batch", batch_id=batch_id)), 303
    try:
        done = apply_batch(web_context().appdb, batch_id, actor_id=current_viewer().user_id,
                           ip=request.remote_addr, via="web")  # fmt: skip
    except FieldError as exc:
        flash(f"Not applied: {exc.reason}.", "error")
        return redirect(url_for("identity.batch", batch_id=batch_id)), 303
    flash(f"Applied: {done.imported} new, {done.updated} updated, {done.unchanged} unchanged.",
          "success")  # fmt: skip
    _retry_parked(batch_id)
    return redirect(url_for("identity.index")), 303


def _retry_parked(batch_id: str) -> None:
    """Parked people mapped now are placed by a sync of their courses: ask for one, once per
    batch (the message id names it, so a second click is dropped by the bus)."""
    with web_context().appdb.sessions() as session:
        found = ready(session)
    if not found.courses:
        return
    command = retry_command(batch_id, found.courses)
    people = f"{found.people} parked {'person' if found.people == 1 else 'people'}"
    courses = f"{len(found.courses)} course{'s' if len(found.courses) != 1 else ''}"
    try:
        web_context().bus_client.publish(command.subject, command.payload, msg_id=command.msg_id)
    except Exception as exc:  # noqa: BLE001 - any bus failure: the scheduled sync catches up
        problem = one_line(str(exc), 300) or type(exc).__name__
        flash(f"{people} can be placed now, but the sync of their {courses} was not queued "
              f"({problem}). The next scheduled Classroom sync retries them.", "error")  # fmt: skip
        return
    flash(f"{people} will be retried: a Classroom sync of their {courses} starts shortly.",
          "info")  # fmt: skip


def _known_mapping(mapping_id: int) -> IdentityMapping:
    with web_context().appdb.sessions() as session:
        mapping = session.get(IdentityMapping, mapping_id)
    if mapping is None:
        abort(404, description="No such mapping: it may have been deleted already.")
    return mapping


@bp.get("/admin/identity-mapping/mappings/<id:mapping_id>/delete")
@signed_in(tenancy=Tenancy.SITE)
def confirm_delete(mapping_id: int):  # type: ignore[no-untyped-def]
    return render_template("identity/delete.html", mapping=_known_mapping(mapping_id),
                           form=IdentityForm())  # fmt: skip


@bp.post("/admin/identity-mapping/mappings/<id:mapping_id>/delete")
@signed_in(tenancy=Tenancy.SITE)
def delete_mapping(mapping_id: int):  # type: ignore[no-untyped-def]
    _known_mapping(mapping_id)
    if not IdentityForm().validate_on_submit():
        abort(400, description="The form expired: open the mapping again and delete it.")
    with web_context().appdb.transaction() as session:
        mapping = session.get(IdentityMapping, mapping_id)
        if mapping is None:  # deleted by someone else meanwhile
            abort(404, description="No such mapping: it may have been deleted already.")
        who = {"source": mapping.source, "lms_user_id": mapping.lms_user_id,
               "google_email": mapping.google_email}  # fmt: skip
        session.delete(mapping)
        record_audit(session, actor_id=current_viewer().user_id, action=DELETED_ACTION,
                     object_type="identity_mapping", object_id=mapping_id,
                     ip=request.remote_addr, details={**who, "via": "web"})  # fmt: skip
    flash(f"Deleted the mapping of {who['source']} user {who['lms_user_id']} to "
          f"{who['google_email']}. The roster sync parks them until they are mapped again.",
          "success")  # fmt: skip
    return redirect(url_for("identity.index", source=who["source"],
                            user_id=who["lms_user_id"], _anchor="search")), 303  # fmt: skip
