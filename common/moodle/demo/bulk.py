"""Bulk loading for the demo site: plain tuples in, DB-API executemany in batches out.

The statement is built once per table and handed to the driver as-is, so no per-row work
happens between the generator and the driver. SQLite loads in one transaction with
synchronous=OFF (a crash leaves a demo DB to re-seed, nothing more); MariaDB commits per batch
so InnoDB's undo log stays small. PostgreSQL takes each batch through COPY FROM STDIN (psycopg
writes the rows in its C code), several times faster than an INSERT per row.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from itertools import islice
from typing import Any

from sqlalchemy import Connection

from common.moodle.tables import MoodleTables
from common.pg_copy import copy_rows, copy_statement

DEFAULT_BATCH_ROWS = 10_000

# DB-API placeholders of the two drivers the project supports.
_PLACEHOLDERS = {"qmark": "?", "format": "%s", "pyformat": "%s"}


class BulkWriter:
    def __init__(
        self, connection: Connection, prefix: str, *, batch_rows: int = DEFAULT_BATCH_ROWS
    ) -> None:
        self.connection = connection
        self.tables = MoodleTables(prefix)
        self.batch_rows = batch_rows
        self.rows_written: Counter[str] = Counter()
        self._placeholder = _PLACEHOLDERS[connection.dialect.paramstyle]
        self._commit_each_batch = connection.dialect.name != "sqlite"
        self._copy = connection.dialect.name == "postgresql"

    def insert(self, table: str, columns: Sequence[str], rows: Iterable[tuple[Any, ...]]) -> int:
        """Insert tuples whose values follow `columns`; returns the number of rows."""
        statement = (self._copy_statement if self._copy else self._insert_statement)(table, columns)
        written = 0
        iterator = iter(rows)
        while batch := list(islice(iterator, self.batch_rows)):
            if self._copy:
                self._copy_batch(statement, batch)
            else:
                self.connection.exec_driver_sql(statement, batch)
            if self._commit_each_batch:
                self.connection.commit()
            written += len(batch)
            self.rows_written[table] += len(batch)
        return written

    def _copy_batch(self, statement: str, batch: list[tuple[Any, ...]]) -> None:
        copy_rows(self.connection, statement, batch)

    def _copy_statement(self, table: str, columns: Sequence[str]) -> str:
        moodle_table = self.tables[table]
        names = [moodle_table.c[column].name for column in columns]
        return copy_statement(self.connection, moodle_table.name, names)

    def _insert_statement(self, table: str, columns: Sequence[str]) -> str:
        # Names come from schema.json (a KeyError here is a typo in the generator), and are
        # quoted by the dialect; values travel as driver parameters.
        moodle_table = self.tables[table]
        quote = self.connection.dialect.identifier_preparer.quote
        names = ", ".join(quote(moodle_table.c[column].name) for column in columns)
        placeholders = ", ".join([self._placeholder] * len(columns))
        return f"INSERT INTO {quote(moodle_table.name)} ({names}) VALUES ({placeholders})"  # noqa: S608

    def insert_dicts(self, table: str, rows: Sequence[Mapping[str, Any]]) -> int:
        """Insert a few rows given as dicts; all dicts must have the same keys."""
        if not rows:
            return 0
        columns = tuple(rows[0])
        return self.insert(table, columns, (tuple(row[c] for c in columns) for row in rows))
