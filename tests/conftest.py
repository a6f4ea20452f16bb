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
from tests.postgres_support import PostgresServer, copied_site
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


POSTGRES = PostgresServer(POSTGRES_URL) if POSTGRES_URL else None


def _postgres_database(prefix: str, template: str = "template0") -> Iterator[str]:
    """A fresh database on the PostgreSQL server (a copy of `template`), dropped afterwards."""
    assert POSTGRES
    yield from POSTGRES.database(prefix, template)


def pytest_sessionfinish(session: pytest.Session) -> None:
    if POSTGRES is not None:
        POSTGRES.close()


# Every DB test runs on each of these: SQLite always, the servers when their URL is set.
ALL_DATABASES = [
    "sqlite",
    pytest.param("mariadb", marks=requires_mariadb),
    pytest.param("postgres", marks=requires_postgres),
]
BOTH_DATABASES = ALL_DATABASES  # the older name, still imported by some tests


def backend_of(url: str) -> str:
    """The ALL_DATABASES name of the server a URL points at (a second database beside it)."""
    name = make_url(url).get_backend_name()
    return {"postgresql": "postgres", "mysql": "mariadb"}.get(name, name)


def _empty_database(
    backend: str, tmp_path: Path, name: str, *, pg_template: str = "template0"
) -> Iterator[str]:
    if backend == "sqlite":
        yield f"sqlite:///{tmp_path / f'{name}.db'}"
    elif backend == "postgres":
        yield from _postgres_database(f"mr_{name}", pg_template)
    else:
        yield from _mariadb_database(f"mr_{name}")


def migrated_database(backend: str, tmp_path: Path) -> Iterator[str]:
    """An app database at the head revision (on PostgreSQL a copy of a migrated template)."""
    template = POSTGRES.template("app", upgrade) if backend == "postgres" and POSTGRES else ""
    for url in _empty_database(backend, tmp_path, "app", pg_template=template or "template0"):
        upgrade(url)  # the head already when copied: one query
        yield url


@pytest.fixture(params=ALL_DATABASES)
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """An empty app database URL, on SQLite and (when configured) on MariaDB and PostgreSQL
    (there a copy of a migrated one when the test asks for `app_db_url`)."""
    template = "template0"
    if request.param == "postgres" and "app_db_url" in request.fixturenames:
        assert POSTGRES
        template = POSTGRES.template("app", upgrade)
    yield from _empty_database(request.param, tmp_path, "app", pg_template=template)


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
    """An empty Moodle database URL, on SQLite and (when configured) on MariaDB and PostgreSQL
    (there a copy of the two-company site when the test uses the `site` below)."""
    template = "template0"
    if request.param == "postgres" and _uses_shared_site(request):
        assert POSTGRES
        template = POSTGRES.template("site", _remember_template_site)
    yield from _empty_database(request.param, tmp_path, "moodle", pg_template=template)


@pytest.fixture
def site(moodle_url: str) -> Site:
    """The two-company site of tests/factories/sites.py, on each database."""
    if backend_of(moodle_url) == "postgres":  # moodle_url is a copy of the site's template
        template_site, next_number = _TEMPLATE_SITE[0]
        return copied_site(template_site, next_number, moodle_url)  # type: ignore[no-any-return]
    return build_site(moodle_url)


_TEMPLATE_SITE: list[tuple[Site, int]] = []


def _remember_template_site(url: str) -> None:
    built = build_site(url)
    built.moodle.engine.dispose()  # nobody may be connected to a template being copied
    _TEMPLATE_SITE.append((built, next(built.moodle._numbers)))


def _uses_shared_site(request: pytest.FixtureRequest) -> bool:
    """Whether the test's `site` is the one above (a folder may define a `site` of its own)."""
    definitions = request._pyfuncitem._fixtureinfo.name2fixturedefs.get("site") or ()  # type: ignore[attr-defined]
    closest = getattr(definitions[-1], "func", None) if definitions else None
    return getattr(closest, "__module__", None) == __name__
