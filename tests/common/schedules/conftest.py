"""A migrated SQLite app DB and the two-company Moodle site (SQLite and, when set, MariaDB),
with the people who author and receive schedules."""

from __future__ import annotations

from pathlib import Path

import pytest

from common.access.viewer import Viewer, load_viewer
from common.appdb import AppDB
from common.migrate import upgrade
from common.moodle import MoodleSource
from common.schedules.store import Author
from common.tenancy import VIEW, scope_for
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


def viewer(appdb: AppDB, source: MoodleSource, user_id: int) -> Viewer:
    with appdb.transaction() as db:
        found = load_viewer(source, db, user_id)
    assert found is not None
    return found


def author(appdb: AppDB, source: MoodleSource, user_id: int, company: int | None = None) -> Author:
    who = viewer(appdb, source, user_id)
    return Author(who, scope_for(who, company, VIEW))
