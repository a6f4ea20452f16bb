"""An app database for the email domain's tests, on SQLite and (when configured) MariaDB."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from common.appdb import AppDB
from common.nats_server import EmbeddedNatsServer


@pytest.fixture
def appdb(app_db_url: str) -> Iterator[AppDB]:
    db = AppDB(app_db_url)
    yield db
    db.dispose()


@pytest.fixture
def fresh_nats(tmp_path):  # type: ignore[no-untyped-def]
    """A nats-server of the test's own: what a test publishes is all that is on its streams."""
    server = EmbeddedNatsServer(tmp_path / "nats").start()
    yield server
    server.stop()
