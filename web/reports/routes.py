"""Every registered report as a page, JSON data (for AJAX filters, paging and sort) and a
streamed export in each format. Nothing here names a report: the registry drives it all."""

from __future__ import annotations

from datetime import datetime

from flask import Blueprint, Response, jsonify, render_template, request, stream_with_context

from common.reports.export import FORMATS, ExportDocument
from common.reports.filters import describe_filters
from common.reports.rows import DEFAULT_PAGE_SIZE, MAX_PAGE_SIZE
from common.tenancy import NotFound, sees_every_company
from web.auth.guards import Tenancy, current_viewer, signed_in, web_context
from web.reports.filter_bar import company_options, controls_for, view_meta
from web.reports.running import ReportRequest, page_json, reports_for, request_for_viewer
from web.runs.execution import limited_run, limited_stream

PAGE_SIZES = tuple(n for n in (25, 50, 100, 200, 500) if n <= MAX_PAGE_SIZE)

bp = Blueprint("reports", __name__, url_prefix="/reports", template_folder="templates")


@bp.get("/")
@signed_in(tenancy=Tenancy.SELF)
def index():  # type: ignore[no-untyped-def]
    return render_template("reports/index.html", reports=reports_for(current_viewer()))


@bp.get("/<name>")
@signed_in(tenancy=Tenancy.VIEW)
def page(name: str):  # type: ignore[no-untyped-def]
    """The report's shell: its filter bar at the URL's values (a bad one is a 400 naming it),
    KPI, chart and table places that /data fills, and an export link per format."""
    wanted = request_for_viewer(name, request.args)
    viewer, source = current_viewer(), web_context().moodle
    return render_template(
        "reports/report.html",
        report=wanted.report,
        controls=controls_for(wanted.report.params, wanted.params, wanted.ctx.scope, source),
        scope=wanted.ctx.scope,
        companies=company_options(viewer, source),
        every_company=sees_every_company(viewer),
        meta={"report": wanted.report.type_name, **view_meta([wanted.report], viewer)},
        formats=list(FORMATS),
        page_sizes=PAGE_SIZES,
        default_page_size=DEFAULT_PAGE_SIZE,
    )


@bp.get("/<name>/data")
@signed_in(tenancy=Tenancy.VIEW)
def data(name: str):  # type: ignore[no-untyped-def]
    # `parts=rows`: the page alone, for a client paging or sorting filters it has figures for.
    summary = request.args.get("parts") != "rows"
    wanted = request_for_viewer(name, request.args)
    with limited_run(wanted, viewer_id=current_viewer().user_id, origin="web") as run:
        result = page_json(wanted, summary=summary)
        run.row_count = result["pagination"]["total"]
    return jsonify(result)


@bp.get("/<name>/export.<fmt>")
@signed_in(tenancy=Tenancy.VIEW)
def export(name: str, fmt: str):  # type: ignore[no-untyped-def]
    if fmt not in FORMATS:
        raise NotFound(f"No export format {fmt[:16]!r} (try {', '.join(FORMATS)}).")
    wanted = request_for_viewer(name, request.args)
    return export_response(wanted, fmt, viewer_id=current_viewer().user_id)


def export_response(
    wanted: ReportRequest, fmt: str, *, viewer_id: int, origin: str = "web"
) -> Response:
    """The export of exactly the view's filtered rows and columns, streamed — under the run
    limit and recorded (web/runs/execution.py) with the rows written."""
    report, ctx = wanted.report, wanted.ctx
    export_format = FORMATS[fmt]
    generated_at = datetime.fromtimestamp(ctx.now, ctx.zone)

    def prepare(count):  # type: ignore[no-untyped-def]
        chart = report.run(ctx, wanted.params).chart if fmt == "pdf" else None
        doc = ExportDocument(
            title=report.title, columns=report.columns,
            filters=describe_filters(report, ctx, wanted.params),
            chart=chart() if chart else None, generated_at=generated_at,
        )  # fmt: skip
        return export_format.write(doc, count(report.stream(ctx, wanted.params, wanted.page)))

    body, on_close = limited_stream(wanted, viewer_id=viewer_id, origin=origin, prepare=prepare)
    stamp = generated_at.strftime("%Y%m%d-%H%M")
    filename = f"{report.type_name}-{stamp}.{export_format.extension}"
    response = Response(
        stream_with_context(body),
        mimetype=export_format.media_type,
        headers={
            "Content-Disposition": f'attachment; filename="{filename}"',
            "Cache-Control": "no-store",
        },  # fmt: skip
    )
    response.call_on_close(on_close)
    return response
