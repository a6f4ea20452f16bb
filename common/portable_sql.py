"""SQL that reads the same on SQLite, MariaDB and PostgreSQL where their spellings differ.

Each construct compiles to the one dialect's own form, so the queries using it stay single
SQLAlchemy expressions (and the cross-database report test compares their rows).
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import Float, Numeric, String, Text, cast, literal, literal_column
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.sql.elements import ColumnElement
from sqlalchemy.sql.functions import FunctionElement
from sqlalchemy.sql.sqltypes import NullType


class comma_joined(FunctionElement[str]):  # noqa: N801 - reads as the SQL function it is
    """An aggregate: the group's values as one comma-separated string (GROUP_CONCAT; on
    PostgreSQL string_agg over the values as text). The order inside is not defined."""

    type = Text()
    name = "comma_joined"
    inherit_cache = True


@compiles(comma_joined)
def _comma_joined(element: comma_joined, compiler: Any, **kw: Any) -> str:
    return f"group_concat({compiler.process(element.clauses, **kw)})"


@compiles(comma_joined, "postgresql")
def _comma_joined_postgres(element: comma_joined, compiler: Any, **kw: Any) -> str:
    (value,) = element.clauses
    joined = compiler.process(cast(value, Text), **kw)
    return f"string_agg({joined}, {compiler.process(literal(',', String), **kw)})"


def like_folded(column: ColumnElement[Any], pattern: Any, escape: str) -> ColumnElement[bool]:
    """`column LIKE pattern ESCAPE escape` without regard to case, as MariaDB's _ci collations
    and SQLite's LIKE (for ASCII) compare: ILIKE on PostgreSQL, whose LIKE is case-sensitive.
    A plain LIKE elsewhere keeps MariaDB's indexes usable."""
    if len(escape) != 1 or escape in "'\\":
        raise ValueError(f"escape must be one plain character, not {escape!r}")
    return _like_folded(column, pattern, literal_column(f"'{escape}'"))


class _like_folded(FunctionElement[bool]):  # noqa: N801
    # Untyped, not Boolean: a Boolean would be compared with 1 on SQLite and MariaDB.
    type = NullType()  # type: ignore[assignment]
    name = "like_folded"
    inherit_cache = True


def _like_parts(element: _like_folded, compiler: Any, **kw: Any) -> tuple[str, str, str]:
    column, pattern, escape = element.clauses
    return tuple(compiler.process(part, **kw) for part in (column, pattern, escape))  # type: ignore[return-value]


@compiles(_like_folded)
def _like_folded_default(element: _like_folded, compiler: Any, **kw: Any) -> str:
    column, pattern, escape = _like_parts(element, compiler, **kw)
    return f"({column} LIKE {pattern} ESCAPE {escape})"


@compiles(_like_folded, "postgresql")
def _like_folded_postgres(element: _like_folded, compiler: Any, **kw: Any) -> str:
    column, pattern, escape = _like_parts(element, compiler, **kw)
    return f"({column} ILIKE {pattern} ESCAPE {escape})"


class rounded(FunctionElement[float]):  # noqa: N801
    """round(value, digits); on PostgreSQL over the value as NUMERIC, the only type its
    two-argument round() takes (a float parameter makes the division double precision)."""

    type = Float()
    name = "rounded"
    inherit_cache = True


@compiles(rounded)
def _rounded(element: rounded, compiler: Any, **kw: Any) -> str:
    return f"round({compiler.process(element.clauses, **kw)})"


@compiles(rounded, "postgresql")
def _rounded_postgres(element: rounded, compiler: Any, **kw: Any) -> str:
    value, digits = element.clauses
    as_numeric = compiler.process(cast(value, Numeric), **kw)
    return f"round({as_numeric}, {compiler.process(digits, **kw)})"
