"""Running a validated custom query on the Moodle database, within limits.

Every run is read-only (MariaDB/MySQL and PostgreSQL: a READ ONLY transaction; SQLite:
`query_only`), has a server-side time limit (MariaDB: `SET STATEMENT max_statement_time=… FOR …`;
MySQL: `max_execution_time`; PostgreSQL: `SET LOCAL statement_timeout`; SQLite: a progress
handler that interrupts past the deadline) and a row cap (fetch one row more than the cap to
tell that there were more; PostgreSQL streams rows from a server-side cursor, so no more than
that leave the server). Values are bound by the driver, never written into the SQL. A query
stopped by its limit raises `QueryTimeout`, is logged, and its connection goes back to the pool
in working order.

A `Window` (a sorted page) wraps the query as a subquery ordered by one of its own result
columns, checked against the names the query returns and quoted by the dialect.
"""

from __future__ import annotations

import logging
import sqlite3
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, Protocol

from sqlalchemy import Connection, text
from sqlalchemy.exc import DBAPIError

from common.customsql.site_dialect import printed_dialect
from common.errors import FieldError
from common.moodle import MoodleSource

log = logging.getLogger(__name__)

TIMEOUT_MAX_S = 3600.0
MAX_ROWS_LIMIT = 1_000_000
COLUMNS_TTL_S = 300.0  # a query's result columns change only when its SQL does
SQLITE_CHECK_EVERY = 1000  # virtual machine steps between deadline checks (~microseconds)
# MariaDB ER_STATEMENT_TIMEOUT, MySQL ER_QUERY_TIMEOUT
_TIMEOUT_CODES = {1969, 3024}
_PG_QUERY_CANCELED = "57014"  # SQLSTATE of a statement stopped by statement_timeout
_PG_FETCH_BATCH = 1000  # rows per round trip from PostgreSQL's server-side cursor
_DUPLICATE_COLUMN = 1060  # MariaDB/MySQL ER_DUP_FIELDNAME: a derived table's names must differ
_WINDOW_LIMIT, _WINDOW_OFFSET = "manireports_window_limit", "manireports_window_offset"


class _Checked(Protocol):
    """What this module needs of `common.customsql.validator.CheckedQuery`."""

    @property
    def params(self) -> tuple[str, ...]: ...

    @property
    def tables(self) -> frozenset[str]: ...

    def sql_for(self, dialect: str) -> str: ...


class QueryTimeout(FieldError):
    """The database stopped the query at its time limit (HTTP 504, CLI exit 1)."""

    def __init__(self, limit_s: float) -> None:
        super().__init__(
            "sql", f"the query ran past its time limit of {limit_s:g} s and was stopped", status=504
        )
        self.limit_s = limit_s


class QueryFailed(FieldError):
    """The database refused a validated query while running it (an unknown column, a
    type error): its own words, first line."""

    def __init__(self, reason: str) -> None:
        super().__init__("sql", f"the database could not run the query: {reason}")


@dataclass(frozen=True)
class Window:
    """A page of the result sorted by one of its columns (None: in the query's own order)."""

    sort: str | None
    descending: bool = False
    offset: int = 0
    limit: int = 100

    def __post_init__(self) -> None:
        if self.offset < 0 or not 1 <= self.limit <= MAX_ROWS_LIMIT:
            raise FieldError("page", f"offset {self.offset}, limit {self.limit} is not a page")


@dataclass
class QueryResult:
    columns: list[str]
    rows: list[tuple[Any, ...]]
    truncated: bool  # more rows than the cap: only the first max_rows are here
    elapsed_ms: float


def run_checked(
    source: MoodleSource,
    checked: _Checked,
    values: Mapping[str, Any],
    *,
    timeout_s: float = 30.0,
    max_rows: int = 10_000,
    window: Window | None = None,
) -> QueryResult:
    """The rows of ``checked`` with ``values`` bound, at most ``max_rows`` of them. A window
    with neither sort nor offset (a preview) is only a smaller cap: the query is not wrapped."""
    _check_limits(timeout_s, max_rows)
    dialect = _dialect(source)
    sql = checked.sql_for(dialect)
    binds = _binds(checked, values)
    started = time.monotonic()
    fetch = max_rows + 1  # one more than the cap tells that there were more
    if window is not None:
        fetch = min(window.limit, fetch)
    if window is not None and (window.sort is not None or window.offset):
        columns = result_columns(source, checked, values, timeout_s=timeout_s)
        sql = _windowed(source, sql, columns, window)
        binds |= {_WINDOW_LIMIT: fetch, _WINDOW_OFFSET: window.offset}
        timeout_s = max(0.001, timeout_s - (time.monotonic() - started))
    with _limited(source, checked, timeout_s, row_cap=fetch) as (conn, prefix):
        result = conn.execute(_statement(prefix + sql, binds), binds)
        columns = list(result.keys())
        rows = [tuple(row) for row in result.fetchmany(fetch)]
        result.close()
    truncated = len(rows) > max_rows
    elapsed_ms = (time.monotonic() - started) * 1000
    return QueryResult(columns, rows[:max_rows], truncated, elapsed_ms)


def count_checked(
    source: MoodleSource, checked: _Checked, values: Mapping[str, Any], *, timeout_s: float = 30.0
) -> int:
    """How many rows ``checked`` returns with ``values`` (for paging), under the same limits."""
    _check_limits(timeout_s, 1)
    # Wrapped here and below: the validator's printing of a checked tree, never author text.
    sql = f"SELECT COUNT(*) FROM ({checked.sql_for(_dialect(source))}) AS q"  # noqa: S608
    binds = _binds(checked, values)
    with _limited(source, checked, timeout_s, row_cap=1) as (conn, prefix):
        return int(conn.execute(_statement(prefix + sql, binds), binds).scalar_one())


def result_columns(
    source: MoodleSource,
    checked: _Checked,
    values: Mapping[str, Any],
    *,
    timeout_s: float = 30.0,
) -> list[str]:
    """The names of the columns ``checked`` returns, from the database itself (`LIMIT 0` of
    the query as a subquery: no rows are read). Remembered a while per site and SQL text."""
    sql = checked.sql_for(_dialect(source))

    def probe() -> list[str]:
        binds = _binds(checked, values)
        with _limited(source, checked, timeout_s, row_cap=1) as (conn, prefix):
            probing = f"{prefix}SELECT * FROM ({sql}) AS q LIMIT 0"  # noqa: S608
            result = conn.execute(_statement(probing, binds), binds)
            columns = list(result.keys())
            result.close()
        return columns

    return source.remembered(("customsql-columns", sql), COLUMNS_TTL_S, probe)


def _windowed(source: MoodleSource, sql: str, columns: list[str], window: Window) -> str:
    twice = _repeated_name(columns)
    if twice is not None:
        raise QueryFailed(f"two result columns are named {twice!r}: give each its own name")
    order = ""
    if window.sort is not None:
        if window.sort not in columns:
            raise FieldError("sort", f"{window.sort[:60]!r} is not a column of this report")
        quoted = source.engine.dialect.identifier_preparer.quote_identifier(window.sort)
        # Then every column by position: ties fall in the same order on every page.
        rest = ", ".join(str(n) for n in range(1, len(columns) + 1))
        order = f" ORDER BY {quoted}{' DESC' if window.descending else ''}, {rest}"
    page = f"LIMIT :{_WINDOW_LIMIT} OFFSET :{_WINDOW_OFFSET}"
    return f"SELECT * FROM ({sql}) AS q{order} {page}"  # noqa: S608


def _repeated_name(columns: list[str]) -> str | None:
    """A name two result columns share; SQLite renames the second `id` of a subquery `id:1`."""
    seen = set(columns)
    for n, name in enumerate(columns):
        base, colon, number = name.rpartition(":")
        if name in columns[:n] or (colon and number.isdigit() and base in seen):
            return base if colon and base in seen else name
    return None


def _check_limits(timeout_s: float, max_rows: int) -> None:
    if not 0 < timeout_s <= TIMEOUT_MAX_S:
        raise FieldError("timeout", f"must be more than 0 and at most {TIMEOUT_MAX_S:g} seconds")
    if not 1 <= max_rows <= MAX_ROWS_LIMIT:
        raise FieldError("max_rows", f"must be from 1 to {MAX_ROWS_LIMIT}")


def _dialect(source: MoodleSource) -> str:
    return printed_dialect(source)


def _binds(checked: _Checked, values: Mapping[str, Any]) -> dict[str, Any]:
    missing = [name for name in checked.params if name not in values]
    if missing:
        raise FieldError(missing[0], "no value given for this parameter")
    if {_WINDOW_LIMIT, _WINDOW_OFFSET} & set(checked.params):
        raise FieldError("sql", "parameter names starting manireports_window_ are reserved")
    return {name: values[name] for name in checked.params}


def _statement(sql: str, binds: Mapping[str, Any]) -> Any:
    """`text(sql)`, which must bind exactly the parameters the validator found: a `:name`
    SQLAlchemy reads where the validator saw none (inside quoted text) is refused, not bound."""
    statement = text(sql)
    found = set(statement._bindparams)
    if found != set(binds):
        extra = sorted(found - set(binds)) or sorted(set(binds) - found)
        raise FieldError("sql", f"`:{extra[0]}` cannot be told apart from a parameter; "
                                "write the colon differently (e.g. CONCAT(':', …))")  # fmt: skip
    return statement


@contextmanager
def _limited(
    source: MoodleSource, checked: _Checked, timeout_s: float, *, row_cap: int
) -> Iterator[tuple[Connection, str]]:
    """A Moodle connection in a read-only transaction with the time limit armed, and the
    prefix to put before the SELECT (MariaDB's `SET STATEMENT … FOR `). Database errors leave
    as QueryTimeout or QueryFailed; the connection is rolled back and returned healthy."""
    with source.engine.connect() as conn:
        limits = _LIMITS.get(conn.dialect.name, _MYSQL)
        try:
            with limits(conn, timeout_s, row_cap) as prefix:
                yield conn, prefix
        except DBAPIError as exc:
            if exc.connection_invalidated:
                raise
            if _timed_out(exc):
                log.warning("custom SQL stopped at its %g s limit (tables: %s)",
                            timeout_s, ", ".join(sorted(checked.tables)))  # fmt: skip
                raise QueryTimeout(timeout_s) from None
            code, reason = _code_and_reason(exc)
            if code == _DUPLICATE_COLUMN:
                reason += " (give each result column its own name)"
            log.info("custom SQL refused by the database: %s", reason)
            raise QueryFailed(reason) from None


def _code_and_reason(exc: DBAPIError) -> tuple[object, str]:
    """The driver's error code (pymysql: the first argument) and its message, first line."""
    orig = exc.orig
    args = orig.args if orig is not None else ()
    if len(args) == 2 and isinstance(args[0], int):
        code, message = args[0], str(args[1])
    else:
        code, message = None, str(orig if orig is not None else exc)
    return code, (message.splitlines() or [""])[0][:300]


def _timed_out(exc: DBAPIError) -> bool:
    orig = exc.orig
    if isinstance(orig, sqlite3.OperationalError):
        return str(orig) == "interrupted"
    if type(orig).__module__.startswith("psycopg"):  # PostgreSQL: by SQLSTATE, not a code
        return getattr(orig, "sqlstate", None) == _PG_QUERY_CANCELED
    return bool(orig is not None and orig.args and orig.args[0] in _TIMEOUT_CODES)


@contextmanager
def _mysql_limits(conn: Connection, timeout_s: float, row_cap: int) -> Iterator[str]:
    """MariaDB: limits on the one statement; MySQL (no SET STATEMENT): on the session, reset
    afterwards. `sql_select_limit` keeps the server from sending rows past the cap."""
    mariadb = bool(getattr(conn.dialect, "is_mariadb", False))
    conn.exec_driver_sql("START TRANSACTION READ ONLY")
    try:
        if mariadb:
            yield (
                f"SET STATEMENT max_statement_time={timeout_s:.3f}, "
                f"sql_select_limit={int(row_cap)} FOR "
            )
        else:
            conn.exec_driver_sql(
                f"SET SESSION max_execution_time={max(1, int(timeout_s * 1000))}, "
                f"sql_select_limit={int(row_cap)}"
            )
            try:
                yield ""
            finally:
                conn.exec_driver_sql("SET SESSION max_execution_time=DEFAULT, "
                                     "sql_select_limit=DEFAULT")  # fmt: skip
    finally:
        conn.rollback()


@contextmanager
def _sqlite_limits(conn: Connection, timeout_s: float, row_cap: int) -> Iterator[str]:
    """`query_only` for the run (a MoodleSource engine has it already), and a progress handler
    that interrupts the statement once the deadline has passed; both undone afterwards."""
    del row_cap  # rows are read one by one: fetching stops at the cap
    raw: Any = conn.connection.driver_connection
    was_query_only = conn.exec_driver_sql("PRAGMA query_only").scalar()
    if not was_query_only:
        conn.exec_driver_sql("PRAGMA query_only=ON")
    deadline = time.monotonic() + timeout_s
    raw.set_progress_handler(lambda: time.monotonic() > deadline, SQLITE_CHECK_EVERY)
    try:
        yield ""
    finally:
        raw.set_progress_handler(None, 0)
        conn.rollback()
        if not was_query_only:
            conn.exec_driver_sql("PRAGMA query_only=OFF")


@contextmanager
def _postgres_limits(conn: Connection, timeout_s: float, row_cap: int) -> Iterator[str]:
    """A READ ONLY transaction whose settings die with it (`SET LOCAL`): the statement time
    limit, an idle limit should a run stall between fetches, and standard_conforming_strings,
    so quoted text means what the validator's printing meant. Rows are streamed from a
    server-side cursor so that no more than the cap is read into memory. statement_timeout
    holds for each statement: the cursor's DECLARE (quick) and its FETCHes — a first small
    one, then the rest of the capped rows in one — so a run ends within about twice it."""
    limit_ms = max(1, int(timeout_s * 1000))
    conn.exec_driver_sql("SET TRANSACTION READ ONLY")  # the transaction psycopg opened
    conn.exec_driver_sql(f"SET LOCAL statement_timeout = {limit_ms}")
    conn.exec_driver_sql(f"SET LOCAL idle_in_transaction_session_timeout = {limit_ms + 60_000}")
    conn.exec_driver_sql("SET LOCAL standard_conforming_strings = on")
    conn.execution_options(stream_results=True, max_row_buffer=min(row_cap, _PG_FETCH_BATCH))
    try:
        yield ""
    finally:
        conn.rollback()


_MYSQL = _mysql_limits
_SQLITE = _sqlite_limits
_LIMITS = {"sqlite": _sqlite_limits, "postgresql": _postgres_limits}
