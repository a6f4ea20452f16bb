"""The one answer to "may this viewer work on company X, and what of it may they see?".

`scope_for(viewer, company, action)`:
- `VIEW` (reports, dashboards, analytics): site admins see every company or the one they pick;
  in a company, managers and reporters see all of it, department managers their department
  and the ones below it, teachers the courses they teach, anyone else only their own data.
- `MANAGE` (a company's email settings, jobs, templates, at-risk rules, company tokens): site
  admins, and the company's own managers (IOMAD managertype 1) — membership alone is not enough.
Anything else raises `TenantViolation`, which the web tier answers with an audited 403.
"""

from __future__ import annotations

from enum import Enum

from sqlalchemy import select

from common.access.capabilities import VIEW_ADMIN_DASHBOARD
from common.access.viewer import Viewer
from common.moodle import MoodleSource
from common.tenancy.scope import NotFound, TenantScope, TenantViolation


class Action(Enum):
    VIEW = "view"
    MANAGE = "manage"


VIEW = Action.VIEW
MANAGE = Action.MANAGE


def sees_every_company(viewer: Viewer) -> bool:
    return viewer.is_site_admin or viewer.can(VIEW_ADMIN_DASHBOARD)


def scope_for(viewer: Viewer, company_id: int | None = None, action: Action = VIEW) -> TenantScope:
    """The scope ``viewer`` works in for ``action``, on ``company_id`` or their default company.
    A site without IOMAD has no companies: a company asked for there means nothing."""
    if not viewer.has_iomad:
        company_id = None
    if action is MANAGE:
        return _manage_scope(viewer, company_id)
    if sees_every_company(viewer):
        return TenantScope(company_ids=None if company_id is None else (company_id,))
    if not viewer.has_iomad:
        return _own_courses(viewer, company_ids=None)
    if company_id is None:
        company_id = default_company(viewer)
        if company_id is None:  # in no company: courses they teach outside companies
            return _own_courses(viewer, company_ids=None)
    membership = viewer.membership(company_id)
    if membership is None:
        raise TenantViolation(company_id)
    if membership.reads_company:
        return TenantScope(company_ids=(company_id,))
    if membership.departments:
        return TenantScope(company_ids=(company_id,), department_ids=membership.departments)
    return _own_courses(viewer, company_ids=(company_id,))


def _own_courses(viewer: Viewer, company_ids: tuple[int, ...] | None) -> TenantScope:
    """A teacher: the courses they teach; anyone else: their own data only."""
    if viewer.teacher_course_ids:
        return TenantScope(company_ids=company_ids, course_ids=viewer.teacher_course_ids)
    return TenantScope(company_ids=company_ids, user_ids=frozenset({viewer.user_id}))


def _manage_scope(viewer: Viewer, company_id: int | None) -> TenantScope:
    """One company, or — none asked for — every company the viewer manages."""
    if viewer.is_site_admin:
        return TenantScope(company_ids=None if company_id is None else (company_id,))
    managed = viewer.managed_company_ids
    if company_id is None:
        if not managed:
            raise TenantViolation(None, "only site admins and company managers may do this")
        return TenantScope(company_ids=managed)
    if company_id not in managed:
        raise TenantViolation(company_id, f"you do not manage company {company_id}")
    return TenantScope(company_ids=(company_id,))


def default_company(viewer: Viewer) -> int | None:
    """The company a viewer lands in: the first they manage or report on, else their first."""
    ranked = sorted(
        viewer.memberships,
        key=lambda m: (not m.manages_company, not m.reads_company, not m.departments),
    )
    return ranked[0].company_id if ranked else None


def require_company(source: MoodleSource, company_id: int | None) -> None:
    """NotFound unless ``company_id`` is a company of the site (None and 0, the site itself,
    always are): a site admin may name any company, but not one that does not exist."""
    if not company_id or not source.features().has_iomad:
        return
    company = source.tables.company
    with source.engine.connect() as conn:
        if conn.scalar(select(company.c.id).where(company.c.id == company_id)) is None:
            raise NotFound(f"no company {company_id}")


def company_choices(source: MoodleSource, viewer: Viewer) -> list[tuple[int, str]]:
    """(id, name) of the companies a viewer may switch between: only their own, by name."""
    if not viewer.has_iomad or viewer.is_site_admin or len(viewer.company_ids) < 2:
        return []
    company = source.tables.company
    query = (
        select(company.c.id, company.c.name)
        .where(company.c.id.in_(viewer.company_ids))
        .order_by(company.c.name)
    )
    with source.engine.connect() as conn:
        return [(int(r.id), str(r.name)) for r in conn.execute(query)]
