"""The `lab` fixture: tests/common/unenroll/lab.py's course at the site's fixed clock."""

from __future__ import annotations

import pytest

from tests.common.unenroll.lab import build_lab
from tests.factories.sites import Site


@pytest.fixture
def lab(site: Site, app_db_url: str):  # type: ignore[no-untyped-def]
    built = build_lab(site, app_db_url)
    yield built
    built.moodle.dispose()
    built.appdb.dispose()
