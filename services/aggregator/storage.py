"""The aggregator's app DB: writers serialize from their first statement on SQLite.

pysqlite starts a transaction only at the first write, so a batch that reads sessions and then
writes could interleave with another replica's batch and lose an update. Beginning every
transaction with BEGIN IMMEDIATE takes SQLite's write lock up front (the documented
SQLAlchemy recipe); MariaDB instead locks the rows read with SELECT ... FOR UPDATE.
"""

from __future__ import annotations

from sqlalchemy import event

from common.appdb import AppDB


def open_appdb(url: str) -> AppDB:
    appdb = AppDB(url)
    engine = appdb.engine
    if engine.dialect.name == "sqlite":

        @event.listens_for(engine, "connect")
        def _manual_transactions(dbapi_conn, _record):  # type: ignore[no-untyped-def]
            dbapi_conn.isolation_level = None

        @event.listens_for(engine, "begin")
        def _begin_immediate(conn):  # type: ignore[no-untyped-def]
            conn.exec_driver_sql("BEGIN IMMEDIATE")

    return appdb
