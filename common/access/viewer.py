"""The signed-in person as ManiReports sees them: roles, companies and capabilities.

Derived on each request from the Moodle DB (site admins from `config.siteadmins`, IOMAD
`company_users.managertype`, course role assignments) plus grants in the app DB, so a role
change in Moodle takes effect at once.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

from sqlalchemy import and_, select
from sqlalchemy.orm import Session

from common.access.capabilities import (
    MANAGERTYPE_ROLES,
    ROLE_CAPABILITIES,
    STUDENT_ROLE_SHORTNAMES,
    TEACHER_ROLE_SHORTNAMES,
)
from common.models.access import CapabilityGrant
from common.moodle import MoodleSource

CONTEXT_COURSE = 50


@dataclass(frozen=True)
class Viewer:
    user_id: int
    username: str
    fullname: str
    timezone: str
    is_site_admin: bool
    has_iomad: bool
    roles: frozenset[str]
    capabilities: frozenset[str]
    company_ids: tuple[int, ...] = ()
    managed_company_ids: tuple[int, ...] = ()
    teacher_course_ids: frozenset[int] = field(default_factory=frozenset)

    def can(self, capability: str) -> bool:
        return capability in self.capabilities

    def can_any(self, capabilities: Iterable[str]) -> bool:
        return any(c in self.capabilities for c in capabilities)


def load_viewer(source: MoodleSource, session: Session, user_id: int) -> Viewer | None:
    """The viewer for a signed-in Moodle user, or None if the account can no longer sign in."""
    t = source.tables
    features = source.features()
    with source.engine.connect() as conn:
        user = conn.execute(
            select(t.user.c.id, t.user.c.username, t.user.c.firstname, t.user.c.lastname,
                   t.user.c.timezone)
            .where(t.user.c.id == user_id, t.user.c.deleted == 0, t.user.c.suspended == 0)
        ).first()  # fmt: skip
        if user is None:
            return None
        course_roles = _course_roles(conn, source, user_id)
        memberships = _company_memberships(conn, source, user_id) if features.has_iomad else []
    is_admin = user_id in source.site_admin_ids()
    roles: set[str] = set()
    if is_admin:
        roles.add("siteadmin")
    teacher_courses = frozenset(c for c, r in course_roles if r in TEACHER_ROLE_SHORTNAMES)
    if teacher_courses:
        roles.add("teacher")
    if any(r in STUDENT_ROLE_SHORTNAMES for _, r in course_roles):
        roles.add("student")
    managed = sorted({cid for cid, mtype in memberships if mtype in MANAGERTYPE_ROLES})
    roles.update(MANAGERTYPE_ROLES[m] for _, m in memberships if m in MANAGERTYPE_ROLES)
    capabilities = set().union(*(ROLE_CAPABILITIES[r] for r in roles)) if roles else set()
    capabilities.update(
        session.scalars(select(CapabilityGrant.capability).where(CapabilityGrant.userid == user_id))
    )
    return Viewer(
        user_id=user.id,
        username=user.username,
        fullname=f"{user.firstname} {user.lastname}".strip(),
        timezone=user.timezone,
        is_site_admin=is_admin,
        has_iomad=features.has_iomad,
        roles=frozenset(roles),
        capabilities=frozenset(capabilities),
        company_ids=tuple(sorted({cid for cid, _ in memberships})),
        managed_company_ids=tuple(managed),
        teacher_course_ids=teacher_courses,
    )


def _course_roles(conn, source: MoodleSource, user_id: int) -> list[tuple[int, str]]:  # type: ignore[no-untyped-def]
    t = source.tables
    query = (
        select(t.context.c.instanceid, t.role.c.shortname)
        .select_from(t.role_assignments)
        .join(t.context, t.context.c.id == t.role_assignments.c.contextid)
        .join(t.role, t.role.c.id == t.role_assignments.c.roleid)
        .where(
            t.role_assignments.c.userid == user_id,
            t.context.c.contextlevel == CONTEXT_COURSE,
        )
    )
    return [(int(r[0]), str(r[1])) for r in conn.execute(query)]


def _company_memberships(conn, source: MoodleSource, user_id: int) -> list[tuple[int, int]]:  # type: ignore[no-untyped-def]
    t = source.tables
    cu, company = t.company_users, t.company
    query = (
        select(cu.c.companyid, cu.c.managertype)
        .join(company, and_(company.c.id == cu.c.companyid, company.c.suspended == 0))
        .where(cu.c.userid == user_id, cu.c.suspended == 0)
    )
    return [(int(r[0]), int(r[1])) for r in conn.execute(query)]
