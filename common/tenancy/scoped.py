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

import threading
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from typing import Any, TypeVar

from sqlalchemy import ColumnElement, Select, Table, and_, false, or_, select, true
from sqlalchemy.sql import operators, visitors
from sqlalchemy.sql.elements import BinaryExpression, BooleanClauseList, ColumnClause, True_
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
    return source.remembered(("visible_ids", scope), VISIBLE_TTL_S,
                             lambda: _look_up_visible_ids(scope, source))  # fmt: skip


def _look_up_visible_ids(scope: TenantScope, source: MoodleSource) -> VisibleIds:
    t = source.tables
    with source.engine.connect() as conn:
        users = frozenset(int(u) for u in conn.scalars(scoped(select(t.user.c.id), scope, source)))
        courses = None
        if scope.company_ids is not None or scope.course_ids is not None:
            courses = frozenset(
                int(c) for c in conn.scalars(scoped(select(t.course.c.id), scope, source))
            )
    return VisibleIds(users, courses)


def scoped(query: Q, scope: TenantScope, source: MoodleSource | None = None) -> Q:
    """``query`` restricted to ``scope``; ``source`` is needed when it reads app tables whose
    rows belong to users or courses (their ids are looked up in the Moodle DB).

    A query built once and run with parameters (`bindparam`) is scoped once per scope: the
    result is remembered while the query object lives — and, when it holds ids looked up in
    Moodle, while `visible_ids` still answers with the very same lookup (same site, within
    its time to live).
    """
    key = (id(query), scope)
    with _memo_lock:
        remembered = _memo.get(key)
    if remembered is not None and remembered[0] is query:
        looked_up_ids = remembered[2]
        if looked_up_ids is None or visible_ids(scope, source) is looked_up_ids:
            with _memo_lock:
                if key in _memo:
                    _memo.move_to_end(key)
            return remembered[1]  # type: ignore[no-any-return]
    looked_up_ids = None
    if scope.unrestricted:
        _check_tables(query)
        result = query
    else:
        scoper = _Scoper(scope, source)
        result = visitors.cloned_traverse(query, {}, {"select": scoper.visit_select})
        looked_up_ids = scoper.looked_up_ids
    with _memo_lock:
        _memo[key] = (query, result, looked_up_ids)
        if len(_memo) > _MEMO_SIZE:
            _memo.popitem(last=False)
    return result  # type: ignore[no-any-return]


_memo: OrderedDict[tuple[int, TenantScope], tuple[Any, Any, VisibleIds | None]] = OrderedDict()
_memo_lock = threading.Lock()


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


@dataclass
class _Occurrence:
    """One table in one SELECT: its columns (of an alias, if aliased), its tenant columns, and
    the outer join whose ON clause takes its conditions when it is on the optional side."""

    table: Table
    columns: Any
    tenant: TenantColumns
    outer_join: Join | None


class _Scoper:
    def __init__(self, scope: TenantScope, source: MoodleSource | None) -> None:
        self.scope = scope
        self.source = source
        self._visible: VisibleIds | None = None

    @property
    def looked_up_ids(self) -> VisibleIds | None:
        """The ids read from the Moodle DB that the conditions hold, if any."""
        return self._visible

    def visit_select(self, select_: Select) -> None:  # type: ignore[type-arg]
        """Called on each (cloned) SELECT of the query, innermost first."""
        froms = _final_froms(select_)
        found: list[_Occurrence] = []
        joins: list[Join] = []
        for from_ in froms:
            _collect(from_, None, found, joins)
        same = _Equalities(select_._where_criteria, [j.onclause for j in joins])
        where = self._conditions(found, same)
        if select_._setup_joins:
            # .join()/.outerjoin() keep join entries that are turned into Join objects only when
            # compiled; the ones just built (and given ON conditions) take their place.
            select_._setup_joins = ()
            select_._from_obj = tuple(froms)
        if where:
            select_._where_criteria += tuple(where)

    def _conditions(self, found: list[_Occurrence], same: _Equalities) -> list[ColumnElement[bool]]:
        """WHERE conditions for the tables always present; those on the optional side of an
        outer join get theirs in its ON clause. A column joined by equality to one already
        filtered needs no filter of its own (`ue.userid = u.id`: filtering one is enough)."""
        where: list[ColumnElement[bool]] = []
        # A row reached through `child.parent_id = parent.id` is in scope when the parent is.
        covered: set[tuple[str, int]] = {
            ("via:" + _name(o.table), same.root(o.columns["id"]))
            for o in found
            if o.outer_join is None and "id" in o.columns
        }
        # Tables always present first: a filter on them covers the optional side's equal columns.
        for occurrence in sorted(found, key=lambda o: o.outer_join is not None):
            conditions = []
            for dimension, column, make in self._table_conditions(occurrence):
                key = (dimension, same.root(column))
                if key in covered:
                    continue
                condition = make()
                if isinstance(condition, True_):
                    continue
                if occurrence.outer_join is None:
                    covered.add(key)
                conditions.append(condition)
            if not conditions:
                continue
            if occurrence.outer_join is None:
                where += conditions
            else:
                join = occurrence.outer_join
                join.onclause = and_(join.onclause, *conditions)  # type: ignore[arg-type]
        return where

    def _table_conditions(
        self, occurrence: _Occurrence
    ) -> list[tuple[str, Any, Callable[[], ColumnElement[bool]]]]:
        """(dimension, column, how to build its condition) for one table's tenant columns;
        built only when no equal column already carries the same condition."""
        table, columns, tenant = occurrence.table, occurrence.columns, occurrence.tenant
        scope = self.scope
        moodle_name = table.info.get("moodle_table")
        found: list[tuple[str, Any, Callable[[], ColumnElement[bool]]]] = []
        if tenant.company:
            company = columns[tenant.company]
            if scope.company_ids is not None:
                found.append(("company", company, partial(_company_rows, scope, company, tenant)))
            elif not scope.whole and not (tenant.user or tenant.course or tenant.via):
                # A whole company's rows (its jobs, its audit trail) are not for a viewer
                # limited to some courses or people outside any company.
                found.append(("company", company, partial(_no_company_rows, company, tenant)))
        if moodle_name is not None:
            t = MoodleTables(table.name[: -len(moodle_name)])
            if tenant.user:
                user = columns[tenant.user]
                found.append(("user", user, partial(scope.restrict_users, user, t)))
            if tenant.course:
                course = columns[tenant.course]
                found.append(("course", course, partial(scope.restrict_courses, course, t)))
            parents = {parent: t[parent] for _, parent in tenant.via}
        else:
            if tenant.user:
                user = columns[tenant.user]
                found.append(("user", user, partial(self._visible_users, user)))
            if tenant.course:
                course = columns[tenant.course]
                found.append(("course", course, partial(self._visible_courses, course)))
            parents = {parent: table.metadata.tables[parent] for _, parent in tenant.via}
        for column, parent in tenant.via:
            child = columns[column]
            found.append(("via:" + parent, child, partial(self._in_parent, child, parents[parent])))
        return found

    def _in_parent(self, child: Any, parent: Table) -> ColumnElement[bool]:
        return child.in_(self._parent_ids(parent))  # type: ignore[no-any-return]

    def _visible_users(self, column: Any) -> ColumnElement[bool]:
        users = self.visible().users
        return true() if users is None else id_list(column, users)

    def _visible_courses(self, column: Any) -> ColumnElement[bool]:
        courses = self.visible().courses
        return true() if courses is None else id_list(column, courses)

    def _parent_ids(self, parent: Table) -> Select:  # type: ignore[type-arg]
        return scoped(select(parent.c.id), self.scope, self.source)

    def visible(self) -> VisibleIds:
        if self._visible is None:
            self._visible = visible_ids(self.scope, self.source)
        return self._visible


def _collect(
    from_: FromClause, outer_join: Join | None, found: list[_Occurrence], joins: list[Join]
) -> None:
    """The mapped tables of a FROM element, each with the outer join that makes it optional."""
    if isinstance(from_, Join):
        if from_.full:
            raise UnscopedTable("scoped() does not support FULL OUTER JOIN")
        joins.append(from_)
        _collect(from_.left, outer_join, found, joins)
        _collect(from_.right, from_ if from_.isouter else outer_join, found, joins)
        return
    table, columns = _table_of(from_)
    if table is not None:  # else a subquery: its own SELECT was scoped when it was visited
        found.append(_Occurrence(table, columns, _columns_of(table), outer_join))


class _Equalities:
    """Which columns a SELECT makes equal (`a = b` in its WHERE or in a join's ON, as a whole
    condition or one part of an AND): a union-find over the columns."""

    def __init__(self, where: Any, onclauses: list[Any]) -> None:
        self._parent: dict[int, int] = {}
        for clause in [*where, *onclauses]:
            for part in _conjuncts(clause):
                if (
                    isinstance(part, BinaryExpression)
                    and part.operator is operators.eq
                    and isinstance(part.left, ColumnClause)
                    and isinstance(part.right, ColumnClause)
                ):
                    self._union(id(part.left), id(part.right))

    def root(self, column: Any) -> int:
        key = id(column)
        while self._parent.get(key, key) != key:
            key = self._parent[key]
        return key

    def _union(self, a: int, b: int) -> None:
        self._parent.setdefault(a, a)
        self._parent.setdefault(b, b)
        root_a, root_b = self._root_id(a), self._root_id(b)
        if root_a != root_b:
            self._parent[root_b] = root_a

    def _root_id(self, key: int) -> int:
        while self._parent[key] != key:
            key = self._parent[key]
        return key


def _conjuncts(clause: Any) -> list[Any]:
    if isinstance(clause, BooleanClauseList) and clause.operator is operators.and_:
        return [part for child in clause.clauses for part in _conjuncts(child)]
    return [clause]


def _company_rows(scope: TenantScope, company: Any, tenant: TenantColumns) -> ColumnElement[bool]:
    condition = scope.restrict_companies(company)
    return or_(company.is_(None), company == 0, condition) if tenant.site_rows else condition


def _no_company_rows(company: Any, tenant: TenantColumns) -> ColumnElement[bool]:
    return or_(company.is_(None), company == 0) if tenant.site_rows else false()


def _final_froms(select_: Select) -> list[FromClause]:  # type: ignore[type-arg]
    """What `Select.get_final_froms()` returns, without the throw-away compile of the whole
    statement it runs first (ten times the cost, paid on every request)."""
    if select_._propagate_attrs.get("compile_state_plugin") == "orm":
        return list(select_.get_final_froms())  # ORM statements need their compiler
    state = select_._compile_state_factory(select_, None)  # type: ignore[arg-type]
    return list(state._get_display_froms())  # type: ignore[attr-defined]


def _name(table: Table) -> str:
    return str(table.info.get("moodle_table") or table.name)


def _table_of(from_: FromClause) -> tuple[Table | None, Any]:
    """The table behind a FROM element (itself or an alias of it) and the columns to filter."""
    if isinstance(from_, Table):
        return from_, from_.c
    if isinstance(from_, Alias) and isinstance(from_.element, Table):
        return from_.element, from_.c
    return None, None
