"""Databases for the Moodle tests: SQLite always, MariaDB as well when
MANIREPORTS_TEST_MARIADB_URL is set.

The MariaDB database is shared, so every site a test builds there gets a table prefix of its own
(`t<random>_<n>_`), and the tables are dropped when the session ends.
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

MARIADB_URL = os.environ.get("MANIREPORTS_TEST_MARIADB_URL")


@dataclass
class MoodleDatabases:
    """Hands out empty places for a Moodle site: a (url, prefix) pair each."""

    backend: str
    scratch: Path
    run_token: str = field(default_factory=lambda: secrets.token_hex(3))
    _numbers: count = field(default_factory=lambda: count(1))
    _prefixes: list[str] = field(default_factory=list)

    def new(self) -> tuple[str, str]:
        number = next(self._numbers)
        if self.backend == "sqlite":
            return f"sqlite:///{self.scratch / f'moodle{number}.db'}", "mdl_"
        prefix = f"t{self.run_token}_{number}_"
        self._prefixes.append(prefix)
        return str(MARIADB_URL), prefix

    def drop_all(self) -> None:
        if self.backend == "sqlite" or not self._prefixes:
            return
        engine = make_engine(str(MARIADB_URL))
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
    ],
)
def moodle_databases(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[MoodleDatabases]:
    databases = MoodleDatabases(request.param, tmp_path_factory.mktemp("moodle"))
    yield databases
    databases.drop_all()
