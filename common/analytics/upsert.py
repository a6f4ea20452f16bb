"""Insert-or-update in bulk on SQLite and MariaDB, keyed by a unique constraint."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy import Table
from sqlalchemy.dialects import mysql, sqlite
from sqlalchemy.orm import Session


def table_of(model: Any) -> Table:
    """A mapped class's Table, typed as one (`__table__` is typed as a plain FromClause)."""
    table: Table = model.__table__
    return table


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
    elif dialect in ("mysql", "mariadb"):
        mysql_statement = mysql.insert(table)
        statement = mysql_statement.on_duplicate_key_update(
            {column: mysql_statement.inserted[column] for column in update}
        )
    else:  # pragma: no cover - settings accept only SQLite and MariaDB
        raise NotImplementedError(f"upsert on {dialect}")
    session.execute(statement, list(rows))
