"""An app database for the email domain's tests, on SQLite and (when configured) MariaDB."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from common.appdb import AppDB


@pytest.fixture
def appdb(app_db_url: str) -> Iterator[AppDB]:
    db = AppDB(app_db_url)
    yield db
    db.dispose()
