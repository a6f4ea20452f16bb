"""An app DB (SQLite, and MariaDB when configured) for the analytics computations."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from common.appdb import AppDB


@pytest.fixture
def appdb(app_db_url: str) -> Iterator[AppDB]:
    db = AppDB(app_db_url)
    yield db
    db.dispose()
