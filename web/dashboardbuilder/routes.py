"""Built dashboards (`common/dashboardbuilder/`): the list of those visible to me, a dashboard
on its grid, the builder, and delete with a confirmation.

Who sees and changes which dashboard is decided by the store alone (a dashboard one may not
see is a 404 on every route and method). Widgets read their figures from the report data
endpoint (/reports/<name>/data), so each report's own capability and tenant scope apply; a
company dashboard's widgets ask for its company.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from flask import Blueprint, flash, redirect, render_template, request, url_for
from flask_wtf import FlaskForm

from common.access import capabilities as caps
from common.access.viewer import Viewer
from common.dashboardbuilder.layout import (
    DEFAULT_TABLE_ROWS,
    GRID_COLUMNS,
    MAX_HEIGHT,
    MAX_TABLE_ROWS,
    MAX_WIDGETS,
    TYPE_LABELS,
    WIDGET_TYPES,
    stored_layout,
)
from common.dashboardbuilder.store import (
    BUILD_CAPABILITY,
    DASHBOARD_CAPABILITIES,
    VISIBILITY_LABELS,
    DashboardFields,
    delete_dashboard,
    load_changeable,
    load_visible,
    may_build,
    may_change,
    save_dashboard,
    visibilities_for,
    visible_dashboards,
)
from common.errors import FieldError
from common.ids import parse_optional_id
from common.models.custom import CustomDashboard
from common.moodle.names import display_names
from common.reports import Param, Report
from common.tenancy import NotFound, TenantScope, TenantViolation, sees_every_company
from web.auth.guards import Tenancy, current_viewer, request_scope, signed_in, web_context
from web.home.header import company_names
from web.navigation import add_nav_item
from web.reports.filter_bar import Control, controls_for
from web.reports.running import report_for, reports_for

bp = Blueprint("dashboardbuilder", __name__, url_prefix="/custom-dashboards",
               template_folder="templates")  # fmt: skip
VIEWERS = (*DASHBOARD_CAPABILITIES, caps.MANAGE_REPORTS)
add_nav_item("My dashboards", "dashboardbuilder.index", *VIEWERS, section="dashboardbuilder",
             group="Dashboards")  # fmt: skip


class DashboardForm(FlaskForm):
    pass


def resolver(viewer: Viewer):  # type: ignore[no-untyped-def]
    """The reports a widget may show for `viewer`: FieldError saying why not otherwise."""

    def resolve(name: str) -> Report:
        try:
            return report_for(name, viewer)
        except NotFound:
            raise FieldError("report", f"there is no report {name[:64]!r}") from None
        except TenantViolation:
            raise FieldError("report", f"you may not run the report {name[:64]!r}") from None

    return resolve


def _widgets_for_viewer(dashboard: CustomDashboard, viewer: Viewer) -> list[dict[str, Any]]:
    """The stored widgets, each marked whether this viewer may run its report."""
    resolve = resolver(viewer)
    shown = []
    for widget in stored_layout(dashboard.layout_json):
        try:
            report: Report | None = resolve(str(widget.get("report", "")))
        except FieldError:
            report = None
        shown.append({**widget, "available": report is not None,
                      "report_title": report.title if report else ""})  # fmt: skip
    return shown


def _owner_names(dashboards: list[CustomDashboard]) -> dict[int, str]:
    people, _ = display_names(web_context().moodle, {d.ownerid for d in dashboards}, set())
    return people


@bp.get("/")
@signed_in(*VIEWERS, tenancy=Tenancy.VIEW)
def index():  # type: ignore[no-untyped-def]
    viewer = current_viewer()
    with web_context().appdb.transaction() as session:
        dashboards = visible_dashboards(session, viewer)
    changeable = {d.id for d in dashboards if may_change(viewer, d)}
    return render_template(
        "dashboardbuilder/index.html", dashboards=dashboards, owners=_owner_names(dashboards),
        changeable=changeable, may_build=may_build(viewer), labels=VISIBILITY_LABELS,
        widget_counts={d.id: len(stored_layout(d.layout_json)) for d in dashboards},
    )  # fmt: skip


@bp.get("/<id:dashboard_id>")
@signed_in(*VIEWERS, tenancy=Tenancy.VIEW)
def show(dashboard_id: int):  # type: ignore[no-untyped-def]
    viewer = current_viewer()
    with web_context().appdb.transaction() as session:
        dashboard = load_visible(session, viewer, dashboard_id)
    meta = {
        "widgets": _widgets_for_viewer(dashboard, viewer),
        "company": dashboard.companyid,
        "reports_url": url_for("reports.index"),
    }
    return render_template(
        "dashboardbuilder/show.html", dashboard=dashboard, meta=meta,
        owner=_owner_names([dashboard]).get(dashboard.ownerid),
        may_change=may_change(viewer, dashboard), labels=VISIBILITY_LABELS,
    )  # fmt: skip


# ---- The builder ------------------------------------------------------------------------


def _control_json(control: Control) -> dict[str, Any]:
    return {"name": control.name, "label": control.label, "kind": control.kind,
            "default": control.default, "help": control.help,
            "options": [list(o) for o in control.options]}  # fmt: skip


def palette(viewer: Viewer, scope: TenantScope) -> list[dict[str, Any]]:
    """Every report the viewer may run, with its filters as the report page's filter bar
    offers them (course and cohort names read through the scope) and its columns."""
    source = web_context().moodle
    made: dict[Param, dict[str, Any]] = {}
    found = []
    for report in sorted(reports_for(viewer), key=lambda r: r.title.lower()):
        params = []
        for param in report.params:
            if param not in made:
                made[param] = _control_json(controls_for([param], {}, scope, source)[0])
            params.append(made[param])
        columns = [{"key": c.key, "label": c.label, "sortable": c.sortable}
                   for c in report.columns]  # fmt: skip
        found.append({"name": report.type_name, "title": report.title, "params": params,
                      "columns": columns})  # fmt: skip
    return found


def _companies_for(viewer: Viewer) -> list[tuple[int, str]]:
    """The companies this viewer may publish a company dashboard to, by name."""
    if "company" not in visibilities_for(viewer):
        return []
    names = company_names()
    if viewer.is_site_admin:
        return list(names.items())
    return sorted(((c, names.get(c, f"Company {c}")) for c in viewer.managed_company_ids),
                  key=lambda option: option[1])  # fmt: skip


@dataclass(frozen=True)
class Editing:
    """The dashboard a builder page edits (None: a new one), read before any change."""

    id: int
    title: str


def _builder(
    viewer: Viewer,
    dashboard: Editing | None,
    values: dict[str, Any],
    errors: list[FieldError] | None = None,
    status: int = 200,
) -> tuple[str, int]:
    meta = {
        "palette": palette(viewer, request_scope()),
        "types": [{"type": t, "label": TYPE_LABELS[t]} for t in WIDGET_TYPES],
        "widgets": values["layout"],
        "reports_url": url_for("reports.index"),
        "limits": {
            "widgets": MAX_WIDGETS,
            "columns": GRID_COLUMNS,
            "height": MAX_HEIGHT,
            "rows": MAX_TABLE_ROWS,
            "default_rows": DEFAULT_TABLE_ROWS,
        },  # fmt: skip
        "errors": [e.as_dict() for e in errors or []],
    }
    return render_template(
        "dashboardbuilder/builder.html", dashboard=dashboard, values=values, meta=meta,
        errors=errors or [], form=DashboardForm(), visibilities=visibilities_for(viewer),
        labels=VISIBILITY_LABELS, companies=_companies_for(viewer),
        every_company=sees_every_company(viewer),
    ), status  # fmt: skip


def _stored_values(dashboard: CustomDashboard) -> dict[str, Any]:
    return {
        "title": dashboard.title,
        "visibility": dashboard.visibility,
        "company": dashboard.companyid,
        "layout": stored_layout(dashboard.layout_json),
    }


def _submitted() -> tuple[DashboardFields, dict[str, Any]]:
    """The form as fields to check, and as values to show again if they fail."""
    raw_layout = request.form.get("layout", "[]")
    raw_company = request.form.get("company", "").strip()
    kept: dict[str, Any] = {
        "title": request.form.get("title", "")[:400],
        "visibility": request.form.get("visibility", ""),
        "company": raw_company,
        "layout": stored_layout(raw_layout),
    }
    company_id = parse_optional_id(raw_company[:20], "company")
    fields = DashboardFields(title=kept["title"], visibility=kept["visibility"],
                             company_id=company_id, layout=raw_layout)  # fmt: skip
    return fields, kept


def _save(dashboard_id: int | None):  # type: ignore[no-untyped-def]
    """Check and store the builder's form. A browser's fetch gets JSON (errors name the
    widget and field, 422); a plain form post the page again with the input kept."""
    viewer = current_viewer()
    ctx = web_context()
    fields, kept = _submitted()
    wants_json = request.accept_mimetypes.best == "application/json"
    editing = None
    try:
        with ctx.appdb.transaction() as session:
            dashboard = None
            if dashboard_id is not None:
                dashboard = load_changeable(session, viewer, dashboard_id)
                editing = Editing(dashboard.id, dashboard.title)
            saved = save_dashboard(session, viewer, dashboard, fields, resolve=resolver(viewer),
                                   source=ctx.moodle, ip=request.remote_addr)  # fmt: skip
            saved_id = saved.id
    except FieldError as exc:
        if wants_json:
            raise
        return _builder(viewer, editing, kept, exc.errors, 422)
    if wants_json:
        return {"id": saved_id, "edit_url": url_for(".edit", dashboard_id=saved_id),
                "view_url": url_for(".show", dashboard_id=saved_id)}  # fmt: skip
    flash(f"Dashboard {fields.title.strip()!r} saved.", "info")
    return redirect(url_for(".edit", dashboard_id=saved_id))


@bp.get("/new")
@signed_in(BUILD_CAPABILITY, tenancy=Tenancy.MANAGE)
def new():  # type: ignore[no-untyped-def]
    viewer = current_viewer()
    choices = visibilities_for(viewer)
    visibility = "company" if "company" in choices else choices[-1]
    values: dict[str, Any] = {"title": "", "visibility": visibility, "company": None,
                              "layout": []}  # fmt: skip
    return _builder(viewer, None, values)


@bp.post("/new")
@signed_in(BUILD_CAPABILITY, tenancy=Tenancy.MANAGE)
def create():  # type: ignore[no-untyped-def]
    return _save(None)


@bp.get("/<id:dashboard_id>/edit")
@signed_in(BUILD_CAPABILITY, tenancy=Tenancy.MANAGE)
def edit(dashboard_id: int):  # type: ignore[no-untyped-def]
    viewer = current_viewer()
    with web_context().appdb.transaction() as session:
        dashboard = load_changeable(session, viewer, dashboard_id)
    return _builder(viewer, Editing(dashboard.id, dashboard.title), _stored_values(dashboard))


@bp.post("/<id:dashboard_id>/edit")
@signed_in(BUILD_CAPABILITY, tenancy=Tenancy.MANAGE)
def save(dashboard_id: int):  # type: ignore[no-untyped-def]
    return _save(dashboard_id)


@bp.get("/<id:dashboard_id>/delete")
@signed_in(BUILD_CAPABILITY, tenancy=Tenancy.MANAGE)
def confirm_delete(dashboard_id: int):  # type: ignore[no-untyped-def]
    viewer = current_viewer()
    with web_context().appdb.transaction() as session:
        dashboard = load_changeable(session, viewer, dashboard_id)
    return render_template("dashboardbuilder/delete.html", dashboard=dashboard,
                           form=DashboardForm(), labels=VISIBILITY_LABELS)  # fmt: skip


@bp.post("/<id:dashboard_id>/delete")
@signed_in(BUILD_CAPABILITY, tenancy=Tenancy.MANAGE)
def delete(dashboard_id: int):  # type: ignore[no-untyped-def]
    viewer = current_viewer()
    with web_context().appdb.transaction() as session:
        dashboard = load_changeable(session, viewer, dashboard_id)
        title = dashboard.title
        delete_dashboard(session, viewer, dashboard, ip=request.remote_addr)
    flash(f"Dashboard {title!r} deleted.", "info")
    return redirect(url_for(".index"))
