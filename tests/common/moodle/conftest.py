"""Databases for the Moodle tests: SQLite always, MariaDB as well when
MANIREPORTS_TEST_MARIADB_URL is set, PostgreSQL when MANIREPORTS_TEST_POSTGRES_URL is.

A server database is shared (MariaDB's `test`; on PostgreSQL one created for the session), so
every site a test builds there gets a table prefix of its own (`t<random>_<n>_`), and the tables
are dropped when the session ends.
"""

from __future__ import annotations

import os
import secrets
from collections.abc import Iterator
from dataclasses import dataclass, field
from itertools import count
from pathlib import Path

import pytest

from common.db import make_engine
from common.moodle.tables import moodle_metadata
from tests.conftest import _postgres_database, requires_postgres

MARIADB_URL = os.environ.get("MANIREPORTS_TEST_MARIADB_URL")


@dataclass
class MoodleDatabases:
    """Hands out empty places for a Moodle site: a (url, prefix) pair each."""

    backend: str
    scratch: Path
    server_url: str = ""
    run_token: str = field(default_factory=lambda: secrets.token_hex(3))
    _numbers: count = field(default_factory=lambda: count(1))
    _prefixes: list[str] = field(default_factory=list)

    def new(self) -> tuple[str, str]:
        number = next(self._numbers)
        if self.backend == "sqlite":
            return f"sqlite:///{self.scratch / f'moodle{number}.db'}", "mdl_"
        prefix = f"t{self.run_token}_{number}_"
        self._prefixes.append(prefix)
        return self.server_url, prefix

    def drop_all(self) -> None:
        if self.backend == "sqlite" or not self._prefixes:
            return
        engine = make_engine(self.server_url)
        try:
            for prefix in self._prefixes:
                moodle_metadata(prefix).drop_all(engine, checkfirst=True)
        finally:
            engine.dispose()


@pytest.fixture(
    scope="session",
    params=[
        "sqlite",
        pytest.param(
            "mariadb",
            marks=[
                pytest.mark.mariadb,
                pytest.mark.skipif(not MARIADB_URL, reason="MANIREPORTS_TEST_MARIADB_URL not set"),
            ],
        ),
        pytest.param("postgres", marks=[pytest.mark.postgres, requires_postgres]),
    ],
)
def moodle_databases(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[MoodleDatabases]:
    scratch = tmp_path_factory.mktemp("moodle")
    if request.param == "postgres":
        for url in _postgres_database("mr_moodletests"):
            yield MoodleDatabases("postgres", scratch, server_url=url)
        return  # the whole database is dropped: no tables to drop one by one
    databases = MoodleDatabases(request.param, scratch, server_url=str(MARIADB_URL))
    yield databases
    databases.drop_all()
