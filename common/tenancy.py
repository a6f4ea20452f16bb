"""Company isolation for IOMAD sites, applied in one place every Moodle query goes through.

A `TenantScope` says which companies (and, for teachers, which courses) a query may touch.
Reports receive a scope, never a raw viewer, and turn it into WHERE clauses with
`restrict_users` / `restrict_courses`; asking for a company outside the viewer's own raises
`TenantViolation`, which the web tier answers with 403 and an audit entry.
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import ColumnElement, false, select, true, union

from common.access.capabilities import VIEW_ADMIN_DASHBOARD
from common.access.viewer import Viewer
from common.moodle import MoodleSource, MoodleTables

SHARED_OPEN = 1  # iomad_courses.shared: visible to every company


class TenantViolation(Exception):
    def __init__(self, company_id: int):
        super().__init__(f"company {company_id} is outside your companies")
        self.company_id = company_id


@dataclass(frozen=True)
class TenantScope:
    """`company_ids=None` means every company (site admin, or a site without IOMAD)."""

    company_ids: tuple[int, ...] | None
    course_ids: frozenset[int] | None = None

    @property
    def company_id(self) -> int | None:
        return self.company_ids[0] if self.company_ids and len(self.company_ids) == 1 else None

    def restrict_users(self, user_id: ColumnElement, t: MoodleTables) -> ColumnElement[bool]:
        if self.company_ids is None:
            return true()
        if not self.company_ids:
            return false()
        members = select(t.company_users.c.userid).where(
            t.company_users.c.companyid.in_(self.company_ids)
        )
        return user_id.in_(members)

    def restrict_courses(self, course_id: ColumnElement, t: MoodleTables) -> ColumnElement[bool]:
        clauses: list[ColumnElement[bool]] = []
        if self.course_ids is not None:
            clauses.append(course_id.in_(sorted(self.course_ids)) if self.course_ids else false())
        if self.company_ids is not None:
            if not self.company_ids:
                return false()
            ids = self.company_ids
            company_courses = union(
                select(t.company_course.c.courseid).where(t.company_course.c.companyid.in_(ids)),
                select(t.iomad_courses.c.courseid).where(t.iomad_courses.c.shared == SHARED_OPEN),
                select(t.company_shared_courses.c.courseid).where(
                    t.company_shared_courses.c.companyid.in_(ids)
                ),
            )
            clauses.append(course_id.in_(company_courses))
        if not clauses:
            return true()
        result = clauses[0]
        for clause in clauses[1:]:
            result = result & clause
        return result


def scope_for(viewer: Viewer, company_id: int | None = None) -> TenantScope:
    """The scope a viewer works in, optionally narrowed to one of their companies."""
    sees_everything = viewer.is_site_admin or viewer.can(VIEW_ADMIN_DASHBOARD)
    if sees_everything:
        return TenantScope(company_ids=None if company_id is None else (company_id,))
    if not viewer.has_iomad:
        return TenantScope(company_ids=None, course_ids=_course_limit(viewer))
    if company_id is not None and company_id not in viewer.company_ids:
        raise TenantViolation(company_id)
    chosen = company_id if company_id is not None else _default_company(viewer)
    ids = () if chosen is None else (chosen,)
    course_limit = None if chosen in viewer.managed_company_ids else _course_limit(viewer)
    return TenantScope(company_ids=ids, course_ids=course_limit)


def _default_company(viewer: Viewer) -> int | None:
    if viewer.managed_company_ids:
        return viewer.managed_company_ids[0]
    return viewer.company_ids[0] if viewer.company_ids else None


def _course_limit(viewer: Viewer) -> frozenset[int] | None:
    """Outside a managed company, a teacher sees only the courses they teach."""
    return viewer.teacher_course_ids


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


def visible_ids(
    scope: TenantScope, source: MoodleSource
) -> tuple[set[int] | None, set[int] | None]:
    """The user and course ids a scope allows (None: no limit), for filtering figures that the
    aggregator stored per user and course in the app DB."""
    t = source.tables
    users = courses = None
    with source.engine.connect() as conn:
        if scope.company_ids is not None:
            query = select(t.user.c.id).where(scope.restrict_users(t.user.c.id, t))
            users = {int(u) for u in conn.scalars(query)}
        if scope.company_ids is not None or scope.course_ids is not None:
            query = select(t.course.c.id).where(scope.restrict_courses(t.course.c.id, t))
            courses = {int(c) for c in conn.scalars(query)}
    return users, courses
