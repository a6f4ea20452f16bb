"""An app database (SQLite, MariaDB when set) and the rules of a site with one Workspace domain."""

from __future__ import annotations

import io
from collections.abc import Iterator

import pytest

from common.appdb import AppDB
from common.identity.rules import BUILT_IN_SOURCES, Rules

RULES = Rules(BUILT_IN_SOURCES + ("schoology",), ("school.example",))


@pytest.fixture
def appdb(app_db_url: str) -> Iterator[AppDB]:
    db = AppDB(app_db_url)
    yield db
    db.dispose()


def csv_bytes(text: str, *, bom: bool = False, crlf: bool = False) -> io.BytesIO:
    if crlf:
        text = text.replace("\n", "\r\n")
    data = text.encode("utf-8")
    return io.BytesIO((b"\xef\xbb\xbf" if bom else b"") + data)
