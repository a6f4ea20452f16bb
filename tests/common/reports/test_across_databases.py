"""The same seeded demo site on SQLite, MariaDB and PostgreSQL gives the same report rows, in
the same order for every sortable column both ways, and the same charts and headline figures.

Runs when at least one server is configured (MANIREPORTS_TEST_MARIADB_URL,
MANIREPORTS_TEST_POSTGRES_URL): SQLite is the reference each server is compared with.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from common.moodle import MoodleSource
from common.moodle.demo import seed_site
from common.reports import PageRequest, RunContext, get_report
from common.tenancy import SITE
from tests.conftest import MARIADB_URL, POSTGRES_URL, _empty_database

NOW = 1_795_000_000  # the seed's clock and the reports' "now"
SEED = {"users": 80, "courses": 5, "companies": 2, "days": 20, "target_log_rows": 2_000,
        "seed": 3, "now": NOW}  # fmt: skip
# The reports that read the Moodle DB alone (the others add the app DB's time figures).
REPORTS = ("course_completion", "course_progress", "quiz_attempts")
SERVERS = [name for name, url in (("mariadb", MARIADB_URL), ("postgres", POSTGRES_URL)) if url]

pytestmark = pytest.mark.skipif(not SERVERS, reason="no database server configured")


@pytest.fixture(scope="module")
def sites(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, MoodleSource]]:
    """The demo site seeded with the same options into SQLite and each configured server."""
    scratch: Path = tmp_path_factory.mktemp("across")
    made = [_empty_database(backend, scratch, "across") for backend in ("sqlite", *SERVERS)]
    sources = {}
    for backend, database in zip(("sqlite", *SERVERS), made, strict=True):
        url = next(database)
        seed_site(url, **SEED)
        sources[backend] = MoodleSource(url)
    yield sources
    for source in sources.values():
        source.dispose()
    for database in made:
        database.close()


def everything(source: MoodleSource, name: str, sort: str, direction: str) -> dict[str, Any]:
    report = get_report(name)
    assert report is not None
    ctx = RunContext(source=source, scope=SITE, now=NOW)
    page = report.page(ctx, report.parse_params({}), PageRequest(1, 10_000, sort, direction))
    return {"rows": page.rows, "total": page.total, "chart": page.chart, "kpis": page.kpis}


def orders(name: str) -> list[tuple[str, str]]:
    report = get_report(name)
    assert report is not None
    keys = [column.key for column in report.columns if column.sortable]
    return [(key, direction) for key in keys for direction in ("asc", "desc")]


@pytest.mark.parametrize(
    ("name", "sort", "direction"),
    [(name, sort, direction) for name in REPORTS for sort, direction in orders(name)],
)
def test_report_rows_are_identical_on_every_database(sites, name, sort, direction):
    reference = everything(sites["sqlite"], name, sort, direction)

    assert reference["total"] > 0  # a report with no rows would prove nothing
    for backend in SERVERS:
        assert everything(sites[backend], name, sort, direction) == reference, backend
