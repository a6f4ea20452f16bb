"""The signed-in person as ManiReports sees them: roles, companies and capabilities.

Derived from the Moodle DB (site admins from `config.siteadmins`, IOMAD
`company_users.managertype`, course role assignments) plus grants in the app DB. The account
itself (deleted, suspended, name, timezone) is read on every request, so a suspension ends
access at once; what the person may do — roles, companies, grants — is remembered for
ACCESS_TTL_S, the time a change of membership already takes to reach `visible_ids`: those
lookups were most of the fixed cost of every page and API call.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import and_, select
from sqlalchemy.orm import Session

from common.access.capabilities import (
    MANAGERTYPE_COMPANY_MANAGER,
    MANAGERTYPE_DEPARTMENT_MANAGER,
    MANAGERTYPE_REPORTER,
    MANAGERTYPE_ROLES,
    ROLE_CAPABILITIES,
    STUDENT_ROLE_SHORTNAMES,
    TEACHER_ROLE_SHORTNAMES,
)
from common.models.access import CapabilityGrant
from common.moodle import MoodleSource

CONTEXT_COURSE = 50
ACCESS_TTL_S = 30.0


@dataclass(frozen=True)
class Membership:
    """One IOMAD company the viewer belongs to, and their place in it."""

    company_id: int
    managertype: int
    # Department managers: the departments they manage and every department below them.
    departments: frozenset[int] = frozenset()

    @property
    def manages_company(self) -> bool:
        return self.managertype == MANAGERTYPE_COMPANY_MANAGER

    @property
    def reads_company(self) -> bool:
        """Sees the whole company's figures: its managers and its reporters."""
        return self.managertype in (MANAGERTYPE_COMPANY_MANAGER, MANAGERTYPE_REPORTER)


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
    memberships: tuple[Membership, ...] = ()
    teacher_course_ids: frozenset[int] = field(default_factory=frozenset)

    def can(self, capability: str) -> bool:
        return capability in self.capabilities

    def can_any(self, capabilities: Iterable[str]) -> bool:
        return any(c in self.capabilities for c in capabilities)

    @property
    def company_ids(self) -> tuple[int, ...]:
        """Every company the viewer belongs to, in any role."""
        return tuple(m.company_id for m in self.memberships)

    @property
    def managed_company_ids(self) -> tuple[int, ...]:
        """Companies the viewer manages (IOMAD managertype 1): the ones they may act on."""
        return tuple(m.company_id for m in self.memberships if m.manages_company)

    def membership(self, company_id: int) -> Membership | None:
        return next((m for m in self.memberships if m.company_id == company_id), None)


@dataclass(frozen=True)
class _Access:
    """What a person may do: the part of a Viewer remembered for ACCESS_TTL_S."""

    is_site_admin: bool
    roles: frozenset[str]
    capabilities: frozenset[str]
    memberships: tuple[Membership, ...]
    teacher_course_ids: frozenset[int]


def load_viewer(source: MoodleSource, session: Session, user_id: int) -> Viewer | None:
    """The viewer for a signed-in Moodle user, or None if the account can no longer sign in."""
    t = source.tables
    with source.engine.connect() as conn:
        user = conn.execute(
            select(t.user.c.id, t.user.c.username, t.user.c.firstname, t.user.c.lastname,
                   t.user.c.timezone)
            .where(t.user.c.id == user_id, t.user.c.deleted == 0, t.user.c.suspended == 0)
        ).first()  # fmt: skip
    if user is None:
        forget_access(source, user_id)
        return None
    access = _remembered_access(source, session, user_id)
    return Viewer(
        user_id=user.id,
        username=user.username,
        fullname=f"{user.firstname} {user.lastname}".strip(),
        timezone=user.timezone,
        is_site_admin=access.is_site_admin,
        has_iomad=source.features().has_iomad,
        roles=access.roles,
        capabilities=access.capabilities,
        memberships=access.memberships,
        teacher_course_ids=access.teacher_course_ids,
    )


def forget_access(source: MoodleSource, user_id: int) -> None:
    """Read `user_id`'s roles and companies afresh next time (at sign-in, after revoking)."""
    source.forget(("viewer_access", user_id))


def _remembered_access(source: MoodleSource, session: Session, user_id: int) -> _Access:
    return source.remembered(("viewer_access", user_id), ACCESS_TTL_S,
                             lambda: _load_access(source, session, user_id))  # fmt: skip


def _load_access(source: MoodleSource, session: Session, user_id: int) -> _Access:
    features = source.features()
    with source.engine.connect() as conn:
        course_roles = _course_roles(conn, source, user_id)
        memberships = _company_memberships(conn, source, user_id) if features.has_iomad else []
        departments = _department_tree(conn, source, memberships) if memberships else {}
    is_admin = user_id in source.site_admin_ids()
    roles: set[str] = set()
    if is_admin:
        roles.add("siteadmin")
    teacher_courses = frozenset(c for c, r in course_roles if r in TEACHER_ROLE_SHORTNAMES)
    if teacher_courses:
        roles.add("teacher")
    if any(r in STUDENT_ROLE_SHORTNAMES for _, r in course_roles):
        roles.add("student")
    roles.update(MANAGERTYPE_ROLES[m] for _, _, m in memberships if m in MANAGERTYPE_ROLES)
    capabilities = set().union(*(ROLE_CAPABILITIES[r] for r in roles)) if roles else set()
    capabilities.update(
        session.scalars(select(CapabilityGrant.capability).where(CapabilityGrant.userid == user_id))
    )
    return _Access(
        is_site_admin=is_admin,
        roles=frozenset(roles),
        capabilities=frozenset(capabilities),
        memberships=_memberships(memberships, departments),
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


def _company_memberships(conn, source: MoodleSource, user_id: int) -> list[tuple[int, int, int]]:  # type: ignore[no-untyped-def]
    """(company, department, managertype) of each active membership row."""
    t = source.tables
    cu, company = t.company_users, t.company
    query = (
        select(cu.c.companyid, cu.c.departmentid, cu.c.managertype)
        .join(company, and_(company.c.id == cu.c.companyid, company.c.suspended == 0))
        .where(cu.c.userid == user_id, cu.c.suspended == 0)
    )
    return [(int(r[0]), int(r[1]), int(r[2])) for r in conn.execute(query)]


def _department_tree(
    conn: Any, source: MoodleSource, rows: list[tuple[int, int, int]]
) -> dict[int, frozenset[int]]:
    """Company -> the departments a department manager sees: those they manage and below."""
    managed = [(c, d) for c, d, m in rows if m == MANAGERTYPE_DEPARTMENT_MANAGER]
    if not managed:
        return {}
    department = source.tables.department
    children: dict[int, list[int]] = {}
    query = select(department.c.id, department.c.parent).where(
        department.c.company.in_(sorted({c for c, _ in managed}))
    )
    for dept, parent in conn.execute(query):
        children.setdefault(int(parent), []).append(int(dept))
    trees: dict[int, set[int]] = {}
    for company, top in managed:
        seen = trees.setdefault(company, set())
        stack = [top]
        while stack:
            dept = stack.pop()
            if dept not in seen:
                seen.add(dept)
                stack.extend(children.get(dept, ()))
    return {company: frozenset(depts) for company, depts in trees.items()}


# When one person holds several rows in a company, the widest role there applies.
_ROLE_RANK = {
    MANAGERTYPE_COMPANY_MANAGER: 3,
    MANAGERTYPE_REPORTER: 2,
    MANAGERTYPE_DEPARTMENT_MANAGER: 1,
}


def _memberships(
    rows: list[tuple[int, int, int]], departments: dict[int, frozenset[int]]
) -> tuple[Membership, ...]:
    widest: dict[int, int] = {}
    for company, _, managertype in rows:
        known = widest.get(company)
        if known is None or _ROLE_RANK.get(managertype, 0) > _ROLE_RANK.get(known, 0):
            widest[company] = managertype
    return tuple(
        Membership(company, managertype, departments.get(company, frozenset())
                   if managertype == MANAGERTYPE_DEPARTMENT_MANAGER else frozenset())
        for company, managertype in sorted(widest.items())
    )  # fmt: skip
