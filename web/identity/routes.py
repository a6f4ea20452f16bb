"""Identity mapping admin page (issue 14), `/admin/identity-mapping`: upload a mapping CSV or a
OneRoster users.csv → the pending batch with each row's result (errors by line and field, paged)
→ apply; the mappings per source; search a mapping by source and id or by email. Site admins
only; every form carries the CSRF token."""

from __future__ import annotations

import math
import re

from flask import Blueprint, abort, flash, redirect, render_template, request, url_for
from flask_wtf import FlaskForm

from common.errors import FieldError
from common.identity.applying import apply_batch
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
from common.moodle.names import display_names
from web.auth.guards import Tenancy, current_viewer, signed_in, web_context
from web.navigation import add_nav_item

bp = Blueprint("identity", __name__, template_folder="templates")
add_nav_item("Identity mapping", "identity.index", group="Administration")

PAGE = 100  # rows of a batch shown per page
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


def _index_page(errors: list[FieldError] | None = None, status: int = 200):  # type: ignore[no-untyped-def]
    ctx = web_context()
    search = {name: " ".join(request.args.get(name, "").split())[:254]
              for name in ("source", "user_id", "email")}  # fmt: skip
    searched = any(search.values())
    found = (find_mappings(ctx.appdb, source=search["source"], user_id=search["user_id"],
                           email=search["email"]) if searched else [])  # fmt: skip
    pending = pending_batches(ctx.appdb)
    rules = Rules.from_settings(ctx.settings)
    page = render_template(
        "identity/index.html", summaries=source_summaries(ctx.appdb), pending=pending,
        uploaders=_names({b.importedby for b in pending}), search=search, searched=searched,
        found=found, rules=rules, errors=errors or [], form=IdentityForm(),
        max_upload_mb=MAX_UPLOAD_MB,
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
    raw_page = request.args.get("page", "1")
    page = int(raw_page) if raw_page.isdigit() and 1 <= int(raw_page) <= pages else 1
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
    return redirect(url_for("identity.index")), 303
