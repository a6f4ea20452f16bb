"""Role-based dashboards. Each page is a shell; its figures come from /reports/<name>/data."""

from __future__ import annotations

from flask import Blueprint, render_template

from common.access import capabilities as caps
from common.reports import get_report
from web.auth.guards import current_viewer, require_capability, viewer_scope, web_context

bp = Blueprint("dashboards", __name__, url_prefix="/dashboards", template_folder="templates")


def company_choices() -> list[tuple[int, str]]:
    """The companies this viewer may switch between (only their own)."""
    viewer = current_viewer()
    assert viewer is not None
    if not viewer.has_iomad or viewer.is_site_admin:
        return []
    ctx = web_context()
    company = ctx.moodle.tables.company
    from sqlalchemy import select

    with ctx.moodle.engine.connect() as conn:
        rows = conn.execute(
            select(company.c.id, company.c.name)
            .where(company.c.id.in_(viewer.company_ids))
            .order_by(company.c.name)
        )
        return [(int(r.id), str(r.name)) for r in rows]


@bp.get("/")
@require_capability()
def index():  # type: ignore[no-untyped-def]
    return render_template("dashboards/index.html")


@bp.get("/completion")
@require_capability(
    caps.VIEW_ADMIN_DASHBOARD, caps.VIEW_MANAGER_DASHBOARD, caps.VIEW_TEACHER_DASHBOARD
)
def completion():  # type: ignore[no-untyped-def]
    scope = viewer_scope()
    return render_template(
        "dashboards/report_dashboard.html",
        report=get_report("course_completion"),
        scope=scope,
        companies=company_choices(),
        ranges=(30, 90),
    )
