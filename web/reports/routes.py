"""Any registered report as JSON data (for AJAX filters) and as a CSV export."""

from __future__ import annotations

from flask import Blueprint, Response, abort, jsonify, make_response, request

from common.reports import ReportParamError, get_report
from common.reports.base import Report, ReportResult
from common.reports.export import to_csv
from web.auth.guards import current_viewer, deny, require_capability, viewer_scope, web_context

bp = Blueprint("reports", __name__, url_prefix="/reports")


def _report_or_404(name: str) -> Report:
    report = get_report(name)
    if report is None:
        abort(404, description=f"No report named {name!r}.")
    return report


def run_for_request(name: str) -> ReportResult:
    """Run a report for the signed-in viewer: capability, tenant scope, validated params."""
    report = _report_or_404(name)
    viewer = current_viewer()
    assert viewer is not None
    if not viewer.can_any(report.capabilities):
        deny(viewer, f"You may not run the {report.title} report.")
    scope = viewer_scope()
    try:
        params = report.parse_params(request.args)
    except ReportParamError as exc:
        abort(make_response(jsonify(error=exc.reason, field=exc.field), 400))
    ctx = web_context()
    now = int(ctx.clock())
    return report.run_for(ctx.moodle, scope, params, now=now, timezone=viewer.timezone)


@bp.get("/<name>/data")
@require_capability()
def data(name: str):  # type: ignore[no-untyped-def]
    return jsonify(run_for_request(name).as_json())


@bp.get("/<name>/export.csv")
@require_capability()
def export_csv(name: str):  # type: ignore[no-untyped-def]
    result = run_for_request(name)
    days = result.params.get("days")
    filename = f"{name}{f'-{days}d' if days else ''}.csv"
    return Response(
        to_csv(result),
        mimetype="text/csv",
        headers={"Content-Disposition": f'attachment; filename="{filename}"'},
    )
