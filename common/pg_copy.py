"""Bulk rows into PostgreSQL through COPY FROM STDIN: psycopg 3 writes them in its C code,
several times faster than an INSERT per row. Used by the demo seed and by the analytics'
bulk inserts; MariaDB and SQLite take an executemany instead."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

from sqlalchemy import Connection


def copy_statement(connection: Connection, table: str, columns: Sequence[str]) -> str:
    """COPY into `table` (`columns`), the names quoted by the dialect."""
    quote = connection.dialect.identifier_preparer.quote
    names = ", ".join(quote(column) for column in columns)
    return f"COPY {quote(table)} ({names}) FROM STDIN"


def copy_rows(connection: Connection, statement: str, rows: Iterable[Sequence[Any]]) -> None:
    """Run a `copy_statement` with `rows` (values in its column order) on the DB-API
    connection under SQLAlchemy's, in its transaction."""
    driver_connection = connection.connection.driver_connection
    assert driver_connection is not None
    with driver_connection.cursor() as cursor, cursor.copy(statement) as copy:
        for row in rows:
            copy.write_row(row)
