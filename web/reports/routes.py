"""Any registered report as JSON data (for AJAX filters) and as a CSV export."""

from __future__ import annotations

from flask import Blueprint, Response, jsonify, request

from common.reports import get_report
from common.reports.base import Report, ReportResult
from common.reports.export import to_csv
from common.tenancy import NotFound, TenantViolation
from web.auth.guards import Tenancy, current_viewer, request_scope, signed_in, web_context

bp = Blueprint("reports", __name__, url_prefix="/reports")


def _report(name: str) -> Report:
    report = get_report(name)
    if report is None:
        raise NotFound(f"No report named {name!r}.")
    return report


def run_for_request(name: str) -> ReportResult:
    """Run a report for the signed-in viewer: capability, tenant scope, validated params."""
    report = _report(name)
    viewer = current_viewer()
    if not viewer.can_any(report.capabilities):
        raise TenantViolation(None, f"You may not run the {report.title} report.")
    scope = request_scope()
    params = report.parse_params(request.args)
    ctx = web_context()
    now = int(ctx.clock())
    return report.run_for(ctx.moodle, scope, params, now=now, timezone=viewer.timezone)


@bp.get("/<name>/data")
@signed_in(tenancy=Tenancy.VIEW)
def data(name: str):  # type: ignore[no-untyped-def]
    return jsonify(run_for_request(name).as_json())


@bp.get("/<name>/export.csv")
@signed_in(tenancy=Tenancy.VIEW)
def export_csv(name: str):  # type: ignore[no-untyped-def]
    result = run_for_request(name)
    days = result.params.get("days")
    filename = f"{name}{f'-{days}d' if days else ''}.csv"
    return Response(
        to_csv(result),
        mimetype="text/csv",
        headers={"Content-Disposition": f'attachment; filename="{filename}"'},
    )
