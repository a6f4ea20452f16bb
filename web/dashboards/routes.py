"""Role dashboards (`common/dashboards.py`): one per role the viewer has. Each page is a shell
with the dashboard's filter bar; its widgets come from /dashboards/<role>/data, one run per
report under the shared filters, in the viewer's tenant scope."""

from __future__ import annotations

from flask import Blueprint, jsonify, render_template, request

from common.access import capabilities as caps
from common.dashboards import Dashboard, dashboard_data, dashboards_for, get_dashboard
from common.dashboards import widget_reports as dashboard_reports
from common.reports import Param, Report
from common.tenancy import NotFound, TenantViolation, sees_every_company
from web.auth.guards import Tenancy, current_viewer, request_scope, signed_in, web_context
from web.reports.filter_bar import company_options, controls_for, view_meta
from web.reports.routes import page as reports_page
from web.reports.running import run_context, runnable
from web.runs.execution import run_recorder, run_slot

bp = Blueprint("dashboards", __name__, url_prefix="/dashboards", template_folder="templates")


@bp.get("/")
@signed_in(tenancy=Tenancy.SELF)
def index():  # type: ignore[no-untyped-def]
    return render_template("dashboards/index.html", dashboards=dashboards_for(current_viewer()))


@bp.get("/completion")
@signed_in(
    caps.VIEW_ADMIN_DASHBOARD,
    caps.VIEW_MANAGER_DASHBOARD,
    caps.VIEW_TEACHER_DASHBOARD,
    tenancy=Tenancy.VIEW,
)
def completion():  # type: ignore[no-untyped-def]
    return reports_page("course_completion")


def dashboard_for_viewer(role: str) -> Dashboard:
    """The dashboard of `role`: NotFound (404) for no such role, TenantViolation (403,
    audited) for a role this viewer does not have."""
    dashboard = get_dashboard(role)
    if dashboard is None:
        raise NotFound(f"No dashboard named {role[:32]!r}.")
    if dashboard not in dashboards_for(current_viewer()):
        raise TenantViolation(None, f"You may not open the {dashboard.title} dashboard.")
    return dashboard


def shown_reports(dashboard: Dashboard) -> list[Report]:
    """The reports behind this dashboard's widgets that the viewer may run, once each."""
    viewer = current_viewer()
    found: dict[str, Report] = {}
    for _, report in dashboard_reports(dashboard, lambda r: runnable(r, viewer)):
        found.setdefault(report.type_name, report)
    return list(found.values())


def filter_params(dashboard: Dashboard, reports: list[Report]) -> list[Param]:
    """The dashboard's filters that one of its reports declares, in the dashboard's order."""
    declared = {p.name: p for r in reversed(reports) for p in r.params}
    return [declared[name] for name in dashboard.filters if name in declared]


@bp.get("/<role>")
@signed_in(tenancy=Tenancy.VIEW)
def show(role: str):  # type: ignore[no-untyped-def]
    dashboard = dashboard_for_viewer(role)
    viewer, scope, source = current_viewer(), request_scope(), web_context().moodle
    reports = shown_reports(dashboard)
    params = filter_params(dashboard, reports)
    values = {p.name: p.parse(request.args.get(p.name)) for p in params}  # a bad one: 400
    return render_template(
        "dashboards/dashboard.html",
        dashboard=dashboard,
        dashboards=dashboards_for(viewer),
        controls=controls_for(params, values, scope, source),
        scope=scope,
        companies=company_options(viewer, source),
        every_company=sees_every_company(viewer),
        meta={"report": None, **view_meta(reports, viewer)},
    )


@bp.get("/<role>/data")
@signed_in(tenancy=Tenancy.VIEW)
def data(role: str):  # type: ignore[no-untyped-def]
    dashboard = dashboard_for_viewer(role)
    viewer = current_viewer()
    ctx = run_context(request_scope(), viewer)
    recorded = run_recorder(viewer.user_id, ctx.scope.company_id, "dashboard")
    with run_slot():  # the dashboard's reports run under the report concurrency limit
        found = dashboard_data(
            dashboard, ctx, request.args, enabled=lambda r: runnable(r, viewer), recorded=recorded
        )
    return jsonify(found)
