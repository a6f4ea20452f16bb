"""`/api/v1`: prebuilt reports, their exports, role dashboards and email jobs, for a bearer token.

The same report definitions, tenant scoping and job creation as the pages: a report's rows
here are the rows of its dashboard for the token's user, an export is the page's export, and a
job created here is queued and dispatched exactly as one created in the UI. The OpenAPI 3.1
document (`/api/v1/openapi.json`) and its reference page (`/api/v1/docs`) are public and
generated from the report registry (web/api/openapi.py).
"""

from __future__ import annotations

from typing import Any

from flask import Blueprint, jsonify, render_template, request, url_for

from common.access import capabilities as caps
from common.access.api_tokens import SCOPE_EMAIL_READ, SCOPE_EMAIL_WRITE, SCOPE_REPORTS_READ
from common.dashboards import DASHBOARDS, dashboard_data, dashboards_for
from common.mail.monitor import JobProgress, job_progress
from common.mail.queue import queue_job
from common.reports.describe import report_description
from common.reports.export import FORMATS
from common.tenancy import MANAGE, NotFound, load_job
from web.api import rate_limit
from web.api.auth import api_caller, requested_company, require_token, token_scope
from web.api.email_schema import body_company, json_object, parse_email_job
from web.api.errors import ApiError, install_error_handlers
from web.api.openapi import openapi_document, reference
from web.auth.guards import Tenancy, open_to, web_context
from web.reports.routes import export_response
from web.reports.running import (
    ReportRequest,
    page_json,
    parse_request,
    report_for,
    reports_for,
    run_context,
    runnable,
)
from web.runs.execution import limited_run, run_recorder, run_slot

bp = Blueprint("api_v1", __name__, url_prefix="/api/v1", template_folder="templates")
install_error_handlers(bp)
bp.record_once(lambda state: rate_limit.install(state.app))
DASHBOARD_CAPABILITIES = tuple(d.capability for d in DASHBOARDS)


@bp.get("/reports")
@require_token(SCOPE_REPORTS_READ)
def reports():  # type: ignore[no-untyped-def]
    token_scope(requested_company())  # asking for another company is refused here too
    listed = [
        {"name": r.type_name, "title": r.title, "description": r.description,
         "url": url_for("api_v1.report", name=r.type_name),
         "metadata_url": url_for("api_v1.report_metadata", name=r.type_name)}
        for r in reports_for(api_caller().viewer)
    ]  # fmt: skip
    return jsonify(reports=listed)


def _report_request(name: str) -> ReportRequest:
    """The report, checked as on the pages (404 unknown, 403 audited), in the token's scope."""
    caller = api_caller()
    return parse_request(name, request.args, caller.viewer, token_scope(requested_company()))


@bp.get("/reports/<name>")
@require_token(SCOPE_REPORTS_READ)
def report(name: str):  # type: ignore[no-untyped-def]
    wanted = _report_request(name)
    with limited_run(wanted, viewer_id=api_caller().viewer.user_id, origin="api") as run:
        result = page_json(wanted)
        run.row_count = result["pagination"]["total"]
    return jsonify(result)


@bp.get("/reports/<name>/metadata")
@require_token(SCOPE_REPORTS_READ)
def report_metadata(name: str):  # type: ignore[no-untyped-def]
    token_scope(requested_company())  # another company is refused here too
    return jsonify(report_description(report_for(name, api_caller().viewer)))


@bp.get("/reports/<name>/export.<fmt>")
@require_token(SCOPE_REPORTS_READ)
def report_export(name: str, fmt: str):  # type: ignore[no-untyped-def]
    """The page's own export (every row of the filtered, sorted view), streamed."""
    if fmt not in FORMATS:
        raise NotFound(f"No export format {fmt[:16]!r} (try {', '.join(FORMATS)}).")
    wanted = _report_request(name)
    return export_response(wanted, fmt, viewer_id=api_caller().viewer.user_id, origin="api")


@bp.get("/dashboard")
@require_token(SCOPE_REPORTS_READ, *DASHBOARD_CAPABILITIES)
def dashboard():  # type: ignore[no-untyped-def]
    """The caller's role dashboard (the first of theirs, or `?role=` another of theirs)."""
    viewer = api_caller().viewer
    theirs = dashboards_for(viewer)
    role = request.args.get("role", "")
    chosen = next((d for d in theirs if d.role == role), None) if role else theirs[0]
    if chosen is None:
        mine = ", ".join(d.role for d in theirs)
        raise ApiError(404, f"no dashboard {role[:32]!r} for you (yours: {mine})", "role")
    ctx = run_context(token_scope(requested_company()), viewer)
    recorded = run_recorder(viewer.user_id, ctx.scope.company_id, "api")
    with run_slot():
        found = dashboard_data(chosen, ctx, request.args, lambda r: runnable(r, viewer), recorded)
    return jsonify(found)


@bp.get("/openapi.json")
@open_to(Tenancy.PUBLIC)
def openapi():  # type: ignore[no-untyped-def]
    return jsonify(openapi_document())


@bp.get("/docs")
@open_to(Tenancy.PUBLIC)
def docs():  # type: ignore[no-untyped-def]
    doc = openapi_document()
    return render_template("api/docs.html", doc=doc, operations=reference(doc))


@bp.post("/email/jobs")
@require_token(SCOPE_EMAIL_WRITE, caps.MANAGE_EMAIL_OFFLOAD, action=MANAGE)
def create_email_job():  # type: ignore[no-untyped-def]
    caller = api_caller()
    body = json_object(request.get_json(silent=True))
    # Tenancy before the rest of the body: a company the token may not use is a 403.
    company_id = body_company(body)
    scope = token_scope(company_id if company_id is not None else requested_company())
    if scope.company_id is None:
        raise ApiError(422, "choose the company the job is for", "company")
    wanted = parse_email_job(body)
    ctx = web_context()
    # A job that is not valid (a template that breaks a limit, …) raises FieldError: 422.
    queued = queue_job(
        ctx.appdb, ctx.bus_client.publish, company_id=scope.company_id,
        job_type=wanted.job_type, recipients=wanted.recipients, source="api",
        subject=wanted.subject, html=wanted.html, text=wanted.text,
        payload={"variables": wanted.variables}, actor_id=caller.viewer.user_id,
    )  # fmt: skip
    with ctx.appdb.transaction() as session:
        created = _job_json(job_progress(session, load_job(session, queued.job_id, scope)))
    created["dispatched"] = queued.dispatched
    response = jsonify(job=created)
    response.status_code = 201
    response.headers["Location"] = url_for("api_v1.email_job", job_id=queued.job_id)
    return response


@bp.get("/email/jobs/<id:job_id>")
@require_token(SCOPE_EMAIL_READ, caps.MANAGE_EMAIL_OFFLOAD, action=MANAGE)
def email_job(job_id: int):  # type: ignore[no-untyped-def]
    # Without ?company=, every company the token's user manages (and may use) is searched.
    scope = token_scope(requested_company())
    with web_context().appdb.transaction() as session:
        job = load_job(session, job_id, scope)
        return jsonify(job=_job_json(job_progress(session, job)))


def _job_json(progress: JobProgress) -> dict[str, Any]:
    job = progress.job

    def when(value):  # type: ignore[no-untyped-def]
        return None if value is None else value.isoformat()

    return {
        "id": job.id, "company": job.companyid, "type": job.type, "status": job.status,
        "source": job.source, "recipients_total": job.recipients_total,
        "emails_sent": job.emails_sent, "emails_failed": job.emails_failed,
        "chunks_total": job.chunks_total, "chunks_dead": job.chunks_dead,
        "progress_pct": progress.progress_pct, "rate_per_s": progress.rate_per_s,
        "eta_s": progress.eta_s,
        "recipients_by_status": progress.breakdown, "last_error": job.last_error,
        "timecreated": when(job.timecreated), "timestarted": when(job.timestarted),
        "timecompleted": when(job.timecompleted),
    }  # fmt: skip
