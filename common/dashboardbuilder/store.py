"""Built dashboards in the app DB: who sees which, who may change them, and every change
audited in the same transaction.

Visibility is part of every query, so a dashboard a viewer may not see is never loaded for
them — it does not exist for them (404), whatever they ask for:
- global: every viewer who may see dashboards (holds a dashboard capability);
- company: viewers of that company who may see dashboards (site admins see every company's);
- private: its owner only, site admins included.
Building needs `local/manireports:managereports` (site admins, company managers): a site
admin may publish to everyone, to any company or privately; a company manager to a company
they manage (`scope_for(…, MANAGE)`) or privately. Changing or deleting a dashboard needs
the same right over it as creating it did: its owner for a private one, a site admin for a
global one, a manager of its company (or a site admin) for a company one.
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import and_, or_, select
from sqlalchemy.orm import Session
from sqlalchemy.sql import ColumnElement

from common.access import capabilities as caps
from common.access.viewer import Viewer
from common.audit import record_audit
from common.dashboardbuilder.layout import ReportResolver, Widget, layout_json, parse_layout
from common.errors import FieldError, raise_all
from common.models.base import utcnow
from common.models.custom import DASHBOARD_VISIBILITY, CustomDashboard
from common.moodle import MoodleSource
from common.tenancy import (
    MANAGE,
    NotFound,
    TenantViolation,
    require_company,
    scope_for,
    sees_every_company,
)

DASHBOARD_CAPABILITIES = (
    caps.VIEW_ADMIN_DASHBOARD,
    caps.VIEW_MANAGER_DASHBOARD,
    caps.VIEW_TEACHER_DASHBOARD,
    caps.VIEW_STUDENT_DASHBOARD,
)
BUILD_CAPABILITY = caps.MANAGE_REPORTS
TITLE_MAX = 200
VISIBILITY_LABELS = {"global": "Everyone", "company": "One company", "private": "Only me"}


def may_see_dashboards(viewer: Viewer) -> bool:
    return viewer.can_any(DASHBOARD_CAPABILITIES) or viewer.can(BUILD_CAPABILITY)


def may_build(viewer: Viewer) -> bool:
    return viewer.can(BUILD_CAPABILITY)


def visibilities_for(viewer: Viewer) -> tuple[str, ...]:
    """What this viewer may publish to."""
    if not may_build(viewer):
        return ()
    choices = ["private"]
    if viewer.has_iomad and (viewer.is_site_admin or viewer.managed_company_ids):
        choices.insert(0, "company")
    if viewer.is_site_admin:
        choices.insert(0, "global")
    return tuple(choices)


def visible_to(viewer: Viewer) -> ColumnElement[bool]:
    """The rows `viewer` may see, as a WHERE clause every read uses."""
    d = CustomDashboard
    conditions: list[ColumnElement[bool]] = [
        and_(d.visibility == "private", d.ownerid == viewer.user_id)
    ]
    if may_see_dashboards(viewer):
        conditions.append(d.visibility == "global")
        if sees_every_company(viewer):
            conditions.append(d.visibility == "company")
        elif viewer.has_iomad and viewer.company_ids:
            conditions.append(and_(d.visibility == "company", d.companyid.in_(viewer.company_ids)))
    return or_(*conditions)


def visible_dashboards(session: Session, viewer: Viewer) -> list[CustomDashboard]:
    query = select(CustomDashboard).where(visible_to(viewer))
    return list(session.scalars(query.order_by(CustomDashboard.title, CustomDashboard.id)))


def load_visible(session: Session, viewer: Viewer, dashboard_id: int) -> CustomDashboard:
    """The dashboard if `viewer` may see it; NotFound (404) otherwise, whether or not it
    exists for someone else — nothing of another tenant's row is read to decide."""
    query = select(CustomDashboard).where(CustomDashboard.id == dashboard_id, visible_to(viewer))
    found = session.scalar(query)
    if found is None:
        raise NotFound(f"No dashboard {dashboard_id}.")
    return found


def may_change(viewer: Viewer, dashboard: CustomDashboard) -> bool:
    if not may_build(viewer):
        return False
    if dashboard.visibility == "private":
        return dashboard.ownerid == viewer.user_id
    if dashboard.visibility == "global":
        return viewer.is_site_admin
    try:
        scope_for(viewer, dashboard.companyid, MANAGE)
    except TenantViolation:
        return False
    return viewer.has_iomad


def load_changeable(session: Session, viewer: Viewer, dashboard_id: int) -> CustomDashboard:
    """A dashboard the viewer sees (else 404) and may change (else TenantViolation, 403)."""
    dashboard = load_visible(session, viewer, dashboard_id)
    if not may_change(viewer, dashboard):
        raise TenantViolation(dashboard.companyid, f"you may not change the dashboard "
                              f"{dashboard.title!r}")  # fmt: skip
    return dashboard


@dataclass(frozen=True)
class DashboardFields:
    """What a builder submits: raw, checked by `save_dashboard`."""

    title: str
    visibility: str
    company_id: int | None
    layout: str  # the layout document, JSON


def _target(
    viewer: Viewer, fields: DashboardFields, source: MoodleSource
) -> tuple[str | None, int | None, list[FieldError]]:
    """The checked visibility and company. Naming a company one does not manage is a
    TenantViolation (403, audited): the form never offers one."""
    visibility = fields.visibility
    if visibility not in DASHBOARD_VISIBILITY:
        return None, None, [FieldError("visibility", f"one of {', '.join(DASHBOARD_VISIBILITY)}")]
    if visibility not in visibilities_for(viewer):
        reason = {"global": "only site administrators publish a dashboard to everyone",
                  "company": "only site administrators and company managers publish to a "
                             "company"}.get(visibility, "you may not build dashboards")  # fmt: skip
        return None, None, [FieldError("visibility", reason)]
    if visibility != "company":
        return visibility, None, []
    if fields.company_id is None:
        return None, None, [FieldError("company", "choose the company that sees it")]
    try:
        require_company(source, fields.company_id)
    except NotFound:
        return None, None, [FieldError("company", f"there is no company {fields.company_id}")]
    scope_for(viewer, fields.company_id, MANAGE)
    return visibility, fields.company_id, []


def save_dashboard(
    session: Session,
    viewer: Viewer,
    dashboard: CustomDashboard | None,
    fields: DashboardFields,
    *,
    resolve: ReportResolver,
    source: MoodleSource,
    ip: str | None = None,
) -> CustomDashboard:
    """Create (`dashboard` None) or change a dashboard; every field checked first and every
    problem raised together (nothing saved), then the row and its audit entry written in
    `session`'s transaction. `resolve` answers the reports the *saver* may run."""
    if not may_build(viewer):
        raise TenantViolation(None, f"You need the capability {BUILD_CAPABILITY}.")
    if dashboard is not None and not may_change(viewer, dashboard):
        raise TenantViolation(dashboard.companyid, "you may not change this dashboard")
    errors: list[FieldError] = []
    title = fields.title.strip()
    if not title or len(title) > TITLE_MAX:
        errors.append(FieldError("title", f"a title of 1 to {TITLE_MAX} characters"))
    visibility, company_id, problems = _target(viewer, fields, source)
    errors.extend(problems)
    widgets: list[Widget] = []
    try:
        widgets = parse_layout(fields.layout, resolve)
    except FieldError as exc:
        errors.extend(exc.errors)
    raise_all(errors)
    assert visibility is not None
    document = layout_json(widgets)
    details = {"title": title, "visibility": visibility, "company": company_id,
               "widgets": len(widgets), "reports": sorted({w.report for w in widgets})}  # fmt: skip
    if dashboard is None:
        dashboard = CustomDashboard(title=title, visibility=visibility, companyid=company_id,
                                    ownerid=viewer.user_id, layout_json=document)  # fmt: skip
        session.add(dashboard)
        session.flush()
        action = "dashboard_created"
    else:
        before = {"title": dashboard.title, "visibility": dashboard.visibility,
                  "company": dashboard.companyid, "layout": dashboard.layout_json}  # fmt: skip
        after = {"title": title, "visibility": visibility, "company": company_id,
                 "layout": document}  # fmt: skip
        details["changed"] = [k for k in before if before[k] != after[k]]
        dashboard.title, dashboard.visibility, dashboard.companyid = title, visibility, company_id
        dashboard.layout_json = document
        dashboard.timemodified = utcnow()
        action = "dashboard_changed"
    record_audit(session, actor_id=viewer.user_id, action=action, object_type="dashboard",
                 object_id=dashboard.id, company_id=company_id, ip=ip,
                 details=details)  # fmt: skip
    return dashboard


def delete_dashboard(
    session: Session, viewer: Viewer, dashboard: CustomDashboard, *, ip: str | None = None
) -> None:
    if not may_change(viewer, dashboard):
        raise TenantViolation(dashboard.companyid, "you may not delete this dashboard")
    details = {"title": dashboard.title, "visibility": dashboard.visibility}
    record_audit(session, actor_id=viewer.user_id, action="dashboard_deleted",
                 object_type="dashboard", object_id=dashboard.id,
                 company_id=dashboard.companyid, ip=ip, details=details)  # fmt: skip
    session.delete(dashboard)
