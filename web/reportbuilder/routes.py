"""The GUI report builder: a page to build a report from the whitelisted tables, its live
preview, a dropdown's distinct values, and saving as a stored report (`custom_<id>`).

Everything here reads the whole Moodle database, as a custom SQL report does: site
administrators holding `customreports` only. The document is checked and compiled in
`common.reportbuilder`; the SQL it compiles to is validated and run through
`common.customsql` like any hand-written report, and stored through `common.customreports`.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from flask import Blueprint, jsonify, render_template, request, url_for
from flask_wtf import FlaskForm

from common.access import capabilities as caps
from common.customreports.store import get_report_row, list_reports
from common.customreports.stored_report import report_name
from common.errors import FieldError
from common.reportbuilder.compile import compile_checked
from common.reportbuilder.document import parse_document
from common.reportbuilder.site import (
    PREVIEW_ROWS,
    distinct_values,
    preview,
    save_built_report,
    site_schema,
)
from common.tenancy import NotFound
from web.auth.guards import (
    Tenancy,
    current_viewer,
    fallback_company_id,
    request_scope,
    requested_company_id,
    signed_in,
    web_context,
)
from web.reports.running import run_context
from web.runs.execution import form_slot

bp = Blueprint("reportbuilder", __name__, url_prefix="/reportbuilder", template_folder="templates")
BUILDER = (caps.CUSTOM_REPORTS,)


def _errors(exc: FieldError) -> tuple[Any, int]:
    body = {"ok": False, "errors": [e.as_dict() for e in exc.errors]}
    return jsonify(body), exc.status if exc.status != 403 else 422


def _body() -> Mapping[str, Any]:
    body = request.get_json(silent=True)
    if not isinstance(body, Mapping):
        raise FieldError("builder", "send the builder's document as a JSON object", status=400)
    return body


def _page(report_id: int | None, document: dict[str, Any] | None, title: str, description: str):  # type: ignore[no-untyped-def]
    ctx = web_context()
    built = [r for r in list_reports(ctx.appdb) if r.kind == "builder"]
    return render_template(
        "reportbuilder/builder.html",
        schema=site_schema(ctx.moodle).as_json(),
        document=document, report_id=report_id, title=title, description=description,
        built=built, report_name=report_name, form=FlaskForm(), preview_rows=PREVIEW_ROWS,
    )  # fmt: skip


@bp.get("/")
@signed_in(*BUILDER, tenancy=Tenancy.SITE)
def new():  # type: ignore[no-untyped-def]
    return _page(None, None, "", "")


@bp.get("/<id:report_id>")
@signed_in(*BUILDER, tenancy=Tenancy.SITE)
def edit(report_id: int):  # type: ignore[no-untyped-def]
    row = get_report_row(web_context().appdb, report_id)
    if row is None or row.kind != "builder" or not row.builder_json:
        raise NotFound(f"No built report {report_id}.")
    return _page(report_id, json.loads(row.builder_json), row.title, row.description)


@bp.post("/preview")
@signed_in(*BUILDER, tenancy=Tenancy.SITE)
def preview_rows():  # type: ignore[no-untyped-def]
    """The first rows of the document's report, its SQL and the values it binds."""
    ctx, viewer = web_context(), current_viewer()
    try:
        schema = site_schema(ctx.moodle)
        doc = parse_document(_body().get("document"), schema)
        compiled, checked = compile_checked(doc, schema, ctx.moodle.prefix)
        zone = run_context(request_scope(), viewer).zone
        company = requested_company_id() or fallback_company_id(viewer)
        with form_slot("document"):
            found = preview(ctx.moodle, compiled, checked, zone, company)
    except FieldError as exc:
        return _errors(exc)
    return jsonify({"ok": True, **found})


@bp.get("/values")
@signed_in(*BUILDER, tenancy=Tenancy.SITE)
def values():  # type: ignore[no-untyped-def]
    """Up to 100 distinct values of one column, for a filter's dropdown."""
    ctx = web_context()
    try:
        table, column = request.args.get("table", ""), request.args.get("column", "")
        with form_slot("column"):
            found = distinct_values(ctx.moodle, site_schema(ctx.moodle), table, column)
    except FieldError as exc:
        return _errors(exc)
    return jsonify({"ok": True, "values": found})


@bp.post("/save")
@signed_in(*BUILDER, tenancy=Tenancy.SITE)
def save():  # type: ignore[no-untyped-def]
    ctx, viewer = web_context(), current_viewer()
    body = None
    try:
        body = _body()
        report_id = body.get("report_id")
        if report_id is not None:
            if isinstance(report_id, bool) or not isinstance(report_id, int) or report_id < 1:
                raise FieldError("report_id", "not a report id", status=400)
            row = get_report_row(ctx.appdb, report_id)
            if row is None or row.kind != "builder":
                raise FieldError("report_id", f"no built report {report_id}", status=404)
        title, description = body.get("title", ""), body.get("description", "")
        if not isinstance(title, str) or not isinstance(description, str):
            raise FieldError("title", "the title and description are text")
        with form_slot("document"):  # saving runs it once to learn its columns
            saved = save_built_report(
                ctx.appdb, ctx.moodle, body.get("document"), report_id=report_id, title=title,
                description=description, actor=viewer, ip=request.remote_addr,
            )  # fmt: skip
    except FieldError as exc:
        return _errors(exc)
    name = report_name(saved.id)
    return jsonify({
        "ok": True, "id": saved.id, "name": name,
        "run_url": url_for("reports.page", name=name),
        "edit_url": url_for("reportbuilder.edit", report_id=saved.id),
    })  # fmt: skip
