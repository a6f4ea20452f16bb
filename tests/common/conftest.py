"""A migrated SQLite app DB and a read-only source on the two-company Moodle site (SQLite and,
when set, MariaDB): what most domain tests here stand on. A folder whose tests need the app DB
on MariaDB too defines its own `appdb`."""

from __future__ import annotations

from pathlib import Path

import pytest

from common.appdb import AppDB
from common.migrate import upgrade
from common.moodle import MoodleSource
from tests.factories.sites import Site


@pytest.fixture
def appdb(tmp_path: Path):  # type: ignore[no-untyped-def]
    url = f"sqlite:///{tmp_path / 'app.db'}"
    upgrade(url)
    db = AppDB(url)
    yield db
    db.dispose()


@pytest.fixture
def source(site: Site):  # type: ignore[no-untyped-def]
    moodle = MoodleSource(site.url)
    yield moodle
    moodle.dispose()
