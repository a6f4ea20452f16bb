"""`scoped(query, scope, source)`: a query that can only see the rows a scope may see.

Every table of the query — in the FROM list, in joins, in subqueries, EXISTS and IN clauses —
gets the conditions its tenant columns call for (`columns.py`). A table on the optional side of
an outer join gets them in its ON clause, so "every course, with zeros" stays every course in
scope. Moodle tables are filtered with subqueries on the Moodle DB; ManiReports' own tables,
which live in another database, with the user and course ids the scope resolves to
(`visible_ids`). A table missing from the map, or a forbidden one, raises: scoping cannot be
skipped by reading a table nobody mapped.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any, TypeVar

from sqlalchemy import ColumnElement, Select, Table, and_, false, or_, select
from sqlalchemy.sql import visitors
from sqlalchemy.sql.elements import True_
from sqlalchemy.sql.selectable import Alias, FromClause, Join

from common.moodle import MoodleSource, MoodleTables
from common.tenancy.columns import (
    APP_TABLES,
    FORBIDDEN_MOODLE_TABLES,
    INTERNAL_APP_TABLES,
    MOODLE_TABLES,
    TenantColumns,
)
from common.tenancy.scope import TenantScope, id_list

Q = TypeVar("Q", bound=Any)
VISIBLE_TTL_S = 30.0
_MEMO_SIZE = 512


class UnscopedTable(TypeError):
    """A query reads a table the tenancy map does not know, or one it forbids."""


@dataclass(frozen=True)
class VisibleIds:
    """The user and course ids a scope resolves to on one site (None: no limit)."""

    users: frozenset[int] | None
    courses: frozenset[int] | None


def visible_ids(scope: TenantScope, source: MoodleSource | None) -> VisibleIds:
    """What `scope` allows of ManiReports' per-user and per-course figures, read from Moodle.

    Remembered for VISIBLE_TTL_S per scope: a dashboard asks several times per page, and a
    change of membership in Moodle may take that long to show.
    """
    if scope.company_ids is None and scope.course_ids is None and scope.department_ids is None:
        return VisibleIds(scope.user_ids, None)  # everything, or exactly these users
    if source is None:
        raise TypeError("visible_ids(): this scope needs the MoodleSource to resolve its ids")
    key = ("visible_ids", scope)
    now = time.monotonic()
    cached = source.memo.get(key)
    if cached is not None and cached[0] > now:
        return cached[1]  # type: ignore[return-value]
    t = source.tables
    with source.engine.connect() as conn:
        users = frozenset(int(u) for u in conn.scalars(scoped(select(t.user.c.id), scope, source)))
        courses = None
        if scope.company_ids is not None or scope.course_ids is not None:
            courses = frozenset(
                int(c) for c in conn.scalars(scoped(select(t.course.c.id), scope, source))
            )
    found = VisibleIds(users, courses)
    if len(source.memo) >= _MEMO_SIZE:
        source.memo.clear()
    source.memo[key] = (now + VISIBLE_TTL_S, found)
    return found


def scoped(query: Q, scope: TenantScope, source: MoodleSource | None = None) -> Q:
    """``query`` restricted to ``scope``; ``source`` is needed when it reads app tables whose
    rows belong to users or courses (their ids are looked up in the Moodle DB)."""
    if scope.unrestricted:
        _check_tables(query)
        return query
    scoper = _Scoper(scope, source)
    return visitors.cloned_traverse(query, {}, {"select": scoper.visit_select})  # type: ignore[no-any-return]


def _check_tables(query: Any) -> None:
    """Even an unrestricted scope may not read tables outside the map."""
    for element in visitors.iterate(query):
        if isinstance(element, Table):
            _columns_of(element)


def _columns_of(table: Table) -> TenantColumns:
    moodle_name = table.info.get("moodle_table")
    if moodle_name is not None:
        if moodle_name in FORBIDDEN_MOODLE_TABLES:
            raise UnscopedTable(f"{moodle_name} is never read through a tenant scope")
        if moodle_name not in MOODLE_TABLES:
            raise UnscopedTable(f"Moodle table {moodle_name} has no tenancy mapping")
        return MOODLE_TABLES[moodle_name]
    if table.name in APP_TABLES:
        return APP_TABLES[table.name]
    if table.name in INTERNAL_APP_TABLES:
        raise UnscopedTable(f"{table.name} holds no tenant data; read it without a scope")
    raise UnscopedTable(f"table {table.name} has no tenancy mapping")


class _Scoper:
    def __init__(self, scope: TenantScope, source: MoodleSource | None) -> None:
        self.scope = scope
        self.source = source
        self._visible: VisibleIds | None = None

    def visit_select(self, select_: Select) -> None:  # type: ignore[type-arg]
        """Called on each (cloned) SELECT of the query, innermost first."""
        froms = select_.get_final_froms()
        where: list[ColumnElement[bool]] = []
        for from_ in froms:
            where += self._from_conditions(from_)
        if select_._setup_joins:
            # .join()/.outerjoin() keep join entries that are turned into Join objects only when
            # compiled; the ones just built (and given ON conditions) take their place.
            select_._setup_joins = ()
            select_._from_obj = tuple(froms)
        if where:
            select_._where_criteria += tuple(where)

    def _from_conditions(self, from_: FromClause) -> list[ColumnElement[bool]]:
        """WHERE conditions for the tables of one FROM element; those of a table on the
        optional side of an outer join go into that join's ON clause instead."""
        if isinstance(from_, Join):
            if from_.full:
                raise UnscopedTable("scoped() does not support FULL OUTER JOIN")
            left = self._from_conditions(from_.left)
            right = self._from_conditions(from_.right)
            if from_.isouter and right:
                from_.onclause = and_(from_.onclause, *right)
                return left
            return left + right
        table, columns = _table_of(from_)
        if table is None:
            return []  # a subquery: its own SELECT was scoped when it was visited
        return self._conditions(table, columns, _columns_of(table))

    def _conditions(
        self, table: Table, columns: Any, tenant: TenantColumns
    ) -> list[ColumnElement[bool]]:
        moodle_name = table.info.get("moodle_table")
        found: list[ColumnElement[bool]] = []
        if tenant.company:
            company = columns[tenant.company]
            condition: ColumnElement[bool] | None = None
            if self.scope.company_ids is not None:
                condition = self.scope.restrict_companies(company)
            elif not self.scope.whole and not (tenant.user or tenant.course or tenant.via):
                # A whole company's rows (its jobs, its audit trail) are not for a viewer
                # limited to some courses or people outside any company.
                condition = false()
            if condition is not None:
                if tenant.site_rows:
                    condition = or_(company.is_(None), company == 0, condition)
                found.append(condition)
        if moodle_name is not None:
            t = MoodleTables(table.name[: -len(moodle_name)])
            if tenant.user:
                found.append(self.scope.restrict_users(columns[tenant.user], t))
            if tenant.course:
                found.append(self.scope.restrict_courses(columns[tenant.course], t))
            for column, parent in tenant.via:
                found.append(columns[column].in_(self._parent_ids(t[parent])))
        else:
            if tenant.user or tenant.course:
                visible = self.visible()
                if tenant.user and visible.users is not None:
                    found.append(id_list(columns[tenant.user], visible.users))
                if tenant.course and visible.courses is not None:
                    found.append(id_list(columns[tenant.course], visible.courses))
            for column, parent in tenant.via:
                found.append(columns[column].in_(self._parent_ids(table.metadata.tables[parent])))
        return [c for c in found if not isinstance(c, True_)]

    def _parent_ids(self, parent: Table) -> Select:  # type: ignore[type-arg]
        return scoped(select(parent.c.id), self.scope, self.source)

    def visible(self) -> VisibleIds:
        if self._visible is None:
            self._visible = visible_ids(self.scope, self.source)
        return self._visible


def _table_of(from_: FromClause) -> tuple[Table | None, Any]:
    """The table behind a FROM element (itself or an alias of it) and the columns to filter."""
    if isinstance(from_, Table):
        return from_, from_.c
    if isinstance(from_, Alias) and isinstance(from_.element, Table):
        return from_.element, from_.c
    return None, None
