"""Shared fixtures: a real nats-server, app and Moodle databases on SQLite and (when set) on
MariaDB (MANIREPORTS_TEST_MARIADB_URL) and PostgreSQL (MANIREPORTS_TEST_POSTGRES_URL)."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import text
from sqlalchemy.engine import make_url

from common.db import make_engine
from common.migrate import upgrade
from common.nats_server import EmbeddedNatsServer
from tests.factories.sites import Site, build_site
from tests.support import ServiceProcess

pytest_plugins = ["tests.fakes.fixtures"]

MARIADB_URL = os.environ.get("MANIREPORTS_TEST_MARIADB_URL")
requires_mariadb = pytest.mark.skipif(not MARIADB_URL, reason="MANIREPORTS_TEST_MARIADB_URL unset")
POSTGRES_URL = os.environ.get("MANIREPORTS_TEST_POSTGRES_URL")
requires_postgres = pytest.mark.skipif(
    not POSTGRES_URL, reason="MANIREPORTS_TEST_POSTGRES_URL unset"
)


@pytest.fixture(scope="session")
def nats_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EmbeddedNatsServer]:
    server = EmbeddedNatsServer(tmp_path_factory.mktemp("nats")).start()
    yield server
    server.stop()


def _mariadb_database(prefix: str) -> Iterator[str]:
    """A fresh database on the MariaDB server, dropped afterwards (the `test` DB is shared)."""
    assert MARIADB_URL
    server = make_url(MARIADB_URL)
    name = f"{prefix}_{uuid.uuid4().hex[:10]}"
    admin = make_engine(server.render_as_string(hide_password=False))
    with admin.begin() as conn:
        conn.execute(text(f"CREATE DATABASE `{name}` CHARACTER SET utf8mb4"))
    try:
        yield server.set(database=name).render_as_string(hide_password=False)
    finally:
        with admin.begin() as conn:
            conn.execute(text(f"DROP DATABASE IF EXISTS `{name}`"))
        admin.dispose()


def _postgres_database(prefix: str) -> Iterator[str]:
    """A fresh database on the PostgreSQL server, dropped afterwards (WITH FORCE: a test's
    engine left open does not keep it). Cloned from template0, which nobody connects to, so
    parallel workers may create theirs at the same time."""
    assert POSTGRES_URL
    server = make_url(POSTGRES_URL)
    name = f"{prefix}_{uuid.uuid4().hex[:10]}"
    admin = make_engine(server.render_as_string(hide_password=False), isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f"CREATE DATABASE \"{name}\" TEMPLATE template0 ENCODING 'UTF8'"))
    try:
        yield server.set(database=name).render_as_string(hide_password=False)
    finally:
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


# Every DB test runs on each of these: SQLite always, the servers when their URL is set.
ALL_DATABASES = [
    "sqlite",
    pytest.param("mariadb", marks=requires_mariadb),
    pytest.param("postgres", marks=requires_postgres),
]
BOTH_DATABASES = ALL_DATABASES  # the older name, still imported by some tests


def _empty_database(backend: str, tmp_path: Path, name: str) -> Iterator[str]:
    if backend == "sqlite":
        yield f"sqlite:///{tmp_path / f'{name}.db'}"
    elif backend == "postgres":
        yield from _postgres_database(f"mr_{name}")
    else:
        yield from _mariadb_database(f"mr_{name}")


@pytest.fixture(params=ALL_DATABASES)
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """An empty app database URL, on SQLite and (when configured) on MariaDB and PostgreSQL."""
    yield from _empty_database(request.param, tmp_path, "app")


@pytest.fixture
def app_db_url(db_url: str) -> str:
    """A migrated app database."""
    upgrade(db_url)
    return db_url


@pytest.fixture
def spawn_service(tmp_path: Path) -> Iterator:
    started: list[ServiceProcess] = []

    def spawn(name: str, env: dict[str, str]) -> ServiceProcess:
        proc = ServiceProcess(name, env, tmp_path / f"{name}-{len(started)}.log")
        started.append(proc)
        return proc

    yield spawn
    for proc in started:
        proc.stop()


@pytest.fixture(params=ALL_DATABASES)
def moodle_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """An empty Moodle database URL, on SQLite and (when configured) on MariaDB and PostgreSQL."""
    yield from _empty_database(request.param, tmp_path, "moodle")


@pytest.fixture
def site(moodle_url: str) -> Site:
    """The two-company site of tests/factories/sites.py, on each database."""
    return build_site(moodle_url)
