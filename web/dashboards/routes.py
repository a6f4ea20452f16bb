"""Role-based dashboards. Each page is a shell; its figures come from /reports/<name>/data."""

from __future__ import annotations

from flask import Blueprint, render_template

from common.access import capabilities as caps
from web.auth.guards import Tenancy, signed_in
from web.reports.routes import page as reports_page

bp = Blueprint("dashboards", __name__, url_prefix="/dashboards", template_folder="templates")


@bp.get("/")
@signed_in(tenancy=Tenancy.SELF)
def index():  # type: ignore[no-untyped-def]
    return render_template("dashboards/index.html")


@bp.get("/completion")
@signed_in(
    caps.VIEW_ADMIN_DASHBOARD,
    caps.VIEW_MANAGER_DASHBOARD,
    caps.VIEW_TEACHER_DASHBOARD,
    tenancy=Tenancy.VIEW,
)
def completion():  # type: ignore[no-untyped-def]
    return reports_page("course_completion")
