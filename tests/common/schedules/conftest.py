"""The people who author and receive schedules, as viewers and authors in their scope (the
app DB and the Moodle source come from tests/common/conftest.py)."""

from __future__ import annotations

from common.access.viewer import Viewer, load_viewer
from common.appdb import AppDB
from common.moodle import MoodleSource
from common.schedules.store import Author
from common.tenancy import VIEW, scope_for


def viewer(appdb: AppDB, source: MoodleSource, user_id: int) -> Viewer:
    with appdb.transaction() as db:
        found = load_viewer(source, db, user_id)
    assert found is not None
    return found


def author(appdb: AppDB, source: MoodleSource, user_id: int, company: int | None = None) -> Author:
    who = viewer(appdb, source, user_id)
    return Author(who, scope_for(who, company, VIEW))
