"""Fresh databases for a bench on a MariaDB or PostgreSQL server, dropped afterwards."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from contextlib import contextmanager

from sqlalchemy.engine import make_url

from common.db import make_engine


@contextmanager
def server_databases(url: str, name: str | None = None) -> Iterator[tuple[str, str]]:
    """(Moodle URL, app URL): two fresh databases on the server of `url`, `name` and
    `name_app` (a random name by default: never the URL's own database), dropped afterwards."""
    parsed = make_url(url)
    base = name or f"mr_bench_{uuid.uuid4().hex[:8]}"
    names = [base, f"{base}_app"]
    postgres = parsed.get_backend_name() == "postgresql"
    # Any database that always exists; PostgreSQL creates databases outside a transaction.
    admin_url = parsed.set(database="postgres" if postgres else "information_schema")
    admin = make_engine(admin_url.render_as_string(hide_password=False),
                        isolation_level="AUTOCOMMIT")  # fmt: skip
    quote = admin.dialect.identifier_preparer.quote
    create = "CREATE DATABASE {} TEMPLATE template0" if postgres else (
        "CREATE DATABASE {} CHARACTER SET utf8mb4")  # fmt: skip
    drop = "DROP DATABASE IF EXISTS {} WITH (FORCE)" if postgres else "DROP DATABASE IF EXISTS {}"
    with admin.connect() as conn:
        for name in names:
            conn.exec_driver_sql(drop.format(quote(name)))
            conn.exec_driver_sql(create.format(quote(name)))
    try:
        moodle, app = (parsed.set(database=n).render_as_string(hide_password=False) for n in names)
        yield moodle, app
    finally:
        with admin.connect() as conn:
            for name in names:
                conn.exec_driver_sql(drop.format(quote(name)))
        admin.dispose()


def server_cache(url: str) -> dict[str, int] | None:
    """The server's page cache and the size of the database of `url`, in MB: a run whose data
    outgrows the cache reads pages from disk (or the OS cache) and says less about the code.
    None on SQLite."""
    parsed = make_url(url)
    backend = parsed.get_backend_name()
    if backend not in ("mysql", "mariadb", "postgresql"):
        return None
    engine = make_engine(url)
    try:
        with engine.connect() as conn:
            if backend == "postgresql":
                cache = conn.exec_driver_sql(
                    "SELECT setting::bigint * 8192 FROM pg_settings WHERE name = 'shared_buffers'"
                ).scalar()
                data = conn.exec_driver_sql("SELECT pg_database_size(current_database())").scalar()
            else:
                cache = conn.exec_driver_sql("SELECT @@innodb_buffer_pool_size").scalar()
                data = conn.exec_driver_sql(
                    "SELECT SUM(data_length + index_length) FROM information_schema.tables "
                    "WHERE table_schema = DATABASE()"
                ).scalar()
    finally:
        engine.dispose()
    return {"cache_mb": int(cache or 0) // 2**20, "data_mb": int(data or 0) // 2**20}
