"""What one viewer may read: a `TenantScope`, and the SQL conditions it puts on Moodle columns.

A scope is a value: companies (None = every company), and optional narrower limits — courses
(a teacher's), departments (a department manager's subtree) and users (a learner's own data).
`restrict_users` / `restrict_courses` / `restrict_companies` turn it into WHERE conditions on
the Moodle DB; `common.tenancy.scoped` applies them to every mapped table of a query.
"""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass
from typing import Any

from sqlalchemy import (
    ColumnElement,
    Select,
    and_,
    false,
    literal_column,
    select,
    true,
    union,
)
from sqlalchemy.orm import QueryableAttribute

from common.moodle import MoodleTables

SHARED_OPEN = 1  # iomad_courses.shared: visible to every company


class TenantViolation(Exception):
    """The viewer asked for something outside their scope; answered with an audited 403."""

    def __init__(self, company_id: int | None, reason: str | None = None):
        super().__init__(reason or f"company {company_id} is outside your companies")
        self.company_id = company_id


class NotFound(LookupError):
    """No such object at all (in any company): answered with 404."""


def id_list(
    column: ColumnElement[Any] | QueryableAttribute[Any], ids: Collection[int]
) -> ColumnElement[bool]:
    """`column IN (ids)` with the integers written into the SQL: a company can have more
    members than SQLite allows bound parameters, and integers cannot inject anything. Written
    as one piece of SQL text rather than a literal per id: rendering thousands of literals on
    every execution was a third of a small report's time; as text, the statement is compiled
    once and found in SQLAlchemy's cache while the list stays the same."""
    if not ids:
        return false()
    joined = ",".join(str(int(i)) for i in sorted(ids))
    return column.op("IN", is_comparison=True)(literal_column(f"({joined})"))


@dataclass(frozen=True)
class TenantScope:
    """`company_ids=None` means every company (site admin, or a site without IOMAD)."""

    company_ids: tuple[int, ...] | None
    course_ids: frozenset[int] | None = None
    department_ids: frozenset[int] | None = None
    user_ids: frozenset[int] | None = None

    @property
    def company_id(self) -> int | None:
        return self.company_ids[0] if self.company_ids and len(self.company_ids) == 1 else None

    @property
    def whole(self) -> bool:
        """No limit below the company: figures for a whole company (or the site) may be shown."""
        return self.course_ids is None and self.department_ids is None and self.user_ids is None

    @property
    def unrestricted(self) -> bool:
        return self.whole and self.company_ids is None

    def restrict_companies(self, company_id: ColumnElement) -> ColumnElement[bool]:
        return true() if self.company_ids is None else id_list(company_id, self.company_ids)

    def restrict_users(self, user_id: ColumnElement, t: MoodleTables) -> ColumnElement[bool]:
        clauses: list[ColumnElement[bool]] = []
        if self.user_ids is not None:
            clauses.append(id_list(user_id, self.user_ids))
        if self.company_ids is not None:
            if not self.company_ids:
                return false()
            cu = t.company_users
            members = select(cu.c.userid).where(id_list(cu.c.companyid, self.company_ids))
            if self.department_ids is not None:
                members = members.where(id_list(cu.c.departmentid, self.department_ids))
            clauses.append(user_id.in_(members))
        if self.course_ids is not None:
            # A course-limited viewer (a teacher) sees the people enrolled in those courses.
            clauses.append(user_id.in_(_enrolled(t, "userid", courses=self.course_ids)))
        return and_(true(), *clauses) if clauses else true()

    def restrict_courses(self, course_id: ColumnElement, t: MoodleTables) -> ColumnElement[bool]:
        clauses: list[ColumnElement[bool]] = []
        if self.course_ids is not None:
            clauses.append(id_list(course_id, self.course_ids))
        if self.user_ids is not None:
            # Someone limited to their own data sees the courses they are enrolled in.
            clauses.append(course_id.in_(_enrolled(t, "courseid", users=self.user_ids)))
        if self.company_ids is not None:
            if not self.company_ids:
                return false()
            ids = self.company_ids
            company_courses = union(
                select(t.company_course.c.courseid).where(
                    id_list(t.company_course.c.companyid, ids)
                ),
                select(t.iomad_courses.c.courseid).where(t.iomad_courses.c.shared == SHARED_OPEN),
                select(t.company_shared_courses.c.courseid).where(
                    id_list(t.company_shared_courses.c.companyid, ids)
                ),
            )
            clauses.append(course_id.in_(company_courses))
        return and_(true(), *clauses) if clauses else true()


def _enrolled(
    t: MoodleTables,
    wanted: str,
    *,
    users: frozenset[int] | None = None,
    courses: frozenset[int] | None = None,
) -> Select:  # type: ignore[type-arg]
    """The `userid`s or `courseid`s (``wanted``) of the enrolments of these users or courses."""
    e, ue = t.enrol, t.user_enrolments
    columns = {"userid": ue.c.userid, "courseid": e.c.courseid}
    query = select(columns[wanted]).select_from(ue).join(e, e.c.id == ue.c.enrolid)
    if users is not None:
        query = query.where(id_list(ue.c.userid, users))
    if courses is not None:
        query = query.where(id_list(e.c.courseid, courses))
    return query


SITE = TenantScope(company_ids=None)  # services and operators: everything
