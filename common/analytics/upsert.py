"""Bulk writes on SQLite, MariaDB and PostgreSQL: insert-or-update keyed by a unique
constraint, and plain bulk inserts into tables known to hold none of the rows."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

from sqlalchemy import Boolean, Date, DateTime, Dialect, Table, insert
from sqlalchemy.dialects import mysql, postgresql, sqlite
from sqlalchemy.orm import Session
from sqlalchemy.types import TypeEngine

from common.models.base import UTCDateTime
from common.pg_copy import copy_rows, copy_statement


def upsert(
    session: Session,
    table: Table,
    rows: Sequence[dict[str, Any]],
    key: Sequence[str],
    update: Sequence[str],
) -> None:
    """Insert `rows`; a row whose `key` columns match an existing row updates its `update`
    columns instead. One statement, compiled once, run as an executemany (pymysql folds it
    into multi-row INSERTs itself)."""
    if not rows:
        return
    dialect = session.get_bind().dialect.name
    if dialect == "sqlite":
        sqlite_statement = sqlite.insert(table)
        statement: Any = sqlite_statement.on_conflict_do_update(
            index_elements=list(key),
            set_={column: sqlite_statement.excluded[column] for column in update},
        )
    elif dialect == "postgresql":
        postgres_statement = postgresql.insert(table)
        statement = postgres_statement.on_conflict_do_update(
            index_elements=list(key),
            set_={column: postgres_statement.excluded[column] for column in update},
        )
    elif dialect in ("mysql", "mariadb"):
        mysql_statement = mysql.insert(table)
        statement = mysql_statement.on_duplicate_key_update(
            {column: mysql_statement.inserted[column] for column in update}
        )
    else:  # pragma: no cover - settings accept only SQLite, MariaDB and PostgreSQL
        raise NotImplementedError(f"upsert on {dialect}")
    session.execute(statement, list(rows))


def insert_many(session: Session, table: Table, rows: Sequence[Mapping[str, Any]]) -> None:
    """Plain INSERT of `rows` (all with the same keys) as one executemany (a COPY on
    PostgreSQL).

    The statement is compiled once and its values converted column by column before they
    reach the driver: dates and UTC datetimes by C-level formatting (the storage formats of
    SQLAlchemy's own SQLite types, and naive UTC for MariaDB), other types by their own bind
    processors. Core's per-row parameter processing would otherwise cost more than the
    insert itself on a first full aggregation."""
    if not rows:
        return
    dialect = session.get_bind().dialect
    columns = list(rows[0])
    compiled = insert(table).compile(dialect=dialect, column_keys=columns)
    order = list(compiled.positiontup or ()) if compiled.positional else columns
    if sorted(order) != sorted(columns):  # pragma: no cover - a plain INSERT binds each once
        raise NotImplementedError(f"insert_many on {dialect.name}")
    by_column = []
    for name in order:
        column = [row[name] for row in rows]
        convert = _fast_bind(table.c[name].type, dialect)
        if convert is not None:
            column = [None if v is None else convert(v) for v in column]
        by_column.append(column)
    values: list[Any] = list(zip(*by_column, strict=True))
    connection = session.connection()
    if dialect.name == "postgresql":
        copy_rows(connection, copy_statement(connection, table.name, order), values)
        return
    if not compiled.positional:  # pymysql's named style (%(name)s)
        values = [dict(zip(order, row, strict=True)) for row in values]
    connection.exec_driver_sql(compiled.string, values)


def _fast_bind(kind: TypeEngine[Any], dialect: Dialect) -> Callable[[Any], Any] | None:
    sqlite_storage = dialect.name == "sqlite"
    if isinstance(kind, UTCDateTime):
        naive = kind.process_bind_param
        if sqlite_storage:
            return lambda v: naive(v, dialect).isoformat(" ", "microseconds")
        return lambda v: naive(v, dialect)
    if isinstance(kind, DateTime) and sqlite_storage:
        return lambda v: v.isoformat(" ", "microseconds")
    if isinstance(kind, Date) and sqlite_storage:
        return lambda v: v.isoformat()
    if isinstance(kind, Boolean) and dialect.name != "postgresql":  # PG has a real boolean
        return int
    processor: Callable[[Any], Any] | None = kind.bind_processor(dialect)
    return processor
